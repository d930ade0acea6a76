/* scram.h -- SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL speaks it: errors, base64, verifiers.
 *
 * Pure functions over caller-owned buffers: no sockets, no logging, and no
 * allocation of our own.  Three parts, one file and header each:
 *
 *   verifiers  (scram.h)  struct scram_secret <-> "SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>"
 *   server     (scram_server.h) pgslab authenticating a client:   begin(client-first) -> server-first,
 *                                                 finish(client-final) -> server-final + ClientKey
 *   client     (scram_client.h) pgslab logging in to PostgreSQL:  begin -> client-first,
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
 * Passwords are SASLprep'd (saslprep.h) before PBKDF2, as PostgreSQL does;
 * the hashing is crypto.h's.
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

#endif
