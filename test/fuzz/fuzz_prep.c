/* fuzz_prep.c -- prepared statements: message bodies, the registry's plans, the rewriters.
 *
 * First the whole input goes, as one message body, through
 * prep_parse_body(), prep_bind_body(), prep_sql_classify() and
 * prep_tag_classify(): every length read off the wire must be checked
 * (libFuzzer's buffer is exactly the input, so ASan sees any over-read).
 *
 * Then it is a script for two clients and two servers sharing a registry
 * in a fresh arena.  Byte 0: max_prepared_statements - 1 (low 2 bits, so
 * 1..4, which forces eviction).  Then steps: an op byte, a length byte L
 * and L body bytes (fewer at the end), each body copied to a buffer of its
 * exact size.  Op low 3 bits:
 *
 *   0 Parse body     bit 3 client, bit 4 server, bit 5 ctx, bit 6 sure
 *   1 Bind body      bit 3 client, bit 4 server
 *   2 Describe body  ('S' name NUL, as prepwire checks it)  bits as Bind
 *   3 Close body     ('S' name NUL)  bits as Bind
 *   4 settle         bit 3 answered, bit 4 server, bits 5-7 repeat - 1
 *   5 Sync           bit 4 server
 *   6 reset          bits 3-4: 0 DISCARD ALL (client_clear), 1 the
 *                    backend's DEALLOCATE ALL (server_forget_all), 2 a new
 *                    backend (server_clear, init), 3 a new client; bit 5
 *                    which one
 *   7 classify body  prep_sql_classify, prep_tag_classify; an SQL
 *                    DEALLOCATE in it runs (step_sql)
 *
 * Every plan's messages are written, as prepwire does, into buffers of
 * exactly the _len() size and parsed back: the name is the statement's
 * server name, the text and types are the registry's, a Bind keeps its
 * portal and parameters.  After each step: no server holds more than max
 * statements, the LRU lists, pending FIFOs and client lists agree with
 * their counts and with the registry's.  At the end the clients and
 * servers are cleared: no statement, name or record is left, and every
 * slab cache of the arena but the registry's own is empty (SLAB_DEBUG
 * red zones and double-free checks hold throughout).
 */
#include <errno.h>
#include <stdbool.h>

#include "fuzz.h"
#include "prep.h"
#include "proto.h"
#include "slab.h"

#define ARENA_BYTES (16u << 20)

struct world {
	struct prep_reg *r;
	struct prep_client c[2];
	struct prep_server s[2];
	int max;
	uint64_t next_id;
};

static uint8_t *dup_exact(const uint8_t *p, size_t n)
{
	uint8_t *b = malloc(n ? n : 1);

	if (b == NULL)
		abort();
	if (n)
		memcpy(b, p, n);
	return b;
}

static void parse_any(const uint8_t *d, size_t n)
{
	const char *name, *portal;
	const uint8_t *key, *rest;
	uint32_t kl, rl;
	enum prep_sql k;

	if (prep_parse_body(d, (uint32_t)n, &name, &key, &kl)) {
		FUZZ_ASSERT(fuzz_str_within(name, d, n));
		FUZZ_ASSERT(key >= d && kl <= n && key + kl == d + n);
		FUZZ_ASSERT(fuzz_str_within((const char *)key, d, n));
		FUZZ_ASSERT(kl >= 3);
	}
	if (prep_bind_body(d, (uint32_t)n, &portal, &name, &rest, &rl)) {
		FUZZ_ASSERT(fuzz_str_within(portal, d, n) && fuzz_str_within(name, d, n));
		FUZZ_ASSERT(rest >= d && rest + rl == d + n);
	}
	k = prep_sql_classify(d, (uint32_t)n);
	FUZZ_ASSERT(k <= PREP_SQL_UNSURE);
	FUZZ_ASSERT(n > 0 || k == PREP_SQL_OTHER);
	k = prep_tag_classify(d, (uint32_t)n);
	FUZZ_ASSERT(k == PREP_SQL_OTHER || k == PREP_SQL_PREPARE || k == PREP_SQL_RESET ||
			k == PREP_SQL_DEALLOC);
	{
		char nm[PREP_NAME_MAX + 1];

		if (prep_sql_dealloc_name(d, (uint32_t)n, nm)) {
			size_t l = strlen(nm);

			FUZZ_ASSERT(l >= 1 && l <= PREP_NAME_MAX);
			/* prepwire asks only of a whole Query classified PREPARE */
			FUZZ_ASSERT(memchr(d, 0, n) == NULL ||
					prep_sql_classify(d, (uint32_t)n) == PREP_SQL_PREPARE);
		}
	}
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A Close S of <st> (PGSLAB_0 when NULL), written and read back. */
static void check_close(const struct prep_stmt *st)
{
	size_t len = prep_close_len(st);
	uint8_t *b = malloc(len);
	char nm[PREP_SERVER_NAME_MAX];

	if (b == NULL)
		abort();
	FUZZ_ASSERT(prep_write_close(st, b) == len);
	prep_server_name(st, nm);
	FUZZ_ASSERT(b[0] == 'C' && be32(b + 1) == len - 1);
	FUZZ_ASSERT(b[PROTO_HDR_LEN] == 'S' && b[len - 1] == 0);
	FUZZ_ASSERT(strcmp((const char *)b + PROTO_HDR_LEN + 1, nm) == 0);
	free(b);
}

/* A Parse of <st>, written and parsed back. */
static void check_parse(const struct prep_stmt *st)
{
	size_t len = prep_parse_len(st);
	uint8_t *b = malloc(len);
	char nm[PREP_SERVER_NAME_MAX];
	const char *name;
	const uint8_t *key;
	uint32_t kl;

	if (b == NULL)
		abort();
	FUZZ_ASSERT(prep_write_parse(st, b) == len);
	prep_server_name(st, nm);
	FUZZ_ASSERT(b[0] == 'P' && be32(b + 1) == len - 1);
	FUZZ_ASSERT(prep_parse_body(b + PROTO_HDR_LEN, (uint32_t)(len - PROTO_HDR_LEN), &name, &key,
			&kl));
	FUZZ_ASSERT(strcmp(name, nm) == 0);
	FUZZ_ASSERT(kl == st->key_len && memcmp(key, st->key, kl) == 0);
	free(b);
}

/* A Bind ('B') or Describe ('D') of <st>, written and read back. */
static void check_rewrite(uint8_t type, const char *portal, const struct prep_stmt *st,
		const uint8_t *rest, uint32_t rest_len)
{
	size_t len = prep_rewrite_len(type, portal, st, rest_len);
	uint8_t *b = malloc(len);
	char nm[PREP_SERVER_NAME_MAX];
	const char *p2, *n2;
	const uint8_t *r2;
	uint32_t rl2;

	if (b == NULL)
		abort();
	FUZZ_ASSERT(prep_write_rewrite(type, portal, st, rest, rest_len, b) == len);
	prep_server_name(st, nm);
	FUZZ_ASSERT(b[0] == type && be32(b + 1) == len - 1);
	if (type == 'D') {
		FUZZ_ASSERT(b[PROTO_HDR_LEN] == 'S' && b[len - 1] == 0);
		FUZZ_ASSERT(strcmp((const char *)b + PROTO_HDR_LEN + 1, nm) == 0);
	} else {
		FUZZ_ASSERT(prep_bind_body(b + PROTO_HDR_LEN, (uint32_t)(len - PROTO_HDR_LEN), &p2,
				&n2, &r2, &rl2));
		FUZZ_ASSERT(strcmp(p2, portal) == 0 && strcmp(n2, nm) == 0);
		FUZZ_ASSERT(rl2 == rest_len && (rest_len == 0 || memcmp(r2, rest, rest_len) == 0));
	}
	free(b);
}

/* Write plan <pl> for a client message of <type> as prepwire's send_plan does. */
static void check_plan(const struct prep_plan *pl, uint8_t type, const char *portal,
		const uint8_t *rest, uint32_t rest_len)
{
	unsigned i;

	FUZZ_ASSERT(pl->n >= 1 && pl->n <= 4);
	for (i = 0; i < pl->n; i++) {
		const struct prep_op *o = &pl->op[i];

		switch (o->kind) {
		case PREP_OP_CLOSE_EVICT: {
			const struct prep_pend *pd = o->pend;
			uint32_t j;

			FUZZ_ASSERT(o->track == 'x' && o->count >= 1 && pd && o->stmt == pd->stmt);
			for (j = 0; j < o->count; j++, pd = pd->next) {
				FUZZ_ASSERT(pd && pd->kind == PREP_P_EVICT && pd->stmt->refs > 0);
				check_close(pd->stmt);
			}
			break;
		}
		case PREP_OP_PARSE_INJECT:
			FUZZ_ASSERT(o->track == 'p' && o->stmt && o->stmt->refs > 0);
			check_parse(o->stmt);
			break;
		case PREP_OP_PARSE:
			FUZZ_ASSERT(type == 'P' && o->track == 'n' && o->stmt && o->stmt->refs > 0);
			check_parse(o->stmt);
			break;
		case PREP_OP_PARSE_HAVE:
			FUZZ_ASSERT(type == 'P' && o->track == 'k' && i == pl->n - 1);
			check_close(NULL);
			break;
		case PREP_OP_REWRITE:
			FUZZ_ASSERT((type == 'B' || type == 'D') && o->track == 0);
			FUZZ_ASSERT(i == pl->n - 1);
			FUZZ_ASSERT(o->stmt && o->stmt->refs > 0 && o->stmt->n_servers > 0);
			check_rewrite(type, portal, o->stmt, rest, rest_len);
			break;
		case PREP_OP_CLOSE_NONE:
			FUZZ_ASSERT(type == 'C' && (o->track == 'C' || o->track == 'y'));
			FUZZ_ASSERT(pl->n == 1);
			check_close(NULL);
			break;
		default:
			FUZZ_ASSERT(!"unknown plan op");
		}
	}
}

struct sums {
	uint64_t n, servers, clients;
};

static void stmt_visit(const struct prep_stmt *st, void *arg)
{
	struct sums *s = arg;

	FUZZ_ASSERT(st->refs > 0 && st->key_len >= 3 && st->key_len <= st->key_cap);
	FUZZ_ASSERT(st->refs >= st->n_servers + st->n_clients);
	s->n++;
	s->servers += st->n_servers;
	s->clients += st->n_clients;
}

static void check_world(const struct world *w)
{
	struct prep_stats st;
	struct sums sums = { 0, 0, 0 };
	uint64_t smaps = 0, cnames = 0;
	int i;

	for (i = 0; i < 2; i++) {
		const struct prep_server *ps = &w->s[i];
		const struct prep_pend *pd, *last = NULL;

		/* one over max after an eviction the backend skipped (prep.h) */
		FUZZ_ASSERT(ps->n == list_count(&ps->lru) && ps->n <= (uint32_t)w->max + 1);
		for (pd = ps->ph; pd; pd = pd->next) {
			FUZZ_ASSERT(pd->kind <= PREP_P_SQL_DEALLOC && pd->stmt && pd->stmt->refs > 0);
			last = pd;
		}
		FUZZ_ASSERT(ps->pt == last);
		smaps += ps->n;
		FUZZ_ASSERT(w->c[i].n <= list_count(&w->c[i].maps));
		cnames += w->c[i].n;
	}
	prep_reg_stats(w->r, &st);
	FUZZ_ASSERT(st.smaps == smaps && st.cmaps == cnames);
	prep_reg_foreach(w->r, stmt_visit, &sums);
	FUZZ_ASSERT(sums.n == st.stmts && sums.servers == smaps && sums.clients >= cnames);
}

static void step_message(struct world *w, uint8_t opb, const uint8_t *body, uint32_t len)
{
	struct prep_client *pc = &w->c[(opb >> 3) & 1];
	struct prep_server *ps = &w->s[(opb >> 4) & 1];
	const char *name, *portal = "";
	const uint8_t *key, *rest = NULL;
	uint32_t kl, rest_len = 0;
	struct prep_plan pl;
	uint8_t type;
	int rc;

	switch (opb & 7) {
	case 0:
		if (!prep_parse_body(body, len, &name, &key, &kl) || name[0] == 0)
			return;
		rc = prep_plan_parse(w->r, pc, ps, w->max, name, key, kl, (opb >> 5) & 1,
				(opb >> 6) & 1, &pl);
		FUZZ_ASSERT(rc == 0 || rc == -EAGAIN);
		if (rc == 0)
			check_plan(&pl, 'P', "", NULL, 0);
		return;
	case 1:
		type = 'B';
		if (!prep_bind_body(body, len, &portal, &name, &rest, &rest_len))
			return;
		break;
	default: /* 2, 3 */
		type = (opb & 7) == 2 ? 'D' : 'C';
		if (len < 2 || body[0] != 'S' || body[len - 1] != 0)
			return;
		name = (const char *)body + 1;
		break;
	}
	if (name[0] == 0)
		return;
	if (type == 'C')
		rc = prep_plan_close(w->r, pc, ps, name, &pl);
	else
		rc = prep_plan_use(w->r, pc, ps, w->max, name, (opb >> 5) & 1, &pl);
	FUZZ_ASSERT(rc == 0 || rc == -EAGAIN || (rc == -ENOENT && type != 'C'));
	if (rc == 0)
		check_plan(&pl, type, portal, rest, rest_len);
}

/* An SQL DEALLOCATE <name> in the body: sent when the server owes nothing
 * (as prepwire waits for), then, by bits 5-7, its PREPARE tag, its end
 * with or without the DEALLOCATE tag, or neither (a later settle or
 * ReadyForQuery ends it). */
static void step_sql(struct world *w, uint8_t opb, const uint8_t *body, uint32_t len)
{
	struct prep_client *pc = &w->c[(opb >> 3) & 1];
	struct prep_server *ps = &w->s[(opb >> 4) & 1];
	char nm[PREP_NAME_MAX + 1];
	uint32_t n0 = pc->n;
	int rc;

	if (!prep_sql_dealloc_name(body, len, nm) || ps->ph != NULL)
		return;
	rc = prep_sql_dealloc(w->r, pc, ps, nm);
	FUZZ_ASSERT(rc == 0 || rc == 1);
	FUZZ_ASSERT(rc == 0 || (prep_server_sql_pending(ps) && pc->n == n0 - 1));
	if (rc == 0)
		return;
	if (opb & 0x20)
		ps->ph->held = true;
	if (opb & 0x40) {
		prep_server_sql_end(w->r, ps, opb & 0x80);
		FUZZ_ASSERT(!prep_server_sql_pending(ps));
		FUZZ_ASSERT(pc->n == ((opb & 0x80) ? n0 - 1 : n0));
	}
}

static void step_reset(struct world *w, uint8_t opb)
{
	int which = (opb >> 5) & 1;

	switch ((opb >> 3) & 3) {
	case 0:
		prep_client_clear(w->r, &w->c[which]);
		FUZZ_ASSERT(w->c[which].n == 0);
		break;
	case 1:
		prep_server_forget_all(w->r, &w->s[which]);
		FUZZ_ASSERT(w->s[which].n == 0 && list_empty(&w->s[which].lru));
		break;
	case 2:
		prep_server_clear(w->r, &w->s[which]);
		FUZZ_ASSERT(w->s[which].n == 0 && w->s[which].ph == NULL);
		prep_server_init(&w->s[which], ++w->next_id);
		break;
	default:
		prep_client_clear(w->r, &w->c[which]);
		prep_client_init(&w->c[which], ++w->next_id);
		break;
	}
}

static void cache_empty(const struct slab_stats *st, void *arg)
{
	(void)arg;
	if (strcmp(st->name, "prep_registry") == 0)
		FUZZ_ASSERT(st->active_objs == 1);
	else if (st->active_objs != 0)
		fprintf(stderr, "slab cache %s: %llu objects left\n", st->name,
				(unsigned long long)st->active_objs);
	FUZZ_ASSERT(strcmp(st->name, "prep_registry") == 0 || st->active_objs == 0);
}

static void run_script(const uint8_t *d, size_t n)
{
	struct slab_arena *a = slab_arena_create(ARENA_BYTES);
	struct prep_stats st;
	struct world w;
	size_t off = 1;
	int i;

	if (a == NULL || n == 0)
		abort();
	memset(&w, 0, sizeof(w));
	w.r = prep_reg_create(a);
	FUZZ_ASSERT(w.r != NULL);
	w.max = (d[0] & 3) + 1;
	w.next_id = 1000;
	for (i = 0; i < 2; i++) {
		prep_client_init(&w.c[i], (uint64_t)i + 1);
		prep_server_init(&w.s[i], (uint64_t)i + 101);
	}
	while (off < n) {
		uint8_t opb = d[off++], *body;
		size_t len = off < n ? d[off++] : 0;
		int k;

		if (len > n - off)
			len = n - off;
		body = dup_exact(d + off, len);
		off += len;
		switch (opb & 7) {
		case 4:
			for (k = 0; k <= opb >> 5; k++)
				prep_server_settle(w.r, &w.s[(opb >> 4) & 1], (opb >> 3) & 1);
			break;
		case 5:
			prep_server_sync(&w.s[(opb >> 4) & 1]);
			break;
		case 6:
			step_reset(&w, opb);
			break;
		case 7:
			parse_any(body, len);
			step_sql(&w, opb, body, (uint32_t)len);
			break;
		default:
			step_message(&w, opb, body, (uint32_t)len);
		}
		free(body);
		check_world(&w);
	}
	for (i = 0; i < 2; i++) {
		prep_client_clear(w.r, &w.c[i]);
		prep_server_clear(w.r, &w.s[i]);
	}
	prep_reg_stats(w.r, &st);
	FUZZ_ASSERT(st.stmts == 0 && st.cmaps == 0 && st.smaps == 0 && st.key_bytes == 0);
	prep_reg_destroy(w.r);
	slab_arena_foreach(a, cache_empty, NULL);
	slab_arena_destroy(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	parse_any(data, size);
	if (size > 0)
		run_script(data, size);
	return 0;
}
