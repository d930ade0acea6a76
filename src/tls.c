/* tls.c -- TLS contexts and non-blocking connections over OpenSSL.
 *
 * See tls.h.  Every SSL call is preceded by ERR_clear_error() so that
 * SSL_get_error() and the error strings describe that call only.  Contexts
 * disable what a pooler never needs and what costs memory per connection:
 * renegotiation, compression, the server-side session cache and TLS 1.3
 * session tickets.
 */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

struct tls_ctx {
	SSL_CTX *ssl;
	bool accept;
};

/* OpenSSL's SSL is the connection; the struct is never defined. */
static inline SSL *ssl_of(const struct tls_conn *t)
{
	return (SSL *)(void *)t;
}

/* ---- error strings ---- */

/* Per thread: each event loop (a future worker) formats its own. */
#define ERR_SLOTS 4
static __thread char err_ring[ERR_SLOTS][200];
static __thread unsigned err_next;

/* The first queued OpenSSL error (or <what>) in a static slot. */
static const char *err_take(const char *what)
{
	char *buf = err_ring[err_next++ % ERR_SLOTS];
	unsigned long e = ERR_get_error();

	if (e == 0) {
		snprintf(buf, sizeof(err_ring[0]), "%s", what);
	} else {
		char es[160];

		ERR_error_string_n(e, es, sizeof(es));
		snprintf(buf, sizeof(err_ring[0]), "%s: %s", what, es);
	}
	ERR_clear_error();
	return buf;
}

/* ---- contexts ---- */

static bool unset(const char *s)
{
	return s == NULL || s[0] == 0;
}

#define PROTO_BIT(v) (1u << ((v) - TLS1_VERSION)) /* TLS1_VERSION .. TLS1_3_VERSION */

/* PgBouncer's protocol list: words separated by commas, colons or spaces,
 * "all"/"legacy", "secure"/"default" or tlsv1.0 ... tlsv1.3, each
 * optionally negated with '!'.  0, or -EINVAL. */
static int parse_protocols(const char *spec, int *minv, int *maxv)
{
	static const struct { const char *name; unsigned bits; } words[] = {
		{ "all", 0xf }, { "legacy", 0xf }, { "secure", 0xc }, { "default", 0xc },
		{ "tlsv1.0", 0x1 }, { "tlsv1.1", 0x2 }, { "tlsv1.2", 0x4 }, { "tlsv1.3", 0x8 },
	};
	unsigned set = 0;
	const char *p = unset(spec) ? "secure" : spec;
	int v;

	while (*p) {
		char w[16];
		size_t n = strcspn(p, ", :");
		bool neg = false;
		size_t i;

		if (n == 0) {
			p++;
			continue;
		}
		if (*p == '!') {
			neg = true;
			p++;
			n--;
		}
		if (n >= sizeof(w))
			return -EINVAL;
		for (i = 0; i < n; i++)
			w[i] = (char)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] + 32 : p[i]);
		w[n] = 0;
		p += n;
		for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
			if (strcmp(w, words[i].name) == 0)
				break;
		if (i == sizeof(words) / sizeof(words[0]))
			return -EINVAL;
		if (neg)
			set &= ~words[i].bits;
		else
			set |= words[i].bits;
	}
	if (set == 0)
		return -EINVAL;
	*minv = *maxv = 0;
	for (v = TLS1_VERSION; v <= TLS1_3_VERSION; v++) {
		if (set & PROTO_BIT(v)) {
			if (*minv == 0)
				*minv = v;
			*maxv = v;
		}
	}
	return 0;
}

/* libtls's cipher keywords, else an OpenSSL cipher list. */
static const char *cipher_list(const char *spec)
{
	if (unset(spec) || strcmp(spec, "default") == 0 || strcmp(spec, "secure") == 0 ||
			strcmp(spec, "normal") == 0 || strcmp(spec, "fast") == 0)
		return "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20";
	if (strcmp(spec, "all") == 0 || strcmp(spec, "legacy") == 0 ||
			strcmp(spec, "compat") == 0 || strcmp(spec, "insecure") == 0)
		return "ALL:!aNULL:!eNULL";
	return spec;
}

static const unsigned char alpn_pg[] = { 10, 'p', 'o', 's', 't', 'g', 'r', 'e', 's', 'q', 'l' };

/* A client that offers ALPN must offer "postgresql" (as PostgreSQL 17);
 * one that offers none is accepted (classic SSLRequest clients). */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
		const unsigned char *in, unsigned int inlen, void *arg)
{
	unsigned char *sel;

	(void)ssl;
	(void)arg;
	if (SSL_select_next_proto(&sel, outlen, alpn_pg, sizeof(alpn_pg), in, inlen) !=
			OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

#define FAIL(...)                                            \
	do {                                                 \
		snprintf(err, errlen, __VA_ARGS__);          \
		goto fail;                                   \
	} while (0)

static int setup_accept(SSL_CTX *c, const struct tls_settings *ts, char *err, size_t errlen)
{
	if (unset(ts->key_file) || unset(ts->cert_file)) {
		snprintf(err, errlen, "client_tls_sslmode other than disable needs client_tls_key_file and client_tls_cert_file");
		return -1;
	}
	SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(c, 0);
	SSL_CTX_set_options(c, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
	SSL_CTX_set_alpn_select_cb(c, alpn_select, NULL);
	if (!unset(ts->ecdhcurve) && strcmp(ts->ecdhcurve, "auto") != 0 &&
			SSL_CTX_set1_groups_list(c, ts->ecdhcurve) != 1) {
		snprintf(err, errlen, "%s", err_take("client_tls_ecdhcurve"));
		return -1;
	}
	if (unset(ts->dheparams) || strcmp(ts->dheparams, "auto") == 0 ||
			strcmp(ts->dheparams, "legacy") == 0) {
		SSL_CTX_set_dh_auto(c, 1);
	} else if (strcmp(ts->dheparams, "none") != 0) {
		snprintf(err, errlen, "client_tls_dheparams = %s: none, auto or legacy", ts->dheparams);
		return -1;
	}
	if (ts->mode >= TLS_MODE_VERIFY_CA && unset(ts->ca_file)) {
		snprintf(err, errlen, "client_tls_sslmode = verify-ca/verify-full needs client_tls_ca_file");
		return -1;
	}
	if (!unset(ts->ca_file)) {
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ts->ca_file);

		if (names == NULL || SSL_CTX_load_verify_locations(c, ts->ca_file, NULL) != 1) {
			sk_X509_NAME_pop_free(names, X509_NAME_free);
			snprintf(err, errlen, "%s", err_take(ts->ca_file));
			return -1;
		}
		SSL_CTX_set_client_CA_list(c, names);
		/* below verify-ca a certificate is optional, but one that is
		 * presented must verify */
		SSL_CTX_set_verify(c, SSL_VERIFY_PEER | (ts->mode >= TLS_MODE_VERIFY_CA ?
				SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
	}
	return 0;
}

struct tls_ctx *tls_ctx_new(const struct tls_settings *ts, bool accept, char *err, size_t errlen)
{
	const char *side = accept ? "client_tls" : "server_tls";
	struct tls_ctx *ctx = NULL;
	SSL_CTX *c;
	int minv, maxv;

	ERR_clear_error();
	c = SSL_CTX_new(accept ? TLS_server_method() : TLS_client_method());
	if (c == NULL)
		FAIL("%s", err_take("SSL_CTX_new"));
	SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
			SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
			SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_read_ahead(c, 1); /* one recv per burst of records, not two per record */
	if (parse_protocols(ts->protocols, &minv, &maxv) < 0)
		FAIL("%s_protocols = %s: not a protocol list", side, ts->protocols);
	if (!SSL_CTX_set_min_proto_version(c, minv) || !SSL_CTX_set_max_proto_version(c, maxv))
		FAIL("%s", err_take("protocol versions"));
	if (SSL_CTX_set_cipher_list(c, cipher_list(ts->ciphers)) != 1)
		FAIL("%s_ciphers = %s: %s", side, ts->ciphers, err_take("no usable cipher"));
	if (!unset(ts->tls13_ciphers) && SSL_CTX_set_ciphersuites(c, ts->tls13_ciphers) != 1)
		FAIL("%s13_ciphers = %s: failed to set the TLSv1.3 cipher suites (%s)",
				accept ? "client" : "server", ts->tls13_ciphers,
				err_take("no usable cipher suite"));
	if (!unset(ts->cert_file) &&
			SSL_CTX_use_certificate_chain_file(c, ts->cert_file) != 1)
		FAIL("%s", err_take(ts->cert_file));
	if (!unset(ts->key_file)) {
		if (SSL_CTX_use_PrivateKey_file(c, ts->key_file, SSL_FILETYPE_PEM) != 1)
			FAIL("%s", err_take(ts->key_file));
		if (SSL_CTX_check_private_key(c) != 1)
			FAIL("%s", err_take("key does not match certificate"));
	}
	if (accept) {
		if (setup_accept(c, ts, err, errlen) < 0)
			goto fail;
	} else {
		SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
		if (SSL_CTX_set_alpn_protos(c, alpn_pg, sizeof(alpn_pg)) != 0)
			FAIL("%s", err_take("ALPN"));
		if (ts->mode >= TLS_MODE_VERIFY_CA) {
			if (unset(ts->ca_file) ? SSL_CTX_set_default_verify_paths(c) != 1 :
					SSL_CTX_load_verify_locations(c, ts->ca_file, NULL) != 1)
				FAIL("%s", err_take(unset(ts->ca_file) ? "default CA paths" : ts->ca_file));
			SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
		}
	}
	ctx = OPENSSL_zalloc(sizeof(*ctx));
	if (ctx == NULL)
		FAIL("out of memory");
	ctx->ssl = c;
	ctx->accept = accept;
	return ctx;
fail:
	SSL_CTX_free(c);
	return NULL;
}

void tls_ctx_free(struct tls_ctx *ctx)
{
	if (ctx == NULL)
		return;
	SSL_CTX_free(ctx->ssl); /* each SSL still holds its own reference */
	OPENSSL_free(ctx);
}

static bool str_eq(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

bool tls_settings_equal(const struct tls_settings *a, const struct tls_settings *b)
{
	return a->mode == b->mode && str_eq(a->key_file, b->key_file) &&
		str_eq(a->cert_file, b->cert_file) && str_eq(a->ca_file, b->ca_file) &&
		str_eq(a->protocols, b->protocols) && str_eq(a->ciphers, b->ciphers) &&
		str_eq(a->tls13_ciphers, b->tls13_ciphers) && str_eq(a->ecdhcurve, b->ecdhcurve) &&
		str_eq(a->dheparams, b->dheparams);
}

/* ---- connections ---- */

struct tls_conn *tls_conn_new(struct tls_ctx *ctx, int fd, const char *verify_host,
		const char *sni)
{
	SSL *ssl;

	ERR_clear_error();
	ssl = SSL_new(ctx->ssl);
	if (ssl == NULL)
		return NULL;
	if (SSL_set_fd(ssl, fd) != 1)
		goto fail;
	if (ctx->accept) {
		SSL_set_accept_state(ssl);
	} else {
		unsigned char a[16];

		SSL_set_connect_state(ssl);
		if (sni && sni[0] && inet_pton(AF_INET, sni, a) != 1 &&
				inet_pton(AF_INET6, sni, a) != 1 &&
				SSL_set_tlsext_host_name(ssl, sni) != 1)
			goto fail;
		if (verify_host && verify_host[0]) {
			X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);

			if (inet_pton(AF_INET, verify_host, a) == 1 ||
					inet_pton(AF_INET6, verify_host, a) == 1) {
				if (X509_VERIFY_PARAM_set1_ip_asc(vp, verify_host) != 1)
					goto fail;
			} else if (SSL_set1_host(ssl, verify_host) != 1) {
				goto fail;
			}
		}
	}
	return (struct tls_conn *)(void *)ssl;
fail:
	SSL_free(ssl);
	return NULL;
}

void tls_conn_free(struct tls_conn *t, bool notify)
{
	SSL *ssl;

	if (t == NULL)
		return;
	ssl = ssl_of(t);
	if (notify && SSL_is_init_finished(ssl)) {
		ERR_clear_error();
		(void)SSL_shutdown(ssl); /* one try: the socket is closed next */
	}
	SSL_free(ssl);
	ERR_clear_error();
}

/* Map SSL_get_error() of a call that returned <rc> <= 0. */
static int io_result(SSL *ssl, int rc)
{
	switch (SSL_get_error(ssl, rc)) {
	case SSL_ERROR_WANT_READ:
		return TLS_WANT_READ;
	case SSL_ERROR_WANT_WRITE:
		return TLS_WANT_WRITE;
	case SSL_ERROR_ZERO_RETURN:
		return TLS_EOF;
	case SSL_ERROR_SYSCALL:
		if (errno == 0 || ERR_peek_error() != 0)
			return TLS_EOF; /* EOF without close_notify */
		return -errno;
	default:
		return -EPROTO;
	}
}

static __thread const char *last_error[1];

int tls_handshake(struct tls_conn *t)
{
	SSL *ssl = ssl_of(t);
	int rc;

	ERR_clear_error();
	errno = 0;
	rc = SSL_do_handshake(ssl);
	if (rc == 1)
		return 0;
	rc = io_result(ssl, rc);
	if (rc == TLS_WANT_READ || rc == TLS_WANT_WRITE)
		return rc;
	if (rc == TLS_EOF) {
		last_error[0] = "TLS handshake failed: connection closed";
		ERR_clear_error();
	} else if (SSL_get_verify_result(ssl) != X509_V_OK) {
		char *buf = err_ring[err_next++ % ERR_SLOTS];

		snprintf(buf, sizeof(err_ring[0]), "TLS handshake failed: certificate verify failed: %s",
				X509_verify_cert_error_string(SSL_get_verify_result(ssl)));
		last_error[0] = buf;
		ERR_clear_error();
	} else {
		last_error[0] = err_take("TLS handshake failed");
	}
	return -EPROTO;
}

/* One SSL_read_ex (<rbuf>) or SSL_write_ex (<wbuf>) and its result. */
static ssize_t io_call(struct tls_conn *t, void *rbuf, const void *wbuf, size_t len)
{
	SSL *ssl = ssl_of(t);
	size_t n = 0;
	int rc;

	ERR_clear_error();
	errno = 0;
	rc = rbuf ? SSL_read_ex(ssl, rbuf, len, &n) : SSL_write_ex(ssl, wbuf, len, &n);
	if (rc == 1)
		return (ssize_t)n;
	rc = io_result(ssl, 0);
	if (rc == TLS_EOF && wbuf)
		rc = -EPIPE;
	if (rc == -EPROTO)
		last_error[0] = err_take(rbuf ? "TLS read failed" : "TLS write failed");
	return rc;
}

ssize_t tls_read(struct tls_conn *t, void *buf, size_t len)
{
	return io_call(t, buf, NULL, len);
}

ssize_t tls_write(struct tls_conn *t, const void *buf, size_t len)
{
	return io_call(t, NULL, buf, len);
}

size_t tls_pending(const struct tls_conn *t)
{
	/* with read-ahead, whole records may wait undecrypted too */
	return SSL_has_pending(ssl_of(t)) ? 1 : 0;
}

const char *tls_conn_error(const struct tls_conn *t)
{
	(void)t;
	return last_error[0] ? last_error[0] : "TLS error";
}

void tls_conn_info(const struct tls_conn *t, char *buf, size_t len)
{
	SSL *ssl = ssl_of(t);
	const SSL_CIPHER *ci;
	char kx[48];
	int nid;

	if (len == 0)
		return;
	buf[0] = 0;
	if (!SSL_is_init_finished(ssl) || (ci = SSL_get_current_cipher(ssl)) == NULL)
		return;
	/* the key exchange group, as PgBouncer appends it: /ECDH=<curve> or
	 * /DH=<bits> for a finite-field group */
	kx[0] = 0;
	nid = SSL_get_negotiated_group(ssl);
	if (nid == NID_ffdhe2048 || nid == NID_ffdhe3072 || nid == NID_ffdhe4096 ||
			nid == NID_ffdhe6144 || nid == NID_ffdhe8192)
		snprintf(kx, sizeof(kx), "/DH=%s", OBJ_nid2sn(nid) + strlen("ffdhe"));
	else if (nid > 0 && !(nid & TLSEXT_nid_unknown) && OBJ_nid2sn(nid) != NULL)
		snprintf(kx, sizeof(kx), "/ECDH=%s", OBJ_nid2sn(nid));
	snprintf(buf, len, "%s/%s%s", SSL_get_version(ssl), SSL_CIPHER_get_name(ci), kx);
}

bool tls_conn_is_server(const struct tls_conn *t)
{
	return SSL_is_server(ssl_of(t)) != 0;
}

bool tls_conn_peer_verified(const struct tls_conn *t)
{
	const SSL *ssl = ssl_of(t);
	X509 *x = SSL_get0_peer_certificate(ssl);

	return x != NULL && SSL_get_verify_result(ssl) == X509_V_OK;
}

int tls_conn_peer_cn(const struct tls_conn *t, char *buf, size_t len)
{
	const SSL *ssl = ssl_of(t);
	X509 *x = SSL_get0_peer_certificate(ssl);
	const X509_NAME *subj;
	unsigned char *u = NULL;
	int i, n, rc = 0;

	if (len > 0)
		buf[0] = 0;
	if (!SSL_is_init_finished(ssl) || x == NULL || SSL_get_verify_result(ssl) != X509_V_OK)
		return -ENOENT;
	subj = X509_get_subject_name(x);
	i = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
	if (i < 0)
		return -ENODATA;
	if (X509_NAME_get_index_by_NID(subj, NID_commonName, i) >= 0)
		return -EINVAL; /* two CNs: which one is the user is anybody's guess */
	ERR_clear_error();
	n = ASN1_STRING_to_UTF8(&u, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i)));
	if (n < 0) {
		ERR_clear_error();
		return -EINVAL;
	}
	if (memchr(u, 0, (size_t)n) != NULL)
		rc = -EINVAL; /* "app\0.evil.com" must not pass for "app" */
	else if ((size_t)n >= len)
		rc = -ENAMETOOLONG;
	if (rc == 0) {
		memcpy(buf, u, (size_t)n);
		buf[n] = 0;
	}
	OPENSSL_free(u);
	return rc;
}

bool tls_conn_alpn_postgresql(const struct tls_conn *t)
{
	const unsigned char *p = NULL;
	unsigned int n = 0;

	SSL_get0_alpn_selected(ssl_of(t), &p, &n);
	return n == sizeof(alpn_pg) - 1 && memcmp(p, alpn_pg + 1, n) == 0;
}
