/* t_scram.c -- SCRAM-SHA-256: RFC 7677 vector, PostgreSQL 15 verifiers, round trips, pass-through,
 * hostile input. */
#include "saslprep.h"
#include "scram.h"
#include "scram_client.h"
#include "scram_server.h"
#include "tap.h"
#include "testutil.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

/* RFC 7677 section 3 */
static const char rfc_client_first[] = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
static const char rfc_server_nonce[] = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
static const char rfc_server_first[] = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
				       "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
static const char rfc_client_final[] =
		"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
		"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
static const char rfc_server_final[] = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";
static const char rfc_salt_b64[] = "W22ZaJ0SNY7soEsUEjb6gQ==";

/* Verifiers read from pg_authid.rolpassword of a PostgreSQL 15.x cluster
 * (initdb; SET password_encryption = 'scram-sha-256'; CREATE ROLE ...
 * PASSWORD E'...'), with the SASLprep outcome we expect for each. */
static const struct {
	const char *name, *password, *verifier;
	int prep;
} pg_fixtures[] = {
		{"user/pencil", "pencil",
				"SCRAM-SHA-256$4096:mMCpHhyuqSzxe3JjTq5FwA==$"
				"zo304nzBD2MgpcGojnaoCE6mc9VOHoDYqLDz+"
				"yvRdDE=:IoHtyy2DCZm1DC+0AlNucPVi7GF+TtZf35vcVRC5iIA=",
				SASLPREP_OK},
		{"latin-1 letters", "p\xc3\xa4ssw\xc3\xb6rd",
				"SCRAM-SHA-256$4096:eN6oRpAjk7BFiGPRsVkd/"
				"g==$GxmbWYcJnK4MzLHs0oZDmlUMwmL+"
				"x8Hkg9EKsYaiOC4=:DGlrz6XW7PxsDe9kSLP5Fi3cVHR+LI38prEeqcm23YA=",
				SASLPREP_OK},
		{"NBSP mapped to space",
				"a\xc2\xa0"
				"b",
				"SCRAM-SHA-256$4096:ApAOJ51nBL5fiwY2AnDiSg==$p2HIlJ8q0dcOlIpd+9AGO+"
				"E3wGD7prglnF9tVsgr4Bc=:"
				"iwIrbym7xtE3sa9bGdL7cnhP1YcBVFLYFi8gZdGtJss=",
				SASLPREP_OK},
		{"soft hyphen mapped to nothing", "x\xc2\xadY",
				"SCRAM-SHA-256$4096:zHKV8Tw5QYYHPlYDKuL5zA==$/L/"
				"yo1rwO5BX9rnsZF7Wlu8lbaOmZKpJZxd1hSRVq+c=:ukF/"
				"lqfKK9GSXTRfMLBR3yqxc3kBXKZVddByG70e308=",
				SASLPREP_OK},
		{"NFKC of compatibility characters", "\xc2\xaa\xc2\xb2\xc2\xb5\xc2\xbc\xc2\xa8z",
				"SCRAM-SHA-256$4096:rN08rIjrYTGq8LzAgah9ww==$HmuTi3fudsu25oQ/"
				"tAX6ybfTTQTvzFj/ZYWVsGvifAA=:xLDv3hiUYURi/"
				"BgtiV06P8LEql0X8NBIGkCdjcOwxNY=",
				SASLPREP_OK},
		{"U+00A0..U+00C0 and more",
				"\xc2\xa0\xc2\xa1\xc2\xa2\xc2\xa3\xc2\xa4\xc2\xa5\xc2\xa6\xc2\xa7"
				"\xc2\xa8\xc2\xa9"
				"\xc2\xaa\xc2\xab\xc2\xac\xc2\xad\xc2\xae\xc2\xaf\xc2\xb0\xc2\xb1"
				"\xc2\xb2\xc2\xb3"
				"\xc2\xb4\xc2\xb5\xc2\xb6\xc2\xb7\xc2\xb8\xc2\xb9\xc2\xba\xc2\xbb"
				"\xc2\xbc\xc2\xbd"
				"\xc2\xbe\xc2\xbf\xc3\x80\xc3\x87\xc3\x97\xc3\x9f\xc3\xa6\xc3\xb7"
				"\xc3\xbf",
				"SCRAM-SHA-256$4096:Hf3UTIp1m/"
				"QUFy0Bvtj3Pg==$KyWg4JdvoV8PX6rVxIOpKQI2LGLOAXdHKoPVJzzCAYY="
				":q87/L/VJdjt0YTRjoZxlVk2nFt8oVpXPFoM+eCJkH9E=",
				SASLPREP_OK},
		{"only a soft hyphen: empty, raw", "\xc2\xad",
				"SCRAM-SHA-256$4096:LJOJWATbTroLP7qDEBPX1A==$"
				"aGtBFOxFN1ZJAQynVrn3Y9G8t/"
				"qmDlBR1jAVBIAfo2U=:LB4Zs74T9vOYDOoLGDDaMyDjKtCXdbX7+SAmpzzgsGU=",
				SASLPREP_RAW},
		{"ASCII control, untouched", "ctl\x01pw",
				"SCRAM-SHA-256$4096:ICnK71AW/"
				"o1dwHlAU4Song==$fiGEFh0KpjYypXZcm0cV3GE5XQOmlCjlSBgM/"
				"uErqFM=:QbX5CbMvWSjplkMKSxxFydFdbLObn7mbpJCA302EbFo=",
				SASLPREP_OK},
		{"C1 control: prohibited, raw", "\xc2\x80x\xc3\xa9",
				"SCRAM-SHA-256$4096:8qE5AX1aROx/"
				"NleccXmVtQ==$FXyHADtcUmz5pQYsQuFzow7RkrumeGxPZBvt9XcYFyY="
				":B74STLsPuHwfFaHPI0I4rAiFkLM4DmLiwtM5R8kmdxM=",
				SASLPREP_RAW},
};

/* U+FB01 LATIN SMALL LIGATURE FI + U+00E9: PostgreSQL NFKC-normalizes it to
 * "fi\u00e9"; we pass the bytes through (documented limitation). */
static const char pg_lig_password[] = "\xef\xac\x81\xc3\xa9";
static const char pg_lig_verifier[] =
		"SCRAM-SHA-256$4096:C4BmcY/"
		"JfkRq1RSjGiAIZw==$fpvIpJLjd6qdZUwNxNFHVPWdF1ONmQOuZijVS7fjv4I="
		":deeRZbg07xI+Pi6hx7o2bgkEvvGbpg1W+rORo1LSyHo=";

static int rc_known(int rc)
{
	return rc == 0 || (rc <= SCRAM_E_MALFORMED && rc >= SCRAM_E_CRYPTO);
}

/* ---- helpers ------------------------------------------------------------ */

static int secret_of(const char *pw, const char *salt_b64, int iter, struct scram_secret *sec)
{
	uint8_t salt[SCRAM_SALT_MAX];
	int n = scram_b64_decode(salt_b64, strlen(salt_b64), salt, sizeof(salt));

	if (n <= 0)
		return -1;
	return scram_secret_from_password(pw, salt, (size_t)n, iter, sec);
}

/* Independent derivation of ClientKey with OpenSSL, for hand-made proofs. */
static void client_key_of(const char *pw, const struct scram_secret *sec, uint8_t ck[32])
{
	uint8_t salted[32];
	unsigned int n;

	PKCS5_PBKDF2_HMAC(pw, (int)strlen(pw), sec->salt, (int)sec->salt_len, sec->iterations,
			EVP_sha256(), 32, salted);
	HMAC(EVP_sha256(), salted, 32, (const uint8_t *)"Client Key", 10, ck, &n);
}

/* One full exchange server <-> client; returns the first nonzero rc, with
 * *where saying which step produced it. */
struct xchg {
	char cf[SCRAM_MSG_MAX + 1], sf[SCRAM_MSG_MAX + 1], cfin[SCRAM_MSG_MAX + 1],
			sfin[SCRAM_MSG_MAX + 1];
	size_t cf_len, sf_len, cfin_len, sfin_len;
	uint8_t client_key[32];
	struct scram_server srv;
	struct scram_client cli;
};

static int exchange(struct xchg *x, const struct scram_secret *sec,
		const struct scram_client_keys *keys, const char **where)
{
	int rc;

	scram_server_init(&x->srv);
	scram_client_init(&x->cli);
	*where = "client begin";
	rc = scram_client_begin(&x->cli, x->cf, sizeof(x->cf), &x->cf_len);
	if (rc)
		return rc;
	*where = "server begin";
	rc = scram_server_begin(&x->srv, sec, x->cf, x->cf_len, x->sf, sizeof(x->sf), &x->sf_len);
	if (rc)
		return rc;
	*where = "client continue";
	rc = scram_client_continue(
			&x->cli, x->sf, x->sf_len, keys, x->cfin, sizeof(x->cfin), &x->cfin_len);
	if (rc)
		return rc;
	*where = "server finish";
	rc = scram_server_finish(&x->srv, x->cfin, x->cfin_len, x->sfin, sizeof(x->sfin),
			&x->sfin_len, x->client_key);
	if (rc)
		return rc;
	*where = "client finish";
	return scram_client_finish(&x->cli, x->sfin, x->sfin_len);
}

/* ---- base64 ------------------------------------------------------------- */

static void test_b64(void)
{
	static const char *vec[][2] = {{"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"},
			{"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};
	static const char *bad[] = {"Zg=", "Z===", "Zg=a", "Zm9v\n", "Zg==Zg==", "Zm9$",
			"====", "Zm 9",
			"=Zg=", "Zh==", "Zm9=", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB="};
	uint8_t raw[64], back[64];
	char enc[128];
	int i, n, fails = 0;

	for (i = 0; i < 7; i++) {
		n = scram_b64_encode(
				(const uint8_t *)vec[i][0], strlen(vec[i][0]), enc, sizeof(enc));
		if (n != (int)strlen(vec[i][1]) || strcmp(enc, vec[i][1]) != 0)
			fails++;
		n = scram_b64_decode(vec[i][1], strlen(vec[i][1]), back, sizeof(back));
		if (n != (int)strlen(vec[i][0]) || memcmp(back, vec[i][0], (size_t)n) != 0)
			fails++;
	}
	ok(fails == 0, "base64 RFC 4648 vectors encode and decode");

	fails = 0;
	for (i = 0; i < 200; i++) {
		size_t len = (size_t)(i % 48);
		unsigned char ref[128];

		RAND_bytes(raw, (int)len);
		n = scram_b64_encode(raw, len, enc, sizeof(enc));
		EVP_EncodeBlock(ref, raw, (int)len);
		if (n < 0 || strcmp(enc, (char *)ref) != 0)
			fails++;
		n = scram_b64_decode(enc, strlen(enc), back, sizeof(back));
		if (n != (int)len || memcmp(raw, back, len) != 0)
			fails++;
	}
	ok(fails == 0, "base64 matches OpenSSL's encoder and round-trips random data");

	fails = 0;
	for (i = 0; i < (int)(sizeof(bad) / sizeof(bad[0])); i++)
		if (scram_b64_decode(bad[i], strlen(bad[i]), back, sizeof(back)) !=
				SCRAM_E_MALFORMED)
			fails++;
	ok(fails == 0, "base64 decoder rejects bad length, padding, alphabet, whitespace, "
		       "non-canonical trailing bits");

	is_int(scram_b64_encode((const uint8_t *)"foo", 3, enc, 4), SCRAM_E_NOSPACE,
			"encode: no room for the NUL is NOSPACE");
	is_int(scram_b64_encode((const uint8_t *)"foo", 3, enc, 5), 4, "encode: exact fit");
	is_int(scram_b64_decode("Zm9vYmFy", 8, back, 5), SCRAM_E_NOSPACE,
			"decode: short buffer is NOSPACE");
}

/* ---- RFC 7677 ----------------------------------------------------------- */

static void test_rfc7677(void)
{
	struct scram_secret sec;
	struct scram_server srv;
	struct scram_client cli;
	struct scram_client_keys keys = {0};
	uint8_t ck[32], h[32];
	char out[SCRAM_MSG_MAX + 1];
	size_t len;
	unsigned int hl;
	int rc;

	ok(secret_of("pencil", rfc_salt_b64, 4096, &sec) == 0, "RFC 7677: verifier of 'pencil'");

	scram_server_init(&srv);
	ok(scram_server_set_nonce(&srv, rfc_server_nonce) == 0, "RFC 7677: fixed server nonce");
	rc = scram_server_begin(&srv, &sec, rfc_client_first, strlen(rfc_client_first), out,
			sizeof(out), &len);
	is_int(rc, 0, "RFC 7677: server accepts client-first");
	is_str(out, rfc_server_first, "RFC 7677: server-first matches the RFC");
	is_int(len, strlen(rfc_server_first), "RFC 7677: server-first length");
	memset(ck, 0, sizeof(ck));
	rc = scram_server_finish(&srv, rfc_client_final, strlen(rfc_client_final), out, sizeof(out),
			&len, ck);
	is_int(rc, 0, "RFC 7677: server accepts the RFC's ClientProof");
	is_str(out, rfc_server_final, "RFC 7677: server-final carries the RFC's ServerSignature");
	EVP_Digest(ck, 32, h, &hl, EVP_sha256(), NULL);
	ok(memcmp(h, sec.stored_key, 32) == 0, "RFC 7677: recovered ClientKey hashes to StoredKey");
	is_int(scram_server_finish(&srv, rfc_client_final, strlen(rfc_client_final), out,
			       sizeof(out), &len, NULL),
			SCRAM_E_STATE, "server finish twice is STATE");

	/* client side, password */
	scram_client_init(&cli);
	ok(scram_client_set_nonce(&cli, "rOprNGfwEbeRWgbNEkqO") == 0 &&
					scram_client_set_user(&cli, "user") == 0,
			"RFC 7677: client test hooks");
	rc = scram_client_begin(&cli, out, sizeof(out), &len);
	is_str(rc == 0 ? out : NULL, rfc_client_first, "RFC 7677: client-first");
	keys.password = "pencil";
	rc = scram_client_continue(&cli, rfc_server_first, strlen(rfc_server_first), &keys, out,
			sizeof(out), &len);
	is_str(rc == 0 ? out : NULL, rfc_client_final,
			"RFC 7677: client-final carries the RFC's ClientProof");
	is_int(scram_client_finish(&cli, rfc_server_final, strlen(rfc_server_final)), 0,
			"RFC 7677: client verifies the RFC's ServerSignature");

	/* client side, pass-through keys recovered by the server above */
	scram_client_init(&cli);
	scram_client_set_nonce(&cli, "rOprNGfwEbeRWgbNEkqO");
	scram_client_set_user(&cli, "user");
	scram_client_begin(&cli, out, sizeof(out), &len);
	keys.password = NULL;
	keys.secret = &sec;
	memcpy(keys.client_key, ck, 32);
	rc = scram_client_continue(&cli, rfc_server_first, strlen(rfc_server_first), &keys, out,
			sizeof(out), &len);
	is_str(rc == 0 ? out : NULL, rfc_client_final,
			"RFC 7677: pass-through keys give the same ClientProof");
	is_int(scram_client_finish(&cli, rfc_server_final, strlen(rfc_server_final)), 0,
			"RFC 7677: pass-through client verifies ServerSignature");
	scram_client_clear(&cli);
	scram_server_clear(&srv);
}

/* ---- PostgreSQL verifiers ----------------------------------------------- */

static void test_pg_verifiers(void)
{
	struct scram_secret pg, mine;
	char fmt[SCRAM_SECRET_STR_MAX], prep[4096];
	size_t plen, i;
	int rc;

	for (i = 0; i < sizeof(pg_fixtures) / sizeof(pg_fixtures[0]); i++) {
		rc = scram_secret_parse(pg_fixtures[i].verifier, &pg);
		if (rc == 0)
			rc = scram_secret_from_password(pg_fixtures[i].password, pg.salt,
					pg.salt_len, pg.iterations, &mine);
		if (rc == 0)
			rc = scram_secret_format(&mine, fmt, sizeof(fmt)) < 0;
		is_str(rc == 0 ? fmt : NULL, pg_fixtures[i].verifier, pg_fixtures[i].name);
		is_int(saslprep_password(pg_fixtures[i].password, prep, sizeof(prep), &plen),
				pg_fixtures[i].prep, "  SASLprep outcome");
	}
	rc = scram_secret_parse(pg_fixtures[0].verifier, &pg);
	is_int(scram_secret_format(&pg, fmt, sizeof(fmt)), (int)strlen(pg_fixtures[0].verifier),
			"format returns the length");
	is_str(fmt, pg_fixtures[0].verifier, "parse + format round-trips a PostgreSQL verifier");
	is_int(scram_secret_format(&pg, fmt, strlen(pg_fixtures[0].verifier)), SCRAM_E_NOSPACE,
			"format: one byte short is NOSPACE");

	is_int(saslprep_password(pg_lig_password, prep, sizeof(prep), &plen), SASLPREP_UNSUPPORTED,
			"SASLprep beyond Latin-1 reports UNSUPPORTED (known limitation)");
	scram_secret_parse(pg_lig_verifier, &pg);
	scram_secret_from_password(pg_lig_password, pg.salt, pg.salt_len, pg.iterations, &mine);
	scram_secret_format(&mine, fmt, sizeof(fmt));
	if (strcmp(fmt, pg_lig_verifier) != 0)
		diag("as documented, the U+FB01 password's verifier differs from PostgreSQL's");

	ok(saslprep_password("caf\xe9", prep, sizeof(prep), &plen) == SASLPREP_RAW &&
					strcmp(prep, "caf\xe9") == 0,
			"SASLprep: invalid UTF-8 passes through raw");
	ok(saslprep_password("\xc3\xa9t\xc3\xa9", prep, sizeof(prep), &plen) == SASLPREP_OK &&
					plen == 5 && strcmp(prep, "\xc3\xa9t\xc3\xa9") == 0,
			"SASLprep: precomposed Latin-1 letters unchanged");
	ok(saslprep_password("\xc2\xbd\xc2\xa0\xc2\xad!", prep, sizeof(prep), &plen) ==
							SASLPREP_OK &&
					strcmp(prep, "1\xe2\x81\x84"
						     "2 !") == 0,
			"SASLprep: one-half, NBSP, soft hyphen");
	{
		char big[SASLPREP_PASSWORD_MAX + 2];

		memset(big, 'a', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		is_int(saslprep_password(big, prep, sizeof(prep), &plen), -E2BIG,
				"SASLprep: over 1024 bytes is -E2BIG");
		is_int(saslprep_password("\xc2\xbc", prep, 5, &plen), -ENOSPC,
				"SASLprep: short output buffer is -ENOSPC");
		is_int(scram_secret_from_password(big, (const uint8_t *)"salt", 4, 1, &mine),
				SCRAM_E_TOOLONG, "verifier of an over-long password is TOOLONG");
	}
}

static void test_secret_parse_errors(void)
{
	static const struct {
		const char *s;
		int rc;
	} cases[] = {
			{"", SCRAM_E_MALFORMED},
			{"pencil", SCRAM_E_MALFORMED},
			{"md50098e7fab7b4d8d091067152a80b3f12", SCRAM_E_MALFORMED},
			{"SCRAM-SHA-1$4096:mMCpHhyuqSzxe3JjTq5FwA==$"
			 "zo304nzBD2MgpcGojnaoCE6mc9VOHoDYqLDz+yvRdDE=:IoHtyy2DCZm1DC+0AlNucPVi7GF+"
			 "TtZf35vcVRC5iIA=",
					SCRAM_E_MALFORMED},
			{"SCRAM-SHA-256$0:mMCpHhyuqSzxe3JjTq5FwA==$"
			 "zo304nzBD2MgpcGojnaoCE6mc9VOHoDYqLDz+yvRdDE=:IoHtyy2DCZm1DC+0AlNucPVi7GF+"
			 "TtZf35vcVRC5iIA=",
					SCRAM_E_ITERATIONS},
			{"SCRAM-SHA-256$99999999999:mMCpHhyuqSzxe3JjTq5FwA==$"
			 "zo304nzBD2MgpcGojnaoCE6mc9VOHoDYqLDz+yvRdDE=:IoHtyy2DCZm1DC+0AlNucPVi7GF+"
			 "TtZf35vcVRC5iIA=",
					SCRAM_E_ITERATIONS},
			{"SCRAM-SHA-256$-1:mMCpHhyuqSzxe3JjTq5FwA==$"
			 "zo304nzBD2MgpcGojnaoCE6mc9VOHoDYqLDz+yvRdDE=:IoHtyy2DCZm1DC+0AlNucPVi7GF+"
			 "TtZf35vcVRC5iIA=",
					SCRAM_E_MALFORMED},
			{"SCRAM-SHA-256$4096:$zo304nzBD2MgpcGojnaoCE6mc9VOHoDYqLDz+yvRdDE=:"
			 "IoHtyy2DCZm1DC+0AlNucPVi7GF+TtZf35vcVRC5iIA=",
					SCRAM_E_SALT},
			{"SCRAM-SHA-256$4096:mMCp!yuqSzxe3JjTq5FwA==$"
			 "zo304nzBD2MgpcGojnaoCE6mc9VOHoDYqLDz+yvRdDE=:IoHtyy2DCZm1DC+0AlNucPVi7GF+"
			 "TtZf35vcVRC5iIA=",
					SCRAM_E_MALFORMED},
			{"SCRAM-SHA-256$4096:mMCpHhyuqSzxe3JjTq5FwA==$"
			 "zo304nzBD2MgpcGojnaoCE6mc9VOHoDYqLDz+yvRdD==:IoHtyy2DCZm1DC+0AlNucPVi7GF+"
			 "TtZf35vcVRC5iIA=",
					SCRAM_E_MALFORMED},
			{"SCRAM-SHA-256$4096:mMCpHhyuqSzxe3JjTq5FwA==$"
			 "zo304nzBD2MgpcGojnaoCE6mc9VOHoDYqLDz+yvRdDE=",
					SCRAM_E_MALFORMED},
			{"SCRAM-SHA-256$4096:mMCpHhyuqSzxe3JjTq5FwA==$"
			 "zo304nzBD2MgpcGojnaoCE6mc9VOHoDYqLDz+yvRdDE=:IoHtyy2DCZm1DC+0AlNucPVi7GF+"
			 "TtZf35vcVRC5iIA=x",
					SCRAM_E_MALFORMED},
			{"SCRAM-SHA-256$4096:mMCpHhyuqSzxe3JjTq5FwA==$"
			 "zo304nzBD2MgpcGojnaoCE6mc9VOHoDYqLDz+yvRdDE=:IoHtyy2DCZm1DC+0AlNucPVi7GF+"
			 "TtZf35vcVRC5iIA=:",
					SCRAM_E_MALFORMED},
			/* 66-byte salt */
			{"SCRAM-SHA-256$4096:"
			 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
			 "AAAAAAAAAAAAAAA$zo304nzBD2MgpcGojnaoCE6mc9VOHoDYqLDz+yvRdDE=:"
			 "IoHtyy2DCZm1DC+0AlNucPVi7GF+TtZf35vcVRC5iIA=",
					SCRAM_E_SALT},
	};
	struct scram_secret sec;
	char long_s[600];
	size_t i;
	int fails = 0;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = scram_secret_parse(cases[i].s, &sec);

		if (rc != cases[i].rc) {
			diag("verifier case %zu: got %d (%s), expected %d", i, rc,
					scram_strerror(rc), cases[i].rc);
			fails++;
		}
	}
	memset(long_s, 'A', sizeof(long_s) - 1);
	long_s[sizeof(long_s) - 1] = '\0';
	memcpy(long_s, "SCRAM-SHA-256$4096:", 19);
	if (scram_secret_parse(long_s, &sec) != SCRAM_E_MALFORMED)
		fails++;
	ok(fails == 0, "verifier parser rejects %zu malformed verifiers with the right code",
			i + 1);
}

/* ---- round trips -------------------------------------------------------- */

static void test_round_trips(void)
{
	static struct xchg x, y;
	struct scram_secret sec, sec_other_salt, sec_other_iter, cached, mock1, mock2, mock3;
	struct scram_client_keys pw = {.password = "correct horse"}, pt = {0};
	uint8_t recovered[32], mock_key[32];
	char f1[SCRAM_SECRET_STR_MAX], f2[SCRAM_SECRET_STR_MAX];
	const char *where = "";
	int rc;

	ok(scram_secret_generate("correct horse", SCRAM_DEFAULT_ITERATIONS, &sec) == 0 &&
					sec.salt_len == SCRAM_DEFAULT_SALT_LEN,
			"generate a verifier with a random salt");

	rc = exchange(&x, &sec, &pw, &where);
	if (!ok(rc == 0, "round trip with the password"))
		diag("%s: %s", where, scram_strerror(rc));
	ok(strncmp(x.cf, "n,,n=,r=", 8) == 0 && x.cf_len == 8 + 24,
			"client-first is n,,n=,r=<24 chars>");
	ok(strncmp(x.sf + 2, x.cf + 8, 24) == 0 && x.sf[2 + 48] == ',',
			"server nonce = client nonce + 24 random chars");
	cached = x.cli.derived;
	ok(memcmp(x.cli.client_key, x.client_key, 32) == 0,
			"ClientKey recovered by the server equals the client's");
	scram_secret_format(&sec, f1, sizeof(f1));
	scram_secret_format(&cached, f2, sizeof(f2));
	is_str(f2, f1, "client's derived keys reproduce the verifier");
	memcpy(recovered, x.client_key, 32);

	/* pass-through: ClientKey recovered by one server logs in to another with the same verifier
	 */
	pt.secret = &sec;
	memcpy(pt.client_key, recovered, 32);
	rc = exchange(&y, &sec, &pt, &where);
	if (!ok(rc == 0, "pass-through round trip against a second server instance"))
		diag("%s: %s", where, scram_strerror(rc));
	ok(memcmp(y.client_key, recovered, 32) == 0, "second server recovers the same ClientKey");

	/* pass-through against a server whose verifier has another salt */
	scram_secret_generate("correct horse", SCRAM_DEFAULT_ITERATIONS, &sec_other_salt);
	rc = exchange(&y, &sec_other_salt, &pt, &where);
	ok(rc == SCRAM_E_KEYS_MISMATCH && strcmp(where, "client continue") == 0,
			"pass-through with a different salt: KEYS_MISMATCH at continue");
	scram_secret_from_password("correct horse", sec.salt, sec.salt_len, 4097, &sec_other_iter);
	rc = exchange(&y, &sec_other_iter, &pt, &where);
	is_int(rc, SCRAM_E_KEYS_MISMATCH, "pass-through with a different iteration count");
	ok(scram_client_continue(&y.cli, y.sf, y.sf_len, &pt, y.cfin, sizeof(y.cfin),
			   &y.cfin_len) == SCRAM_E_STATE,
			"client is FAILED after an error");

	/* pass-through with a ClientKey that is not this verifier's */
	pt.client_key[0] ^= 1;
	is_int(exchange(&y, &sec, &pt, &where), SCRAM_E_INVALID,
			"pass-through with a foreign ClientKey is INVALID");
	pt.client_key[0] ^= 1;

	/* wrong password */
	pw.password = "correct hors3";
	rc = exchange(&y, &sec, &pw, &where);
	ok(rc == SCRAM_E_BAD_PROOF && strcmp(where, "server finish") == 0,
			"wrong password: BAD_PROOF at server finish");
	is_int(scram_server_finish(&y.srv, y.cfin, y.cfin_len, y.sfin, sizeof(y.sfin), &y.sfin_len,
			       NULL),
			SCRAM_E_STATE, "server is FAILED after BAD_PROOF");
	pw.password = "correct horse";

	/* a server that does not know the verifier: forged server-final */
	rc = exchange(&x, &sec, &pw, &where);
	scram_client_init(&y.cli);
	scram_client_begin(&y.cli, y.cf, sizeof(y.cf), &y.cf_len);
	scram_server_init(&y.srv);
	scram_server_begin(&y.srv, &sec, y.cf, y.cf_len, y.sf, sizeof(y.sf), &y.sf_len);
	scram_client_continue(&y.cli, y.sf, y.sf_len, &pw, y.cfin, sizeof(y.cfin), &y.cfin_len);
	is_int(scram_client_finish(&y.cli, x.sfin, x.sfin_len), SCRAM_E_SERVER_SIGNATURE,
			"client rejects a server signature from another exchange");

	/* mock verifier for unknown users */
	RAND_bytes(mock_key, 32);
	scram_secret_mock("ghost", mock_key, &mock1);
	scram_secret_mock("ghost", mock_key, &mock2);
	scram_secret_mock("ghost2", mock_key, &mock3);
	ok(memcmp(&mock1, &mock2, sizeof(mock1)) == 0 &&
					memcmp(mock1.salt, mock3.salt, mock1.salt_len) != 0,
			"mock verifier: stable per user, different across users");
	is_int(exchange(&y, &mock1, &pw, &where), SCRAM_E_BAD_PROOF,
			"mock verifier: login fails as a wrong password");

	/* client with gs2 flag 'y': hand-made proof */
	{
		struct scram_server srv;
		uint8_t ck[32], sk[32], sig[32], proof[32];
		char sf[256], auth[1024], fin[512], p64[64], out[256];
		size_t sf_len, len;
		unsigned int n;
		int i;

		scram_server_init(&srv);
		rc = scram_server_begin(&srv, &sec, "y,,n=,r=abc", 11, sf, sizeof(sf), &sf_len);
		is_int(rc, 0, "server accepts gs2 flag y");
		client_key_of("correct horse", &sec, ck);
		EVP_Digest(ck, 32, sk, &n, EVP_sha256(), NULL);
		snprintf(fin, sizeof(fin), "c=eSws,r=%.*s", (int)(strchr(sf, ',') - sf - 2),
				sf + 2);
		snprintf(auth, sizeof(auth), "n=,r=abc,%s,%s", sf, fin);
		HMAC(EVP_sha256(), sk, 32, (uint8_t *)auth, strlen(auth), sig, &n);
		for (i = 0; i < 32; i++)
			proof[i] = ck[i] ^ sig[i];
		scram_b64_encode(proof, 32, p64, sizeof(p64));
		strcat(fin, ",p=");
		strcat(fin, p64);
		rc = scram_server_finish(&srv, fin, strlen(fin), out, sizeof(out), &len, NULL);
		is_int(rc, 0, "gs2 flag y with c=eSws and an independently computed proof");

		scram_server_init(&srv);
		scram_server_begin(&srv, &sec, "y,,n=,r=abc", 11, sf, sizeof(sf), &sf_len);
		fin[2] = 'b', fin[3] = 'i', fin[4] = 'w', fin[5] = 's';
		is_int(scram_server_finish(&srv, fin, strlen(fin), out, sizeof(out), &len, NULL),
				SCRAM_E_CHANNEL_BINDING, "gs2 flag y but c=biws: CHANNEL_BINDING");
	}
}

/* ---- hostile messages --------------------------------------------------- */

struct mcase {
	const char *msg;
	int rc;
};

static void test_server_begin_errors(const struct scram_secret *sec)
{
	static const struct mcase cases[] = {
			{"p=tls-server-end-point,,n=,r=abc", SCRAM_E_CHANNEL_BINDING},
			{"n,a=bob,n=,r=abc", SCRAM_E_UNSUPPORTED},
			{"n,,m=ext,n=,r=abc", SCRAM_E_UNSUPPORTED},
			{"n,,", SCRAM_E_MALFORMED},
			{"n,", SCRAM_E_MALFORMED},
			{"n", SCRAM_E_MALFORMED},
			{"n,,n=", SCRAM_E_MALFORMED},
			{"n,,n=,r=", SCRAM_E_MALFORMED},
			{"n,,r=abc", SCRAM_E_MALFORMED},
			{"x,,n=,r=abc", SCRAM_E_MALFORMED},
			{"n,x,n=,r=abc", SCRAM_E_MALFORMED},
			{"n,,n=,r=abc,", SCRAM_E_MALFORMED},
			{"n,,n=,r=abc,1=x", SCRAM_E_MALFORMED},
			{"n,,n=,r=abc,x", SCRAM_E_MALFORMED},
			{"n,,n=,r=a c", SCRAM_E_MALFORMED},
			{"n,,n=,r=a\x7f", SCRAM_E_MALFORMED},
			{"n,,n=,r=\xc3\xa9", SCRAM_E_MALFORMED},
			{"n,,n=,s=abc", SCRAM_E_MALFORMED},
			{"n,,n=,r=abc,x=ok", 0},
			{"n,,n=any=2Cname,r=abc", 0},
	};
	struct scram_server srv;
	char out[SCRAM_MSG_MAX + 1], big[SCRAM_MSG_MAX + 64];
	size_t i, len;
	int rc, fails = 0;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		scram_server_init(&srv);
		rc = scram_server_begin(&srv, sec, cases[i].msg, strlen(cases[i].msg), out,
				sizeof(out), &len);
		if (rc != cases[i].rc) {
			diag("client-first '%s': got %d (%s)", cases[i].msg, rc,
					scram_strerror(rc));
			fails++;
		}
	}
	ok(fails == 0, "server begin: %zu crafted client-first messages give the right codes", i);

	scram_server_init(&srv);
	is_int(scram_server_begin(&srv, sec, "n,,n=\0,r=abc", 12, out, sizeof(out), &len),
			SCRAM_E_MALFORMED, "server begin: embedded NUL");
	scram_server_init(&srv);
	is_int(scram_server_begin(&srv, sec, "", 0, out, sizeof(out), &len), SCRAM_E_MALFORMED,
			"server begin: empty message");
	memset(big, 'a', sizeof(big));
	memcpy(big, "n,,n=,r=", 8);
	scram_server_init(&srv);
	is_int(scram_server_begin(&srv, sec, big, sizeof(big), out, sizeof(out), &len),
			SCRAM_E_TOOLONG, "server begin: message over SCRAM_MSG_MAX");
	scram_server_init(&srv);
	is_int(scram_server_begin(&srv, sec, big, 8 + SCRAM_CLIENT_NONCE_MAX + 1, out, sizeof(out),
			       &len),
			SCRAM_E_TOOLONG, "server begin: client nonce over SCRAM_CLIENT_NONCE_MAX");
	scram_server_init(&srv);
	is_int(scram_server_begin(&srv, sec, "n,,n=,r=abc", 11, out, 20, &len), SCRAM_E_NOSPACE,
			"server begin: small output buffer");
	memset(&srv, 0xa5, sizeof(srv));
	is_int(scram_server_begin(&srv, sec, "n,,n=,r=abc", 11, out, sizeof(out), &len),
			SCRAM_E_STATE, "server begin: uninitialized state refused");
	scram_server_init(&srv);
	scram_server_begin(&srv, sec, "n,,n=,r=abc", 11, out, sizeof(out), &len);
	is_int(scram_server_begin(&srv, sec, "n,,n=,r=abc", 11, out, sizeof(out), &len),
			SCRAM_E_STATE, "server begin twice: STATE");
	is_int(scram_server_set_nonce(&srv, "x"), SCRAM_E_STATE, "set_nonce after begin: STATE");
	scram_server_init(&srv);
	is_int(scram_server_set_nonce(&srv, "a,b"), SCRAM_E_INVALID, "set_nonce with ',': INVALID");
	is_int(scram_server_finish(&srv, "c=biws", 6, out, sizeof(out), &len, NULL), SCRAM_E_STATE,
			"server finish before begin: STATE");
}

static void test_server_finish_errors(const struct scram_secret *sec)
{
	/* nonce is "abc" + "SRV" (fixed) */
	static const struct mcase cases[] = {
			{"c=biws,r=abcSRV", SCRAM_E_MALFORMED},
			{"c=biws,r=abcSRV,", SCRAM_E_MALFORMED},
			{"c=biws,r=abcSRV,p=", SCRAM_E_MALFORMED},
			{"c=biws,r=abcSRV,p=!!!!", SCRAM_E_MALFORMED},
			{"c=biws,r=abcSRV,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
					SCRAM_E_MALFORMED},
			{"c=biws,r=abcSRV,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,x=y",
					SCRAM_E_MALFORMED},
			{"c=biws,r=abcSRV,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
					SCRAM_E_BAD_PROOF},
			{"c=biws,r=abcSRV,x=1,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
					SCRAM_E_BAD_PROOF},
			{"c=eSws,r=abcSRV,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
					SCRAM_E_CHANNEL_BINDING},
			{"c=cD10bHMtdW5pcXVlLCw=,r=abcSRV,p="
			 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
					SCRAM_E_CHANNEL_BINDING},
			{"c=biws,r=abcSRX,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
					SCRAM_E_NONCE},
			{"c=biws,r=abcSR,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
					SCRAM_E_NONCE},
			{"c=biws,r=abcSRVX,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
					SCRAM_E_NONCE},
			{"r=abcSRV,c=biws,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
					SCRAM_E_MALFORMED},
			{"c=biws,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
					SCRAM_E_MALFORMED},
			{"c=biws", SCRAM_E_MALFORMED},
			{"c", SCRAM_E_MALFORMED},
			{"v=abcd", SCRAM_E_MALFORMED},
	};
	struct scram_server base, srv;
	char out[SCRAM_MSG_MAX + 1];
	size_t i, len;
	int rc, fails = 0;

	scram_server_init(&base);
	scram_server_set_nonce(&base, "SRV");
	rc = scram_server_begin(&base, sec, "n,,n=,r=abc", 11, out, sizeof(out), &len);
	is_int(rc, 0, "server begin with fixed nonce SRV");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		srv = base;
		rc = scram_server_finish(&srv, cases[i].msg, strlen(cases[i].msg), out, sizeof(out),
				&len, NULL);
		if (rc != cases[i].rc) {
			diag("client-final '%s': got %d (%s)", cases[i].msg, rc,
					scram_strerror(rc));
			fails++;
		}
	}
	ok(fails == 0, "server finish: %zu crafted client-final messages give the right codes", i);
}

static void test_client_errors(const struct scram_secret *sec)
{
	/* our nonce is "cn" */
	static const struct mcase cont_cases[] = {
			{"r=cnS,s=c2FsdA==,i=4096", SCRAM_E_KEYS_MISMATCH},
			{"r=other,s=c2FsdA==,i=4096", SCRAM_E_NONCE},
			{"r=cn,s=c2FsdA==,i=4096", SCRAM_E_NONCE},
			{"r=c,s=c2FsdA==,i=4096", SCRAM_E_NONCE},
			{"r=cnS,s=,i=4096", SCRAM_E_SALT},
			{"r=cnS,s=!!!!,i=4096", SCRAM_E_MALFORMED},
			{"r=cnS,s=c2FsdA=,i=4096", SCRAM_E_MALFORMED},
			{"r=cnS,s="
			 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
			 "AAAAAAAAAAAAAAA,i=4096", /* 66 bytes */
					SCRAM_E_SALT},
			{"r=cnS,s=c2FsdA==,i=0", SCRAM_E_ITERATIONS},
			{"r=cnS,s=c2FsdA==,i=10000001", SCRAM_E_ITERATIONS},
			{"r=cnS,s=c2FsdA==,i=99999999999999999999999999", SCRAM_E_ITERATIONS},
			{"r=cnS,s=c2FsdA==,i=10000000", SCRAM_E_KEYS_MISMATCH},
			{"r=cnS,s=c2FsdA==,i=-1", SCRAM_E_MALFORMED},
			{"r=cnS,s=c2FsdA==,i=+5", SCRAM_E_MALFORMED},
			{"r=cnS,s=c2FsdA==,i=4096x", SCRAM_E_MALFORMED},
			{"r=cnS,s=c2FsdA==,i=", SCRAM_E_MALFORMED},
			{"r=cnS,s=c2FsdA==", SCRAM_E_MALFORMED},
			{"r=cnS,s=c2FsdA==,i=4096,", SCRAM_E_MALFORMED},
			{"r=cnS,s=c2FsdA==,i=4096,x=ext", SCRAM_E_KEYS_MISMATCH},
			{"r=cnS,i=4096,s=c2FsdA==", SCRAM_E_MALFORMED},
			{"s=c2FsdA==,r=cnS,i=4096", SCRAM_E_MALFORMED},
			{"m=must,r=cnS,s=c2FsdA==,i=4096", SCRAM_E_UNSUPPORTED},
			{"e=other-error", SCRAM_E_MALFORMED},
			{"r=cn S,s=c2FsdA==,i=4096", SCRAM_E_MALFORMED},
	};
	static const struct mcase fin_cases[] = {
			{"v=", SCRAM_E_MALFORMED},
			{"v=!!!!", SCRAM_E_MALFORMED},
			{"v=AAAA", SCRAM_E_MALFORMED},
			{"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
					SCRAM_E_SERVER_SIGNATURE},
			{"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,", SCRAM_E_MALFORMED},
			{"x=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", SCRAM_E_MALFORMED},
			{"e=invalid-proof", SCRAM_E_SERVER_ERROR},
			{"e=", SCRAM_E_SERVER_ERROR},
			{"r=x", SCRAM_E_MALFORMED},
	};
	struct scram_client base, cli;
	struct scram_client_keys keys = {0};
	struct scram_secret rfc;
	char out[SCRAM_MSG_MAX + 1], big[SCRAM_MSG_MAX + 8];
	size_t i, len;
	int rc, fails = 0;

	keys.secret = sec; /* pass-through: no PBKDF2 per case */
	client_key_of("correct horse", sec, keys.client_key);
	scram_client_init(&base);
	scram_client_set_nonce(&base, "cn");
	is_int(scram_client_begin(&base, out, sizeof(out), &len), 0, "client begin, nonce cn");
	is_str(out, "n,,n=,r=cn", "client-first with a fixed nonce");
	for (i = 0; i < sizeof(cont_cases) / sizeof(cont_cases[0]); i++) {
		cli = base;
		rc = scram_client_continue(&cli, cont_cases[i].msg, strlen(cont_cases[i].msg),
				&keys, out, sizeof(out), &len);
		if (rc != cont_cases[i].rc) {
			diag("server-first '%s': got %d (%s)", cont_cases[i].msg, rc,
					scram_strerror(rc));
			fails++;
		}
	}
	ok(fails == 0, "client continue: %zu crafted server-first messages give the right codes",
			i);

	cli = base;
	memset(big, 'x', sizeof(big));
	memcpy(big, "r=cn", 4);
	is_int(scram_client_continue(&cli, big, sizeof(big), &keys, out, sizeof(out), &len),
			SCRAM_E_TOOLONG, "client continue: oversized server-first");
	cli = base;
	is_int(scram_client_continue(
			       &cli, "r=cnS,s=c2FsdA==,i=1", 20, NULL, out, sizeof(out), &len),
			SCRAM_E_INVALID, "client continue: no keys");
	cli = base;
	is_int(scram_client_continue(
			       &cli, "r=cnS,s=c2FsdA==\0,i=1", 21, &keys, out, sizeof(out), &len),
			SCRAM_E_MALFORMED, "client continue: embedded NUL");

	/* finish cases, from a state after a successful continue */
	secret_of("pencil", rfc_salt_b64, 4096, &rfc);
	keys.secret = &rfc;
	client_key_of("pencil", &rfc, keys.client_key);
	scram_client_init(&base);
	scram_client_set_nonce(&base, "rOprNGfwEbeRWgbNEkqO");
	scram_client_begin(&base, out, sizeof(out), &len);
	rc = scram_client_continue(&base, rfc_server_first, strlen(rfc_server_first), &keys, out,
			sizeof(out), &len);
	is_int(rc, 0, "client continue (pass-through, RFC salt)");
	fails = 0;
	for (i = 0; i < sizeof(fin_cases) / sizeof(fin_cases[0]); i++) {
		cli = base;
		rc = scram_client_finish(&cli, fin_cases[i].msg, strlen(fin_cases[i].msg));
		if (rc != fin_cases[i].rc) {
			diag("server-final '%s': got %d (%s)", fin_cases[i].msg, rc,
					scram_strerror(rc));
			fails++;
		}
	}
	ok(fails == 0, "client finish: %zu crafted server-final messages give the right codes", i);
	cli = base;
	scram_client_finish(&cli, "e=invalid-proof\x01", 16);
	is_str(cli.server_error, "invalid-proof?", "e= text kept, sanitized");
	cli = base;
	is_int(scram_client_finish(&cli, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,x=1", 49),
			SCRAM_E_SERVER_SIGNATURE, "client finish: extension after v= accepted");
	scram_client_init(&cli);
	is_int(scram_client_finish(&cli, "v=x", 3), SCRAM_E_STATE, "client finish before begin");
	is_int(scram_client_continue(&cli, "r=x", 3, &keys, out, sizeof(out), &len), SCRAM_E_STATE,
			"client continue before begin");
}

/* ---- fuzz --------------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

#define FUZZ_BUF (SCRAM_MSG_MAX + 200)

static size_t mutate(const char *base, char *buf)
{
	static const char special[] = ",=\0pcrsivne+/ \xff\x80";
	size_t base_len = strlen(base), len = base_len, k, nm = 1 + rnd() % 4, pos, n;

	memcpy(buf, base, len);
	/* until the message differs from <base> */
	for (k = 0; k < nm || (len == base_len && memcmp(buf, base, len) == 0); k++) {
		pos = len ? rnd() % (len + 1) : 0;
		switch (rnd() % 7) {
		case 0: /* flip a byte */
			if (len)
				buf[rnd() % len] = (char)rnd();
			break;
		case 1: /* special byte */
			if (len)
				buf[rnd() % len] = special[rnd() % (sizeof(special) - 1)];
			break;
		case 2: /* delete a range */
			n = rnd() % 8;
			if (pos + n > len)
				n = len - pos;
			memmove(buf + pos, buf + pos + n, len - pos - n);
			len -= n;
			break;
		case 3: /* insert bytes */
			n = 1 + rnd() % 6;
			if (len + n > FUZZ_BUF)
				break;
			memmove(buf + pos + n, buf + pos, len - pos);
			len += n;
			while (n--)
				buf[pos + n] = rnd() & 1 ? special[rnd() % (sizeof(special) - 1)]
							 : (char)(0x20 + rnd() % 95);
			break;
		case 4: /* truncate */
			len = pos;
			break;
		case 5: /* duplicate a chunk */
			n = rnd() % 32;
			if (pos + n > len)
				n = len - pos;
			if (len + n > FUZZ_BUF)
				break;
			memmove(buf + pos + n, buf + pos, len - pos);
			len += n;
			break;
		case 6: /* pad far out, past the limits */
			n = rnd() % (FUZZ_BUF - len + 1);
			memset(buf + len, rnd() & 1 ? 'A' : ',', n);
			len += n;
			break;
		}
	}
	return len;
}

static void test_fuzz(const struct scram_secret *rfc)
{
	static struct scram_server srv_base, srv;
	static struct scram_client cli_first, cli_final, cli;
	struct scram_client_keys keys = {0};
	char buf[FUZZ_BUF + 1], out[SCRAM_MSG_MAX + 1], prep[FUZZ_BUF * 3];
	struct scram_secret sec;
	uint64_t seed;
	long iters = 200000, i, bad = 0, accepted = 0, acc[6] = {0}, forged = 0;
	const char *e;
	size_t len, out_len;
	int rc = 0;

	e = getenv("T_SCRAM_SEED");
	seed = e ? strtoull(e, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)clock();
	if (!seed)
		seed = 1;
	e = getenv("T_SCRAM_FUZZ_ITERS");
	if (e)
		iters = atol(e);
	rng_state = seed;
	diag("fuzz: %ld iterations, seed T_SCRAM_SEED=%llu", iters, (unsigned long long)seed);

	scram_server_init(&srv_base);
	scram_server_set_nonce(&srv_base, rfc_server_nonce);
	scram_server_begin(&srv_base, rfc, rfc_client_first, strlen(rfc_client_first), out,
			sizeof(out), &out_len);
	keys.secret = rfc;
	client_key_of("pencil", rfc, keys.client_key);
	scram_client_init(&cli_first);
	scram_client_set_nonce(&cli_first, "rOprNGfwEbeRWgbNEkqO");
	scram_client_set_user(&cli_first, "user");
	scram_client_begin(&cli_first, out, sizeof(out), &out_len);
	cli_final = cli_first;
	scram_client_continue(&cli_final, rfc_server_first, strlen(rfc_server_first), &keys, out,
			sizeof(out), &out_len);

	for (i = 0; i < iters; i++) {
		unsigned which = (unsigned)(rnd() % 6);

		out_len = (size_t)-1;
		memset(out, 0x5a, 8);
		switch (which) {
		case 0:
			len = mutate(rfc_client_first, buf);
			scram_server_init(&srv);
			rc = scram_server_begin(&srv, rfc, buf, len, out, sizeof(out), &out_len);
			break;
		case 1:
			len = mutate(rfc_client_final, buf);
			srv = srv_base;
			rc = scram_server_finish(&srv, buf, len, out, sizeof(out), &out_len, NULL);
			break;
		case 2:
			len = mutate(rfc_server_first, buf);
			cli = cli_first;
			rc = scram_client_continue(
					&cli, buf, len, &keys, out, sizeof(out), &out_len);
			break;
		case 3:
			len = mutate(rfc_server_final, buf);
			cli = cli_final;
			rc = scram_client_finish(&cli, buf, len);
			out_len = 0;
			out[0] = '\0';
			break;
		case 4:
			len = mutate(pg_fixtures[0].verifier, buf);
			buf[len] = '\0';
			rc = scram_secret_parse(buf, &sec);
			out_len = 0;
			out[0] = '\0';
			break;
		default:
			len = mutate(pg_fixtures[5].password, buf);
			buf[len] = '\0';
			len = strlen(buf);
			rc = saslprep_password(buf, prep, len * 5 / 2 + 1, &out_len);
			if (rc >= 0 && (out_len > len * 5 / 2 || prep[out_len] != '\0'))
				bad++;
			rc = rc > 0 ? 0 : rc == -E2BIG ? SCRAM_E_TOOLONG : rc;
			out_len = 0;
			out[0] = '\0';
			break;
		}
		if (!rc_known(rc)) {
			bad++;
			diag("iteration %ld case %u: unknown rc %d", i, which, rc);
		} else if (rc == 0) {
			accepted++;
			acc[which]++;
			/* A finish may accept only the original with extensions appended. */
			if (which == 1 || which == 3) {
				const char *b = which == 1 ? rfc_client_final : rfc_server_final;
				size_t bl = strlen(b);

				if (len <= bl || memcmp(buf, b, bl) != 0 || buf[bl] != ',')
					forged++;
			}
			if (out_len >= sizeof(out) || out[out_len] != '\0' ||
					strlen(out) != out_len)
				bad++;
		}
	}
	diag("fuzz accepted: server begin %ld, server finish %ld, client continue %ld, "
	     "client finish %ld, verifier %ld, saslprep %ld",
			acc[0], acc[1], acc[2], acc[3], acc[4], acc[5]);
	ok(forged == 0, "fuzz: no altered proof or signature accepted");
	ok(bad == 0,
			"fuzz: %ld mutated messages, every result a known code, outputs bounded "
			"(%ld accepted)",
			iters, accepted);
}

int main(void)
{
	struct scram_secret sec, rfc;

	plan(97);
	test_b64();
	test_rfc7677();
	test_pg_verifiers();
	test_secret_parse_errors();
	test_round_trips();
	scram_secret_from_password(
			"correct horse", (const uint8_t *)"0123456789abcdef", 16, 4096, &sec);
	test_server_begin_errors(&sec);
	test_server_finish_errors(&sec);
	test_client_errors(&sec);
	secret_of("pencil", rfc_salt_b64, 4096, &rfc);
	test_fuzz(&rfc);
	return tap_exit_status();
}
