/* fuzz_scram_client.c -- SCRAM-SHA-256 as the client: server-first and server-final from a hostile server.
 *
 * Input: a mode byte, then server-first-message and server-final-message
 * separated by the first '\n'.  Our nonce is fixed ("fuzzClientNonce") so
 * the fuzzer can continue it.  Mode bit 0 proves with the password (only
 * when every "i=" in the input asks for at most 4096 iterations: a server
 * may legitimately ask for up to SCRAM_ITER_MAX, which is slow, not a bug),
 * otherwise with pass-through keys (the verifier and a ClientKey).  Mode
 * bits 1-2 shrink the output buffer.  Outputs must be NUL-terminated within
 * their capacity, errors must be documented ones, the server error text
 * must be a NUL-terminated string within its field, and after an error
 * every later call must return SCRAM_E_STATE.
 */
#include "fuzz.h"
#include "scram.h"
#include "scram_client.h"
#include "scram_server.h"

static const uint8_t SALT[16] = "fuzzsaltfuzzsalt";
static struct scram_secret sec;
static uint8_t client_key[SCRAM_KEY_LEN];

static int known(int rc)
{
	return rc == 0 || (rc <= SCRAM_E_MALFORMED && rc >= SCRAM_E_CRYPTO);
}

/* The ClientKey of "fuzz" for <sec>, from one honest exchange. */
static void setup(void)
{
	struct scram_client cl;
	struct scram_server sv;
	struct scram_client_keys keys = { .password = "fuzz" };
	char m1[SCRAM_MSG_MAX + 1], m2[SCRAM_MSG_MAX + 1], m3[SCRAM_MSG_MAX + 1],
			m4[SCRAM_MSG_MAX + 1];
	size_t l1, l2, l3, l4;

	if (scram_secret_from_password("fuzz", SALT, sizeof(SALT), 16, &sec) != 0)
		abort();
	scram_client_init(&cl);
	scram_server_init(&sv);
	if (scram_client_begin(&cl, m1, sizeof(m1), &l1) ||
			scram_server_begin(&sv, &sec, m1, l1, m2, sizeof(m2), &l2) ||
			scram_client_continue(&cl, m2, l2, &keys, m3, sizeof(m3), &l3) ||
			scram_server_finish(&sv, m3, l3, m4, sizeof(m4), &l4, client_key) ||
			scram_client_finish(&cl, m4, l4))
		abort();
}

/* Does every "i=" in (<p>, <n>) ask for at most 4096 iterations? */
static int cheap(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i + 1 < n; i++) {
		unsigned long v = 0;
		size_t j;

		if (p[i] != 'i' || p[i + 1] != '=')
			continue;
		for (j = i + 2; j < n && p[j] >= '0' && p[j] <= '9'; j++) {
			v = v * 10 + (p[j] - '0');
			if (v > 4096)
				return 0;
		}
	}
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_part part[2];
	struct scram_client st;
	struct scram_client_keys keys;
	char out[SCRAM_MSG_MAX + 1];
	size_t cap, out_len = 0;
	uint8_t mode;
	int rc;

	if (sec.iterations == 0)
		setup();
	if (size < 1)
		return 0;
	mode = data[0];
	cap = (mode & 6) == 6 ? 30 : (mode & 2) ? 60 : (mode & 4) ? 120 : sizeof(out);
	fuzz_split(data + 1, size - 1, '\n', part, 2);
	memset(&keys, 0, sizeof(keys));
	if ((mode & 1) && cheap(data + 1, size - 1)) {
		keys.password = "fuzz";
	} else {
		keys.secret = &sec;
		memcpy(keys.client_key, client_key, SCRAM_KEY_LEN);
	}
	scram_client_init(&st);
	FUZZ_ASSERT(scram_client_set_nonce(&st, "fuzzClientNonce") == 0);
	rc = scram_client_begin(&st, out, cap, &out_len);
	if (rc == 0) {
		FUZZ_ASSERT(out_len < cap && out[out_len] == 0);
		rc = scram_client_continue(&st, (const char *)part[0].p, part[0].len, &keys, out,
				cap, &out_len);
		FUZZ_ASSERT(known(rc) && rc != SCRAM_E_STATE && rc != SCRAM_E_INVALID);
		if (rc == 0) {
			FUZZ_ASSERT(out_len < cap && out[out_len] == 0 && strlen(out) == out_len);
			FUZZ_ASSERT(strncmp(out, "c=biws,r=fuzzClientNonce", 24) == 0);
			rc = scram_client_finish(&st, (const char *)part[1].p, part[1].len);
			FUZZ_ASSERT(known(rc) && rc != SCRAM_E_STATE);
			if (rc == SCRAM_E_SERVER_ERROR)
				FUZZ_ASSERT(memchr(st.server_error, 0, sizeof(st.server_error)));
		}
	} else {
		FUZZ_ASSERT(rc == SCRAM_E_NOSPACE);
	}
	if (rc != 0)
		FUZZ_ASSERT(scram_client_finish(&st, "v=", 2) == SCRAM_E_STATE);
	scram_client_clear(&st);
	return 0;
}
