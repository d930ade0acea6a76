/* scram.c -- SCRAM-SHA-256 verifiers, base64, and the message grammar both exchanges share. */
#include "scram.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "crypto.h"
#include "saslprep.h"
#include "scram_int.h"

/*
 * Theory.
 *
 * Grammar accepted (RFC 5802 section 7, narrowed as PostgreSQL narrows it):
 *
 *   client-first = ("n" / "y") "," ["a=" authzid -> UNSUPPORTED] "," client-first-bare
 *   client-first-bare = ["m=" -> UNSUPPORTED ","] "n=" user "," "r=" c-nonce *("," ext)
 *   server-first = ["m=" -> UNSUPPORTED ","] "r=" c-nonce s-nonce "," "s=" b64 ","
 *                  "i=" digits *("," ext)
 *   client-final = "c=" b64(gs2-header) "," "r=" nonce *("," ext) "," "p=" b64(proof)
 *   server-final = ("e=" text / "v=" b64(sig)) *("," ext)
 *   ext          = ALPHA "=" *(any byte but "," and NUL)
 *
 *   AuthMessage  = client-first-bare "," server-first "," client-final-without-proof
 *   ClientKey    = HMAC(SaltedPassword, "Client Key"),  StoredKey = SHA256(ClientKey)
 *   ClientProof  = ClientKey XOR HMAC(StoredKey, AuthMessage)
 *   ServerSig    = HMAC(ServerKey, AuthMessage)
 *
 * Invariants:
 *   every accepted message has length <= SCRAM_MSG_MAX, so
 *   auth_len <= 3 * SCRAM_MSG_MAX + 2 == SCRAM_AUTH_MAX;
 *   nonce_len <= SCRAM_NONCE_MAX and nonce bytes are in 0x21..0x7e minus ',';
 *   an output is written only through struct obuf, which checks
 *   len + n + 1 <= cap before each copy and keeps out[len] == '\0';
 *   the state word holds a magic value only after init, so begin on an
 *   uninitialized struct fails with SCRAM_E_STATE.
 *
 * Ownership: messages and keys are borrowed for the call; the verifier is
 * copied into the server state; nothing is retained past the call but what
 * the state structs hold, and *_clear() wipes those.
 *
 * Files: this one holds what both exchanges share (grammar helpers, base64,
 * verifiers); scram_server.c and scram_client.c the two state machines;
 * scram_int.h the private structs and state words.
 */

static const char secret_prefix[] = "SCRAM-SHA-256$";

const char *scram_strerror(int err)
{
	switch (err) {
	case SCRAM_OK:
		return "success";
	case SCRAM_E_MALFORMED:
		return "malformed SCRAM message";
	case SCRAM_E_TOOLONG:
		return "SCRAM input too long";
	case SCRAM_E_NOSPACE:
		return "output buffer too small";
	case SCRAM_E_CHANNEL_BINDING:
		return "SCRAM channel binding not supported or mismatched";
	case SCRAM_E_UNSUPPORTED:
		return "unsupported SCRAM feature (authzid or mandatory extension)";
	case SCRAM_E_NONCE:
		return "SCRAM nonce mismatch";
	case SCRAM_E_BAD_PROOF:
		return "SCRAM client proof invalid (wrong password)";
	case SCRAM_E_SERVER_SIGNATURE:
		return "SCRAM server signature invalid";
	case SCRAM_E_SERVER_ERROR:
		return "SCRAM server reported an error";
	case SCRAM_E_ITERATIONS:
		return "SCRAM iteration count out of range";
	case SCRAM_E_SALT:
		return "SCRAM salt empty or too long";
	case SCRAM_E_KEYS_MISMATCH:
		return "SCRAM pass-through keys do not fit the server's salt or iteration count";
	case SCRAM_E_STATE:
		return "SCRAM call out of sequence";
	case SCRAM_E_INVALID:
		return "invalid SCRAM argument";
	case SCRAM_E_CRYPTO:
		return "cryptographic library failure";
	}
	return "unknown SCRAM error";
}

/* ---- base64 ------------------------------------------------------------- */

static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Inputs beyond this are refused so every length fits an int. */
#define B64_LEN_MAX (1u << 24)

int scram_b64_encode(const uint8_t *src, size_t len, char *dst, size_t cap)
{
	size_t need, i, o = 0;

	if (len > B64_LEN_MAX)
		return SCRAM_E_TOOLONG;
	need = (len + 2) / 3 * 4;
	if (!dst || cap <= need)
		return SCRAM_E_NOSPACE;
	if (len && !src)
		return SCRAM_E_INVALID;
	for (i = 0; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 | src[i + 2];

		dst[o++] = b64_chars[v >> 18 & 63];
		dst[o++] = b64_chars[v >> 12 & 63];
		dst[o++] = b64_chars[v >> 6 & 63];
		dst[o++] = b64_chars[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)src[i] << 16;

		dst[o++] = b64_chars[v >> 18 & 63];
		dst[o++] = b64_chars[v >> 12 & 63];
		dst[o++] = '=';
		dst[o++] = '=';
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8;

		dst[o++] = b64_chars[v >> 18 & 63];
		dst[o++] = b64_chars[v >> 12 & 63];
		dst[o++] = b64_chars[v >> 6 & 63];
		dst[o++] = '=';
	}
	dst[o] = '\0';
	return (int)o;
}

static int b64_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int scram_b64_decode(const char *src, size_t len, uint8_t *dst, size_t cap)
{
	size_t pad = 0, out_len, i, o = 0;

	if (len > B64_LEN_MAX)
		return SCRAM_E_TOOLONG;
	if (len % 4 != 0 || (len && !src))
		return SCRAM_E_MALFORMED;
	if (len == 0)
		return 0;
	if (src[len - 1] == '=')
		pad = src[len - 2] == '=' ? 2 : 1;
	out_len = len / 4 * 3 - pad;
	if (out_len > cap || (out_len && !dst))
		return SCRAM_E_NOSPACE;
	for (i = 0; i < len; i += 4) {
		bool last = i + 4 == len;
		uint32_t v = 0;
		int j;

		for (j = 0; j < 4; j++) {
			int d;

			if (last && j >= 4 - (int)pad) {
				if (src[i + j] != '=')
					return SCRAM_E_MALFORMED;
				d = 0;
			} else {
				d = b64_val((unsigned char)src[i + j]);
				if (d < 0)
					return SCRAM_E_MALFORMED;
			}
			v = v << 6 | (uint32_t)d;
		}
		/* canonical only: the bits under the padding must be zero */
		if (last && (pad == 2 ? (v & 0xffff) : pad == 1 ? (v & 0xff) : 0))
			return SCRAM_E_MALFORMED;
		dst[o++] = (uint8_t)(v >> 16);
		if (!last || pad < 2)
			dst[o++] = (uint8_t)(v >> 8);
		if (!last || pad < 1)
			dst[o++] = (uint8_t)v;
	}
	return (int)o;
}

/* ---- message scanner ---------------------------------------------------- */

/* Take "<attr>=<value>" (<attr> 0: any ALPHA); the value runs to the next
 * ',' or the end of the message. */
int scram_scan_attr(struct scan *s, char attr, const char **val, size_t *vlen)
{
	const char *c;

	if (s->end - s->p < 2 || s->p[1] != '=')
		return SCRAM_E_MALFORMED;
	if (attr ? s->p[0] != attr : !is_alpha(s->p[0]))
		return SCRAM_E_MALFORMED;
	s->p += 2;
	*val = s->p;
	c = memchr(s->p, ',', (size_t)(s->end - s->p));
	if (c) {
		*vlen = (size_t)(c - s->p);
		s->p = c + 1;
		s->comma = true;
	} else {
		*vlen = (size_t)(s->end - s->p);
		s->p = s->end;
		s->comma = false;
	}
	return 0;
}

/* Skip optional extensions up to the end of the message. */
int scram_scan_extensions(struct scan *s)
{
	const char *v;
	size_t vlen;
	int rc;

	while (!scan_at_end(s)) {
		rc = scram_scan_attr(s, 0, &v, &vlen);
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- fields ------------------------------------------------------------- */

int scram_check_msg(const char *msg, size_t len)
{
	if (!msg)
		return SCRAM_E_INVALID;
	if (len > SCRAM_MSG_MAX)
		return SCRAM_E_TOOLONG;
	if (len == 0 || memchr(msg, '\0', len))
		return SCRAM_E_MALFORMED;
	return 0;
}

bool scram_nonce_ok(const char *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x21 || (unsigned char)v[i] > 0x7e || v[i] == ',')
			return false;
	return true;
}

/* Unsigned decimal of at most 10 digits into *out; MALFORMED for non-digits. */
static int parse_uint(const char *v, size_t n, long long *out)
{
	long long x = 0;
	size_t i;

	if (n == 0)
		return SCRAM_E_MALFORMED;
	for (i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return SCRAM_E_MALFORMED;
		if (x > (long long)SCRAM_ITER_MAX * 10)
			continue; /* saturate; caught by the range check */
		x = x * 10 + (v[i] - '0');
	}
	*out = x;
	return 0;
}

int scram_parse_iterations(const char *v, size_t n, int *out)
{
	long long x;
	int rc = parse_uint(v, n, &x);

	if (rc)
		return rc;
	if (x < SCRAM_ITER_MIN || x > SCRAM_ITER_MAX)
		return SCRAM_E_ITERATIONS;
	*out = (int)x;
	return 0;
}

/* Decode an exactly-32-byte base64 key. */
int scram_decode_key(const char *v, size_t n, uint8_t out[SCRAM_KEY_LEN])
{
	uint8_t tmp[SCRAM_KEY_LEN + 3];
	int rc = scram_b64_decode(v, n, tmp, sizeof(tmp));

	if (rc != SCRAM_KEY_LEN)
		return SCRAM_E_MALFORMED;
	memcpy(out, tmp, SCRAM_KEY_LEN);
	return 0;
}

int scram_decode_salt(const char *v, size_t n, struct scram_secret *sec)
{
	int rc = scram_b64_decode(v, n, sec->salt, sizeof(sec->salt));

	if (rc == SCRAM_E_NOSPACE || rc == SCRAM_E_TOOLONG || rc == 0)
		return SCRAM_E_SALT;
	if (rc < 0)
		return rc;
	sec->salt_len = (size_t)rc;
	return 0;
}

int scram_random_nonce(char out[SCRAM_NONCE_MAX + 1], size_t *len)
{
	uint8_t raw[SCRAM_RAW_NONCE_LEN];
	int rc;

	if (crypto_random(raw, sizeof(raw)))
		return SCRAM_E_CRYPTO;
	rc = scram_b64_encode(raw, sizeof(raw), out, SCRAM_NONCE_MAX + 1);
	if (rc < 0)
		return rc;
	*len = (size_t)rc;
	return 0;
}

int scram_set_fixed_nonce(char *dst, size_t *dst_len, const char *nonce, size_t max)
{
	size_t n;

	if (!nonce)
		return SCRAM_E_INVALID;
	n = strnlen(nonce, max + 1);
	if (n == 0 || n > max || !scram_nonce_ok(nonce, n))
		return SCRAM_E_INVALID;
	memcpy(dst, nonce, n);
	dst[n] = '\0';
	*dst_len = n;
	return 0;
}

/* ---- verifiers ---------------------------------------------------------- */

bool scram_secret_ok(const struct scram_secret *sec)
{
	return sec && sec->iterations >= SCRAM_ITER_MIN && sec->iterations <= SCRAM_ITER_MAX &&
	       sec->salt_len >= 1 && sec->salt_len <= SCRAM_SALT_MAX;
}

int scram_derive_keys(const char *password, const uint8_t *salt, size_t salt_len, int iterations,
		struct scram_secret *out, uint8_t client_key[SCRAM_KEY_LEN])
{
	char prep[SASLPREP_PASSWORD_MAX * 5 / 2 + 1];
	uint8_t salted[SCRAM_KEY_LEN], salt_copy[SCRAM_SALT_MAX];
	size_t plen = 0;
	int rc;

	if (!password || !salt || !out)
		return SCRAM_E_INVALID;
	if (iterations < SCRAM_ITER_MIN || iterations > SCRAM_ITER_MAX)
		return SCRAM_E_ITERATIONS;
	if (salt_len < 1 || salt_len > SCRAM_SALT_MAX)
		return SCRAM_E_SALT;
	rc = saslprep_password(password, prep, sizeof(prep), &plen);
	if (rc == -E2BIG)
		return SCRAM_E_TOOLONG;
	if (rc < 0)
		return SCRAM_E_NOSPACE; /* cannot happen: <prep> fits the longest */
	memcpy(salt_copy, salt, salt_len); /* <salt> may live inside <out> */
	salt = salt_copy;
	memset(out, 0, sizeof(*out));
	rc = crypto_pbkdf2_sha256(prep, plen, salt, salt_len, iterations, salted) ? SCRAM_E_CRYPTO : 0;
	if (!rc)
		rc = scram_hmac(salted, sizeof(salted), "Client Key", 10, client_key);
	if (!rc)
		rc = scram_sha256(client_key, SCRAM_KEY_LEN, out->stored_key);
	if (!rc)
		rc = scram_hmac(salted, sizeof(salted), "Server Key", 10, out->server_key);
	if (!rc) {
		out->iterations = iterations;
		memcpy(out->salt, salt, salt_len);
		out->salt_len = salt_len;
	}
	crypto_wipe(prep, sizeof(prep));
	crypto_wipe(salted, sizeof(salted));
	return rc;
}

int scram_secret_from_password(const char *password, const uint8_t *salt, size_t salt_len,
		int iterations, struct scram_secret *out)
{
	uint8_t ck[SCRAM_KEY_LEN];
	int rc = scram_derive_keys(password, salt, salt_len, iterations, out, ck);

	crypto_wipe(ck, sizeof(ck));
	return rc;
}

int scram_secret_generate(const char *password, int iterations, struct scram_secret *out)
{
	uint8_t salt[SCRAM_DEFAULT_SALT_LEN];

	if (crypto_random(salt, sizeof(salt)))
		return SCRAM_E_CRYPTO;
	return scram_secret_from_password(password, salt, sizeof(salt), iterations, out);
}

int scram_secret_mock(const char *user, const uint8_t key[SCRAM_KEY_LEN], struct scram_secret *out)
{
	uint8_t k[SCRAM_KEY_LEN], salt[SCRAM_KEY_LEN];
	int rc;

	if (!user || !key || !out)
		return SCRAM_E_INVALID;
	memset(out, 0, sizeof(*out));
	rc = scram_hmac(key, SCRAM_KEY_LEN, user, strlen(user), k);
	if (!rc)
		rc = scram_hmac(k, sizeof(k), "salt", 4, salt);
	if (!rc)
		rc = scram_hmac(k, sizeof(k), "stored", 6, out->stored_key);
	if (!rc)
		rc = scram_hmac(k, sizeof(k), "server", 6, out->server_key);
	if (!rc) {
		out->iterations = SCRAM_DEFAULT_ITERATIONS;
		memcpy(out->salt, salt, SCRAM_DEFAULT_SALT_LEN);
		out->salt_len = SCRAM_DEFAULT_SALT_LEN;
	}
	crypto_wipe(k, sizeof(k));
	return rc;
}

int scram_secret_parse(const char *s, struct scram_secret *out)
{
	struct scram_secret sec;
	const char *p, *end, *sep;
	size_t len;
	int rc;

	if (!s || !out)
		return SCRAM_E_INVALID;
	len = strnlen(s, SCRAM_SECRET_STR_MAX);
	if (len >= SCRAM_SECRET_STR_MAX)
		return SCRAM_E_MALFORMED;
	if (strncmp(s, secret_prefix, sizeof(secret_prefix) - 1) != 0)
		return SCRAM_E_MALFORMED;
	p = s + sizeof(secret_prefix) - 1;
	end = s + len;
	memset(&sec, 0, sizeof(sec));

	sep = memchr(p, ':', (size_t)(end - p));
	if (!sep)
		return SCRAM_E_MALFORMED;
	rc = scram_parse_iterations(p, (size_t)(sep - p), &sec.iterations);
	if (rc)
		return rc;
	p = sep + 1;

	sep = memchr(p, '$', (size_t)(end - p));
	if (!sep)
		return SCRAM_E_MALFORMED;
	rc = scram_decode_salt(p, (size_t)(sep - p), &sec);
	if (rc)
		return rc;
	p = sep + 1;

	sep = memchr(p, ':', (size_t)(end - p));
	if (!sep)
		return SCRAM_E_MALFORMED;
	rc = scram_decode_key(p, (size_t)(sep - p), sec.stored_key);
	if (rc)
		return rc;
	p = sep + 1;

	rc = scram_decode_key(p, (size_t)(end - p), sec.server_key);
	if (rc)
		return rc;
	*out = sec;
	return 0;
}

int scram_secret_format(const struct scram_secret *sec, char *out, size_t cap)
{
	struct obuf b;

	if (!scram_secret_ok(sec))
		return SCRAM_E_INVALID;
	ob_init(&b, out, cap);
	ob_str(&b, secret_prefix);
	ob_int(&b, sec->iterations);
	ob_put(&b, ":", 1);
	ob_b64(&b, sec->salt, sec->salt_len);
	ob_put(&b, "$", 1);
	ob_b64(&b, sec->stored_key, SCRAM_KEY_LEN);
	ob_put(&b, ":", 1);
	ob_b64(&b, sec->server_key, SCRAM_KEY_LEN);
	return b.err ? b.err : (int)b.len;
}
