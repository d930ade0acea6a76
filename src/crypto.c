/* crypto.c -- SHA-256, HMAC-SHA-256, PBKDF2 and MD5 on OpenSSL's stack contexts. */
#include "crypto.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* SHA256_CTX and MD5_CTX are deprecated in OpenSSL 3 in favour of EVP, which
 * allocates a context per call; the low-level ones live on the stack. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/crypto.h>
#include <openssl/md5.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

_Static_assert(sizeof(SHA256_CTX) <= sizeof(struct crypto_sha256), "crypto_sha256 too small");
_Static_assert(SHA256_CBLOCK == CRYPTO_SHA256_BLOCK, "SHA-256 block size");
_Static_assert(SHA256_DIGEST_LENGTH == CRYPTO_SHA256_LEN, "SHA-256 length");
_Static_assert(MD5_DIGEST_LENGTH == CRYPTO_MD5_LEN, "MD5 length");

static SHA256_CTX *ctx_of(struct crypto_sha256 *s)
{
	return (SHA256_CTX *)(void *)s->opaque;
}

int crypto_sha256(const void *data, size_t len, uint8_t out[CRYPTO_SHA256_LEN])
{
	SHA256_CTX c;
	int rc = 0;

	if (SHA256_Init(&c) != 1 || SHA256_Update(&c, data, len) != 1 || SHA256_Final(out, &c) != 1)
		rc = -EIO;
	OPENSSL_cleanse(&c, sizeof(c));
	return rc;
}

/*
 * HMAC (RFC 2104): H((K ^ opad) || H((K ^ ipad) || text)), K the key padded
 * with zeros to one block (hashed first when longer than a block).  Both
 * padded blocks are absorbed at init, so a prepared key costs two
 * compression-function calls less per use.
 */
int crypto_hmac_init(struct crypto_hmac *h, const uint8_t *key, size_t klen)
{
	uint8_t k[CRYPTO_SHA256_BLOCK], pad[CRYPTO_SHA256_BLOCK];
	size_t i;
	int rc = 0;

	if (klen > INT_MAX)
		return -EINVAL;
	memset(k, 0, sizeof(k));
	if (klen > sizeof(k))
		rc = crypto_sha256(key, klen, k);
	else if (klen)
		memcpy(k, key, klen);
	for (i = 0; i < sizeof(pad); i++)
		pad[i] = k[i] ^ 0x36;
	if (rc || SHA256_Init(ctx_of(&h->inner)) != 1 ||
			SHA256_Update(ctx_of(&h->inner), pad, sizeof(pad)) != 1)
		rc = -EIO;
	for (i = 0; i < sizeof(pad); i++)
		pad[i] = k[i] ^ 0x5c;
	if (rc || SHA256_Init(ctx_of(&h->outer)) != 1 ||
			SHA256_Update(ctx_of(&h->outer), pad, sizeof(pad)) != 1)
		rc = -EIO;
	OPENSSL_cleanse(k, sizeof(k));
	OPENSSL_cleanse(pad, sizeof(pad));
	return rc;
}

int crypto_hmac_update(struct crypto_hmac *h, const void *data, size_t len)
{
	return SHA256_Update(ctx_of(&h->inner), data, len) == 1 ? 0 : -EIO;
}

int crypto_hmac_final(struct crypto_hmac *h, uint8_t out[CRYPTO_SHA256_LEN])
{
	uint8_t inner[CRYPTO_SHA256_LEN];
	int rc = 0;

	if (SHA256_Final(inner, ctx_of(&h->inner)) != 1 ||
			SHA256_Update(ctx_of(&h->outer), inner, sizeof(inner)) != 1 ||
			SHA256_Final(out, ctx_of(&h->outer)) != 1)
		rc = -EIO;
	OPENSSL_cleanse(h, sizeof(*h));
	OPENSSL_cleanse(inner, sizeof(inner));
	return rc;
}

int crypto_hmac(const uint8_t *key, size_t klen, const void *data, size_t len,
		uint8_t out[CRYPTO_SHA256_LEN])
{
	struct crypto_hmac h;
	int rc = crypto_hmac_init(&h, key, klen);

	if (!rc)
		rc = crypto_hmac_update(&h, data, len);
	if (!rc)
		rc = crypto_hmac_final(&h, out);
	OPENSSL_cleanse(&h, sizeof(h));
	return rc;
}

/*
 * PBKDF2 with dkLen == hLen, so only block 1:
 *   U1 = HMAC(P, S || INT(1)),  Uj = HMAC(P, Uj-1),  out = U1 ^ ... ^ Uc.
 * The key is absorbed once and copied for every U.
 */
int crypto_pbkdf2_sha256(const void *pw, size_t pwlen, const uint8_t *salt, size_t salt_len,
		int iterations, uint8_t out[CRYPTO_SHA256_LEN])
{
	struct crypto_hmac key, c;
	uint8_t u[CRYPTO_SHA256_LEN];
	int i, j, rc;

	if (iterations < 1)
		return -EINVAL;
	rc = crypto_hmac_init(&key, pw, pwlen);
	c = key;
	if (!rc)
		rc = crypto_hmac_update(&c, salt, salt_len);
	if (!rc)
		rc = crypto_hmac_update(&c, "\0\0\0\1", 4); /* block index 1, big-endian */
	if (!rc)
		rc = crypto_hmac_final(&c, u);
	if (!rc)
		memcpy(out, u, sizeof(u));
	for (i = 1; !rc && i < iterations; i++) {
		c = key;
		rc = crypto_hmac_update(&c, u, sizeof(u));
		if (!rc)
			rc = crypto_hmac_final(&c, u);
		for (j = 0; j < CRYPTO_SHA256_LEN; j++)
			out[j] ^= u[j];
	}
	OPENSSL_cleanse(&key, sizeof(key));
	OPENSSL_cleanse(&c, sizeof(c));
	OPENSSL_cleanse(u, sizeof(u));
	return rc;
}

int crypto_md5_pair(const void *a, size_t alen, const void *b, size_t blen,
		uint8_t out[CRYPTO_MD5_LEN])
{
	MD5_CTX c;
	int rc = 0;

	if (MD5_Init(&c) != 1 || MD5_Update(&c, a, alen) != 1 || MD5_Update(&c, b, blen) != 1 ||
			MD5_Final(out, &c) != 1)
		rc = -EIO;
	OPENSSL_cleanse(&c, sizeof(c));
	return rc;
}

int crypto_random(void *buf, size_t len)
{
	if (len > INT_MAX)
		return -EINVAL;
	return RAND_bytes(buf, (int)len) == 1 ? 0 : -EIO;
}

void crypto_rng_init(struct crypto_rng *r)
{
	r->pos = sizeof(r->buf);
}

static void rng_fill(uint8_t *b, size_t len)
{
	while (len > 0) {
		ssize_t n = getrandom(b, len, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "getrandom failed: %s\n", strerror(errno));
			abort();
		}
		b += n;
		len -= (size_t)n;
	}
}

uint32_t crypto_rng_u32(struct crypto_rng *r)
{
	uint32_t v;

	if (r->pos + sizeof(v) > sizeof(r->buf)) {
		rng_fill(r->buf, sizeof(r->buf));
		r->pos = 0;
	}
	memcpy(&v, r->buf + r->pos, sizeof(v));
	memset(r->buf + r->pos, 0, sizeof(v));
	r->pos += sizeof(v);
	return v;
}

bool crypto_equal(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}

void crypto_wipe(void *p, size_t n)
{
	OPENSSL_cleanse(p, n);
}
