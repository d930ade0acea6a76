/* pwd.h -- PostgreSQL md5 password secrets and classification of stored secrets.
 *
 * Pure functions over caller buffers; no allocation of our own.  Return 0 or
 * -errno.  md5 as PostgreSQL does it:
 *   stored secret   "md5" + hex(md5(password || user))
 *   wire response   "md5" + hex(md5(hex_part_of_secret || salt[4]))
 */
#ifndef PGSLAB_PWD_H
#define PGSLAB_PWD_H

#include <stdint.h>

#define PWD_MD5_LEN 35 /* "md5" + 32 lowercase hex digits */
#define PWD_MD5_BUF 36 /* ... and the NUL */
#define PWD_MD5_SALT_LEN 4
/* The longest stored secret (auth_file, [databases] password=, an
 * auth_query answer) with its NUL: PgBouncer's MAX_PASSWORD, so its
 * longest passwords work here too.  Longer ones are refused where they are
 * read, never cut. */
#define PWD_SECRET_MAX 2048

enum pwd_kind {
	PWD_NONE,  /* "" (or NULL): no secret; never authenticates */
	PWD_PLAIN, /* anything that is neither of the below */
	PWD_MD5,   /* "md5" + exactly 32 lowercase hex digits */
	PWD_SCRAM, /* a verifier scram_secret_parse() accepts */
};

/* Classify a stored secret the way PostgreSQL's get_password_type() does.
 * The one classifier: the userlist, the auth code and server login all use it. */
enum pwd_kind pwd_classify(const char *secret);
/* "none", "plain", "md5" or "scram-sha-256". */
const char *pwd_kind_name(enum pwd_kind kind);

/* Write the stored md5 secret of <user>/<password> to <out>.
 * -EINVAL for NULL arguments, -EIO if OpenSSL fails. */
int pwd_md5_secret(const char *user, const char *password, char out[PWD_MD5_BUF]);
/* Write the response to an md5 challenge with <salt>, given the stored md5
 * secret <secret_md5> ("md5..." as in pg_authid).  -EINVAL if <secret_md5>
 * is not an md5 secret. */
int pwd_md5_response(const char *secret_md5, const uint8_t salt[PWD_MD5_SALT_LEN],
		char out[PWD_MD5_BUF]);
/* Check a client's answer <response> (the NUL-terminated PasswordMessage
 * body) to an md5 challenge with <salt>.  <stored> is what pgslab holds for
 * <user>: an md5 secret, or a plain password (its md5 secret is derived
 * first).  The comparison is constant-time.  Returns 0 on match, -EACCES on
 * mismatch (also a response of the wrong length), -EOPNOTSUPP if <stored> is
 * a SCRAM verifier (md5 cannot be checked against it; PostgreSQL switches
 * to SCRAM then), -EINVAL for NULL arguments, -EIO if OpenSSL fails. */
int pwd_md5_check(const char *stored, const char *user, const uint8_t salt[PWD_MD5_SALT_LEN],
		const char *response);

#endif
