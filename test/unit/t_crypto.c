/* t_crypto.c -- known answers: SHA-256, HMAC-SHA-256 (RFC 4231), PBKDF2-HMAC-SHA-256, MD5. */
#include "crypto.h"
#include "tap.h"
#include "testutil.h"

#include <stdio.h>
#include <string.h>

/* Lowercase hex of <n> bytes into <out> (2n + 1). */
static const char *hex(const uint8_t *p, size_t n, char *out)
{
	size_t i;

	for (i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
	out[2 * n] = '\0';
	return out;
}

struct hmac_case {
	const char *name;
	uint8_t key_byte; /* 0: <key> is a string */
	size_t key_len;
	const char *key;
	uint8_t data_byte; /* 0: <data> is a string */
	size_t data_len;
	const char *data;
	const char *mac;
};

/* RFC 4231 section 4: test cases 1-4, 6, 7 (5 truncates the output). */
static const struct hmac_case rfc4231[] = {
	{"RFC 4231 case 1", 0x0b, 20, NULL, 0, 0, "Hi There",
			"b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
	{"RFC 4231 case 2", 0, 4, "Jefe", 0, 0, "what do ya want for nothing?",
			"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
	{"RFC 4231 case 3", 0xaa, 20, NULL, 0xdd, 50, NULL,
			"773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
	{"RFC 4231 case 4", 1, 25, NULL, 0xcd, 50, NULL, /* key 0x01..0x19 */
			"82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
	{"RFC 4231 case 6 (key longer than a block)", 0xaa, 131, NULL, 0, 0,
			"Test Using Larger Than Block-Size Key - Hash Key First",
			"60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
	{"RFC 4231 case 7 (key and data longer than a block)", 0xaa, 131, NULL, 0, 0,
			"This is a test using a larger than block-size key and a larger than "
			"block-size data. The key needs to be hashed before being used by the HMAC "
			"algorithm.",
			"9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
};

static void test_hmac(void)
{
	uint8_t key[256], data[256], mac[CRYPTO_SHA256_LEN];
	char got[2 * CRYPTO_SHA256_LEN + 1];
	struct crypto_hmac h, copy;
	size_t i, j, klen, dlen;

	for (i = 0; i < sizeof(rfc4231) / sizeof(rfc4231[0]); i++) {
		const struct hmac_case *c = &rfc4231[i];

		klen = c->key_len;
		if (c->key)
			memcpy(key, c->key, klen);
		else
			for (j = 0; j < klen; j++)
				key[j] = c->key_byte == 1 ? (uint8_t)(j + 1) : c->key_byte;
		if (c->data) {
			dlen = strlen(c->data);
			memcpy(data, c->data, dlen);
		} else {
			dlen = c->data_len;
			memset(data, c->data_byte, dlen);
		}
		memset(mac, 0, sizeof(mac));
		ok(crypto_hmac(key, klen, data, dlen, mac) == 0, "%s: returns 0", c->name);
		is_str(hex(mac, sizeof(mac), got), c->mac, c->name);
	}

	/* a prepared key reused by copy, the message fed in pieces */
	crypto_hmac_init(&h, (const uint8_t *)"Jefe", 4);
	copy = h;
	crypto_hmac_update(&copy, "what do ya ", 11);
	crypto_hmac_update(&copy, "want for nothing?", 17);
	crypto_hmac_final(&copy, mac);
	is_str(hex(mac, sizeof(mac), got), rfc4231[1].mac, "HMAC fed in two pieces");
	copy = h;
	crypto_hmac_update(&copy, "what do ya want for nothing?", 28);
	crypto_hmac_final(&copy, mac);
	is_str(hex(mac, sizeof(mac), got), rfc4231[1].mac, "a prepared key is reusable by copy");
	crypto_wipe(&h, sizeof(h));
}

static const struct {
	const char *password, *salt;
	int iterations;
	const char *dk;
} pbkdf2[] = {
	/* the PBKDF2-HMAC-SHA-256 vectors of RFC 7914 section 11 and the
	 * SHA-256 analogues of RFC 6070's, first 32 bytes */
	{"passwd", "salt", 1, "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"},
	{"password", "salt", 1, "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b"},
	{"password", "salt", 2, "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43"},
	{"password", "salt", 4096,
			"c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a"},
	{"passwordPASSWORDpassword", "saltSALTsaltSALTsaltSALTsaltSALTsalt", 4096,
			"348c89dbcbd32b2f32d814b8116e84cf2b17347ebc1800181c4e2a1fb8dd53e1"},
};

static void test_pbkdf2(void)
{
	uint8_t dk[CRYPTO_SHA256_LEN];
	char got[2 * CRYPTO_SHA256_LEN + 1], name[128];
	size_t i;

	for (i = 0; i < sizeof(pbkdf2) / sizeof(pbkdf2[0]); i++) {
		memset(dk, 0, sizeof(dk));
		crypto_pbkdf2_sha256(pbkdf2[i].password, strlen(pbkdf2[i].password),
				(const uint8_t *)pbkdf2[i].salt, strlen(pbkdf2[i].salt),
				pbkdf2[i].iterations, dk);
		snprintf(name, sizeof(name), "PBKDF2 %s/%s c=%d", pbkdf2[i].password, pbkdf2[i].salt,
				pbkdf2[i].iterations);
		is_str(hex(dk, sizeof(dk), got), pbkdf2[i].dk, name);
	}
	ok(crypto_pbkdf2_sha256("p", 1, (const uint8_t *)"s", 1, 0, dk) < 0,
			"PBKDF2 refuses 0 iterations");
}

static void test_misc(void)
{
	uint8_t d[CRYPTO_SHA256_LEN], m[CRYPTO_MD5_LEN], r1[16], r2[16];
	char got[2 * CRYPTO_SHA256_LEN + 1];

	crypto_sha256("abc", 3, d);
	is_str(hex(d, sizeof(d), got),
			"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
			"SHA-256(\"abc\") (FIPS 180-2)");
	crypto_md5_pair("a", 1, "bc", 2, m);
	is_str(hex(m, sizeof(m), got), "900150983cd24fb0d6963f7d28e17f72",
			"MD5(\"a\" || \"bc\") = MD5(\"abc\") (RFC 1321)");
	crypto_md5_pair("", 0, "", 0, m);
	is_str(hex(m, sizeof(m), got), "d41d8cd98f00b204e9800998ecf8427e", "MD5 of nothing");
	ok(crypto_random(r1, sizeof(r1)) == 0 && crypto_random(r2, sizeof(r2)) == 0 &&
					!crypto_equal(r1, r2, sizeof(r1)),
			"two random draws differ");
	ok(crypto_equal("abcd", "abcd", 4) && !crypto_equal("abcd", "abce", 4), "crypto_equal");
	crypto_wipe(r1, sizeof(r1));
	memset(r2, 0, sizeof(r2));
	ok(memcmp(r1, r2, sizeof(r1)) == 0, "crypto_wipe zeroes");
}

int main(void)
{
	plan(12 + 2 + 6 + 6);
	test_hmac();
	test_pbkdf2();
	test_misc();
	return tap_exit_status();
}
