/* t_pwd.c -- md5 secrets and responses against known values, PostgreSQL 15 and libpq; secret
 * classification. */
#include "pwd.h"
#include "tap.h"
#include "testutil.h"

#include <errno.h>
#include <string.h>

#include <libpq-fe.h>
#include <openssl/rand.h>

/* printf '%s' 'passworduser' | md5sum */
static const char md5_user_password[] = "md54d45974e13472b5a0be3533de4666414";
/* pg_authid.rolpassword from PostgreSQL 15 (SET password_encryption = 'md5';
 * CREATE ROLE md5user PASSWORD 'pencil'; CREATE ROLE postgres_md5 PASSWORD 'password') */
static const char pg_md5user[] = "md50098e7fab7b4d8d091067152a80b3f12";
static const char pg_postgres_md5[] = "md582372e063f1f98fa65f2d0f0ea5939d1";
static const char pg_scram[] = "SCRAM-SHA-256$4096:mMCpHhyuqSzxe3JjTq5FwA==$zo304nzBD2MgpcGojnaoCE6"
			       "mc9VOHoDYqLDz+yvRdDE=:IoHtyy2DCZm1DC+0AlNucPVi7GF+TtZf35vcVRC5iIA=";

static const uint8_t salt1[4] = {0x01, 0x02, 0x03, 0x04};
static const uint8_t salt2[4] = {0xde, 0xad, 0xbe, 0xef};

static void test_secret(void)
{
	char out[PWD_MD5_BUF];
	int i, fails = 0;

	ok(pwd_md5_secret("user", "password", out) == 0, "md5 secret of user/password");
	is_str(out, md5_user_password, "md5 secret equals md5sum of 'passworduser'");
	pwd_md5_secret("md5user", "pencil", out);
	is_str(out, pg_md5user, "md5 secret equals PostgreSQL 15's for md5user/pencil");
	pwd_md5_secret("postgres_md5", "password", out);
	is_str(out, pg_postgres_md5, "md5 secret equals PostgreSQL 15's for postgres_md5/password");
	is_int(pwd_md5_secret(NULL, "x", out), -EINVAL, "md5 secret: NULL user");

	/* libpq's PQencryptPassword, on random names and passwords (any bytes but NUL) */
	for (i = 0; i < 200; i++) {
		char user[40], pw[80], *ref;
		uint8_t r[120];
		int j, ul = 1 + i % 39, pl = i % 79;

		RAND_bytes(r, sizeof(r));
		for (j = 0; j < ul; j++)
			user[j] = (char)(r[j] ? r[j] : 'u');
		user[ul] = '\0';
		for (j = 0; j < pl; j++)
			pw[j] = (char)(r[40 + j] ? r[40 + j] : 'p');
		pw[pl] = '\0';
		ref = PQencryptPassword(pw, user);
		if (!ref || pwd_md5_secret(user, pw, out) != 0 || strcmp(out, ref) != 0)
			fails++;
		PQfreemem(ref);
	}
	ok(fails == 0, "md5 secret equals libpq's PQencryptPassword on 200 random pairs");
}

static void test_response(void)
{
	char out[PWD_MD5_BUF];

	ok(pwd_md5_response(md5_user_password, salt1, out) == 0, "md5 response computes");
	/* python3: "md5" + md5(secret[3:] + salt).hexdigest() */
	is_str(out, "md5a3576f1ae039b8996bc4fc2720f9c71a",
			"md5 response for user/password, salt 01020304");
	pwd_md5_response(pg_md5user, salt2, out);
	is_str(out, "md57bc516107f5d447b90303179c78a4173",
			"md5 response for PostgreSQL's md5user secret");
	is_int(pwd_md5_response("pencil", salt1, out), -EINVAL, "response: plain password refused");
	is_int(pwd_md5_response("md54D45974E13472B5A0BE3533DE4666414", salt1, out), -EINVAL,
			"response: upper-case hex is not an md5 secret");
	is_int(pwd_md5_response(pg_scram, salt1, out), -EINVAL, "response: SCRAM verifier refused");
}

static void test_check(void)
{
	char good[PWD_MD5_BUF], bad[PWD_MD5_BUF + 2];
	int i, fails = 0;

	pwd_md5_response(md5_user_password, salt1, good);
	is_int(pwd_md5_check(md5_user_password, "user", salt1, good), 0,
			"check: stored md5 secret, right answer");
	is_int(pwd_md5_check("password", "user", salt1, good), 0,
			"check: stored plain password, right answer");
	is_int(pwd_md5_check("password", "user2", salt1, good), -EACCES,
			"check: stored plain password, other user name");
	is_int(pwd_md5_check(md5_user_password, "user", salt2, good), -EACCES,
			"check: answer to another salt");
	is_int(pwd_md5_check("passwore", "user", salt1, good), -EACCES, "check: wrong password");

	for (i = 0; i < PWD_MD5_LEN; i++) {
		strcpy(bad, good);
		bad[i] = bad[i] == '0' ? '1' : '0';
		if (pwd_md5_check(md5_user_password, "user", salt1, bad) != -EACCES)
			fails++;
	}
	ok(fails == 0, "check: a change at any of the 35 positions is refused");

	strcpy(bad, good);
	bad[34] = '\0';
	is_int(pwd_md5_check(md5_user_password, "user", salt1, bad), -EACCES, "check: 34 chars");
	strcpy(bad, good);
	strcat(bad, "0");
	is_int(pwd_md5_check(md5_user_password, "user", salt1, bad), -EACCES, "check: 36 chars");
	is_int(pwd_md5_check(md5_user_password, "user", salt1, ""), -EACCES, "check: empty answer");
	for (i = 3; i < PWD_MD5_LEN; i++)
		bad[i] = (char)(good[i] >= 'a' ? good[i] - 32 : good[i]);
	memcpy(bad, good, 3);
	bad[PWD_MD5_LEN] = '\0';
	is_int(pwd_md5_check(md5_user_password, "user", salt1, bad), -EACCES,
			"check: upper-case answer refused (PostgreSQL compares exactly)");
	is_int(pwd_md5_check(pg_scram, "user", salt1, good), -EOPNOTSUPP,
			"check: SCRAM verifier cannot check md5 (-EOPNOTSUPP)");
	is_int(pwd_md5_check(NULL, "user", salt1, good), -EINVAL, "check: NULL stored");
	is_int(pwd_md5_check(md5_user_password, "user", salt1, NULL), -EINVAL,
			"check: NULL response");

	/* PostgreSQL fixture, plain and md5 stored, as a client would answer */
	pwd_md5_response(pg_md5user, salt2, good);
	ok(pwd_md5_check(pg_md5user, "md5user", salt2, good) == 0 &&
					pwd_md5_check("pencil", "md5user", salt2, good) == 0,
			"check: PostgreSQL md5user fixture, stored md5 and stored plain");
}

static void test_classify(void)
{
	static const struct {
		const char *s;
		enum pwd_kind k;
	} cases[] = {
			{"pencil", PWD_PLAIN},
			{"", PWD_NONE},
			{md5_user_password, PWD_MD5},
			{pg_md5user, PWD_MD5},
			{"md54d45974e13472b5a0be3533de466641", PWD_PLAIN},   /* 31 hex */
			{"md54d45974e13472b5a0be3533de46664144", PWD_PLAIN}, /* 33 hex */
			{"md54D45974E13472B5A0BE3533DE4666414", PWD_PLAIN},  /* upper case */
			{"md54d45974e13472b5a0be3533de466641g", PWD_PLAIN},
			{"MD54d45974e13472b5a0be3533de4666414", PWD_PLAIN},
			{pg_scram, PWD_SCRAM},
			{"SCRAM-SHA-256$4096:mMCpHhyuqSzxe3JjTq5FwA==$zo304nzBD2MgpcGojnaoCE6",
					PWD_PLAIN},
			{"SCRAM-SHA-256$", PWD_PLAIN},
	};
	size_t i;
	int fails = 0;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (pwd_classify(cases[i].s) != cases[i].k) {
			diag("classify '%s': got %s", cases[i].s,
					pwd_kind_name(pwd_classify(cases[i].s)));
			fails++;
		}
	}
	ok(fails == 0, "classify %zu secrets as PostgreSQL's get_password_type does", i);
	ok(pwd_classify(NULL) == PWD_NONE, "classify NULL as none");
	ok(strcmp(pwd_kind_name(PWD_PLAIN), "plain") == 0 &&
					strcmp(pwd_kind_name(PWD_MD5), "md5") == 0 &&
					strcmp(pwd_kind_name(PWD_SCRAM), "scram-sha-256") == 0,
			"kind names");
}

int main(void)
{
	plan(29);
	test_secret();
	test_response();
	test_check();
	test_classify();
	return tap_exit_status();
}
