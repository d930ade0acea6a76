/* t_prep.c -- the prepared-statement registry, client names and server sets. */
#include <errno.h>
#include <string.h>

#include "prep.h"
#include "slab.h"
#include "tap.h"
#include "testutil.h"

static struct slab_arena *A;
static struct prep_reg *R;

/* query\0 + int16 0 (no parameter types) */
static uint32_t key_of(const char *q, uint8_t *buf)
{
	size_t n = strlen(q) + 1;

	memcpy(buf, q, n);
	buf[n] = buf[n + 1] = 0;
	return (uint32_t)n + 2;
}

static int parse(struct prep_client *pc, struct prep_server *ps, int max, const char *name,
		const char *q, struct prep_plan *pl)
{
	uint8_t key[256];
	uint32_t kl = key_of(q, key);

	return prep_plan_parse(R, pc, ps, max, name, key, kl, 0, true, pl);
}

/* One letter per message: a run of <count> Closes shows as that many x. */
static const char *kinds(const struct prep_plan *pl)
{
	static char s[64];
	unsigned i, j, k = 0;

	for (i = 0; i < pl->n; i++)
		for (j = 0; j < pl->op[i].count && k < sizeof(s) - 1; j++)
			s[k++] = "xpPkRC"[pl->op[i].kind];
	s[k] = 0;
	return s;
}

/* Does <pc>'s name <name> map to text <q>? */
static bool cmap_stmt_is(struct prep_client *pc, const char *name, const char *q)
{
	struct list *it;

	list_for_each(it, &pc->maps) {
		const struct prep_cmap *m = list_entry(it, struct prep_cmap, node);

		if (m->linked && strcmp(m->name, name) == 0)
			return strcmp((const char *)m->stmt->key, q) == 0;
	}
	return false;
}

/* Answer every pending record of <ps> (true) or fail them all. */
static void settle_all(struct prep_server *ps, bool answered)
{
	while (ps->ph)
		prep_server_settle(R, ps, answered);
}

int main(void)
{
	struct prep_client c1, c2;
	struct prep_server s1, s2;
	struct prep_plan pl;
	struct prep_stats st;
	uint8_t buf[512];
	const char *name, *portal;
	const uint8_t *key, *rest;
	uint32_t kl, rl;
	size_t n;

	plan(102);
	A = slab_arena_create(0);
	R = prep_reg_create(A);
	ok(R != NULL, "registry created");
	prep_client_init(&c1, 101);
	prep_client_init(&c2, 102);
	prep_server_init(&s1, 201);
	prep_server_init(&s2, 202);

	/* a fresh Parse is sent as Parse of PGSLAB_<id> */
	is_int(parse(&c1, &s1, 2, "a", "SELECT 1", &pl), 0, "parse a");
	is_str(kinds(&pl), "P", "fresh name, backend lacks it: Parse");
	ok(c1.n == 1 && s1.n == 1, "client has the name, server the statement");
	n = prep_write_parse(pl.op[0].stmt, buf);
	ok(n == prep_parse_len(pl.op[0].stmt) && buf[0] == 'P' &&
			strcmp((char *)buf + 5, "PGSLAB_1") == 0 &&
			strcmp((char *)buf + 14, "SELECT 1") == 0, "Parse written with the server name");
	ok(prep_parse_body(buf + 5, (uint32_t)n - 5, &name, &key, &kl) && strcmp(name, "PGSLAB_1") == 0 &&
			kl == 11, "the written Parse parses back");
	settle_all(&s1, true);

	/* the same text from another client: same statement, backend has it */
	is_int(parse(&c2, &s1, 2, "other", "SELECT 1", &pl), 0, "parse other");
	is_str(kinds(&pl), "k", "backend holds the text: a stand-in Close");
	settle_all(&s1, true);
	prep_reg_stats(R, &st);
	ok(st.stmts == 1 && st.cmaps == 2 && st.smaps == 1, "one statement, two names, one server record");
	ok(st.parses == 2 && st.hits == 1 && st.misses == 1 && st.server_hits == 1 &&
			st.server_misses == 1 && st.injects == 0,
			"figures: one registry hit and miss, one server hit (stand-in Close) and miss");

	/* the same name again: 42P05 from the backend itself */
	is_int(parse(&c1, &s2, 2, "a", "SELECT 2", &pl), 0, "duplicate parse planned");
	is_str(kinds(&pl), "pP", "duplicate on a backend lacking it: inject, then the failing Parse");
	settle_all(&s2, false); /* the inject was answered... */
	ok(c1.n == 1, "a failing duplicate keeps the name");

	/* Bind on a backend that lacks it: inject */
	is_int(prep_plan_use(R, &c1, &s2, 2, "a", 0, &pl), 0, "use a on s2");
	ok(pl.n == 2 && pl.op[0].kind == PREP_OP_PARSE_INJECT && pl.op[1].kind == PREP_OP_REWRITE,
			"missing on the backend: injected Parse then the rewritten Bind");
	settle_all(&s2, true);
	prep_reg_stats(R, &st);
	ok(st.binds == 1 && st.injects == 2 && st.server_misses == 3 && st.server_hits == 1,
			"figures: the duplicate's and the Bind's injected Parses are server misses");
	is_int(prep_plan_use(R, &c1, &s2, 2, "a", 0, &pl), 0, "use a on s2 again");
	prep_reg_stats(R, &st);
	ok(pl.n == 1 && st.server_hits == 2 && st.injects == 2, "figures: a Bind the backend can serve is a server hit");
	settle_all(&s2, true);
	is_int(prep_plan_use(R, &c1, &s2, 2, "a", 0, &pl), 0, "use a on s2 again");
	is_str(kinds(&pl), "R", "present: only the rewrite");
	n = prep_write_rewrite('B', "portal", pl.op[0].stmt, (const uint8_t *)"\0\0\0\0\0\0", 6, buf);
	ok(n == prep_rewrite_len('B', "portal", pl.op[0].stmt, 6) &&
			prep_bind_body(buf + 5, (uint32_t)n - 5, &portal, &name, &rest, &rl) &&
			strcmp(portal, "portal") == 0 && strcmp(name, "PGSLAB_1") == 0 && rl == 6,
			"rewritten Bind keeps portal and parameters");
	is_int(prep_plan_use(R, &c1, &s2, 2, "nosuch", 0, &pl), -ENOENT,
			"use of an unknown name: -ENOENT (the caller closes the client, as PgBouncer)");

	/* eviction past max = 2 */
	is_int(parse(&c1, &s2, 2, "b", "SELECT 'b'", &pl), 0, "parse b on s2");
	settle_all(&s2, true);
	is_int(parse(&c1, &s2, 2, "c", "SELECT 'c'", &pl), 0, "parse c on s2");
	is_str(kinds(&pl), "xP", "a third statement evicts the least recently used");
	ok(s2.n == 2, "server set stays at max");
	settle_all(&s2, true);
	ok(!(s2.flags & PREP_SV_LOST), "answered eviction: backend trusted");
	is_int(prep_plan_use(R, &c1, &s2, 2, "a", 0, &pl), 0, "use a (evicted)");
	is_str(kinds(&pl), "xpR", "evicted statement re-prepared, evicting another");
	settle_all(&s2, false);
	ok(!(s2.flags & PREP_SV_LOST), "a skipped eviction of a held statement: the set stays trusted");
	ok(s2.n == 2, "the evicted statement is back (the backend kept it), the skipped Parse is not");
	/* evicting a statement whose own Parse is unanswered, and both skipped:
	 * what the backend holds is not known */
	is_int(parse(&c1, &s2, 2, "d", "SELECT 'd'", &pl), 0, "parse d on s2");
	is_str(kinds(&pl), "xP", "d evicts a held statement");
	is_int(prep_plan_use(R, &c1, &s2, 2, "b", 0, &pl), 0, "use b");
	is_str(kinds(&pl), "R", "b held: d, unanswered, is now the least recently used");
	is_int(parse(&c1, &s2, 2, "e", "SELECT 'e'", &pl), 0, "parse e on s2");
	is_str(kinds(&pl), "xP", "e evicts d before d's Parse is answered");
	settle_all(&s2, false);
	ok(s2.flags & PREP_SV_LOST, "that eviction skipped: the backend is not trusted");
	is_int(prep_plan_use(R, &c1, &s2, 2, "b", 0, &pl), 0, "use b on the untrusted backend");
	is_str(kinds(&pl), "xpR", "untrusted: every Parse goes behind a Close of its statement");
	settle_all(&s2, true);

	/* a failed client Parse leaves its name, marked: a Bind prepares the
	 * text again (as PgBouncer), a Parse of the name replaces it */
	is_int(parse(&c2, &s1, 2, "bad", "SELEC oops", &pl), 0, "parse bad");
	settle_all(&s1, false);
	ok(c2.n == 2, "a failed Parse keeps the client's name");
	is_int(prep_plan_use(R, &c2, &s1, 2, "bad", 0, &pl), 0, "use bad");
	is_str(kinds(&pl), "pR", "its Bind re-prepares the text first");
	settle_all(&s1, false);
	is_int(parse(&c2, &s1, 2, "bad", "SELECT 'fixed'", &pl), 0, "parse bad again");
	ok(!pl.dup && pl.n >= 1 && pl.op[pl.n - 1].kind == PREP_OP_PARSE &&
			memcmp(pl.op[pl.n - 1].stmt->key, "SELECT 'fixed'", 15) == 0,
			"a Parse of a failed name replaces it (no 42P05)");
	settle_all(&s1, true);
	ok(c2.n == 2, "one name for it");
	is_int(parse(&c2, &s1, 2, "bad", "SELECT 'again'", &pl), 0, "parse bad once more");
	ok(pl.dup, "a name whose Parse succeeded: a duplicate");
	settle_all(&s1, false);
	is_int(prep_plan_close(R, &c2, &s1, "bad", &pl), 0, "close bad");
	settle_all(&s1, true);
	ok(s1.n == 2, "s1 holds SELECT 1 and the fixed text");

	/* Close: drops only the client's name; skipped Close restores it */
	is_int(prep_plan_close(R, &c2, &s1, "other", &pl), 0, "close other");
	ok(pl.n == 1 && pl.op[0].track == 'y', "close of a known name: stand-in Close with a record");
	ok(c2.n == 0, "name gone at once (a Parse may follow)");
	settle_all(&s1, false);
	ok(c2.n == 1, "skipped Close: the name is back");
	is_int(prep_plan_close(R, &c2, &s1, "other", &pl), 0, "close other again");
	settle_all(&s1, true);
	ok(c2.n == 0 && s1.n == 2, "answered Close: name gone, the backend keeps the statement");
	is_int(prep_plan_close(R, &c2, &s1, "never", &pl), 0, "close of an unknown name");
	ok(pl.n == 1 && pl.op[0].track == 'C', "unknown name: a plain Close, no record");

	/* answers owed from before a Sync make later plans wait */
	is_int(parse(&c2, &s1, 2, "w", "SELECT 'w'", &pl), 0, "parse w");
	prep_server_sync(&s1);
	is_int(prep_plan_use(R, &c2, &s1, 2, "w", 0, &pl), -EAGAIN, "use across a Sync waits");
	settle_all(&s1, true);
	is_int(prep_plan_use(R, &c2, &s1, 2, "w", 0, &pl), 0, "then goes");

	/* standard_conforming_strings: part of the key only for a text with a
	 * backslash; a backend re-preparing under the other value gets that
	 * value's statement */
	settle_all(&s1, true);
	{
		uint8_t kb[256];
		uint32_t klen = key_of("SELECT 'w'", kb);

		is_int(prep_plan_parse(R, &c1, &s1, 2, "w1", kb, klen, 1, true, &pl), 0, "parse w, off");
		is_str(kinds(&pl), "k", "no backslash: the same statement whatever the setting");
		settle_all(&s1, true);
		klen = key_of("SELECT 'a\\b'", kb);
		is_int(prep_plan_parse(R, &c1, &s1, 2, "bs", kb, klen, 0, true, &pl), 0, "parse a backslash text");
		settle_all(&s1, true);
		is_int(prep_plan_use(R, &c1, &s1, 2, "bs", 1, &pl), 0, "use it under off");
		ok(pl.n >= 2 && pl.op[pl.n - 2].kind == PREP_OP_PARSE_INJECT &&
				pl.op[pl.n - 1].stmt == pl.op[pl.n - 2].stmt &&
				pl.op[pl.n - 1].stmt->ctx == 1,
				"under off: that value's statement, injected (the client's stays with on)");
		settle_all(&s1, true);
		is_int(prep_plan_use(R, &c1, &s1, 2, "bs", 0, &pl), 0, "use it under on again");
		ok(pl.op[pl.n - 1].stmt->ctx == 0, "under on: the statement as parsed");
		settle_all(&s1, true);
	}

	/* max_prepared_statements lowered: the next statement evicts down to
	 * it in one run of Closes, least recently used first */
	{
		struct prep_client c3;
		struct prep_server s3;
		char nm[8], q[32];
		int i;

		prep_client_init(&c3, 103);
		prep_server_init(&s3, 203);
		for (i = 0; i < 6; i++) {
			snprintf(nm, sizeof(nm), "m%d", i);
			snprintf(q, sizeof(q), "SELECT 'm%d'", i);
			parse(&c3, &s3, 10, nm, q, &pl);
			settle_all(&s3, true);
		}
		ok(s3.n == 6, "six statements held under max 10");
		is_int(parse(&c3, &s3, 3, "m6", "SELECT 'm6'", &pl), 0, "a seventh with max lowered to 3");
		is_str(kinds(&pl), "xxxxP", "four Closes then the Parse");
		ok(pl.op[0].count == 4 && pl.op[0].stmt == pl.op[0].pend->stmt &&
				memcmp(pl.op[0].pend->stmt->key, "SELECT 'm0'", 11) == 0 &&
				memcmp(pl.op[0].pend->next->next->next->stmt->key, "SELECT 'm3'", 11) == 0,
				"one run, the least recently used first");
		ok(s3.n == 3, "the backend holds max");
		settle_all(&s3, true);
		is_int(parse(&c3, &s3, 2, "m7", "SELECT 'm7'", &pl), 0, "an eighth with max lowered to 2");
		is_str(kinds(&pl), "xxP", "two Closes then the Parse");
		settle_all(&s3, false);
		ok(s3.flags & PREP_SV_LOST,
				"a run of evictions skipped: the set is not known (one over max at most)");
		is_int(prep_plan_use(R, &c3, &s3, 2, "m6", 0, &pl), 0, "use m6 on that backend");
		is_str(kinds(&pl), "xpR", "untrusted: its Parse behind a Close of it");
		settle_all(&s3, true);
		prep_client_clear(R, &c3);
		prep_server_clear(R, &s3);
	}

	/* SQL keywords and tags */
	ok(prep_sql_classify((const uint8_t *)" /* x */ prepare foo AS SELECT 1", 33) ==
			PREP_SQL_PREPARE, "PREPARE after a comment is refused");
	ok(prep_sql_classify((const uint8_t *)"DEALLOCATE PREPARE ALL\0", 23) == PREP_SQL_RESET &&
			prep_sql_classify((const uint8_t *)"discard all;\0", 13) == PREP_SQL_RESET,
			"DEALLOCATE [PREPARE] ALL and DISCARD ALL reset");
	ok(prep_sql_classify((const uint8_t *)"SELECT 'prepare'\0", 17) == PREP_SQL_OTHER &&
			prep_sql_classify((const uint8_t *)"EXECUTEx\0", 9) == PREP_SQL_OTHER &&
			prep_sql_classify((const uint8_t *)"DISCARD PLANS\0", 14) == PREP_SQL_OTHER,
			"other text passes");
	ok(prep_sql_classify((const uint8_t *)"  DEALLO", 8) == PREP_SQL_UNSURE,
			"a text cut inside its keyword is unsure");

	/* SQL DEALLOCATE of a protocol-level name */
	{
		static const struct {
			const char *q;
			const char *want; /* NULL: not taken */
		} dn[] = {
			{ "DEALLOCATE foo", "foo" },
			{ " /* c */ deallocate PREPARE \"A\"\"b\" ; -- end", "A\"b" },
			{ "DEALLOCATE Foo1$x", "foo1$x" },
			{ "DEALLOCATE all", NULL },
			{ "DEALLOCATE \"all\"", "all" },
			{ "DEALLOCATE x; SELECT 1", NULL },
			{ "DEALLOCATE x /* open", NULL },
			{ "DEALLOCATE prepare", NULL },
			{ "DEALLOCATE \"\"", NULL },
			{ "DEALLOCATE \"open", NULL },
			{ "DEALLOCATE \xc3\xa9t\xc3\xa9", NULL },
			{ "DEALLOCATE a\xc3\xa9", NULL },
			{ "DEALLOCATE 1x", NULL },
			{ "EXECUTE x", NULL },
			{ "DEALLOCATE aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", /* 63 */
				"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" },
			{ "DEALLOCATE aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", NULL },
		};
		char nm[PREP_NAME_MAX + 1];
		unsigned i, good = 0;

		for (i = 0; i < sizeof(dn) / sizeof(dn[0]); i++) {
			bool got = prep_sql_dealloc_name((const uint8_t *)dn[i].q,
					(uint32_t)strlen(dn[i].q) + 1, nm);

			if (dn[i].want ? got && strcmp(nm, dn[i].want) == 0 : !got)
				good++;
			else
				diag("prep_sql_dealloc_name(\"%s\"): %s", dn[i].q, got ? nm : "not taken");
		}
		ok(good == i, "SQL DEALLOCATE names: folded, quoted, and what is not taken");
		ok(prep_tag_classify((const uint8_t *)"DEALLOCATE", 11) == PREP_SQL_DEALLOC &&
				prep_tag_classify((const uint8_t *)"DEALLOCATE ALL", 15) == PREP_SQL_RESET,
				"the DEALLOCATE tag");

		is_int(parse(&c2, &s1, 2, "dd", "SELECT 'dd'", &pl), 0, "parse dd");
		settle_all(&s1, true);
		n = c2.n;
		is_int(prep_sql_dealloc(R, &c2, &s1, "nosuch"), 0, "SQL DEALLOCATE of another name: 0");
		is_int(prep_sql_dealloc(R, &c2, &s1, "dd"), 1, "SQL DEALLOCATE dd");
		ok(c2.n == n - 1 && prep_server_sql_pending(&s1), "the name leaves the table, pending");
		prep_server_sql_end(R, &s1, false);
		ok(c2.n == n && !prep_server_sql_pending(&s1) && !(s1.flags & PREP_SV_LOST),
				"ended without its tag: the name is back");
		is_int(prep_sql_dealloc(R, &c2, &s1, "dd"), 1, "SQL DEALLOCATE dd again");
		is_int(parse(&c2, &s1, 2, "dd", "SELECT 'new'", &pl), 0, "a Parse of dd behind it");
		ok(!pl.dup, "the name is free for it (no 42P05)");
		s1.ph->held = true; /* its PREPARE tag came */
		prep_server_sql_end(R, &s1, true);
		ok(c2.n == n && cmap_stmt_is(&c2, "dd", "SELECT 'new'"), "answered: the new dd stays");
		settle_all(&s1, true);
		is_int(prep_sql_dealloc(R, &c2, &s1, "dd"), 1, "SQL DEALLOCATE the new dd");
		s1.ph->held = true;
		is_int(parse(&c2, &s1, 2, "after", "SELECT 'after'", &pl), 0, "a Parse pipelined behind");
		settle_all(&s1, true); /* its Query ended unseen: the Parse's answer ends it */
		ok(!prep_server_sql_pending(&s1) && c2.n == n + 1 && (s1.flags & PREP_SV_LOST),
				"a protocol answer first: the DEALLOCATE failed (dd back), and its PREPARE ran (set unknown)");
		prep_server_clear(R, &s1);
		prep_server_init(&s1, 211);
		prep_plan_close(R, &c2, &s1, "dd", &pl);
		prep_plan_close(R, &c2, &s1, "after", &pl);
		settle_all(&s1, true);
		ok(c2.n == n - 1, "closed again");
	}

	/* a Close still owed when its server goes (server_close): the name
	 * leaves the client's list with its last reference (fuzz_prep) */
	is_int(parse(&c2, &s2, 2, "z", "SELECT 'z'", &pl), 0, "parse z on s2");
	settle_all(&s2, true);
	is_int(prep_plan_close(R, &c2, &s2, "z", &pl), 0, "close z, unanswered");
	prep_server_clear(R, &s2);
	ok(c2.n == 1 && list_count(&c2.maps) == 1, "the server closes: only w is left on the list");

	/* teardown: everything goes back */
	prep_client_clear(R, &c1);
	prep_client_clear(R, &c2);
	settle_all(&s1, true);
	prep_server_clear(R, &s1);
	prep_server_clear(R, &s2);
	prep_reg_stats(R, &st);
	ok(st.stmts == 0 && st.cmaps == 0 && st.smaps == 0 && st.key_bytes == 0,
			"no statement, name or record left");
	prep_reg_destroy(R);
	slab_arena_destroy(A);
	return tap_exit_status();
}
