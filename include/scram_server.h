/* scram_server.h -- the SCRAM-SHA-256 server exchange: pgslab authenticating a client.
 *
 * begin(client-first) -> server-first, finish(client-final) -> server-final
 * and the ClientKey the client proved it knows (see scram.h for the
 * conventions on messages, outputs and errors).
 */
#ifndef PGSLAB_SCRAM_SERVER_H
#define PGSLAB_SCRAM_SERVER_H

#include "scram.h"

struct scram_server {
	uint32_t state;		    /* private: enum in scram.c */
	char cbind_flag;	    /* 'n' or 'y' from the gs2 header; a caller that ever
				     * advertises SCRAM-SHA-256-PLUS must refuse 'y' */
	struct scram_secret secret; /* copy of the verifier in use */
	size_t nonce_len;
	char nonce[SCRAM_NONCE_MAX + 1]; /* client nonce || server nonce */
	size_t fixed_nonce_len;
	char fixed_nonce[SCRAM_NONCE_MAX + 1]; /* test hook, see set_nonce */
	size_t auth_len;
	char auth[SCRAM_AUTH_MAX]; /* AuthMessage built so far */
};

/* Make <st> ready for begin (required: begin refuses an uninitialized
 * state).  Cheap; reusing a struct means calling init again. */
void scram_server_init(struct scram_server *st);
/* FOR TESTS ONLY: use <server_nonce> (printable ASCII, no ',') instead of
 * 18 random bytes as the server's part of the nonce.  Call after init. */
int scram_server_set_nonce(struct scram_server *st, const char *server_nonce);
/* Parse client-first-message (<client_first>, <len>), copy <secret>, and
 * write server-first-message "r=<nonce>,s=<salt>,i=<iter>" to <out>.
 * Errors: MALFORMED, TOOLONG, CHANNEL_BINDING ("p=" flag), UNSUPPORTED
 * (authzid, m=), NOSPACE, STATE, INVALID (bad <secret>), CRYPTO. */
int scram_server_begin(struct scram_server *st, const struct scram_secret *secret,
		const char *client_first, size_t len, char *out, size_t cap, size_t *out_len);
/* Parse client-final-message, check c= against the gs2 header, the nonce,
 * and the proof (constant time).  On success writes server-final "v=..."
 * to <out> and the client's ClientKey to <client_key_out> (may be NULL).
 * Errors: MALFORMED, TOOLONG, CHANNEL_BINDING, NONCE, BAD_PROOF (wrong
 * password), NOSPACE, STATE, CRYPTO. */
int scram_server_finish(struct scram_server *st, const char *client_final, size_t len, char *out,
		size_t cap, size_t *out_len, uint8_t client_key_out[SCRAM_KEY_LEN]);
/* Wipe <st> (keys, nonces).  Call when the exchange is over. */
void scram_server_clear(struct scram_server *st);

#endif
