/* tls.h -- TLS contexts and connections over OpenSSL (the only module that
 * includes OpenSSL's SSL headers).
 *
 * Theory.  A struct tls_ctx holds one configuration (certificates, CA,
 * protocols, ciphers): one for accepting clients, one for connecting to
 * servers.  A struct tls_conn is one connection's TLS state on a
 * non-blocking socket it does not own.  Nothing here blocks or waits: every
 * operation returns TLS_WANT_READ or TLS_WANT_WRITE when the socket is not
 * ready, and the caller (stream.c) maps that to event-loop interest and calls
 * again.  Records are decrypted straight into the caller's buffer and
 * encrypted straight from it (OpenSSL's own record buffers are the only
 * copy); those buffers are released whenever a connection is idle
 * (SSL_MODE_RELEASE_BUFFERS).  OpenSSL's allocations go through sysalloc
 * (sysalloc_hook_libraries()), so they are counted.
 *
 * Ownership: a connection holds a reference to its context, so a context
 * replaced on reload lives on until its last connection is freed
 * (tls_ctx_free() only drops the owner's reference).
 */
#ifndef PGSLAB_TLS_H
#define PGSLAB_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct tls_ctx;
struct tls_conn;

/* sslmode values, in config.h's order (disable ... verify-full) */
enum tls_mode {
	TLS_MODE_DISABLE,
	TLS_MODE_ALLOW,
	TLS_MODE_PREFER,
	TLS_MODE_REQUIRE,
	TLS_MODE_VERIFY_CA,
	TLS_MODE_VERIFY_FULL,
};

/* Settings of one side, as PgBouncer names them (client_tls_* or
 * server_tls_*); NULL or "" means unset.  Borrowed for tls_ctx_new() only. */
struct tls_settings {
	enum tls_mode mode;
	const char *key_file, *cert_file, *ca_file;
	const char *protocols, *ciphers, *tls13_ciphers;
	const char *ecdhcurve, *dheparams; /* accepting side only */
};

/* Return codes of the connection operations besides byte counts. */
#define TLS_WANT_READ (-1000)
#define TLS_WANT_WRITE (-1001)
#define TLS_EOF 0

/* A context for accepting (<accept>) or for connecting.  NULL with the
 * reason in <err> (a file that cannot be read, an unknown cipher, ...). */
struct tls_ctx *tls_ctx_new(const struct tls_settings *ts, bool accept, char *err, size_t errlen);
/* Drop the owner's reference; connections keep theirs. */
void tls_ctx_free(struct tls_ctx *ctx);

/* A connection on socket <fd> (not owned).  For a connecting side,
 * <verify_host> (when not NULL) is the name or address the server's
 * certificate must match, and <sni> the name sent (NULL for none). */
struct tls_conn *tls_conn_new(struct tls_ctx *ctx, int fd, const char *verify_host,
		const char *sni);
/* Send close_notify if the handshake finished (best effort, non-blocking),
 * then free.  NULL is fine. */
void tls_conn_free(struct tls_conn *t, bool notify);

/* 0 once the handshake is complete, TLS_WANT_READ/TLS_WANT_WRITE, or -EPROTO
 * (tls_conn_error() says why). */
int tls_handshake(struct tls_conn *t);
/* Bytes read (> 0), TLS_EOF, TLS_WANT_READ/TLS_WANT_WRITE, or -errno. */
ssize_t tls_read(struct tls_conn *t, void *buf, size_t len);
/* Bytes written (> 0, possibly fewer than <len>: one record at a time),
 * TLS_WANT_READ/TLS_WANT_WRITE, or -errno.  After a WANT the next call must
 * offer the same bytes first (their address may change). */
ssize_t tls_write(struct tls_conn *t, const void *buf, size_t len);
/* Non-zero when bytes wait inside OpenSSL, decrypted or not (no socket
 * event will announce them). */
size_t tls_pending(const struct tls_conn *t);
/* Why the last operation of <t> failed: a static string, valid until the
 * next few failures. */
const char *tls_conn_error(const struct tls_conn *t);
/* "TLSv1.3/TLS_AES_256_GCM_SHA384/ECDH=X25519" as PgBouncer's tls column
 * (protocol/cipher, then /ECDH=<curve> or /DH=<bits> when the key
 * exchange group is known); "" before the handshake. */
void tls_conn_info(const struct tls_conn *t, char *buf, size_t len);
/* Is <t> the accepting side (a client's connection to pgslab)? */
bool tls_conn_is_server(const struct tls_conn *t);
/* Did the peer present a certificate that verified? */
bool tls_conn_peer_verified(const struct tls_conn *t);
/* The CommonName of the peer's verified certificate, as UTF-8, into <buf>
 * (<len> bytes, NUL included).  0; -ENOENT when the peer presented no
 * certificate or it did not verify; -ENODATA when its subject has no CN;
 * -EINVAL when it has several, or the CN holds a NUL byte or cannot be
 * converted; -ENAMETOOLONG when it does not fit.  <buf> is "" on failure. */
int tls_conn_peer_cn(const struct tls_conn *t, char *buf, size_t len);
/* Did the accepting side negotiate ALPN "postgresql"? */
bool tls_conn_alpn_postgresql(const struct tls_conn *t);

/* Do the two settings describe the same context (strings and mode)? */
bool tls_settings_equal(const struct tls_settings *a, const struct tls_settings *b);

#endif
