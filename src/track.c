/* track.c -- what a backend owes its client: the per-server protocol tracker.
 *
 * See track.h for the theory.  The ring's capacity is a power of two, so an
 * index is a mask; the common case (a request or two in flight) touches one
 * cache line of the server object and never allocates.
 */
#include "track.h"

#include <errno.h>
#include <string.h>

#include "slab.h"

static inline uint8_t at(const struct track *t, uint32_t i)
{
	return t->q[(t->head + i) & (t->cap - 1)];
}

static inline bool owes_ready(uint8_t r)
{
	return r == 'S' || r == 'Q' || r == 'F';
}

/* Requests with a pending prepared-statement record (see track.h). */
static inline bool settles(uint8_t r)
{
	return r == 'p' || r == 'n' || r == 'k' || r == 'x' || r == 'y';
}

void track_init(struct track *t)
{
	t->q = t->inline_q;
	t->cap = TRACK_INLINE;
	t->head = t->n = t->n_ready = 0;
	t->flags = 0;
	t->txn = 'I';
	t->settle = NULL;
}

void track_reset_slow(struct track *t, struct slab_arena *a)
{
	slab_buf_free(a, t->q, t->cap);
	t->q = t->inline_q;
	t->cap = TRACK_INLINE;
}

static int grow(struct track *t, struct slab_arena *a)
{
	uint32_t ncap = t->cap * 2, i;
	size_t got;
	uint8_t *nq;

	if (ncap > TRACK_MAX)
		return -E2BIG;
	nq = slab_buf_alloc(a, ncap, &got);
	if (nq == NULL)
		return -ENOMEM;
	/* the ring takes the whole buffer (size classes are powers of two), so
	 * <cap> is also what slab_buf_free() must be given back */
	if (got > TRACK_MAX || (got & (got - 1)) != 0) {
		slab_buf_free(a, nq, got);
		return -ENOMEM;
	}
	for (i = 0; i < t->n; i++)
		nq[i] = at(t, i);
	if (t->q != t->inline_q)
		slab_buf_free(a, t->q, t->cap);
	t->q = nq;
	t->cap = (uint32_t)got;
	t->head = 0;
	return 0;
}

static int push(struct track *t, struct slab_arena *a, uint8_t r)
{
	if (t->n == t->cap) {
		int rc = grow(t, a);

		if (rc < 0)
			return rc;
	}
	t->q[(t->head + t->n) & (t->cap - 1)] = r;
	t->n++;
	if (owes_ready(r))
		t->n_ready++;
	return 0;
}

static void pop_as(struct track *t, bool answered)
{
	do {
		uint8_t r = at(t, 0);

		if (owes_ready(r))
			t->n_ready--;
		if (settles(r) && t->settle)
			t->settle(t, answered);
		t->head = (t->head + 1) & (t->cap - 1);
		t->n--;
		/* CopyDone/CopyFail markers behind a finished request: its COPY
		 * never started, so the backend ignored them */
	} while (t->n > 0 && at(t, 0) == 'c');
}

static inline void pop(struct track *t)
{
	pop_as(t, true);
}

/* Remove the <cnt> requests at positions [<i>, <i> + <cnt>) (<i> > 0),
 * keeping the order, in one pass: a run of thousands costs O(n), not O(n^2). */
static void remove_run(struct track *t, uint32_t i, uint32_t cnt)
{
	uint32_t j;

	for (j = i; j < i + cnt; j++)
		if (owes_ready(at(t, j)))
			t->n_ready--;
	for (j = i; j + cnt < t->n; j++)
		t->q[(t->head + j) & (t->cap - 1)] = at(t, j + cnt);
	t->n -= cnt;
}

/* CopyDone/CopyFail markers whose COPY never started were ignored. */
static uint8_t head_req(struct track *t)
{
	while (t->n > 0 && at(t, 0) == 'c')
		pop(t);
	return t->n > 0 ? at(t, 0) : 0;
}

static void desync(struct track *t)
{
	t->flags |= TRACK_F_DESYNC;
}

int track_req_slow(struct track *t, struct slab_arena *a, uint8_t type)
{
	int rc;

	if (t->flags & TRACK_F_DESYNC)
		return 0;
	switch (type) {
	case 'Q':
	case 'F':
		if (t->flags & TRACK_F_COPY_IN) {
			desync(t);
			return 0;
		}
		if (t->flags & TRACK_F_SKIP)
			return 0; /* the backend skips it: no reply will come */
		return push(t, a, type);
	case 'S':
		if (t->flags & TRACK_F_COPY_IN)
			return 0; /* ignored during copy-in */
		/* the flags change only once the Sync is queued: a Sync refused
		 * (-E2BIG) is not forwarded and the backend is still unsynced */
		rc = push(t, a, 'S');
		if (rc == 0)
			t->flags &= (uint8_t)~(TRACK_F_UNSYNCED | TRACK_F_SKIP);
		return rc;
	case 'P':
	case 'B':
	case 'D':
	case 'E':
	case 'C':
	case 'p':
	case 'n':
	case 'k':
	case 'x':
	case 'y':
		if (t->flags & TRACK_F_COPY_IN) {
			desync(t);
			return 0;
		}
		if (t->flags & TRACK_F_SKIP) {
			t->flags |= TRACK_F_UNSYNCED;
			return 0;
		}
		rc = push(t, a, type);
		if (rc == 0)
			t->flags |= TRACK_F_UNSYNCED;
		return rc;
	case 'c':
	case 'f':
		if (t->flags & TRACK_F_COPY_IN) {
			t->flags &= (uint8_t)~TRACK_F_COPY_IN;
			return 0;
		}
		/* a COPY may be about to start on a queued Q or E */
		if (t->n > 0 && !(t->flags & TRACK_F_SKIP))
			return push(t, a, 'c');
		return 0;
	case 'H': /* Flush: no reply of its own */
	case 'd': /* CopyData: part of copy-in, or ignored */
		return 0;
	default:
		desync(t);
		return 0;
	}
}

/* CopyInResponse for the head request: the backend now ignores Sync and
 * Flush until the client's CopyDone/CopyFail. */
static void copy_in_start(struct track *t)
{
	bool extended = at(t, 0) == 'E';
	uint32_t k = 1;

	/* the Syncs pipelined behind the request: taken off in one go (a
	 * client may queue 65,535 of them) */
	while (k < t->n && at(t, k) == 'S')
		k++;
	if (k > 1 && extended)
		t->flags |= TRACK_F_UNSYNCED;
	if (k < t->n && at(t, k) == 'c') {
		remove_run(t, 1, k); /* the copy ends with the client's pipelined CopyDone */
		return;
	}
	remove_run(t, 1, k - 1);
	if (t->n > 1) {
		desync(t); /* a request the backend cannot take in copy-in */
		return;
	}
	t->flags |= TRACK_F_COPY_IN;
}

static void on_error(struct track *t)
{
	uint8_t h = head_req(t);

	if (h == 0 || owes_ready(h)) {
		/* an error inside a Query, FunctionCall or Sync (commit) is followed by
		 * its ReadyForQuery; a simple-query COPY ends with it */
		if (h == 'Q')
			t->flags &= (uint8_t)~TRACK_F_COPY_IN;
		return;
	}
	/* extended protocol: the backend skips everything up to the next Sync */
	t->flags &= (uint8_t)~TRACK_F_COPY_IN;
	while (t->n > 0 && at(t, 0) != 'S')
		pop_as(t, false);
	if (t->n == 0)
		t->flags |= TRACK_F_SKIP;
}

/* The head request must be <want> (or <alt>, <alt2>): pop it. */
static void expect3(struct track *t, uint8_t want, uint8_t alt, uint8_t alt2)
{
	uint8_t h = head_req(t);

	if (h != 0 && (h == want || h == alt || h == alt2))
		pop(t);
	else
		desync(t);
}

static inline void expect(struct track *t, uint8_t want)
{
	expect3(t, want, want, want);
}

unsigned track_reply_slow(struct track *t, uint8_t type, uint8_t status)
{
	uint8_t h;

	if (t->flags & TRACK_F_DESYNC) {
		if (type != 'Z')
			return type == 'E' ? TRACK_EV_ERROR : 0;
		t->txn = status;
		return TRACK_EV_READY;
	}
	switch (type) {
	case 'D': /* DataRow */
	case 'd': /* CopyData (copy-out) */
	case 'c': /* CopyDone (copy-out) */
	case 'H': /* CopyOutResponse */
	case 'V': /* FunctionCallResponse */
	case 'N': /* NoticeResponse */
	case 'A': /* NotificationResponse */
	case 'S': /* ParameterStatus */
		return 0;
	case '1':
		expect3(t, 'P', 'p', 'n');
		return 0;
	case '2':
		expect(t, 'B');
		return 0;
	case '3':
		h = head_req(t);
		if (h == 'C' || h == 'k' || h == 'x' || h == 'y')
			pop(t);
		else
			desync(t);
		return 0;
	case 'n':
		expect(t, 'D');
		return 0;
	case 's':
		expect(t, 'E');
		return 0;
	case 't':
		if (head_req(t) != 'D')
			desync(t);
		return 0;
	case 'T':
		h = head_req(t);
		if (h == 'D')
			pop(t);
		else if (h != 'Q')
			desync(t);
		return 0;
	case 'C': /* CommandComplete */
	case 'I': /* EmptyQueryResponse */
		h = head_req(t);
		if (h == 'E')
			pop(t);
		else if (h != 'Q')
			desync(t);
		return 0;
	case 'G':
		h = head_req(t);
		if (h == 'Q' || h == 'E')
			copy_in_start(t);
		else
			desync(t);
		return 0;
	case 'W':
		/* CopyBothResponse: START_REPLICATION on a replication
		 * connection, a simple Query only.  The client's side is
		 * copy-in (CopyData until its CopyDone or CopyFail); the
		 * backend's CopyData and CopyDone need nothing; the Query then
		 * ends with any result sets and its ReadyForQuery. */
		if (head_req(t) == 'Q')
			copy_in_start(t);
		else
			desync(t);
		return 0;
	case 'E':
		on_error(t);
		return TRACK_EV_ERROR;
	case 'Z':
		h = head_req(t);
		if (owes_ready(h)) {
			pop(t);
		} else {
			desync(t);
		}
		t->flags &= (uint8_t)~TRACK_F_COPY_IN;
		t->txn = status;
		return TRACK_EV_READY;
	default: /* an authentication request, anything unknown */
		desync(t);
		return 0;
	}
}
