/* fuzz_track.c -- the protocol tracker fed arbitrary request/reply sequences.
 *
 * Input: one byte per step.  Bit 7 picks the direction (client request or
 * backend reply), bits 0-4 the message type from a table of every type
 * either side can send plus a few invalid ones, bit 5 the ReadyForQuery
 * status ('I', 'T' or 'E' cycling with the step), and bit 6 repeats the
 * step 1,000 times (so pipelines reach TRACK_MAX and the ring grows and
 * wraps).  Type index 31 resets the tracker, as a server going back to the
 * pool does.
 *
 * Two trackers see the same steps: one through the inline fast paths
 * (track_req/track_reply), one through the slow paths only.  They must
 * agree on every result and on the logical state (queue contents, counts,
 * flags, status); each must keep its invariants: cap a power of two within
 * [TRACK_INLINE, TRACK_MAX], n <= cap, n_ready = number of queued S/Q/F,
 * and a failed track_req() leaves the state unchanged.
 */
#include <errno.h>

#include "fuzz.h"
#include "slab.h"
#include "track.h"

static struct slab_arena *A;

static const uint8_t req_types[32] = "QFSPBDECcfHdXpx\0QQSSPBEE\xff" "ccdQ";
static const uint8_t rep_types[32] = "DdcHVNAS123nstTCIGEZZZZRKvW\0" "12";

static uint8_t at(const struct track *t, uint32_t i)
{
	return t->q[(t->head + i) & (t->cap - 1)];
}

/* Walking the whole ring after each of 1,000 repeated steps would make
 * deep pipelines quadratic: <full> is false for those steps. */
static void invariants(const struct track *t, int full)
{
	uint32_t i, ready = 0;

	FUZZ_ASSERT(t->cap >= TRACK_INLINE && t->cap <= TRACK_MAX);
	FUZZ_ASSERT((t->cap & (t->cap - 1)) == 0);
	FUZZ_ASSERT((t->q == t->inline_q) == (t->cap == TRACK_INLINE));
	FUZZ_ASSERT(t->n <= t->cap && t->head < t->cap);
	FUZZ_ASSERT(t->n_ready <= t->n);
	if (!full && t->n > 64)
		return;
	for (i = 0; i < t->n; i++) {
		uint8_t r = at(t, i);

		FUZZ_ASSERT(r && strchr("QFSPBDECcpnkxy", r)); /* pnkxy: prep.h kinds */
		ready += r == 'S' || r == 'Q' || r == 'F';
	}
	FUZZ_ASSERT(ready == t->n_ready);
	FUZZ_ASSERT(t->flags <= 0x0f);
	if (track_idle(t))
		FUZZ_ASSERT(!track_busy(t));
}

static void same(const struct track *a, const struct track *b, int full)
{
	uint32_t i;

	FUZZ_ASSERT(a->n == b->n && a->n_ready == b->n_ready);
	FUZZ_ASSERT(a->flags == b->flags && a->txn == b->txn);
	FUZZ_ASSERT(track_idle(a) == track_idle(b));
	if (!full && a->n > 64)
		return;
	for (i = 0; i < a->n; i++)
		FUZZ_ASSERT(at(a, i) == at(b, i));
	FUZZ_ASSERT(track_idle(a) == track_idle(b));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct track fast, slow;
	size_t i;

	if (A == NULL && (A = slab_arena_create(0)) == NULL)
		abort();
	track_init(&fast);
	track_init(&slow);
	for (i = 0; i < size; i++) {
		uint8_t b = data[i], idx = b & 31;
		uint8_t status = (uint8_t)"ITE"[(i + (b >> 5 & 1)) % 3];
		int reps = (b & 0x40) ? 1000 : 1, k;

		if (idx == 31) {
			track_reset(&fast, A);
			track_reset(&slow, A);
			invariants(&fast, 1);
			same(&fast, &slow, 1);
			continue;
		}
		for (k = 0; k < reps; k++) {
			if (b & 0x80) {
				uint8_t type = rep_types[idx];
				unsigned e1 = track_reply(&fast, type, status);
				unsigned e2 = track_reply_slow(&slow, type, status);

				FUZZ_ASSERT(e1 == e2);
				if (type == 'Z')
					FUZZ_ASSERT(e1 & TRACK_EV_READY);
			} else {
				uint8_t type = req_types[idx];
				struct track before = fast;
				int r1 = track_req(&fast, A, type);
				int r2 = track_req_slow(&slow, A, type);

				FUZZ_ASSERT(r1 == r2);
				FUZZ_ASSERT(r1 == 0 || r1 == -E2BIG || r1 == -ENOMEM);
				if (r1 < 0) {
					FUZZ_ASSERT(fast.n == before.n && fast.flags == before.flags);
					FUZZ_ASSERT(fast.n == TRACK_MAX || r1 == -ENOMEM);
					break;
				}
			}
		}
		invariants(&fast, reps == 1);
		invariants(&slow, reps == 1);
		same(&fast, &slow, reps == 1);
	}
	invariants(&fast, 1);
	invariants(&slow, 1);
	same(&fast, &slow, 1);
	track_reset(&fast, A);
	track_reset(&slow, A);
	return 0;
}
