/* scram_client.h -- the SCRAM-SHA-256 client exchange: pgslab logging in to PostgreSQL.
 *
 * begin -> client-first, continue(server-first) -> client-final,
 * finish(server-final) -> verified (see scram.h for the conventions on
 * messages, outputs and errors).
 */
#ifndef PGSLAB_SCRAM_CLIENT_H
#define PGSLAB_SCRAM_CLIENT_H

#include "scram.h"

/* What the client proves with: either <password> (non-NULL; SASLprep'd and
 * PBKDF2'd with the server's salt and iterations), or, when <password> is
 * NULL, pass-through keys: <secret> is the verifier pgslab holds and
 * <client_key> the ClientKey recovered by scram_server_finish().  Pass-through works only if the server's
 * salt and iteration count equal <secret>'s; otherwise SCRAM_E_KEYS_MISMATCH. */
struct scram_client_keys {
	const char *password;
	const struct scram_secret *secret;
	uint8_t client_key[SCRAM_KEY_LEN];
};

struct scram_client {
	uint32_t state; /* private: enum in scram.c */
	size_t client_nonce_len;
	char client_nonce[SCRAM_NONCE_MAX + 1];
	size_t user_len;
	char user[SCRAM_USER_MAX + 1]; /* escaped n= value, empty by default */
	struct scram_secret derived;   /* salt/iterations/keys used (after continue) */
	uint8_t client_key[SCRAM_KEY_LEN];
	uint8_t server_signature[SCRAM_KEY_LEN];   /* the v= we expect */
	char server_error[SCRAM_SERVER_ERROR_MAX]; /* e= text after SCRAM_E_SERVER_ERROR */
	size_t auth_len;
	char auth[SCRAM_AUTH_MAX];
};

/* Make <st> ready for begin (required). */
void scram_client_init(struct scram_client *st);
/* FOR TESTS ONLY: use <nonce> (printable ASCII, no ',') as our nonce. */
int scram_client_set_nonce(struct scram_client *st, const char *nonce);
/* Send <user> in n= (SASL-escaped) instead of the empty name libpq sends.
 * PostgreSQL ignores it; useful for tests against RFC vectors. */
int scram_client_set_user(struct scram_client *st, const char *user);
/* Write client-first-message "n,,n=,r=<nonce>". */
int scram_client_begin(struct scram_client *st, char *out, size_t cap, size_t *out_len);
/* Parse server-first-message, derive or take the keys, write
 * client-final-message "c=biws,r=<nonce>,p=<proof>".  Errors: MALFORMED,
 * TOOLONG, UNSUPPORTED (m=), NONCE, SALT, ITERATIONS, KEYS_MISMATCH,
 * INVALID (no keys, or client_key does not match secret), NOSPACE, STATE,
 * CRYPTO. */
int scram_client_continue(struct scram_client *st, const char *server_first, size_t len,
		const struct scram_client_keys *keys, char *out, size_t cap, size_t *out_len);
/* Check server-final-message: 0 when v= proves the server holds the
 * verifier (constant-time compare); SERVER_SIGNATURE otherwise;
 * SERVER_ERROR for "e=..." (text in st->server_error); MALFORMED, STATE. */
int scram_client_finish(struct scram_client *st, const char *server_final, size_t len);
/* Wipe <st>. */
void scram_client_clear(struct scram_client *st);

#endif
