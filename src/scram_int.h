/* scram_int.h -- private to the SCRAM module (scram.c, scram_server.c, scram_client.c).
 *
 * The state words, the bounded output buffer and the message scanner the
 * verifier code and both exchanges share.  Nothing outside those three
 * files includes it.
 */
#ifndef PGSLAB_SCRAM_INT_H
#define PGSLAB_SCRAM_INT_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "crypto.h"
#include "scram.h"
#include "scram_client.h"
#include "scram_server.h"

enum scram_state {
	SRV_INIT = 0x53525601,
	SRV_FIRST_SENT,
	SRV_DONE,
	SRV_FAILED,
	CLI_INIT = 0x434c5601,
	CLI_FIRST_SENT,
	CLI_FINAL_SENT,
	CLI_DONE,
	CLI_FAILED,
};

/* crypto.h's -errno failures, as the SCRAM error every caller already handles. */
static inline int scram_sha256(const void *data, size_t len, uint8_t out[SCRAM_KEY_LEN])
{
	return crypto_sha256(data, len, out) ? SCRAM_E_CRYPTO : 0;
}

static inline int scram_hmac(const uint8_t *key, size_t klen, const void *data, size_t len,
		uint8_t out[SCRAM_KEY_LEN])
{
	return crypto_hmac(key, klen, data, len, out) ? SCRAM_E_CRYPTO : 0;
}

/* ---- bounded output buffer --------------------------------------------- */

struct obuf {
	char *p;
	size_t cap, len;
	int err;
};

static inline void ob_init(struct obuf *b, char *p, size_t cap)
{
	b->p = p;
	b->cap = cap;
	b->len = 0;
	b->err = (p && cap) ? 0 : SCRAM_E_NOSPACE;
	if (!b->err)
		p[0] = '\0';
}

/* Continue appending to <p>, which already holds <len> bytes. */
static inline void ob_resume(struct obuf *b, char *p, size_t cap, size_t len)
{
	b->p = p;
	b->cap = cap;
	b->len = len;
	b->err = len < cap ? 0 : SCRAM_E_NOSPACE;
}

static inline void ob_put(struct obuf *b, const char *s, size_t n)
{
	if (b->err)
		return;
	if (n >= b->cap - b->len) {
		b->err = SCRAM_E_NOSPACE;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static inline void ob_str(struct obuf *b, const char *s)
{
	ob_put(b, s, strlen(s));
}

static inline void ob_b64(struct obuf *b, const uint8_t *src, size_t n)
{
	int rc;

	if (b->err)
		return;
	rc = scram_b64_encode(src, n, b->p + b->len, b->cap - b->len);
	if (rc < 0)
		b->err = rc;
	else
		b->len += (size_t)rc;
}

static inline void ob_int(struct obuf *b, int v)
{
	char tmp[16];
	int n = snprintf(tmp, sizeof(tmp), "%d", v);

	ob_put(b, tmp, (size_t)n);
}

/* ---- message scanner ---------------------------------------------------- */

struct scan {
	const char *p, *end;
	bool comma; /* a ',' was consumed: another attribute must follow */
};

static inline void scan_init(struct scan *s, const char *m, size_t len)
{
	s->p = m;
	s->end = m + len;
	s->comma = false;
}

static inline bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Does "<attr>=" come next? */
static inline bool scan_peek(const struct scan *s, char attr)
{
	return s->end - s->p >= 2 && s->p[0] == attr && s->p[1] == '=';
}

static inline bool scan_at_end(const struct scan *s)
{
	return s->p == s->end && !s->comma;
}

/* Take "<attr>=<value>" (<attr> 0: any ALPHA); the value runs to the next
 * ',' or the end of the message. */
int scram_scan_attr(struct scan *s, char attr, const char **val, size_t *vlen);
/* Skip optional extensions up to the end of the message. */
int scram_scan_extensions(struct scan *s);

/* ---- field checks shared by the exchanges (scram.c) --------------------- */

/* <msg> non-NULL, 1..SCRAM_MSG_MAX bytes, no NUL. */
int scram_check_msg(const char *msg, size_t len);
/* Every byte printable ASCII other than ','. */
bool scram_nonce_ok(const char *v, size_t n);
/* Decimal in [SCRAM_ITER_MIN, SCRAM_ITER_MAX]. */
int scram_parse_iterations(const char *v, size_t n, int *out);
/* Exactly SCRAM_KEY_LEN bytes of base64. */
int scram_decode_key(const char *v, size_t n, uint8_t out[SCRAM_KEY_LEN]);
/* 1..SCRAM_SALT_MAX bytes of base64 into <sec>'s salt. */
int scram_decode_salt(const char *v, size_t n, struct scram_secret *sec);
/* SCRAM_RAW_NONCE_LEN random bytes, base64. */
int scram_random_nonce(char out[SCRAM_NONCE_MAX + 1], size_t *len);
/* The test hook behind scram_{server,client}_set_nonce(). */
int scram_set_fixed_nonce(char *dst, size_t *dst_len, const char *nonce, size_t max);
/* Iterations and salt length within the limits. */
bool scram_secret_ok(const struct scram_secret *sec);
/* Fill <out> and <client_key> from <password> (SASLprep, PBKDF2, HMACs). */
int scram_derive_keys(const char *password, const uint8_t *salt, size_t salt_len, int iterations,
		struct scram_secret *out, uint8_t client_key[SCRAM_KEY_LEN]);

#endif
