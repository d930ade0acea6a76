/* fuzz_scram_server.c -- SCRAM-SHA-256 as the server: client-first and client-final from a hostile client.
 *
 * Input: a mode byte, then parts separated by '\n'.
 *   mode bit 0 clear: raw messages.  Part 1 is client-first-message for
 *     scram_server_begin(), part 2 client-final-message for
 *     scram_server_finish().  The server nonce is fixed ("fuzzServerNonce")
 *     unless mode bit 1 is set, so the fuzzer can continue it.  Outputs
 *     must be NUL-terminated within their capacity (mode bits 2-3 shrink
 *     it), every error must come from the documented set, and after an
 *     error every later call must return SCRAM_E_STATE.
 *   mode bit 0 set: a round trip.  Parts are a user name, a client nonce
 *     and a password; when the client accepts the user and nonce, pgslab's
 *     own client and server must complete the exchange and agree on the
 *     ClientKey, and a second exchange in pass-through mode (the ClientKey
 *     instead of the password, as pgslab logs in to PostgreSQL) must
 *     succeed too.
 */
#include "fuzz.h"
#include "scram.h"
#include "scram_client.h"
#include "scram_server.h"

static const uint8_t SALT[16] = "fuzzsaltfuzzsalt";

static int known(int rc)
{
	return rc == 0 || (rc <= SCRAM_E_MALFORMED && rc >= SCRAM_E_CRYPTO);
}

static void raw(uint8_t mode, const uint8_t *data, size_t size, const struct scram_secret *sec)
{
	struct fuzz_part part[2];
	struct scram_server st;
	char out[SCRAM_MSG_MAX + 1];
	size_t cap = (mode & 0x0c) == 0x0c ? 40 : (mode & 0x04) ? 100 : sizeof(out);
	size_t out_len = 0;
	uint8_t ck[SCRAM_KEY_LEN];
	int rc;

	fuzz_split(data, size, '\n', part, 2);
	scram_server_init(&st);
	if (!(mode & 2))
		FUZZ_ASSERT(scram_server_set_nonce(&st, "fuzzServerNonce") == 0);
	rc = scram_server_begin(&st, sec, (const char *)part[0].p, part[0].len, out, cap, &out_len);
	FUZZ_ASSERT(known(rc));
	if (rc == 0) {
		FUZZ_ASSERT(out_len < cap && out[out_len] == 0 && strlen(out) == out_len);
		FUZZ_ASSERT(strncmp(out, "r=", 2) == 0);
		rc = scram_server_finish(&st, (const char *)part[1].p, part[1].len, out, cap,
				&out_len, ck);
		FUZZ_ASSERT(known(rc) && rc != SCRAM_E_STATE);
		if (rc == 0)
			FUZZ_ASSERT(out_len < cap && strncmp(out, "v=", 2) == 0);
	}
	if (rc != 0)
		FUZZ_ASSERT(scram_server_finish(&st, "x", 1, out, cap, &out_len, ck) ==
				SCRAM_E_STATE);
	scram_server_clear(&st);
}

/* One exchange between our client (with <keys>) and our server (<sec>). */
static void exchange(const char *user, const char *nonce, const struct scram_secret *sec,
		const struct scram_client_keys *keys, uint8_t ck[SCRAM_KEY_LEN])
{
	struct scram_client cl;
	struct scram_server sv;
	char m1[SCRAM_MSG_MAX + 1], m2[SCRAM_MSG_MAX + 1], m3[SCRAM_MSG_MAX + 1],
			m4[SCRAM_MSG_MAX + 1];
	size_t l1, l2, l3, l4;

	scram_client_init(&cl);
	scram_server_init(&sv);
	FUZZ_ASSERT(scram_client_set_user(&cl, user) == 0);
	FUZZ_ASSERT(scram_client_set_nonce(&cl, nonce) == 0);
	FUZZ_ASSERT(scram_client_begin(&cl, m1, sizeof(m1), &l1) == 0);
	FUZZ_ASSERT(scram_server_begin(&sv, sec, m1, l1, m2, sizeof(m2), &l2) == 0);
	FUZZ_ASSERT(scram_client_continue(&cl, m2, l2, keys, m3, sizeof(m3), &l3) == 0);
	FUZZ_ASSERT(scram_server_finish(&sv, m3, l3, m4, sizeof(m4), &l4, ck) == 0);
	FUZZ_ASSERT(scram_client_finish(&cl, m4, l4) == 0);
	FUZZ_ASSERT(memcmp(ck, cl.client_key, SCRAM_KEY_LEN) == 0);
	scram_client_clear(&cl);
	scram_server_clear(&sv);
}

static void round_trip(uint8_t mode, const uint8_t *data, size_t size)
{
	struct fuzz_part part[3];
	char *user, *nonce, *password;
	struct scram_secret sec;
	struct scram_client probe;
	struct scram_client_keys keys;
	uint8_t ck[SCRAM_KEY_LEN], ck2[SCRAM_KEY_LEN];

	fuzz_split(data, size, '\n', part, 3);
	user = fuzz_strndup(part[0].p, part[0].len);
	nonce = fuzz_strndup(part[1].p, part[1].len);
	password = fuzz_strndup(part[2].p, part[2].len);
	scram_client_init(&probe);
	if (strlen(password) == 0 || strlen(password) > 200 ||
			scram_client_set_user(&probe, user) != 0 ||
			scram_client_set_nonce(&probe, nonce) != 0)
		goto out;
	FUZZ_ASSERT(scram_secret_from_password(password, SALT, sizeof(SALT), 1 + (mode >> 5),
			    &sec) == 0);
	memset(&keys, 0, sizeof(keys));
	keys.password = password;
	exchange(user, nonce, &sec, &keys, ck);
	/* pass-through: the recovered ClientKey logs in without the password */
	keys.password = NULL;
	keys.secret = &sec;
	memcpy(keys.client_key, ck, SCRAM_KEY_LEN);
	exchange(user, nonce, &sec, &keys, ck2);
	FUZZ_ASSERT(memcmp(ck, ck2, SCRAM_KEY_LEN) == 0);
out:
	scram_client_clear(&probe);
	free(user);
	free(nonce);
	free(password);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct scram_secret sec;

	if (sec.iterations == 0 &&
			scram_secret_from_password("fuzz", SALT, sizeof(SALT), 16, &sec) != 0)
		abort();
	if (size < 1)
		return 0;
	if (data[0] & 1)
		round_trip(data[0], data + 1, size - 1);
	else
		raw(data[0], data + 1, size - 1, &sec);
	return 0;
}
