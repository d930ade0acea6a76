/* crypto.h -- SHA-256, HMAC-SHA-256, PBKDF2-HMAC-SHA-256 and MD5 over OpenSSL, without the heap.
 *
 * The hashing shared by SCRAM (scram.c, scram_server.c, scram_client.c) and
 * md5 passwords (pwd.c); the only files that include OpenSSL's digest and
 * RNG headers are this module's.  Every function works on caller-owned
 * buffers and stack contexts: OpenSSL's EVP_Digest()/HMAC() allocate a
 * context per call (about 30 heap allocations per login), these do not, so
 * logins as well as transactions stay off the system allocator.
 *
 * Return values: 0, or -EIO when OpenSSL fails (RNG, digest), -EINVAL for
 * an argument no digest accepts.  Secrets that pass through a context are
 * wiped before return; callers wipe their own buffers with crypto_wipe().
 *
 * Threads: no global state; a context belongs to one thread at a time.
 */
#ifndef PGSLAB_CRYPTO_H
#define PGSLAB_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CRYPTO_SHA256_LEN 32
#define CRYPTO_SHA256_BLOCK 64
#define CRYPTO_MD5_LEN 16

/* Room for OpenSSL's SHA256_CTX (112 bytes; crypto.c asserts it fits), so
 * that no caller needs OpenSSL's deprecated low-level header. */
struct crypto_sha256 {
	_Alignas(8) unsigned char opaque[128];
};

/* HMAC-SHA-256 with its key already absorbed: the inner and outer hash
 * states after the padded key block.  A plain struct, so a prepared key is
 * reused by copying it (PBKDF2 runs thousands of HMACs under one key). */
struct crypto_hmac {
	struct crypto_sha256 inner, outer;
};

/* SHA-256 of (<data>, <len>). */
int crypto_sha256(const void *data, size_t len, uint8_t out[CRYPTO_SHA256_LEN]);

/* Absorb <key> (any length; longer than a block is hashed first, RFC 2104). */
int crypto_hmac_init(struct crypto_hmac *h, const uint8_t *key, size_t klen);
/* Feed (<data>, <len>) to the message being authenticated. */
int crypto_hmac_update(struct crypto_hmac *h, const void *data, size_t len);
/* Write the MAC to <out> and wipe <h>. */
int crypto_hmac_final(struct crypto_hmac *h, uint8_t out[CRYPTO_SHA256_LEN]);
/* One-shot HMAC-SHA-256(<key>, <data>). */
int crypto_hmac(const uint8_t *key, size_t klen, const void *data, size_t len,
		uint8_t out[CRYPTO_SHA256_LEN]);

/* PBKDF2-HMAC-SHA-256 (RFC 8018) with a 32-byte output (one block), as SCRAM
 * uses it; costs <iterations> HMACs (>= 1, else -EINVAL). */
int crypto_pbkdf2_sha256(const void *pw, size_t pwlen, const uint8_t *salt, size_t salt_len,
		int iterations, uint8_t out[CRYPTO_SHA256_LEN]);

/* MD5 of the concatenation <a> || <b> (PostgreSQL's md5 secrets hash two parts). */
int crypto_md5_pair(const void *a, size_t alen, const void *b, size_t blen,
		uint8_t out[CRYPTO_MD5_LEN]);

/* Fill <buf> with <len> bytes from the cryptographic RNG. */
int crypto_random(void *buf, size_t len);

/* Cancel keys and md5 salts: 32-bit values from the kernel's CSPRNG
 * (getrandom), 256 bytes per system call, each byte wiped once used.
 * Aborts when the kernel cannot give them: a pooler that hands out
 * guessable cancel keys must not run.  crypto_rng_init() before use. */
struct crypto_rng {
	uint8_t buf[256];
	uint32_t pos;
};
void crypto_rng_init(struct crypto_rng *r);
uint32_t crypto_rng_u32(struct crypto_rng *r);
/* Compare <n> bytes in time independent of their contents. */
bool crypto_equal(const void *a, const void *b, size_t n);
/* Zero <n> bytes so that the compiler cannot drop the store. */
void crypto_wipe(void *p, size_t n);

#endif
