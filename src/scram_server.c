/* scram_server.c -- the SCRAM-SHA-256 server exchange: pgslab authenticating a client. */
#include "scram_server.h"

#include <string.h>

#include "crypto.h"
#include "scram_int.h"

void scram_server_init(struct scram_server *st)
{
	memset(st, 0, sizeof(*st));
	st->state = SRV_INIT;
}

void scram_server_clear(struct scram_server *st)
{
	crypto_wipe(st, sizeof(*st));
}

int scram_server_set_nonce(struct scram_server *st, const char *server_nonce)
{
	if (!st || st->state != SRV_INIT)
		return SCRAM_E_STATE;
	return scram_set_fixed_nonce(st->fixed_nonce, &st->fixed_nonce_len, server_nonce,
			SCRAM_NONCE_MAX - SCRAM_CLIENT_NONCE_MAX);
}

static int server_begin(struct scram_server *st, const struct scram_secret *secret, const char *msg,
		size_t len, char *out, size_t cap, size_t *out_len)
{
	char snonce[SCRAM_NONCE_MAX + 1];
	size_t vlen, snonce_len;
	const char *v, *bare, *end = msg + len;
	struct scan s;
	struct obuf b, a;
	int rc;

	if (!scram_secret_ok(secret) || !out || !out_len)
		return SCRAM_E_INVALID;
	rc = scram_check_msg(msg, len);
	if (rc)
		return rc;

	/* gs2 header */
	if (msg[0] == 'p' && len >= 2 && msg[1] == '=')
		return SCRAM_E_CHANNEL_BINDING;
	if (len < 3 || (msg[0] != 'n' && msg[0] != 'y') || msg[1] != ',')
		return SCRAM_E_MALFORMED;
	if (msg[2] == 'a' && len >= 4 && msg[3] == '=')
		return SCRAM_E_UNSUPPORTED;
	if (msg[2] != ',')
		return SCRAM_E_MALFORMED;
	bare = msg + 3;

	/* client-first-message-bare */
	scan_init(&s, bare, (size_t)(end - bare));
	if (scan_peek(&s, 'm'))
		return SCRAM_E_UNSUPPORTED;
	rc = scram_scan_attr(&s, 'n', &v, &vlen); /* user name: ignored, as PostgreSQL does */
	if (!rc)
		rc = scram_scan_attr(&s, 'r', &v, &vlen);
	if (rc)
		return rc;
	if (vlen > SCRAM_CLIENT_NONCE_MAX)
		return SCRAM_E_TOOLONG;
	if (vlen == 0 || !scram_nonce_ok(v, vlen))
		return SCRAM_E_MALFORMED;
	memcpy(st->nonce, v, vlen);
	st->nonce_len = vlen;
	rc = scram_scan_extensions(&s);
	if (rc)
		return rc;

	if (st->fixed_nonce_len) {
		memcpy(snonce, st->fixed_nonce, st->fixed_nonce_len + 1);
		snonce_len = st->fixed_nonce_len;
	} else {
		rc = scram_random_nonce(snonce, &snonce_len);
		if (rc)
			return rc;
	}
	/* client part <= CLIENT_NONCE_MAX, server part <= NONCE_MAX - CLIENT_NONCE_MAX */
	memcpy(st->nonce + st->nonce_len, snonce, snonce_len);
	st->nonce_len += snonce_len;
	st->nonce[st->nonce_len] = '\0';
	st->cbind_flag = msg[0];
	st->secret = *secret;

	ob_init(&b, out, cap);
	ob_str(&b, "r=");
	ob_put(&b, st->nonce, st->nonce_len);
	ob_str(&b, ",s=");
	ob_b64(&b, secret->salt, secret->salt_len);
	ob_str(&b, ",i=");
	ob_int(&b, secret->iterations);
	if (b.err)
		return b.err;
	if (b.len > SCRAM_MSG_MAX)
		return SCRAM_E_TOOLONG;

	ob_init(&a, st->auth, sizeof(st->auth));
	ob_put(&a, bare, (size_t)(end - bare));
	ob_put(&a, ",", 1);
	ob_put(&a, out, b.len);
	ob_put(&a, ",", 1);
	if (a.err)
		return a.err;
	st->auth_len = a.len;
	*out_len = b.len;
	return 0;
}

int scram_server_begin(struct scram_server *st, const struct scram_secret *secret,
		const char *client_first, size_t len, char *out, size_t cap, size_t *out_len)
{
	int rc;

	if (!st)
		return SCRAM_E_INVALID;
	if (st->state != SRV_INIT)
		return SCRAM_E_STATE;
	rc = server_begin(st, secret, client_first, len, out, cap, out_len);
	st->state = rc ? SRV_FAILED : SRV_FIRST_SENT;
	return rc;
}

static int server_finish(struct scram_server *st, const char *msg, size_t len, char *out,
		size_t cap, size_t *out_len, uint8_t client_key_out[SCRAM_KEY_LEN])
{
	uint8_t proof[SCRAM_KEY_LEN], sig[SCRAM_KEY_LEN], ck[SCRAM_KEY_LEN], h[SCRAM_KEY_LEN];
	const char *v, *want_c;
	size_t vlen, without_proof, i;
	struct scan s;
	struct obuf b, a;
	int rc;

	if (!out || !out_len)
		return SCRAM_E_INVALID;
	rc = scram_check_msg(msg, len);
	if (rc)
		return rc;
	scan_init(&s, msg, len);

	rc = scram_scan_attr(&s, 'c', &v, &vlen);
	if (rc)
		return rc;
	want_c = st->cbind_flag == 'y' ? "eSws" : "biws"; /* b64("y,,"), b64("n,,") */
	if (vlen != 4 || memcmp(v, want_c, 4) != 0)
		return SCRAM_E_CHANNEL_BINDING;

	rc = scram_scan_attr(&s, 'r', &v, &vlen);
	if (rc)
		return rc;
	if (vlen != st->nonce_len || memcmp(v, st->nonce, vlen) != 0)
		return SCRAM_E_NONCE;

	for (;;) {
		if (scan_at_end(&s))
			return SCRAM_E_MALFORMED; /* no proof */
		if (scan_peek(&s, 'p'))
			break;
		rc = scram_scan_attr(&s, 0, &v, &vlen);
		if (rc)
			return rc;
	}
	without_proof = (size_t)(s.p - msg) - 1; /* drop the ',' before "p=" */
	rc = scram_scan_attr(&s, 'p', &v, &vlen);
	if (rc)
		return rc;
	if (!scan_at_end(&s))
		return SCRAM_E_MALFORMED; /* the proof comes last */
	rc = scram_decode_key(v, vlen, proof);
	if (rc)
		return rc;

	ob_resume(&a, st->auth, sizeof(st->auth), st->auth_len);
	ob_put(&a, msg, without_proof);
	if (a.err)
		return a.err;

	rc = scram_hmac(st->secret.stored_key, SCRAM_KEY_LEN, a.p, a.len, sig);
	if (rc)
		return rc;
	for (i = 0; i < SCRAM_KEY_LEN; i++)
		ck[i] = proof[i] ^ sig[i];
	rc = scram_sha256(ck, sizeof(ck), h);
	if (!rc && !crypto_equal(h, st->secret.stored_key, SCRAM_KEY_LEN))
		rc = SCRAM_E_BAD_PROOF;
	if (!rc)
		rc = scram_hmac(st->secret.server_key, SCRAM_KEY_LEN, a.p, a.len, sig);
	if (!rc) {
		ob_init(&b, out, cap);
		ob_str(&b, "v=");
		ob_b64(&b, sig, sizeof(sig));
		rc = b.err;
		if (!rc)
			*out_len = b.len;
	}
	if (!rc && client_key_out)
		memcpy(client_key_out, ck, SCRAM_KEY_LEN);
	crypto_wipe(ck, sizeof(ck));
	return rc;
}

int scram_server_finish(struct scram_server *st, const char *client_final, size_t len, char *out,
		size_t cap, size_t *out_len, uint8_t client_key_out[SCRAM_KEY_LEN])
{
	int rc;

	if (!st)
		return SCRAM_E_INVALID;
	if (st->state != SRV_FIRST_SENT)
		return SCRAM_E_STATE;
	rc = server_finish(st, client_final, len, out, cap, out_len, client_key_out);
	st->state = rc ? SRV_FAILED : SRV_DONE;
	return rc;
}
