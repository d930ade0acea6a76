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
static char key_path[64], crt_path[64];

/* A self-signed P-256 certificate for CN=localhost, written as PEM. */
static int make_cert(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	FILE *f;
	int rc = -1;

	if (k == NULL || x == NULL)
		goto out;
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, k);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
			(const unsigned char *)"localhost", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	if (!X509_sign(x, k, EVP_sha256()))
		goto out;
	if ((f = fopen(key_path, "w")) == NULL)
		goto out;
	PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	if ((f = fopen(crt_path, "w")) == NULL)
		goto out;
	PEM_write_X509(f, x);
	fclose(f);
	rc = 0;
out:
	X509_free(x);
	EVP_PKEY_free(k);
	return rc;
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

int main(void)
{
	struct tls_settings acc = { .mode = TLS_MODE_REQUIRE }, con = { .mode = TLS_MODE_REQUIRE };
	struct tls_ctx *actx, *cctx, *bad;
	struct tls_conn *ta, *tc;
	char err[256], info[128], buf[64];
	int sv[2], wants = 0;
	ssize_t n;

	plan(17);
	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(key_path, sizeof(key_path), "%s/k.pem", dir);
	snprintf(crt_path, sizeof(crt_path), "%s/c.pem", dir);
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
	unlink(key_path);
	unlink(crt_path);
	rmdir(dir);
	return tap_exit_status();
}
