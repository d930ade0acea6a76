/* scram_client.c -- the SCRAM-SHA-256 client exchange: pgslab logging in to PostgreSQL. */
#include "scram_client.h"

#include <string.h>

#include "crypto.h"
#include "scram_int.h"

void scram_client_init(struct scram_client *st)
{
	memset(st, 0, sizeof(*st));
	st->state = CLI_INIT;
}

void scram_client_clear(struct scram_client *st)
{
	crypto_wipe(st, sizeof(*st));
}

int scram_client_set_nonce(struct scram_client *st, const char *nonce)
{
	if (!st || st->state != CLI_INIT)
		return SCRAM_E_STATE;
	return scram_set_fixed_nonce(
			st->client_nonce, &st->client_nonce_len, nonce, SCRAM_CLIENT_NONCE_MAX);
}

int scram_client_set_user(struct scram_client *st, const char *user)
{
	struct obuf b;
	const char *p;

	if (!st || st->state != CLI_INIT)
		return SCRAM_E_STATE;
	if (!user)
		return SCRAM_E_INVALID;
	ob_init(&b, st->user, sizeof(st->user));
	for (p = user; *p && !b.err; p++) {
		if (*p == ',')
			ob_str(&b, "=2C");
		else if (*p == '=')
			ob_str(&b, "=3D");
		else
			ob_put(&b, p, 1);
	}
	if (b.err) {
		st->user[0] = '\0';
		st->user_len = 0;
		return SCRAM_E_TOOLONG;
	}
	st->user_len = b.len;
	return 0;
}

static int client_begin(struct scram_client *st, char *out, size_t cap, size_t *out_len)
{
	struct obuf b, a;
	int rc;

	if (!out || !out_len)
		return SCRAM_E_INVALID;
	if (!st->client_nonce_len) {
		rc = scram_random_nonce(st->client_nonce, &st->client_nonce_len);
		if (rc)
			return rc;
	}
	ob_init(&b, out, cap);
	ob_str(&b, "n,,n=");
	ob_put(&b, st->user, st->user_len);
	ob_str(&b, ",r=");
	ob_put(&b, st->client_nonce, st->client_nonce_len);
	if (b.err)
		return b.err;
	ob_init(&a, st->auth, sizeof(st->auth));
	ob_put(&a, out + 3, b.len - 3); /* client-first-message-bare */
	ob_put(&a, ",", 1);
	if (a.err)
		return a.err;
	st->auth_len = a.len;
	*out_len = b.len;
	return 0;
}

int scram_client_begin(struct scram_client *st, char *out, size_t cap, size_t *out_len)
{
	int rc;

	if (!st)
		return SCRAM_E_INVALID;
	if (st->state != CLI_INIT)
		return SCRAM_E_STATE;
	rc = client_begin(st, out, cap, out_len);
	st->state = rc ? CLI_FAILED : CLI_FIRST_SENT;
	return rc;
}

/* Take the pass-through keys after checking they fit the server's salt and
 * iteration count in <srv>. */
static int take_passthrough(struct scram_client *st, const struct scram_client_keys *keys,
		const struct scram_secret *srv)
{
	const struct scram_secret *sec = keys->secret;
	uint8_t h[SCRAM_KEY_LEN];
	int rc;

	if (!scram_secret_ok(sec))
		return SCRAM_E_INVALID;
	if (sec->iterations != srv->iterations || sec->salt_len != srv->salt_len ||
			memcmp(sec->salt, srv->salt, srv->salt_len) != 0)
		return SCRAM_E_KEYS_MISMATCH;
	rc = scram_sha256(keys->client_key, SCRAM_KEY_LEN, h);
	if (rc)
		return rc;
	if (!crypto_equal(h, sec->stored_key, SCRAM_KEY_LEN))
		return SCRAM_E_INVALID; /* ClientKey is not this verifier's */
	st->derived = *sec;
	memcpy(st->client_key, keys->client_key, SCRAM_KEY_LEN);
	return 0;
}

static int client_continue(struct scram_client *st, const char *msg, size_t len,
		const struct scram_client_keys *keys, char *out, size_t cap, size_t *out_len)
{
	uint8_t sig[SCRAM_KEY_LEN], proof[SCRAM_KEY_LEN];
	struct scram_secret srv;
	const char *v, *nonce;
	size_t vlen, nonce_len, i;
	struct scan s;
	struct obuf b, a;
	int rc;

	if (!keys || (!keys->password && !keys->secret) || !out || !out_len)
		return SCRAM_E_INVALID;
	rc = scram_check_msg(msg, len);
	if (rc)
		return rc;
	scan_init(&s, msg, len);
	if (scan_peek(&s, 'm'))
		return SCRAM_E_UNSUPPORTED;

	rc = scram_scan_attr(&s, 'r', &nonce, &nonce_len);
	if (rc)
		return rc;
	if (nonce_len > SCRAM_NONCE_MAX)
		return SCRAM_E_TOOLONG;
	if (!scram_nonce_ok(nonce, nonce_len))
		return SCRAM_E_MALFORMED;
	if (nonce_len <= st->client_nonce_len ||
			memcmp(nonce, st->client_nonce, st->client_nonce_len) != 0)
		return SCRAM_E_NONCE;

	memset(&srv, 0, sizeof(srv));
	rc = scram_scan_attr(&s, 's', &v, &vlen);
	if (!rc)
		rc = scram_decode_salt(v, vlen, &srv);
	if (!rc)
		rc = scram_scan_attr(&s, 'i', &v, &vlen);
	if (!rc)
		rc = scram_parse_iterations(v, vlen, &srv.iterations);
	if (!rc)
		rc = scram_scan_extensions(&s);
	if (rc)
		return rc;

	if (keys->password)
		rc = scram_derive_keys(keys->password, srv.salt, srv.salt_len, srv.iterations,
				&st->derived, st->client_key);
	else
		rc = take_passthrough(st, keys, &srv);
	if (rc)
		return rc;

	/* client-final-message-without-proof, then AuthMessage */
	ob_init(&b, out, cap);
	ob_str(&b, "c=biws,r=");
	ob_put(&b, nonce, nonce_len);
	if (b.err)
		return b.err;
	ob_resume(&a, st->auth, sizeof(st->auth), st->auth_len);
	ob_put(&a, msg, len);
	ob_put(&a, ",", 1);
	ob_put(&a, out, b.len);
	if (a.err)
		return a.err;
	st->auth_len = a.len;

	rc = scram_hmac(st->derived.stored_key, SCRAM_KEY_LEN, a.p, a.len, sig);
	if (!rc)
		rc = scram_hmac(st->derived.server_key, SCRAM_KEY_LEN, a.p, a.len,
				st->server_signature);
	if (rc)
		return rc;
	for (i = 0; i < SCRAM_KEY_LEN; i++)
		proof[i] = st->client_key[i] ^ sig[i];
	ob_str(&b, ",p=");
	ob_b64(&b, proof, sizeof(proof));
	if (b.err)
		return b.err;
	if (b.len > SCRAM_MSG_MAX)
		return SCRAM_E_TOOLONG;
	*out_len = b.len;
	return 0;
}

int scram_client_continue(struct scram_client *st, const char *server_first, size_t len,
		const struct scram_client_keys *keys, char *out, size_t cap, size_t *out_len)
{
	int rc;

	if (!st)
		return SCRAM_E_INVALID;
	if (st->state != CLI_FIRST_SENT)
		return SCRAM_E_STATE;
	rc = client_continue(st, server_first, len, keys, out, cap, out_len);
	st->state = rc ? CLI_FAILED : CLI_FINAL_SENT;
	return rc;
}

static int client_finish(struct scram_client *st, const char *msg, size_t len)
{
	uint8_t sig[SCRAM_KEY_LEN];
	const char *v;
	size_t vlen, i, n;
	struct scan s;
	int rc;

	rc = scram_check_msg(msg, len);
	if (rc)
		return rc;
	scan_init(&s, msg, len);
	if (scan_peek(&s, 'e')) {
		rc = scram_scan_attr(&s, 'e', &v, &vlen);
		if (rc)
			return rc;
		n = vlen < sizeof(st->server_error) - 1 ? vlen : sizeof(st->server_error) - 1;
		for (i = 0; i < n; i++)
			st->server_error[i] = (v[i] >= 0x20 && v[i] < 0x7f) ? v[i] : '?';
		st->server_error[n] = '\0';
		return SCRAM_E_SERVER_ERROR;
	}
	rc = scram_scan_attr(&s, 'v', &v, &vlen);
	if (!rc)
		rc = scram_decode_key(v, vlen, sig);
	if (!rc)
		rc = scram_scan_extensions(&s);
	if (rc)
		return rc;
	if (!crypto_equal(sig, st->server_signature, SCRAM_KEY_LEN))
		return SCRAM_E_SERVER_SIGNATURE;
	return 0;
}

int scram_client_finish(struct scram_client *st, const char *server_final, size_t len)
{
	int rc;

	if (!st)
		return SCRAM_E_INVALID;
	if (st->state != CLI_FINAL_SENT)
		return SCRAM_E_STATE;
	rc = client_finish(st, server_final, len);
	st->state = rc ? CLI_FAILED : CLI_DONE;
	return rc;
}
