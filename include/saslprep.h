/* saslprep.h -- SASLprep (RFC 4013) of a password, as PostgreSQL applies it before SCRAM.
 *
 * Exact for ASCII (identity) and for every string of code points <= U+00FF
 * (Latin-1: NBSP -> space, soft hyphen dropped, NFKC of the 13
 * compatibility characters such as U+00B2 -> "2"; prohibited C0/C1 controls
 * or an empty result -> the raw bytes, as PostgreSQL falls back to).
 * Invalid UTF-8 -> raw bytes, as PostgreSQL does.  KNOWN LIMITATION: a
 * valid UTF-8 password with a code point above U+00FF is used as raw bytes
 * without NFKC; PostgreSQL would normalize it, so the verifiers differ when
 * normalization changes the string (e.g. U+FB01 "fi" ligature) --
 * SASLPREP_UNSUPPORTED tells the caller so it can warn.  Already-normalized
 * passwords (the common case) match.
 *
 * Pure: no allocation, no global state.
 */
#ifndef PGSLAB_SASLPREP_H
#define PGSLAB_SASLPREP_H

#include <stddef.h>

#define SASLPREP_PASSWORD_MAX 1024 /* PostgreSQL's limit for SASLprep */

enum saslprep_result {
	SASLPREP_OK = 0,	  /* SASLprep applied, same result as PostgreSQL */
	SASLPREP_RAW = 1,	  /* SASLprep refuses (invalid UTF-8, prohibited, empty):
				   * raw bytes, same as PostgreSQL */
	SASLPREP_UNSUPPORTED = 2, /* code point > U+00FF: raw bytes, may differ */
};

/* Prepare the NUL-terminated <password> into <out> (NUL-terminated, length
 * in *<out_len>; <cap> of 5/2 * strlen + 1 always suffices).  Returns an
 * enum saslprep_result (>= 0), -E2BIG beyond SASLPREP_PASSWORD_MAX bytes,
 * -ENOSPC when <cap> is short, -EINVAL for a NULL argument. */
int saslprep_password(const char *password, char *out, size_t cap, size_t *out_len);

#endif
