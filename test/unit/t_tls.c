/* t_tls.c -- tls.c on its own: settings errors, and a non-blocking handshake,
 * records both ways and EOF over a socketpair with a throw-away certificate. */
#include "tls.h"
#include "tap.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

static char dir[] = "/tmp/t_tls_XXXXXX";
static char key_path[96], crt_path[96];

/* One subject-name entry: <type> is MBSTRING_ASC, or an ASN.1 string type
 * whose raw bytes are <val> (<len> of them: NULs and lengths that
 * MBSTRING_ASC would refuse). */
struct name_part {
	const char *field;
	int type;
	const char *val;
	int len;
};

/* A P-256 key and a certificate for <parts> signed by <ca>/<ca_key> (self-
 * signed when <ca> is NULL), written as PEM to <base>.key and <base>.crt;
 * the certificate and key are kept in *<x_out> and *<k_out> when those are not
 * NULL (for signing others). */
static int make_cert_as(const char *base, const struct name_part *parts, int n, X509 *ca,
		EVP_PKEY *ca_key, X509 **x_out, EVP_PKEY **k_out)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	char path[128];
	FILE *f;
	int i, rc = -1;

	if (k == NULL || x == NULL)
		goto out;
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, k);
	for (i = 0; i < n; i++)
		if (!X509_NAME_add_entry_by_txt(X509_get_subject_name(x), parts[i].field,
				    parts[i].type, (const unsigned char *)parts[i].val, parts[i].len, -1,
				    0))
			goto out;
	X509_set_issuer_name(x, ca ? X509_get_subject_name(ca) : X509_get_subject_name(x));
	if (!X509_sign(x, ca ? ca_key : k, EVP_sha256()))
		goto out;
	snprintf(path, sizeof(path), "%s.key", base);
	if ((f = fopen(path, "w")) == NULL)
		goto out;
	PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	snprintf(path, sizeof(path), "%s.crt", base);
	if ((f = fopen(path, "w")) == NULL)
		goto out;
	PEM_write_X509(f, x);
	fclose(f);
	rc = 0;
	if (x_out) {
		*x_out = x;
		x = NULL;
	}
	if (k_out) {
		*k_out = k;
		k = NULL;
	}
out:
	X509_free(x);
	EVP_PKEY_free(k);
	return rc;
}

/* A self-signed P-256 certificate for CN=localhost, written as PEM. */
static int make_cert(void)
{
	static const struct name_part cn = { "CN", MBSTRING_ASC, "localhost", -1 };
	char base[64];

	snprintf(base, sizeof(base), "%s/srv", dir);
	snprintf(key_path, sizeof(key_path), "%s.key", base);
	snprintf(crt_path, sizeof(crt_path), "%s.crt", base);
	return make_cert_as(base, &cn, 1, NULL, NULL, NULL, NULL);
}

/* Step both handshakes until both are done or one fails (bounded). */
static int handshake_both(struct tls_conn *a, struct tls_conn *b, int *wants)
{
	int ra = 1, rb = 1, i;

	for (i = 0; i < 100 && (ra != 0 || rb != 0); i++) {
		if (ra != 0)
			ra = tls_handshake(a);
		if (rb != 0)
			rb = tls_handshake(b);
		if (ra == TLS_WANT_READ || rb == TLS_WANT_READ)
			(*wants)++;
		if ((ra < 0 && ra != TLS_WANT_READ && ra != TLS_WANT_WRITE) ||
				(rb < 0 && rb != TLS_WANT_READ && rb != TLS_WANT_WRITE))
			return -1;
	}
	return ra == 0 && rb == 0 ? 0 : -1;
}

/* Handshake an accepting <actx> with a client presenting <base>.crt (none
 * when <base> is NULL); the accepting side's tls_conn_peer_cn() into <buf>,
 * or 1 when the handshake failed. */
static int peer_cn_with(struct tls_ctx *actx, const char *base, char *buf, size_t len)
{
	struct tls_settings con = { .mode = TLS_MODE_REQUIRE };
	char kp[128], cp[128], err[256];
	struct tls_ctx *cctx;
	struct tls_conn *ta, *tc;
	int sv[2], wants = 0, rc = 1;

	if (base) {
		snprintf(kp, sizeof(kp), "%s.key", base);
		snprintf(cp, sizeof(cp), "%s.crt", base);
		con.key_file = kp;
		con.cert_file = cp;
	}
	cctx = tls_ctx_new(&con, false, err, sizeof(err));
	if (cctx == NULL) {
		diag("client context: %s", err);
		return 2;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return 2;
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	ta = tls_conn_new(actx, sv[0], NULL, NULL);
	tc = tls_conn_new(cctx, sv[1], NULL, NULL);
	if (ta && tc && handshake_both(ta, tc, &wants) == 0)
		rc = tls_conn_peer_cn(ta, buf, len);
	tls_conn_free(tc, false);
	tls_conn_free(ta, false);
	close(sv[0]);
	close(sv[1]);
	tls_ctx_free(cctx);
	return rc;
}

static int peer_cn_named(struct tls_ctx *actx, const char *name, char *buf, size_t len)
{
	char base[64];

	if (name == NULL)
		return peer_cn_with(actx, NULL, buf, len);
	snprintf(base, sizeof(base), "%s/%s", dir, name);
	return peer_cn_with(actx, base, buf, len);
}

/* tls_conn_peer_cn(): certificate authentication's CN, and every way a
 * client certificate's name can be unusable. */
static void test_peer_cn(void)
{
	static const struct name_part ca_name = { "CN", MBSTRING_ASC, "t_tls CA", -1 };
	static const struct name_part app = { "CN", MBSTRING_ASC, "app", -1 };
	static const struct name_part nul = { "CN", V_ASN1_UTF8STRING, "app\0.evil", 8 };
	static const struct name_part bmp = { "CN", V_ASN1_BMPSTRING, "\0a\0p\0p\0\xe9", 8 };
	static const struct name_part two[] = { { "CN", MBSTRING_ASC, "app", -1 },
		{ "CN", MBSTRING_ASC, "admin", -1 } };
	static const struct name_part org = { "O", MBSTRING_ASC, "no common name", -1 };
	struct tls_settings acc = { .mode = TLS_MODE_REQUIRE, .key_file = key_path,
		.cert_file = crt_path };
	struct name_part lng = { "CN", V_ASN1_UTF8STRING, NULL, 100 };
	char base[64], other[64], cap[96], err[256], buf[64], big[101];
	X509 *ca = NULL, *ox = NULL;
	EVP_PKEY *cak = NULL, *ok_ = NULL;
	struct tls_ctx *actx, *noca;

	memset(big, 'x', 100);
	big[100] = 0;
	lng.val = big;
	snprintf(base, sizeof(base), "%s/ca", dir);
	snprintf(cap, sizeof(cap), "%s/ca.crt", dir);
	snprintf(other, sizeof(other), "%s/other", dir);
	if (!ok(make_cert_as(base, &ca_name, 1, NULL, NULL, &ca, &cak) == 0 &&
			    make_cert_as(other, &ca_name, 1, NULL, NULL, &ox, &ok_) == 0,
			"two CAs with the same name"))
		return;
#define CLIENT(name, parts, n, signer, signer_key)                                         \
	(snprintf(base, sizeof(base), "%s/%s", dir, name),                                 \
			make_cert_as(base, parts, n, signer, signer_key, NULL, NULL) == 0)
	ok(CLIENT("app", &app, 1, ca, cak) && CLIENT("nul", &nul, 1, ca, cak) &&
			CLIENT("bmp", &bmp, 1, ca, cak) && CLIENT("two", two, 2, ca, cak) &&
			CLIENT("org", &org, 1, ca, cak) && CLIENT("long", &lng, 1, ca, cak) &&
			CLIENT("stranger", &app, 1, ox, ok_),
			"client certificates");
	X509_free(ca);
	X509_free(ox);
	EVP_PKEY_free(cak);
	EVP_PKEY_free(ok_);

	acc.ca_file = cap;
	actx = tls_ctx_new(&acc, true, err, sizeof(err));
	acc.ca_file = NULL;
	noca = tls_ctx_new(&acc, true, err, sizeof(err));
	if (!ok(actx && noca, "accepting contexts with and without client_tls_ca_file"))
		return;
#define PEER(ctx, name, len) peer_cn_named(ctx, name, buf, len)
	ok(PEER(actx, "app", sizeof(buf)) == 0 && strcmp(buf, "app") == 0, "CN=app: \"%s\"", buf);
	ok(PEER(actx, NULL, sizeof(buf)) == -ENOENT && buf[0] == 0, "no certificate: -ENOENT");
	ok(PEER(noca, "app", sizeof(buf)) == -ENOENT,
			"no client_tls_ca_file: no certificate is asked for, -ENOENT");
	ok(PEER(actx, "stranger", sizeof(buf)) == 1,
			"a certificate from another CA (same CA name) fails the handshake");
	ok(PEER(actx, "nul", sizeof(buf)) == -EINVAL && buf[0] == 0,
			"a CN with a NUL byte: -EINVAL");
	ok(PEER(actx, "two", sizeof(buf)) == -EINVAL, "two CNs: -EINVAL");
	ok(PEER(actx, "org", sizeof(buf)) == -ENODATA, "no CN: -ENODATA");
	ok(PEER(actx, "long", sizeof(buf)) == -ENAMETOOLONG && buf[0] == 0,
			"a 100-byte CN into 64 bytes: -ENAMETOOLONG");
	ok(PEER(actx, "app", 3) == -ENAMETOOLONG && PEER(actx, "app", 4) == 0,
			"the buffer must hold the NUL too");
	ok(PEER(actx, "bmp", sizeof(buf)) == 0 && strcmp(buf, "app\xc3\xa9") == 0,
			"a BMPString CN comes out as UTF-8");
#undef PEER
#undef CLIENT
	tls_ctx_free(actx);
	tls_ctx_free(noca);
}

int main(void)
{
	struct tls_settings acc = { .mode = TLS_MODE_REQUIRE }, con = { .mode = TLS_MODE_REQUIRE };
	struct tls_ctx *actx, *cctx, *bad;
	struct tls_conn *ta, *tc;
	char err[256], info[128], buf[64];
	int sv[2], wants = 0;
	ssize_t n;

	plan(30);
	if (mkdtemp(dir) == NULL)
		return 1;
	ok(make_cert() == 0, "throw-away certificate");

	bad = tls_ctx_new(&acc, true, err, sizeof(err));
	ok(bad == NULL && strstr(err, "client_tls_key_file"), "accepting without a key names the setting");
	con.protocols = "tlsv1.2,tlsv9";
	bad = tls_ctx_new(&con, false, err, sizeof(err));
	ok(bad == NULL && strstr(err, "server_tls_protocols"), "an unknown protocol is refused: %s", err);
	con.protocols = "secure,!tlsv1.2";
	con.ciphers = "NO-SUCH-CIPHER";
	bad = tls_ctx_new(&con, false, err, sizeof(err));
	ok(bad == NULL && strstr(err, "server_tls_ciphers"), "an unknown cipher list is refused");
	con.ciphers = NULL;
	acc.key_file = key_path;
	acc.cert_file = crt_path;
	acc.dheparams = "sometimes";
	bad = tls_ctx_new(&acc, true, err, sizeof(err));
	ok(bad == NULL && strstr(err, "client_tls_dheparams"), "a bad client_tls_dheparams is refused");
	acc.dheparams = "none";
	acc.mode = TLS_MODE_VERIFY_CA;
	bad = tls_ctx_new(&acc, true, err, sizeof(err));
	ok(bad == NULL && strstr(err, "client_tls_ca_file"), "verify-ca without a CA file is refused");
	acc.mode = TLS_MODE_REQUIRE;

	actx = tls_ctx_new(&acc, true, err, sizeof(err));
	ok(actx != NULL, "accepting context: %s", actx ? "ok" : err);
	cctx = tls_ctx_new(&con, false, err, sizeof(err));
	ok(cctx != NULL, "connecting context (TLS 1.3 only): %s", cctx ? "ok" : err);
	ok(tls_settings_equal(&acc, &acc) && !tls_settings_equal(&acc, &con), "settings compare");
	if (actx == NULL || cctx == NULL)
		return tap_exit_status();

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
		return 1;
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	ta = tls_conn_new(actx, sv[0], NULL, NULL);
	tc = tls_conn_new(cctx, sv[1], NULL, "localhost");
	ok(ta && tc, "connections");
	n = handshake_both(ta, tc, &wants);
	ok(n == 0 && wants > 0, "non-blocking handshake completes through WANT_READ (%d)", wants);
	tls_conn_info(tc, info, sizeof(info));
	ok(strncmp(info, "TLSv1.3/", 8) == 0, "connection info: %s", info);
	ok(tls_read(ta, buf, sizeof(buf)) == TLS_WANT_READ, "nothing to read: WANT_READ");
	n = tls_write(tc, "hello, pgslab", 13);
	ok(n == 13, "a record written");
	n = tls_read(ta, buf, 5);
	ok(n == 5 && memcmp(buf, "hello", 5) == 0 && tls_pending(ta) != 0,
			"read in part; the rest is pending inside OpenSSL");
	n = tls_read(ta, buf, sizeof(buf));
	ok(n == 8 && memcmp(buf, ", pgslab", 8) == 0, "... and read next");
	tls_conn_free(tc, true);
	close(sv[1]);
	n = tls_read(ta, buf, sizeof(buf));
	ok(n == TLS_EOF, "close_notify then EOF: TLS_EOF");
	tls_conn_free(ta, false);
	close(sv[0]);
	tls_ctx_free(actx);
	tls_ctx_free(cctx);
	test_peer_cn();
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			diag("could not remove %s", dir);
	}
	return tap_exit_status();
}
