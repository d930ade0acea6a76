/* t_track.c -- the per-server protocol tracker against the v3 message flows. */
#include <errno.h>
#include <string.h>

#include "slab.h"
#include "tap.h"
#include "track.h"

static struct slab_arena *A;

/* Feed client requests <reqs> (one char each). */
static void req(struct track *t, const char *reqs)
{
	for (; *reqs; reqs++)
		track_req(t, A, (uint8_t)*reqs);
}

/* Feed backend replies; 'Z' is followed by its status char. */
static unsigned rep(struct track *t, const char *reps)
{
	unsigned ev = 0;

	for (; *reps; reps++) {
		if (*reps == 'Z') {
			ev |= track_reply(t, 'Z', (uint8_t)reps[1]);
			reps++;
		} else {
			ev |= track_reply(t, (uint8_t)*reps, 0);
		}
	}
	return ev;
}

static char settled[64];
static unsigned n_settled;

static void on_settle(struct track *t, bool answered)
{
	(void)t;
	if (n_settled + 1 < sizeof(settled))
		settled[n_settled++] = answered ? '+' : '-';
	settled[n_settled] = 0;
}

int main(void)
{
	struct track t;
	int i, rc = 0;

	A = slab_arena_create(0);
	plan(54);
	track_init(&t);
	ok(track_idle(&t), "fresh tracker is idle");

	req(&t, "Q");
	ok(!track_idle(&t) && track_busy(&t), "simple query in flight");
	rep(&t, "TDC");
	ok(!track_idle(&t), "results before ReadyForQuery: not idle");
	ok(rep(&t, "ZI") & TRACK_EV_READY, "ReadyForQuery reported");
	ok(track_idle(&t), "simple query answered: idle");

	req(&t, "Q");
	rep(&t, "CZT");
	ok(!track_idle(&t) && t.txn == 'T', "BEGIN: in a transaction, not idle");
	req(&t, "Q");
	rep(&t, "CZI");
	ok(track_idle(&t), "COMMIT: idle again");

	/* extended protocol, one statement */
	req(&t, "PBDES");
	rep(&t, "12TDC");
	ok(!track_idle(&t), "extended results before ReadyForQuery");
	rep(&t, "ZI");
	ok(track_idle(&t), "P/B/D/E/S answered: idle");

	/* defect 3: Flush without Sync leaves an implicit transaction */
	req(&t, "PBEH");
	rep(&t, "12C");
	ok(t.n == 0 && !track_idle(&t) && (t.flags & TRACK_F_UNSYNCED),
			"Flush without Sync: every reply in, still not idle");
	req(&t, "S");
	rep(&t, "ZI");
	ok(track_idle(&t), "the Sync ends it");

	/* defect 4: a Query and an extended pipeline in one write */
	req(&t, "QPBES");
	rep(&t, "TDCZI");
	ok(!track_idle(&t) && t.n_ready == 1, "ReadyForQuery of the Q: the pipeline is still owed");
	rep(&t, "12CZI");
	ok(track_idle(&t), "pipeline answered: idle");

	/* error mid-pipeline: the backend skips to Sync */
	req(&t, "PBEPBES");
	rep(&t, "12E");
	ok(t.n == 1 && t.n_ready == 1, "error drops the requests up to the Sync");
	rep(&t, "ZI");
	ok(track_idle(&t), "Sync after an error: idle");

	/* error with no Sync queued: the backend skips until one comes */
	req(&t, "PBE");
	rep(&t, "E");
	ok(!track_idle(&t) && (t.flags & TRACK_F_SKIP), "skipping until Sync");
	req(&t, "PBEH");
	ok(t.n == 0, "skipped messages owe nothing");
	req(&t, "S");
	rep(&t, "ZI");
	ok(track_idle(&t), "the Sync ends the skip");

	/* simple-query COPY FROM STDIN */
	req(&t, "Q");
	rep(&t, "G");
	ok(t.flags & TRACK_F_COPY_IN, "copy-in started");
	req(&t, "ddd");
	req(&t, "c");
	ok(!(t.flags & TRACK_F_COPY_IN), "CopyDone ends copy-in");
	rep(&t, "CZI");
	ok(track_idle(&t), "simple COPY done: idle");

	/* defect 8: libpq's extended COPY FROM STDIN: Sync after Execute
	 * (ignored by the backend) and another after CopyDone */
	req(&t, "PBDES");
	rep(&t, "12nG");
	ok(t.n == 1 && t.n_ready == 0 && (t.flags & TRACK_F_COPY_IN),
			"the pipelined Sync is ignored in copy-in");
	req(&t, "dd");
	req(&t, "cS");
	rep(&t, "CZI");
	ok(track_idle(&t), "extended COPY done: idle, nothing owed");

	/* COPY with the data and CopyDone pipelined before CopyInResponse */
	req(&t, "Qddc");
	rep(&t, "G");
	ok(!(t.flags & TRACK_F_COPY_IN), "pipelined CopyDone ends the copy");
	rep(&t, "CZI");
	ok(track_idle(&t), "pipelined COPY: idle");

	/* CopyFail in extended copy-in: error, skip to the client's Sync */
	req(&t, "PBES");
	rep(&t, "12G");
	req(&t, "df");
	rep(&t, "E");
	ok(!track_idle(&t), "CopyFail error: waiting for the Sync");
	req(&t, "S");
	rep(&t, "ZI");
	ok(track_idle(&t), "CopyFail then Sync: idle");

	/* COPY TO STDOUT */
	req(&t, "Q");
	rep(&t, "HdddcCZI");
	ok(track_idle(&t), "copy-out: idle");

	/* a COPY that fails before it starts (aborted transaction): the
	 * pipelined CopyDone was ignored */
	req(&t, "Qddc");
	rep(&t, "EZE");
	ok(t.n == 0 && t.txn == 'E', "failed COPY: its CopyDone owes nothing");
	req(&t, "Q");
	rep(&t, "CZI");

	/* a CopyDone with no COPY in sight is ignored by the backend */
	req(&t, "c");
	ok(track_idle(&t), "stray CopyDone owes nothing");

	/* a reply nobody asked for */
	rep(&t, "ZI");
	ok(t.flags & TRACK_F_DESYNC, "unexpected ReadyForQuery: desynchronised");
	ok(!track_idle(&t), "a desynchronised backend is never idle");
	track_reset(&t, A);
	ok(track_idle(&t), "reset");

	/* a deep pipeline grows past the inline ring and shrinks back */
	for (i = 0; i < 1000; i++)
		rc |= track_req(&t, A, 'Q');
	ok(rc == 0 && t.n == 1000 && t.n_ready == 1000, "1000 pipelined queries tracked");
	for (i = 0; i < 1000; i++)
		rep(&t, "CZI");
	ok(track_idle(&t), "1000 answers: idle");
	track_reset(&t, A);
	for (i = 0, rc = 0; i < (int)TRACK_MAX + 1 && rc == 0; i++)
		rc = track_req(&t, A, 'P');
	ok(rc == -E2BIG && t.n == TRACK_MAX, "past TRACK_MAX the pipeline is refused");
	/* found by fuzz_track: a refused request is not forwarded, so it must
	 * leave the flags alone; a refused Sync cleared UNSYNCED, and a drain
	 * could then send no ROLLBACK/Sync and pool a backend still inside the
	 * client's implicit transaction */
	rc = track_req(&t, A, 'S');
	ok(rc == -E2BIG && t.n == TRACK_MAX && t.flags == TRACK_F_UNSYNCED,
			"a Sync refused at TRACK_MAX leaves the backend unsynced");
	track_reset(&t, A);
	for (i = 0, rc = 0; i < (int)TRACK_MAX && rc == 0; i++)
		rc = track_req(&t, A, 'S');
	rc = track_req(&t, A, 'E');
	ok(rc == -E2BIG && t.n == TRACK_MAX && t.flags == 0,
			"an Execute refused at TRACK_MAX does not mark the backend unsynced");
	track_reset(&t, A);

	/* found by fuzz_track: a COPY with the deepest pipeline of Syncs behind
	 * it (taken off in one pass since; it was quadratic, 3 s of one core);
	 * then the same with a pipelined CopyDone and with a Query behind them */
	req(&t, "Q");
	for (i = 0, rc = 0; i < (int)TRACK_MAX - 1; i++)
		rc |= track_req(&t, A, 'S');
	rep(&t, "G");
	ok(rc == 0 && t.n == 1 && t.n_ready == 1 && t.flags == TRACK_F_COPY_IN,
			"65,535 pipelined Syncs dropped at CopyInResponse");
	req(&t, "c");
	rep(&t, "CZI");
	ok(track_idle(&t), "deep COPY pipeline: idle");
	req(&t, "Q");
	for (i = 0; i < 1000; i++)
		track_req(&t, A, 'S');
	req(&t, "cQ");
	rep(&t, "G");
	ok(t.n == 2 && t.n_ready == 2 && t.flags == 0, "Syncs and the CopyDone dropped, Query kept");
	rep(&t, "CZICZI");
	ok(track_idle(&t), "then idle");
	req(&t, "ESSSQ");
	rep(&t, "G");
	ok((t.flags & TRACK_F_DESYNC) && t.n == 2 && t.n_ready == 1,
			"a Query behind the Syncs in copy-in: Syncs dropped, desynchronised");
	track_reset(&t, A);

	/* replication connections: IDENTIFY_SYSTEM, START_REPLICATION
	 * (CopyBoth; either side ends it first, a timeline result set may
	 * follow), BASE_BACKUP (result sets around a CopyOut) */
	req(&t, "Q");
	rep(&t, "TDCZI");
	ok(track_idle(&t), "IDENTIFY_SYSTEM: idle");
	req(&t, "Q");
	rep(&t, "Wdd");
	req(&t, "dd");
	ok(t.n == 1 && t.flags == TRACK_F_COPY_IN, "START_REPLICATION: both ways copying");
	req(&t, "c");
	rep(&t, "dcTDCCZI");
	ok(track_idle(&t), "client's CopyDone, then the server's and a timeline result: idle");
	req(&t, "Q");
	rep(&t, "Wdc");
	req(&t, "dc");
	rep(&t, "TDCCZI");
	ok(track_idle(&t), "server ends the stream first: idle");
	req(&t, "Q");
	rep(&t, "WdE");
	req(&t, "dc");
	rep(&t, "ZI");
	ok(track_idle(&t), "stream failed with an error: CopyData after it ignored, idle");
	req(&t, "Q");
	rep(&t, "TDCHdddcTDCCZI");
	ok(track_idle(&t), "BASE_BACKUP: idle");
	req(&t, "PBES");
	rep(&t, "12W");
	ok(t.flags & TRACK_F_DESYNC, "CopyBothResponse to an extended query: desynchronised");
	track_reset(&t, A);
	/* prepared-statement kinds: answered by 1 or 3, settled in order */
	track_init(&t);
	t.settle = on_settle;
	req(&t, "xpBES");
	rep(&t, "3");
	ok(track_head(&t) == 'p', "injected Close answered; injected Parse next");
	rep(&t, "12CZI");
	ok(track_idle(&t) && strcmp(settled, "++") == 0, "x p answered and settled");
	req(&t, "pnBESkyS");
	rep(&t, "EZI");
	ok(strcmp(settled, "++--") == 0 && track_busy(&t), "error: injected and named Parse settled as failed");
	rep(&t, "33ZI");
	ok(track_idle(&t) && strcmp(settled, "++--++") == 0, "stand-in Close and client Close answered by 3");
	track_reset(&t, A);
	slab_arena_destroy(A);
	return tap_exit_status();
}
