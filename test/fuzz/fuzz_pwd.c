/* fuzz_pwd.c -- stored secrets and password answers: md5, classification, SCRAM verifiers, base64, SASLprep.
 *
 * Input: parts separated by '\n': a stored secret (as in the auth_file or
 * pg_authid), a user name, a PasswordMessage answer, and 4 salt bytes.
 *   - pwd_classify() must agree with scram_secret_parse() on SCRAM, and a
 *     parsed verifier must format back to a string that parses to the same
 *     verifier;
 *   - pwd_md5_check() must return a documented result; the right answer
 *     (pwd_md5_response() of the derived secret) must be accepted, and any
 *     other answer refused;
 *   - scram_b64_decode() of the answer must re-encode to the same text;
 *   - saslprep_password() of the answer must fit the buffer its header
 *     promises and be idempotent on its own output.
 */
#include <errno.h>

#include "fuzz.h"
#include "pwd.h"
#include "saslprep.h"
#include "scram.h"

static void secret_checks(const char *stored, const char *user, const uint8_t salt[4],
		const char *answer)
{
	enum pwd_kind kind = pwd_classify(stored);
	struct scram_secret sec, sec2;
	char md5[PWD_MD5_BUF], resp[PWD_MD5_BUF], fmt[SCRAM_SECRET_STR_MAX];
	int rc = scram_secret_parse(stored, &sec);

	FUZZ_ASSERT((kind == PWD_SCRAM) == (rc == 0));
	FUZZ_ASSERT(kind != PWD_NONE || stored[0] == 0);
	FUZZ_ASSERT(strcmp(pwd_kind_name(kind), "") != 0);
	if (rc == 0) {
		int n = scram_secret_format(&sec, fmt, sizeof(fmt));

		FUZZ_ASSERT(n > 0 && (size_t)n < sizeof(fmt));
		FUZZ_ASSERT(scram_secret_parse(fmt, &sec2) == 0);
		FUZZ_ASSERT(sec2.iterations == sec.iterations && sec2.salt_len == sec.salt_len);
		FUZZ_ASSERT(memcmp(sec2.salt, sec.salt, sec.salt_len) == 0);
		FUZZ_ASSERT(memcmp(sec2.stored_key, sec.stored_key, SCRAM_KEY_LEN) == 0);
		FUZZ_ASSERT(memcmp(sec2.server_key, sec.server_key, SCRAM_KEY_LEN) == 0);
		FUZZ_ASSERT(pwd_md5_check(stored, user, salt, answer) == -EOPNOTSUPP);
		return;
	}
	rc = pwd_md5_check(stored, user, salt, answer);
	FUZZ_ASSERT(rc == 0 || rc == -EACCES);
	/* the right answer */
	if (kind == PWD_MD5)
		snprintf(md5, sizeof(md5), "%s", stored);
	else
		FUZZ_ASSERT(pwd_md5_secret(user, stored, md5) == 0);
	FUZZ_ASSERT(pwd_classify(md5) == PWD_MD5);
	FUZZ_ASSERT(pwd_md5_response(md5, salt, resp) == 0);
	FUZZ_ASSERT(strlen(resp) == PWD_MD5_LEN && pwd_classify(resp) == PWD_MD5);
	FUZZ_ASSERT(pwd_md5_check(stored, user, salt, resp) == 0);
	FUZZ_ASSERT((rc == 0) == (strcmp(resp, answer) == 0));
}

static void b64_checks(const char *s, size_t len)
{
	uint8_t bin[768];
	char txt[1100];
	int n = scram_b64_decode(s, len, bin, sizeof(bin));

	if (n < 0) {
		FUZZ_ASSERT(n == SCRAM_E_MALFORMED || n == SCRAM_E_NOSPACE);
		return;
	}
	FUZZ_ASSERT((size_t)n <= sizeof(bin) && (size_t)n <= len);
	FUZZ_ASSERT(scram_b64_encode(bin, (size_t)n, txt, sizeof(txt)) == (int)len);
	FUZZ_ASSERT(memcmp(txt, s, len) == 0 && txt[len] == 0);
}

static void saslprep_checks(const char *s)
{
	static char out[SASLPREP_PASSWORD_MAX * 5 / 2 + 1], again[sizeof(out)];
	size_t n = 0, n2 = 0;
	int rc = saslprep_password(s, out, sizeof(out), &n);

	if (rc < 0) {
		/* 5/2 * strlen + 1 is documented to suffice */
		FUZZ_ASSERT(rc == -E2BIG && strlen(s) > SASLPREP_PASSWORD_MAX);
		return;
	}
	FUZZ_ASSERT(rc == SASLPREP_OK || rc == SASLPREP_RAW || rc == SASLPREP_UNSUPPORTED);
	FUZZ_ASSERT(n < sizeof(out) && out[n] == 0);
	if (rc == SASLPREP_OK) {
		/* NFKC may bring in code points past U+00FF (U+00AF MACRON becomes
		 * U+0020 U+0304), which a second pass calls unsupported */
		rc = saslprep_password(out, again, sizeof(again), &n2);
		/* ... and the expansion may take it past the input limit */
		FUZZ_ASSERT(rc == SASLPREP_OK || rc == SASLPREP_UNSUPPORTED ||
				(rc == -E2BIG && n > SASLPREP_PASSWORD_MAX));
		if (rc == SASLPREP_OK)
			FUZZ_ASSERT(n2 == n && memcmp(out, again, n) == 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_part part[4];
	char *stored, *user, *answer;
	uint8_t salt[4] = { 0 };

	fuzz_split(data, size, '\n', part, 4);
	stored = fuzz_strndup(part[0].p, part[0].len);
	user = fuzz_strndup(part[1].p, part[1].len);
	answer = fuzz_strndup(part[2].p, part[2].len);
	memcpy(salt, part[3].p, part[3].len < 4 ? part[3].len : 4);
	secret_checks(stored, user, salt, answer);
	b64_checks((const char *)part[2].p, part[2].len);
	saslprep_checks(answer);
	free(stored);
	free(user);
	free(answer);
	return 0;
}
