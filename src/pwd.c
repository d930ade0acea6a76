/* pwd.c -- PostgreSQL md5 password secrets, md5 challenge responses, secret classification. */
#include "pwd.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "crypto.h"
#include "scram.h"

static const char hex_digits[] = "0123456789abcdef";

/* out = "md5" + hex(md5(a || b)). */
static int md5_hex(const void *a, size_t alen, const void *b, size_t blen, char out[PWD_MD5_BUF])
{
	uint8_t d[CRYPTO_MD5_LEN];
	unsigned int i;

	if (crypto_md5_pair(a, alen, b, blen, d))
		return -EIO;
	memcpy(out, "md5", 3);
	for (i = 0; i < 16; i++) {
		out[3 + 2 * i] = hex_digits[d[i] >> 4];
		out[4 + 2 * i] = hex_digits[d[i] & 15];
	}
	out[PWD_MD5_LEN] = '\0';
	crypto_wipe(d, sizeof(d));
	return 0;
}

static bool is_md5_secret(const char *s)
{
	size_t i;

	if (strnlen(s, PWD_MD5_BUF) != PWD_MD5_LEN || memcmp(s, "md5", 3) != 0)
		return false;
	for (i = 3; i < PWD_MD5_LEN; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

enum pwd_kind pwd_classify(const char *secret)
{
	struct scram_secret sec;

	if (!secret || secret[0] == '\0')
		return PWD_NONE;
	if (is_md5_secret(secret))
		return PWD_MD5;
	if (scram_secret_parse(secret, &sec) == 0)
		return PWD_SCRAM;
	return PWD_PLAIN;
}

const char *pwd_kind_name(enum pwd_kind kind)
{
	switch (kind) {
	case PWD_NONE:
		return "none";
	case PWD_PLAIN:
		return "plain";
	case PWD_MD5:
		return "md5";
	case PWD_SCRAM:
		return "scram-sha-256";
	}
	return "unknown";
}

int pwd_md5_secret(const char *user, const char *password, char out[PWD_MD5_BUF])
{
	if (!user || !password || !out)
		return -EINVAL;
	return md5_hex(password, strlen(password), user, strlen(user), out);
}

int pwd_md5_response(
		const char *secret_md5, const uint8_t salt[PWD_MD5_SALT_LEN], char out[PWD_MD5_BUF])
{
	if (!secret_md5 || !salt || !out || !is_md5_secret(secret_md5))
		return -EINVAL;
	return md5_hex(secret_md5 + 3, PWD_MD5_LEN - 3, salt, PWD_MD5_SALT_LEN, out);
}

int pwd_md5_check(const char *stored, const char *user, const uint8_t salt[PWD_MD5_SALT_LEN],
		const char *response)
{
	char secret[PWD_MD5_BUF], expect[PWD_MD5_BUF];
	int rc;

	if (!stored || !user || !salt || !response)
		return -EINVAL;
	switch (pwd_classify(stored)) {
	case PWD_SCRAM:
		return -EOPNOTSUPP;
	case PWD_MD5:
		memcpy(secret, stored, PWD_MD5_BUF);
		rc = 0;
		break;
	default:
		rc = pwd_md5_secret(user, stored, secret);
		break;
	}
	if (!rc)
		rc = pwd_md5_response(secret, salt, expect);
	if (!rc) {
		/* The length is public (always 35 when right); the bytes are compared in
		 * constant time. */
		if (strnlen(response, PWD_MD5_BUF) != PWD_MD5_LEN ||
				!crypto_equal(expect, response, PWD_MD5_LEN))
			rc = -EACCES;
	}
	crypto_wipe(secret, sizeof(secret));
	crypto_wipe(expect, sizeof(expect));
	return rc;
}
