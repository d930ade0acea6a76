/* fuzz_startup.c -- the startup packet: proto_parse_startup() and its parameter walk.
 *
 * Input: a whole startup-phase packet (length word included), as the
 * client's first message.  Parsed twice: as sent, and with the length word
 * patched to the input's size so that the fuzzer explores the parameters
 * without having to get the length right.  Every (name, value) must lie
 * inside the packet and be NUL-terminated there; the walk must end exactly
 * at the terminator of an accepted packet; the NegotiateProtocolVersion
 * reply built from "_pq_." names (as client.c does) must fit or overflow
 * cleanly.
 */
#include "fuzz.h"
#include "proto.h"

static void check(const uint8_t *pkt, size_t len)
{
	struct proto_startup st;
	const char *why = NULL, *name, *value, *pq[8];
	size_t pos = 0, prev = 0;
	int n_pq = 0, n = 0;
	uint8_t nb[512];
	struct pkt k;

	if (proto_parse_startup(pkt, len, &st, &why) < 0) {
		FUZZ_ASSERT(why != NULL);
		return;
	}
	FUZZ_ASSERT(len >= 8);
	if (st.code == PROTO_SSL_CODE || st.code == PROTO_GSSENC_CODE) {
		FUZZ_ASSERT(len == 8);
		return;
	}
	if (st.code == PROTO_CANCEL_CODE) {
		FUZZ_ASSERT(len == 16);
		return;
	}
	FUZZ_ASSERT((st.code >> 16) == 3);
	FUZZ_ASSERT(st.params == pkt + 8 && st.params_len == len - 8);
	while (proto_startup_next(&st, &pos, &name, &value)) {
		FUZZ_ASSERT(pos > prev && pos <= st.params_len);
		FUZZ_ASSERT(fuzz_str_within(name, st.params, st.params_len));
		FUZZ_ASSERT(fuzz_str_within(value, st.params, st.params_len));
		FUZZ_ASSERT(name[0] != 0);
		if (strncmp(name, "_pq_.", 5) == 0 && n_pq < 8)
			pq[n_pq++] = name;
		prev = pos;
		n++;
	}
	FUZZ_ASSERT(pos == st.params_len); /* an accepted packet walks to its end */
	pkt_init(&k, nb, sizeof(nb));
	proto_write_negotiate_version(&k, PROTO_V3, pq, n_pq);
	FUZZ_ASSERT(k.len <= sizeof(nb));
	if (pkt_ok(&k))
		FUZZ_ASSERT(proto_peek_u32(nb + 1) == k.len - 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;

	if (size > PROTO_STARTUP_MAX)
		return 0; /* client.c refuses longer packets before parsing */
	check(data, size);
	if (size < 4)
		return 0;
	/* the same bytes with a correct length word, in a buffer of exactly
	 * that size so that ASan sees any read past the end */
	copy = malloc(size);
	if (copy == NULL)
		abort();
	memcpy(copy, data, size);
	copy[0] = (uint8_t)(size >> 24);
	copy[1] = (uint8_t)(size >> 16);
	copy[2] = (uint8_t)(size >> 8);
	copy[3] = (uint8_t)size;
	check(copy, size);
	free(copy);
	return 0;
}
