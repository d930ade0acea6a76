/* scram.h -- SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it.
 *
 * Pure functions over caller-owned buffers: no sockets, no logging, and no
 * allocation of our own (OpenSSL may allocate internally).  Three parts:
 *
 *   verifiers  struct scram_secret <-> "SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>"
 *   server     pgslab authenticating a client:   begin(client-first) -> server-first,
 *                                                 finish(client-final) -> server-final + ClientKey
 *   client     pgslab logging in to PostgreSQL:  begin -> client-first,
 *                                                 continue(server-first) -> client-final,
 *                                                 finish(server-final) -> verified
 *
 * Only the mechanism "SCRAM-SHA-256" without channel binding is spoken: the
 * gs2 header is "n,," or "y,,"; "p=..." is refused with SCRAM_E_CHANNEL_BINDING,
 * an authzid ("a=") or a mandatory extension ("m=") with SCRAM_E_UNSUPPORTED.
 * The username in client-first is ignored, as PostgreSQL does.
 *
 * Every message is a borrowed (<msg>, <len>) view that need not be
 * NUL-terminated; it is treated as hostile: over SCRAM_MSG_MAX bytes gives
 * SCRAM_E_TOOLONG, a NUL byte or any grammar violation SCRAM_E_MALFORMED.
 * Outputs go to (<out>, <cap>): on success <out> holds *<out_len> bytes plus
 * a terminating NUL (so cap > *out_len); SCRAM_E_NOSPACE when cap is short.
 *
 * Return values: 0 on success or a negative enum scram_err (these are NOT
 * -errno values); scram_strerror() names them.  After any error a server or
 * client state is FAILED and every later call on it returns SCRAM_E_STATE.
 *
 * Pass-through: scram_server_finish() hands back the ClientKey the client
 * proved it knows.  Together with the ServerKey of the verifier it is enough
 * to log in to a PostgreSQL server holding the same verifier (same salt and
 * iteration count) without ever knowing the password: see
 * struct scram_client_keys.
 *
 * Stored md5 secret + SCRAM client is impossible (an md5 hash cannot yield a
 * SCRAM verifier); the caller must offer md5 authentication instead.  For a
 * stored plain password the caller builds a verifier at login with
 * scram_secret_generate() (random salt, SCRAM_DEFAULT_ITERATIONS).
 *
 * SASLprep (RFC 4013), applied to passwords as PostgreSQL does: exact for
 * ASCII (identity) and for every string of code points <= U+00FF (Latin-1:
 * NBSP -> space, soft hyphen dropped, NFKC of the 13 compatibility characters
 * such as U+00B2 -> "2", prohibited C0/C1 controls or an empty result -> the
 * raw bytes, as PostgreSQL falls back to).  Invalid UTF-8 -> raw bytes, as
 * PostgreSQL does.  KNOWN LIMITATION: a valid UTF-8 password with a code
 * point above U+00FF is used as raw bytes without NFKC; PostgreSQL would
 * normalize it, so the verifiers differ when normalization changes the
 * string (e.g. U+FB01 "fi" ligature) -- scram_saslprep() reports
 * SCRAM_PREP_UNSUPPORTED so the caller can warn.  Already-normalized
 * passwords (the common case) match.
 *
 * Threads: no global mutable state; a struct belongs to one thread at a time.
 */
#ifndef PGSLAB_SCRAM_H
#define PGSLAB_SCRAM_H

#include <stddef.h>
#include <stdint.h>

#define SCRAM_MECHANISM "SCRAM-SHA-256"
#define SCRAM_KEY_LEN 32  /* SHA-256 output: keys, proofs, signatures */
#define SCRAM_SALT_MAX 64 /* longest salt accepted (PostgreSQL uses 16) */
#define SCRAM_DEFAULT_SALT_LEN 16
#define SCRAM_DEFAULT_ITERATIONS 4096
#define SCRAM_ITER_MIN 1
#define SCRAM_ITER_MAX 10000000	   /* a server asking more is refused */
#define SCRAM_RAW_NONCE_LEN 18	   /* random bytes in the nonces we make (24 b64 chars) */
#define SCRAM_CLIENT_NONCE_MAX 256 /* longest client part of a nonce we accept */
#define SCRAM_NONCE_MAX 512	   /* longest combined nonce we accept */
#define SCRAM_MSG_MAX 1024	   /* longest SCRAM message accepted or produced */
#define SCRAM_AUTH_MAX (3 * SCRAM_MSG_MAX + 2)
#define SCRAM_SECRET_STR_MAX 256 /* formatted verifier, NUL included */
#define SCRAM_PASSWORD_MAX 1024	 /* PostgreSQL's limit for SASLprep */
#define SCRAM_USER_MAX 192	 /* escaped n= value a client may send */
#define SCRAM_SERVER_ERROR_MAX 64

enum scram_err {
	SCRAM_OK = 0,
	SCRAM_E_MALFORMED = -1001,	  /* message or verifier does not parse */
	SCRAM_E_TOOLONG = -1002,	  /* input longer than the limits above */
	SCRAM_E_NOSPACE = -1003,	  /* output buffer too small */
	SCRAM_E_CHANNEL_BINDING = -1004,  /* client wants channel binding, or c= disagrees */
	SCRAM_E_UNSUPPORTED = -1005,	  /* authzid or mandatory extension requested */
	SCRAM_E_NONCE = -1006,		  /* nonce does not continue ours */
	SCRAM_E_BAD_PROOF = -1007,	  /* client proof wrong: wrong password */
	SCRAM_E_SERVER_SIGNATURE = -1008, /* server signature wrong: server lacks the secret */
	SCRAM_E_SERVER_ERROR = -1009,	  /* server-final carried e=...; see server_error */
	SCRAM_E_ITERATIONS = -1010,	  /* iteration count outside [ITER_MIN, ITER_MAX] */
	SCRAM_E_SALT = -1011,		  /* salt empty or longer than SCRAM_SALT_MAX */
	SCRAM_E_KEYS_MISMATCH = -1012,	  /* pass-through keys: server salt/iterations differ */
	SCRAM_E_STATE = -1013,		  /* call out of order, or state not initialized */
	SCRAM_E_INVALID = -1014,	  /* bad argument from the caller */
	SCRAM_E_CRYPTO = -1015,		  /* OpenSSL failed (RNG, digest) */
};

/* A static English description of <err> (any int). */
const char *scram_strerror(int err);

/* ---- base64 (RFC 4648, with padding) ---------------------------------- */

/* Encode <len> bytes of <src> into <dst>, NUL-terminated.  Returns the
 * number of characters written (without the NUL) or SCRAM_E_NOSPACE. */
int scram_b64_encode(const uint8_t *src, size_t len, char *dst, size_t cap);
/* Decode exactly <len> characters of <src> (length a multiple of 4, '='
 * only as final padding, no whitespace, zero bits under the padding).  Returns the number of bytes
 * written to <dst>, SCRAM_E_MALFORMED or SCRAM_E_NOSPACE. */
int scram_b64_decode(const char *src, size_t len, uint8_t *dst, size_t cap);

/* ---- SASLprep ----------------------------------------------------------- */

enum scram_prep {
	SCRAM_PREP_OK = 0,	    /* SASLprep applied, same result as PostgreSQL */
	SCRAM_PREP_RAW = 1,	    /* SASLprep refuses (invalid UTF-8, prohibited, empty):
				     * raw bytes, same as PostgreSQL */
	SCRAM_PREP_UNSUPPORTED = 2, /* code point > U+00FF: raw bytes, may differ */
};

/* Prepare <password> into <out> (NUL-terminated; <cap> of 5/2 * strlen + 1
 * always suffices).  Returns an enum scram_prep (>= 0), SCRAM_E_TOOLONG
 * beyond SCRAM_PASSWORD_MAX bytes, or SCRAM_E_NOSPACE. */
int scram_saslprep(const char *password, char *out, size_t cap, size_t *out_len);

/* ---- verifiers ---------------------------------------------------------- */

struct scram_secret {
	int iterations;
	uint8_t salt[SCRAM_SALT_MAX];
	size_t salt_len;
	uint8_t stored_key[SCRAM_KEY_LEN];
	uint8_t server_key[SCRAM_KEY_LEN];
};

/* Parse a NUL-terminated verifier as stored in pg_authid.rolpassword.
 * SCRAM_E_MALFORMED (also for anything that is not a SCRAM verifier),
 * SCRAM_E_ITERATIONS, SCRAM_E_SALT. */
int scram_secret_parse(const char *s, struct scram_secret *out);
/* Derive the verifier of <password> (SASLprep'd) for <salt>/<iterations>:
 * SaltedPassword = PBKDF2-HMAC-SHA256, StoredKey = SHA256(HMAC(SP, "Client
 * Key")), ServerKey = HMAC(SP, "Server Key").  Costs <iterations> HMACs. */
int scram_secret_from_password(const char *password, const uint8_t *salt, size_t salt_len,
		int iterations, struct scram_secret *out);
/* As scram_secret_from_password() with a fresh random 16-byte salt. */
int scram_secret_generate(const char *password, int iterations, struct scram_secret *out);
/* A verifier for a user that does not exist, so that a failing login looks
 * like a wrong password and the salt is stable per user name (no user
 * enumeration).  <key> is a per-process random secret of the caller's. */
int scram_secret_mock(const char *user, const uint8_t key[SCRAM_KEY_LEN], struct scram_secret *out);
/* Write the verifier string; returns its length (>= 0) or SCRAM_E_NOSPACE
 * (SCRAM_SECRET_STR_MAX always suffices) or SCRAM_E_INVALID. */
int scram_secret_format(const struct scram_secret *sec, char *out, size_t cap);

/* ---- server side: pgslab authenticating a client ----------------------- */

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

/* ---- client side: pgslab logging in to PostgreSQL ---------------------- */

/* What the client proves with: either <password> (non-NULL; SASLprep'd and
 * PBKDF2'd with the server's salt and iterations), or, when <password> is
 * NULL, pass-through keys: <secret> is the verifier pgslab holds and
 * <client_key> the ClientKey recovered by scram_server_finish() (or saved by
 * scram_client_derived_keys()).  Pass-through works only if the server's
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
/* After a successful continue: the verifier-equivalent of the keys used
 * (server's salt and iterations) and the ClientKey, so a caller holding a
 * plaintext password can cache them and skip PBKDF2 next time by using
 * pass-through keys.  SCRAM_E_STATE before continue. */
int scram_client_derived_keys(const struct scram_client *st, struct scram_secret *secret_out,
		uint8_t client_key_out[SCRAM_KEY_LEN]);
/* Wipe <st>. */
void scram_client_clear(struct scram_client *st);

#endif
