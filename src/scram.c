/* scram.c -- SCRAM-SHA-256 verifiers, SASLprep, and the server and client exchanges. */
#include "scram.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* SHA256_CTX is deprecated in OpenSSL 3 in favour of EVP, which allocates. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

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
 */

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

/* ---- crypto primitives -------------------------------------------------- */

/*
 * SHA-256 and HMAC-SHA-256 on OpenSSL's low-level SHA256_CTX, which lives on
 * the stack: unlike EVP_Digest()/HMAC(), which allocate a context on every
 * call (about 30 heap allocations per login), nothing here touches the heap,
 * so logins as well as transactions stay off the system allocator.
 */
struct hmac256_ctx {
	SHA256_CTX inner, outer;
};

#define SCRAM_MAX_SALT_BLOCK (SCRAM_SALT_MAX + 4)

static int sha256(const void *data, size_t len, uint8_t out[SCRAM_KEY_LEN])
{
	SHA256_CTX c;

	if (SHA256_Init(&c) != 1 || SHA256_Update(&c, data, len) != 1 || SHA256_Final(out, &c) != 1)
		return SCRAM_E_CRYPTO;
	return 0;
}

static int hmac256_init(struct hmac256_ctx *h, const uint8_t *key, size_t klen)
{
	uint8_t k[SHA256_CBLOCK], pad[SHA256_CBLOCK];
	size_t i;
	int rc = 0;

	memset(k, 0, sizeof(k));
	if (klen > sizeof(k))
		rc = sha256(key, klen, k);
	else
		memcpy(k, key, klen);
	for (i = 0; i < sizeof(pad); i++)
		pad[i] = k[i] ^ 0x36;
	if (rc || SHA256_Init(&h->inner) != 1 || SHA256_Update(&h->inner, pad, sizeof(pad)) != 1)
		rc = SCRAM_E_CRYPTO;
	for (i = 0; i < sizeof(pad); i++)
		pad[i] = k[i] ^ 0x5c;
	if (rc || SHA256_Init(&h->outer) != 1 || SHA256_Update(&h->outer, pad, sizeof(pad)) != 1)
		rc = SCRAM_E_CRYPTO;
	OPENSSL_cleanse(k, sizeof(k));
	OPENSSL_cleanse(pad, sizeof(pad));
	return rc;
}

/* HMAC of <data> with a prepared key: <h> is copied, so it can be reused. */
static int hmac256_run(const struct hmac256_ctx *h, const void *data, size_t len,
		uint8_t out[SCRAM_KEY_LEN])
{
	struct hmac256_ctx c = *h;
	uint8_t inner[SCRAM_KEY_LEN];
	int rc = 0;

	if (SHA256_Update(&c.inner, data, len) != 1 || SHA256_Final(inner, &c.inner) != 1 ||
			SHA256_Update(&c.outer, inner, sizeof(inner)) != 1 ||
			SHA256_Final(out, &c.outer) != 1)
		rc = SCRAM_E_CRYPTO;
	OPENSSL_cleanse(&c, sizeof(c));
	OPENSSL_cleanse(inner, sizeof(inner));
	return rc;
}

static int hmac256(const uint8_t *key, size_t klen, const void *data, size_t len,
		uint8_t out[SCRAM_KEY_LEN])
{
	struct hmac256_ctx h;
	int rc;

	if (klen > INT_MAX)
		return SCRAM_E_INVALID;
	rc = hmac256_init(&h, key, klen);
	if (!rc)
		rc = hmac256_run(&h, data, len, out);
	OPENSSL_cleanse(&h, sizeof(h));
	return rc;
}

/* PBKDF2-HMAC-SHA-256 with a 32-byte output (one block), as SCRAM uses. */
static int pbkdf2_sha256(const char *pw, size_t pwlen, const uint8_t *salt, size_t salt_len,
		int iterations, uint8_t out[SCRAM_KEY_LEN])
{
	struct hmac256_ctx h;
	uint8_t u[SCRAM_KEY_LEN], first[SCRAM_MAX_SALT_BLOCK];
	int i, j, rc;

	if (salt_len + 4 > sizeof(first))
		return SCRAM_E_SALT;
	rc = hmac256_init(&h, (const uint8_t *)pw, pwlen);
	memcpy(first, salt, salt_len);
	memcpy(first + salt_len, "\0\0\0\1", 4); /* block index 1, big-endian */
	if (!rc)
		rc = hmac256_run(&h, first, salt_len + 4, u);
	if (rc) {
		OPENSSL_cleanse(&h, sizeof(h));
		return rc;
	}
	memcpy(out, u, SCRAM_KEY_LEN);
	for (i = 1; !rc && i < iterations; i++) {
		rc = hmac256_run(&h, u, sizeof(u), u);
		for (j = 0; j < SCRAM_KEY_LEN; j++)
			out[j] ^= u[j];
	}
	OPENSSL_cleanse(&h, sizeof(h));
	OPENSSL_cleanse(u, sizeof(u));
	return rc;
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

/* ---- bounded output buffer --------------------------------------------- */

struct obuf {
	char *p;
	size_t cap, len;
	int err;
};

static void ob_init(struct obuf *b, char *p, size_t cap)
{
	b->p = p;
	b->cap = cap;
	b->len = 0;
	b->err = (p && cap) ? 0 : SCRAM_E_NOSPACE;
	if (!b->err)
		p[0] = '\0';
}

/* Continue appending to <p>, which already holds <len> bytes. */
static void ob_resume(struct obuf *b, char *p, size_t cap, size_t len)
{
	b->p = p;
	b->cap = cap;
	b->len = len;
	b->err = len < cap ? 0 : SCRAM_E_NOSPACE;
}

static void ob_put(struct obuf *b, const char *s, size_t n)
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

static void ob_str(struct obuf *b, const char *s)
{
	ob_put(b, s, strlen(s));
}

static void ob_b64(struct obuf *b, const uint8_t *src, size_t n)
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

static void ob_int(struct obuf *b, int v)
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

static void scan_init(struct scan *s, const char *m, size_t len)
{
	s->p = m;
	s->end = m + len;
	s->comma = false;
}

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Does "<attr>=" come next? */
static bool scan_peek(const struct scan *s, char attr)
{
	return s->end - s->p >= 2 && s->p[0] == attr && s->p[1] == '=';
}

static bool scan_at_end(const struct scan *s)
{
	return s->p == s->end && !s->comma;
}

/* Take "<attr>=<value>" (<attr> 0: any ALPHA); the value runs to the next
 * ',' or the end of the message. */
static int scan_attr(struct scan *s, char attr, const char **val, size_t *vlen)
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
static int scan_extensions(struct scan *s)
{
	const char *v;
	size_t vlen;
	int rc;

	while (!scan_at_end(s)) {
		rc = scan_attr(s, 0, &v, &vlen);
		if (rc)
			return rc;
	}
	return 0;
}

static int check_msg(const char *msg, size_t len)
{
	if (!msg)
		return SCRAM_E_INVALID;
	if (len > SCRAM_MSG_MAX)
		return SCRAM_E_TOOLONG;
	if (len == 0 || memchr(msg, '\0', len))
		return SCRAM_E_MALFORMED;
	return 0;
}

static bool nonce_chars_ok(const char *v, size_t n)
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

static int parse_iterations(const char *v, size_t n, int *out)
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
static int decode_key(const char *v, size_t n, uint8_t out[SCRAM_KEY_LEN])
{
	uint8_t tmp[SCRAM_KEY_LEN + 3];
	int rc = scram_b64_decode(v, n, tmp, sizeof(tmp));

	if (rc != SCRAM_KEY_LEN)
		return SCRAM_E_MALFORMED;
	memcpy(out, tmp, SCRAM_KEY_LEN);
	return 0;
}

static int decode_salt(const char *v, size_t n, struct scram_secret *sec)
{
	int rc = scram_b64_decode(v, n, sec->salt, sizeof(sec->salt));

	if (rc == SCRAM_E_NOSPACE || rc == SCRAM_E_TOOLONG || rc == 0)
		return SCRAM_E_SALT;
	if (rc < 0)
		return rc;
	sec->salt_len = (size_t)rc;
	return 0;
}

static int random_nonce(char out[SCRAM_NONCE_MAX + 1], size_t *len)
{
	uint8_t raw[SCRAM_RAW_NONCE_LEN];
	int rc;

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return SCRAM_E_CRYPTO;
	rc = scram_b64_encode(raw, sizeof(raw), out, SCRAM_NONCE_MAX + 1);
	if (rc < 0)
		return rc;
	*len = (size_t)rc;
	return 0;
}

static int set_fixed_nonce(char *dst, size_t *dst_len, const char *nonce, size_t max)
{
	size_t n;

	if (!nonce)
		return SCRAM_E_INVALID;
	n = strnlen(nonce, max + 1);
	if (n == 0 || n > max || !nonce_chars_ok(nonce, n))
		return SCRAM_E_INVALID;
	memcpy(dst, nonce, n);
	dst[n] = '\0';
	*dst_len = n;
	return 0;
}

/* ---- SASLprep ----------------------------------------------------------- */

/* Decode one strictly valid UTF-8 sequence at <p>; returns its length or 0. */
static size_t utf8_next(const unsigned char *p, const unsigned char *end, uint32_t *cp)
{
	size_t n, i;
	unsigned char lo = 0x80, hi = 0xbf;
	uint32_t c = p[0];

	if (c < 0x80) {
		*cp = c;
		return 1;
	} else if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		c &= 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f; /* no surrogates */
		c &= 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
		c &= 0x07;
	} else {
		return 0;
	}
	if ((size_t)(end - p) < n)
		return 0;
	for (i = 1; i < n; i++) {
		unsigned char b = p[i];

		if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xbf))
			return 0;
		c = c << 6 | (b & 0x3f);
	}
	*cp = c;
	return n;
}

/* NFKC of the Latin-1 compatibility characters (Unicode data); every other
 * code point <= U+00FF is NFKC-stable.  None of the results can compose
 * with a neighbour: marks follow a space, and Latin-1 has no marks. */
static const struct {
	uint8_t cp;
	const char *utf8;
} latin1_nfkc[] = {
		/* clang-format off */
	{0xa8, " \xcc\x88"},        /* DIAERESIS -> SPACE + U+0308 */
	{0xaa, "a"},                /* FEMININE ORDINAL INDICATOR */
	{0xaf, " \xcc\x84"},        /* MACRON -> SPACE + U+0304 */
	{0xb2, "2"},                /* SUPERSCRIPT TWO */
	{0xb3, "3"},                /* SUPERSCRIPT THREE */
	{0xb4, " \xcc\x81"},        /* ACUTE ACCENT -> SPACE + U+0301 */
	{0xb5, "\xce\xbc"},         /* MICRO SIGN -> U+03BC */
	{0xb8, " \xcc\xa7"},        /* CEDILLA -> SPACE + U+0327 */
	{0xb9, "1"},                /* SUPERSCRIPT ONE */
	{0xba, "o"},                /* MASCULINE ORDINAL INDICATOR */
	{0xbc, "1\xe2\x81\x84" "4"}, /* 1/4 -> 1 U+2044 4 */
	{0xbd, "1\xe2\x81\x84" "2"}, /* 1/2 */
	{0xbe, "3\xe2\x81\x84" "4"}, /* 3/4 */
		/* clang-format on */
};

static const char *latin1_nfkc_of(uint32_t cp)
{
	size_t i;

	for (i = 0; i < sizeof(latin1_nfkc) / sizeof(latin1_nfkc[0]); i++)
		if (latin1_nfkc[i].cp == cp)
			return latin1_nfkc[i].utf8;
	return NULL;
}

static int prep_raw(const char *pw, size_t len, char *out, size_t cap, size_t *out_len, int rc)
{
	if (len >= cap)
		return SCRAM_E_NOSPACE;
	memcpy(out, pw, len);
	out[len] = '\0';
	*out_len = len;
	return rc;
}

int scram_saslprep(const char *password, char *out, size_t cap, size_t *out_len)
{
	const unsigned char *p, *end;
	bool ascii = true, wide = false, prohibited = false;
	size_t len, kept = 0, n;
	struct obuf b;
	uint32_t cp;

	if (!password || !out || !out_len)
		return SCRAM_E_INVALID;
	len = strnlen(password, SCRAM_PASSWORD_MAX + 1);
	if (len > SCRAM_PASSWORD_MAX)
		return SCRAM_E_TOOLONG;
	end = (const unsigned char *)password + len;
	for (p = (const unsigned char *)password; p < end; p++)
		if (*p >= 0x80)
			ascii = false;
	if (ascii) /* PostgreSQL passes pure ASCII through untouched */
		return prep_raw(password, len, out, cap, out_len, SCRAM_PREP_OK);

	/* Pass 1: validate, and classify the mapped string (RFC 4013 2.1, 2.3). */
	for (p = (const unsigned char *)password; p < end; p += n) {
		n = utf8_next(p, end, &cp);
		if (n == 0)
			return prep_raw(password, len, out, cap, out_len, SCRAM_PREP_RAW);
		if (cp > 0xff)
			wide = true;
		else if (cp == 0xad) /* SOFT HYPHEN: mapped to nothing */
			continue;
		else if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) /* C.2.1, C.2.2 */
			prohibited = true;
		kept++;
	}
	if (wide)
		return prep_raw(password, len, out, cap, out_len, SCRAM_PREP_UNSUPPORTED);
	if (prohibited || kept == 0)
		return prep_raw(password, len, out, cap, out_len, SCRAM_PREP_RAW);

	/* Pass 2: map, then normalize (NFKC). */
	ob_init(&b, out, cap);
	for (p = (const unsigned char *)password; p < end; p += n) {
		const char *nf;

		n = utf8_next(p, end, &cp);
		if (cp == 0xad)
			continue;
		if (cp == 0xa0) /* C.1.2 non-ASCII space -> SPACE */
			ob_put(&b, " ", 1);
		else if ((nf = latin1_nfkc_of(cp)) != NULL)
			ob_str(&b, nf);
		else
			ob_put(&b, (const char *)p, n);
	}
	if (b.err)
		return b.err;
	*out_len = b.len;
	return SCRAM_PREP_OK;
}

/* ---- verifiers ---------------------------------------------------------- */

static bool secret_ok(const struct scram_secret *sec)
{
	return sec && sec->iterations >= SCRAM_ITER_MIN && sec->iterations <= SCRAM_ITER_MAX &&
	       sec->salt_len >= 1 && sec->salt_len <= SCRAM_SALT_MAX;
}

/* Fill <out> and <client_key> from <password>. */
static int derive_keys(const char *password, const uint8_t *salt, size_t salt_len, int iterations,
		struct scram_secret *out, uint8_t client_key[SCRAM_KEY_LEN])
{
	char prep[SCRAM_PASSWORD_MAX * 5 / 2 + 1];
	uint8_t salted[SCRAM_KEY_LEN], salt_copy[SCRAM_SALT_MAX];
	size_t plen = 0;
	int rc;

	if (!password || !salt || !out)
		return SCRAM_E_INVALID;
	if (iterations < SCRAM_ITER_MIN || iterations > SCRAM_ITER_MAX)
		return SCRAM_E_ITERATIONS;
	if (salt_len < 1 || salt_len > SCRAM_SALT_MAX)
		return SCRAM_E_SALT;
	rc = scram_saslprep(password, prep, sizeof(prep), &plen);
	if (rc < 0)
		return rc;
	rc = 0;
	memcpy(salt_copy, salt, salt_len); /* <salt> may live inside <out> */
	salt = salt_copy;
	memset(out, 0, sizeof(*out));
	rc = pbkdf2_sha256(prep, plen, salt, salt_len, iterations, salted);
	if (!rc)
		rc = hmac256(salted, sizeof(salted), "Client Key", 10, client_key);
	if (!rc)
		rc = sha256(client_key, SCRAM_KEY_LEN, out->stored_key);
	if (!rc)
		rc = hmac256(salted, sizeof(salted), "Server Key", 10, out->server_key);
	if (!rc) {
		out->iterations = iterations;
		memcpy(out->salt, salt, salt_len);
		out->salt_len = salt_len;
	}
	OPENSSL_cleanse(prep, sizeof(prep));
	OPENSSL_cleanse(salted, sizeof(salted));
	return rc;
}

int scram_secret_from_password(const char *password, const uint8_t *salt, size_t salt_len,
		int iterations, struct scram_secret *out)
{
	uint8_t ck[SCRAM_KEY_LEN];
	int rc = derive_keys(password, salt, salt_len, iterations, out, ck);

	OPENSSL_cleanse(ck, sizeof(ck));
	return rc;
}

int scram_secret_generate(const char *password, int iterations, struct scram_secret *out)
{
	uint8_t salt[SCRAM_DEFAULT_SALT_LEN];

	if (RAND_bytes(salt, sizeof(salt)) != 1)
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
	rc = hmac256(key, SCRAM_KEY_LEN, user, strlen(user), k);
	if (!rc)
		rc = hmac256(k, sizeof(k), "salt", 4, salt);
	if (!rc)
		rc = hmac256(k, sizeof(k), "stored", 6, out->stored_key);
	if (!rc)
		rc = hmac256(k, sizeof(k), "server", 6, out->server_key);
	if (!rc) {
		out->iterations = SCRAM_DEFAULT_ITERATIONS;
		memcpy(out->salt, salt, SCRAM_DEFAULT_SALT_LEN);
		out->salt_len = SCRAM_DEFAULT_SALT_LEN;
	}
	OPENSSL_cleanse(k, sizeof(k));
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
	rc = parse_iterations(p, (size_t)(sep - p), &sec.iterations);
	if (rc)
		return rc;
	p = sep + 1;

	sep = memchr(p, '$', (size_t)(end - p));
	if (!sep)
		return SCRAM_E_MALFORMED;
	rc = decode_salt(p, (size_t)(sep - p), &sec);
	if (rc)
		return rc;
	p = sep + 1;

	sep = memchr(p, ':', (size_t)(end - p));
	if (!sep)
		return SCRAM_E_MALFORMED;
	rc = decode_key(p, (size_t)(sep - p), sec.stored_key);
	if (rc)
		return rc;
	p = sep + 1;

	rc = decode_key(p, (size_t)(end - p), sec.server_key);
	if (rc)
		return rc;
	*out = sec;
	return 0;
}

int scram_secret_format(const struct scram_secret *sec, char *out, size_t cap)
{
	struct obuf b;

	if (!secret_ok(sec))
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

/* ---- server side -------------------------------------------------------- */

void scram_server_init(struct scram_server *st)
{
	memset(st, 0, sizeof(*st));
	st->state = SRV_INIT;
}

void scram_server_clear(struct scram_server *st)
{
	OPENSSL_cleanse(st, sizeof(*st));
}

int scram_server_set_nonce(struct scram_server *st, const char *server_nonce)
{
	if (!st || st->state != SRV_INIT)
		return SCRAM_E_STATE;
	return set_fixed_nonce(st->fixed_nonce, &st->fixed_nonce_len, server_nonce,
			SCRAM_NONCE_MAX - SCRAM_CLIENT_NONCE_MAX);
}

static int server_begin(struct scram_server *st, const struct scram_secret *secret, const char *msg,
		size_t len, char *out, size_t cap, size_t *out_len)
{
	char snonce[SCRAM_NONCE_MAX + 1];
	size_t vlen, snonce_len;
	const char *v, *bare, *end = msg + len;
	struct scan s;
	struct obuf b, a;
	int rc;

	if (!secret_ok(secret) || !out || !out_len)
		return SCRAM_E_INVALID;
	rc = check_msg(msg, len);
	if (rc)
		return rc;

	/* gs2 header */
	if (msg[0] == 'p' && len >= 2 && msg[1] == '=')
		return SCRAM_E_CHANNEL_BINDING;
	if (len < 3 || (msg[0] != 'n' && msg[0] != 'y') || msg[1] != ',')
		return SCRAM_E_MALFORMED;
	if (msg[2] == 'a' && len >= 4 && msg[3] == '=')
		return SCRAM_E_UNSUPPORTED;
	if (msg[2] != ',')
		return SCRAM_E_MALFORMED;
	bare = msg + 3;

	/* client-first-message-bare */
	scan_init(&s, bare, (size_t)(end - bare));
	if (scan_peek(&s, 'm'))
		return SCRAM_E_UNSUPPORTED;
	rc = scan_attr(&s, 'n', &v, &vlen); /* user name: ignored, as PostgreSQL does */
	if (!rc)
		rc = scan_attr(&s, 'r', &v, &vlen);
	if (rc)
		return rc;
	if (vlen > SCRAM_CLIENT_NONCE_MAX)
		return SCRAM_E_TOOLONG;
	if (vlen == 0 || !nonce_chars_ok(v, vlen))
		return SCRAM_E_MALFORMED;
	memcpy(st->nonce, v, vlen);
	st->nonce_len = vlen;
	rc = scan_extensions(&s);
	if (rc)
		return rc;

	if (st->fixed_nonce_len) {
		memcpy(snonce, st->fixed_nonce, st->fixed_nonce_len + 1);
		snonce_len = st->fixed_nonce_len;
	} else {
		rc = random_nonce(snonce, &snonce_len);
		if (rc)
			return rc;
	}
	/* client part <= CLIENT_NONCE_MAX, server part <= NONCE_MAX - CLIENT_NONCE_MAX */
	memcpy(st->nonce + st->nonce_len, snonce, snonce_len);
	st->nonce_len += snonce_len;
	st->nonce[st->nonce_len] = '\0';
	st->cbind_flag = msg[0];
	st->secret = *secret;

	ob_init(&b, out, cap);
	ob_str(&b, "r=");
	ob_put(&b, st->nonce, st->nonce_len);
	ob_str(&b, ",s=");
	ob_b64(&b, secret->salt, secret->salt_len);
	ob_str(&b, ",i=");
	ob_int(&b, secret->iterations);
	if (b.err)
		return b.err;
	if (b.len > SCRAM_MSG_MAX)
		return SCRAM_E_TOOLONG;

	ob_init(&a, st->auth, sizeof(st->auth));
	ob_put(&a, bare, (size_t)(end - bare));
	ob_put(&a, ",", 1);
	ob_put(&a, out, b.len);
	ob_put(&a, ",", 1);
	if (a.err)
		return a.err;
	st->auth_len = a.len;
	*out_len = b.len;
	return 0;
}

int scram_server_begin(struct scram_server *st, const struct scram_secret *secret,
		const char *client_first, size_t len, char *out, size_t cap, size_t *out_len)
{
	int rc;

	if (!st)
		return SCRAM_E_INVALID;
	if (st->state != SRV_INIT)
		return SCRAM_E_STATE;
	rc = server_begin(st, secret, client_first, len, out, cap, out_len);
	st->state = rc ? SRV_FAILED : SRV_FIRST_SENT;
	return rc;
}

static int server_finish(struct scram_server *st, const char *msg, size_t len, char *out,
		size_t cap, size_t *out_len, uint8_t client_key_out[SCRAM_KEY_LEN])
{
	uint8_t proof[SCRAM_KEY_LEN], sig[SCRAM_KEY_LEN], ck[SCRAM_KEY_LEN], h[SCRAM_KEY_LEN];
	const char *v, *want_c;
	size_t vlen, without_proof, i;
	struct scan s;
	struct obuf b, a;
	int rc;

	if (!out || !out_len)
		return SCRAM_E_INVALID;
	rc = check_msg(msg, len);
	if (rc)
		return rc;
	scan_init(&s, msg, len);

	rc = scan_attr(&s, 'c', &v, &vlen);
	if (rc)
		return rc;
	want_c = st->cbind_flag == 'y' ? "eSws" : "biws"; /* b64("y,,"), b64("n,,") */
	if (vlen != 4 || memcmp(v, want_c, 4) != 0)
		return SCRAM_E_CHANNEL_BINDING;

	rc = scan_attr(&s, 'r', &v, &vlen);
	if (rc)
		return rc;
	if (vlen != st->nonce_len || memcmp(v, st->nonce, vlen) != 0)
		return SCRAM_E_NONCE;

	for (;;) {
		if (scan_at_end(&s))
			return SCRAM_E_MALFORMED; /* no proof */
		if (scan_peek(&s, 'p'))
			break;
		rc = scan_attr(&s, 0, &v, &vlen);
		if (rc)
			return rc;
	}
	without_proof = (size_t)(s.p - msg) - 1; /* drop the ',' before "p=" */
	rc = scan_attr(&s, 'p', &v, &vlen);
	if (rc)
		return rc;
	if (!scan_at_end(&s))
		return SCRAM_E_MALFORMED; /* the proof comes last */
	rc = decode_key(v, vlen, proof);
	if (rc)
		return rc;

	ob_resume(&a, st->auth, sizeof(st->auth), st->auth_len);
	ob_put(&a, msg, without_proof);
	if (a.err)
		return a.err;

	rc = hmac256(st->secret.stored_key, SCRAM_KEY_LEN, a.p, a.len, sig);
	if (rc)
		return rc;
	for (i = 0; i < SCRAM_KEY_LEN; i++)
		ck[i] = proof[i] ^ sig[i];
	rc = sha256(ck, sizeof(ck), h);
	if (!rc && CRYPTO_memcmp(h, st->secret.stored_key, SCRAM_KEY_LEN) != 0)
		rc = SCRAM_E_BAD_PROOF;
	if (!rc)
		rc = hmac256(st->secret.server_key, SCRAM_KEY_LEN, a.p, a.len, sig);
	if (!rc) {
		ob_init(&b, out, cap);
		ob_str(&b, "v=");
		ob_b64(&b, sig, sizeof(sig));
		rc = b.err;
		if (!rc)
			*out_len = b.len;
	}
	if (!rc && client_key_out)
		memcpy(client_key_out, ck, SCRAM_KEY_LEN);
	OPENSSL_cleanse(ck, sizeof(ck));
	return rc;
}

int scram_server_finish(struct scram_server *st, const char *client_final, size_t len, char *out,
		size_t cap, size_t *out_len, uint8_t client_key_out[SCRAM_KEY_LEN])
{
	int rc;

	if (!st)
		return SCRAM_E_INVALID;
	if (st->state != SRV_FIRST_SENT)
		return SCRAM_E_STATE;
	rc = server_finish(st, client_final, len, out, cap, out_len, client_key_out);
	st->state = rc ? SRV_FAILED : SRV_DONE;
	return rc;
}

/* ---- client side -------------------------------------------------------- */

void scram_client_init(struct scram_client *st)
{
	memset(st, 0, sizeof(*st));
	st->state = CLI_INIT;
}

void scram_client_clear(struct scram_client *st)
{
	OPENSSL_cleanse(st, sizeof(*st));
}

int scram_client_set_nonce(struct scram_client *st, const char *nonce)
{
	if (!st || st->state != CLI_INIT)
		return SCRAM_E_STATE;
	return set_fixed_nonce(
			st->client_nonce, &st->client_nonce_len, nonce, SCRAM_CLIENT_NONCE_MAX);
}

int scram_client_set_user(struct scram_client *st, const char *user)
{
	struct obuf b;
	const char *p;

	if (!st || st->state != CLI_INIT)
		return SCRAM_E_STATE;
	if (!user)
		return SCRAM_E_INVALID;
	ob_init(&b, st->user, sizeof(st->user));
	for (p = user; *p && !b.err; p++) {
		if (*p == ',')
			ob_str(&b, "=2C");
		else if (*p == '=')
			ob_str(&b, "=3D");
		else
			ob_put(&b, p, 1);
	}
	if (b.err) {
		st->user[0] = '\0';
		st->user_len = 0;
		return SCRAM_E_TOOLONG;
	}
	st->user_len = b.len;
	return 0;
}

static int client_begin(struct scram_client *st, char *out, size_t cap, size_t *out_len)
{
	struct obuf b, a;
	int rc;

	if (!out || !out_len)
		return SCRAM_E_INVALID;
	if (!st->client_nonce_len) {
		rc = random_nonce(st->client_nonce, &st->client_nonce_len);
		if (rc)
			return rc;
	}
	ob_init(&b, out, cap);
	ob_str(&b, "n,,n=");
	ob_put(&b, st->user, st->user_len);
	ob_str(&b, ",r=");
	ob_put(&b, st->client_nonce, st->client_nonce_len);
	if (b.err)
		return b.err;
	ob_init(&a, st->auth, sizeof(st->auth));
	ob_put(&a, out + 3, b.len - 3); /* client-first-message-bare */
	ob_put(&a, ",", 1);
	if (a.err)
		return a.err;
	st->auth_len = a.len;
	*out_len = b.len;
	return 0;
}

int scram_client_begin(struct scram_client *st, char *out, size_t cap, size_t *out_len)
{
	int rc;

	if (!st)
		return SCRAM_E_INVALID;
	if (st->state != CLI_INIT)
		return SCRAM_E_STATE;
	rc = client_begin(st, out, cap, out_len);
	st->state = rc ? CLI_FAILED : CLI_FIRST_SENT;
	return rc;
}

/* Take the pass-through keys after checking they fit the server's salt and
 * iteration count in <srv>. */
static int take_passthrough(struct scram_client *st, const struct scram_client_keys *keys,
		const struct scram_secret *srv)
{
	const struct scram_secret *sec = keys->secret;
	uint8_t h[SCRAM_KEY_LEN];
	int rc;

	if (!secret_ok(sec))
		return SCRAM_E_INVALID;
	if (sec->iterations != srv->iterations || sec->salt_len != srv->salt_len ||
			memcmp(sec->salt, srv->salt, srv->salt_len) != 0)
		return SCRAM_E_KEYS_MISMATCH;
	rc = sha256(keys->client_key, SCRAM_KEY_LEN, h);
	if (rc)
		return rc;
	if (CRYPTO_memcmp(h, sec->stored_key, SCRAM_KEY_LEN) != 0)
		return SCRAM_E_INVALID; /* ClientKey is not this verifier's */
	st->derived = *sec;
	memcpy(st->client_key, keys->client_key, SCRAM_KEY_LEN);
	return 0;
}

static int client_continue(struct scram_client *st, const char *msg, size_t len,
		const struct scram_client_keys *keys, char *out, size_t cap, size_t *out_len)
{
	uint8_t sig[SCRAM_KEY_LEN], proof[SCRAM_KEY_LEN];
	struct scram_secret srv;
	const char *v, *nonce;
	size_t vlen, nonce_len, i;
	struct scan s;
	struct obuf b, a;
	int rc;

	if (!keys || (!keys->password && !keys->secret) || !out || !out_len)
		return SCRAM_E_INVALID;
	rc = check_msg(msg, len);
	if (rc)
		return rc;
	scan_init(&s, msg, len);
	if (scan_peek(&s, 'm'))
		return SCRAM_E_UNSUPPORTED;

	rc = scan_attr(&s, 'r', &nonce, &nonce_len);
	if (rc)
		return rc;
	if (nonce_len > SCRAM_NONCE_MAX)
		return SCRAM_E_TOOLONG;
	if (!nonce_chars_ok(nonce, nonce_len))
		return SCRAM_E_MALFORMED;
	if (nonce_len <= st->client_nonce_len ||
			memcmp(nonce, st->client_nonce, st->client_nonce_len) != 0)
		return SCRAM_E_NONCE;

	memset(&srv, 0, sizeof(srv));
	rc = scan_attr(&s, 's', &v, &vlen);
	if (!rc)
		rc = decode_salt(v, vlen, &srv);
	if (!rc)
		rc = scan_attr(&s, 'i', &v, &vlen);
	if (!rc)
		rc = parse_iterations(v, vlen, &srv.iterations);
	if (!rc)
		rc = scan_extensions(&s);
	if (rc)
		return rc;

	if (keys->password)
		rc = derive_keys(keys->password, srv.salt, srv.salt_len, srv.iterations,
				&st->derived, st->client_key);
	else
		rc = take_passthrough(st, keys, &srv);
	if (rc)
		return rc;

	/* client-final-message-without-proof, then AuthMessage */
	ob_init(&b, out, cap);
	ob_str(&b, "c=biws,r=");
	ob_put(&b, nonce, nonce_len);
	if (b.err)
		return b.err;
	ob_resume(&a, st->auth, sizeof(st->auth), st->auth_len);
	ob_put(&a, msg, len);
	ob_put(&a, ",", 1);
	ob_put(&a, out, b.len);
	if (a.err)
		return a.err;
	st->auth_len = a.len;

	rc = hmac256(st->derived.stored_key, SCRAM_KEY_LEN, a.p, a.len, sig);
	if (!rc)
		rc = hmac256(st->derived.server_key, SCRAM_KEY_LEN, a.p, a.len,
				st->server_signature);
	if (rc)
		return rc;
	for (i = 0; i < SCRAM_KEY_LEN; i++)
		proof[i] = st->client_key[i] ^ sig[i];
	ob_str(&b, ",p=");
	ob_b64(&b, proof, sizeof(proof));
	if (b.err)
		return b.err;
	if (b.len > SCRAM_MSG_MAX)
		return SCRAM_E_TOOLONG;
	*out_len = b.len;
	return 0;
}

int scram_client_continue(struct scram_client *st, const char *server_first, size_t len,
		const struct scram_client_keys *keys, char *out, size_t cap, size_t *out_len)
{
	int rc;

	if (!st)
		return SCRAM_E_INVALID;
	if (st->state != CLI_FIRST_SENT)
		return SCRAM_E_STATE;
	rc = client_continue(st, server_first, len, keys, out, cap, out_len);
	st->state = rc ? CLI_FAILED : CLI_FINAL_SENT;
	return rc;
}

static int client_finish(struct scram_client *st, const char *msg, size_t len)
{
	uint8_t sig[SCRAM_KEY_LEN];
	const char *v;
	size_t vlen, i, n;
	struct scan s;
	int rc;

	rc = check_msg(msg, len);
	if (rc)
		return rc;
	scan_init(&s, msg, len);
	if (scan_peek(&s, 'e')) {
		rc = scan_attr(&s, 'e', &v, &vlen);
		if (rc)
			return rc;
		n = vlen < sizeof(st->server_error) - 1 ? vlen : sizeof(st->server_error) - 1;
		for (i = 0; i < n; i++)
			st->server_error[i] = (v[i] >= 0x20 && v[i] < 0x7f) ? v[i] : '?';
		st->server_error[n] = '\0';
		return SCRAM_E_SERVER_ERROR;
	}
	rc = scan_attr(&s, 'v', &v, &vlen);
	if (!rc)
		rc = decode_key(v, vlen, sig);
	if (!rc)
		rc = scan_extensions(&s);
	if (rc)
		return rc;
	if (CRYPTO_memcmp(sig, st->server_signature, SCRAM_KEY_LEN) != 0)
		return SCRAM_E_SERVER_SIGNATURE;
	return 0;
}

int scram_client_finish(struct scram_client *st, const char *server_final, size_t len)
{
	int rc;

	if (!st)
		return SCRAM_E_INVALID;
	if (st->state != CLI_FINAL_SENT)
		return SCRAM_E_STATE;
	rc = client_finish(st, server_final, len);
	st->state = rc ? CLI_FAILED : CLI_DONE;
	return rc;
}

int scram_client_derived_keys(const struct scram_client *st, struct scram_secret *secret_out,
		uint8_t client_key_out[SCRAM_KEY_LEN])
{
	if (!st || !secret_out || !client_key_out)
		return SCRAM_E_INVALID;
	if (st->state != CLI_FINAL_SENT && st->state != CLI_DONE)
		return SCRAM_E_STATE;
	*secret_out = st->derived;
	memcpy(client_key_out, st->client_key, SCRAM_KEY_LEN);
	return 0;
}
