/* track.h -- what a backend owes its client: the per-server protocol tracker.
 *
 * Theory.  A server connection may go back to its pool only when the
 * backend is exactly where a fresh one would be: every request answered,
 * outside any transaction, expecting a new message.  The tracker follows
 * the v3 protocol on both directions of one linked pair and says when that
 * holds.  It is pure: it sees message types (and ReadyForQuery's status),
 * never sockets or pools.
 *
 * Requests (client -> backend) are queued in order as they are forwarded:
 *   Q Query, F FunctionCall, S Sync          each owes one ReadyForQuery
 *   P Parse, B Bind, D Describe, E Execute, C Close
 *                                            each owes its own reply
 *   c   a CopyDone/CopyFail sent while a Q or E might still start a COPY
 *   prepared statements (prep.h), each with a pending record settled by
 *   the <settle> hook as it is popped, answered or not:
 *   p   an injected Parse (its ParseComplete is swallowed)
 *   n   a client's named Parse (ParseComplete forwarded)
 *   k   a client's Parse sent as a Close (its CloseComplete goes out as
 *       ParseComplete)
 *   x   an injected Close (CloseComplete swallowed)
 *   y   a client's Close of a named statement (CloseComplete forwarded)
 * Replies (backend -> client) pop them:
 *   1 -> P p n, 2 -> B, 3 -> C k x y, n / T -> D, C / I / s -> E (not within a Q),
 *   Z -> the oldest S, Q or F; ErrorResponse on an extended request drops
 *   every request up to the next Sync, which the backend skips; with no
 *   Sync queued the backend skips until one arrives (TRACK_F_SKIP).
 * COPY: CopyInResponse puts the backend in copy-in, where it ignores Sync
 * and Flush: Syncs the client pipelined after the COPY's request are taken
 * off the queue, and copy-in ends with the client's CopyDone or CopyFail.
 * CopyBothResponse (START_REPLICATION, a replication connection's simple
 * Query) is copy-in on the client's side too; the backend's CopyData and
 * CopyDone change nothing, and result sets may follow before its
 * ReadyForQuery (as after BASE_BACKUP's CopyOut).
 * Anything the tracker cannot place (a reply with no matching request, a
 * request the backend cannot take in its state) sets TRACK_F_DESYNC: the
 * server is then never reused.
 *
 * Invariant: the backend is reusable  <=>  track_idle():
 *   queue empty, no extended message since the last Sync (the backend
 *   holds no implicit transaction), not in copy-in, not desynchronised, and
 *   the last ReadyForQuery said 'I'.
 * The caller adds "no client bytes in flight toward the backend".
 *
 * Memory: TRACK_INLINE requests live in the struct; deeper pipelines grow
 * the ring from the slab arena's buffers, up to TRACK_MAX (then track_req()
 * fails and the caller closes the client).
 */
#ifndef PGSLAB_TRACK_H
#define PGSLAB_TRACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct slab_arena;

#define TRACK_INLINE 32u
#define TRACK_MAX 65536u

#define TRACK_F_UNSYNCED 0x01u /* extended messages forwarded since the last Sync */
#define TRACK_F_SKIP 0x02u     /* backend skips messages until the next Sync */
#define TRACK_F_COPY_IN 0x04u  /* backend in copy-in: client sends CopyData */
#define TRACK_F_DESYNC 0x08u   /* lost track: never reuse the backend */

/* What a reply did (bit set). */
#define TRACK_EV_READY 0x1u    /* a ReadyForQuery was consumed */
#define TRACK_EV_ERROR 0x2u    /* an ErrorResponse */

struct track {
	uint8_t *q;            /* ring of request types; inline or a slab buffer */
	uint32_t head, n, cap;
	uint32_t n_ready;      /* queued requests that owe a ReadyForQuery */
	uint8_t flags;
	uint8_t txn;           /* status of the last ReadyForQuery: 'I', 'T' or 'E' */
	uint8_t inline_q[TRACK_INLINE];
	/* Called as each p/n/k/x/y request leaves the queue; <answered> is
	 * false when it failed or the backend skipped it after an error. */
	void (*settle)(struct track *t, bool answered);
};

void track_init(struct track *t);
void track_reset_slow(struct track *t, struct slab_arena *a);
/* Forget everything (the ring shrinks back inline); the backend is assumed
 * idle with status 'I'. */
static inline void track_reset(struct track *t, struct slab_arena *a)
{
	if (t->q != t->inline_q)
		track_reset_slow(t, a);
	t->head = t->n = t->n_ready = 0;
	t->flags = 0;
	t->txn = 'I';
}

int track_req_slow(struct track *t, struct slab_arena *a, uint8_t type);
unsigned track_reply_slow(struct track *t, uint8_t type, uint8_t status);

/* The client forwards a message of <type>.  0, or -E2BIG / -ENOMEM when
 * the pipeline is too deep to track (the message must not be forwarded).
 * Inline fast path: a Query with nothing unusual going on. */
static inline int track_req(struct track *t, struct slab_arena *a, uint8_t type)
{
	if (type == 'Q' && t->flags == 0 && t->n < t->cap) {
		t->q[(t->head + t->n) & (t->cap - 1)] = 'Q';
		t->n++;
		t->n_ready++;
		return 0;
	}
	return track_req_slow(t, a, type);
}

/* The backend sent a message of <type>; <status> is ReadyForQuery's status
 * byte (ignored otherwise).  Returns TRACK_EV_* bits.  Inline fast paths:
 * rows and the replies inside a simple Query change nothing, and the
 * ReadyForQuery that ends the only request in flight (a Query or a Sync)
 * just pops it. */
static inline unsigned track_reply(struct track *t, uint8_t type, uint8_t status)
{
	if (type == 'D')
		return 0;
	if (t->n == 0)
		return track_reply_slow(t, type, status);
	if ((type == 'T' || type == 'C') && t->q[t->head] == 'Q')
		return 0;
	if (type == 'Z' && t->n == 1 && t->flags == 0 && (t->q[t->head] == 'Q' || t->q[t->head] == 'S')) {
		t->n = t->n_ready = 0;
		t->head = 0;
		t->txn = status;
		return TRACK_EV_READY;
	}
	return track_reply_slow(t, type, status);
}

/* The oldest request still owed an answer (0: none). */
static inline uint8_t track_head(const struct track *t)
{
	uint32_t i;

	for (i = 0; i < t->n; i++) {
		uint8_t r = t->q[(t->head + i) & (t->cap - 1)];

		if (r != 'c')
			return r;
	}
	return 0;
}

static inline bool track_idle(const struct track *t)
{
	return t->n == 0 && t->flags == 0 && t->txn == 'I';
}

/* Requests in flight: something the backend is still working on. */
static inline bool track_busy(const struct track *t)
{
	return t->n > 0;
}

#endif
