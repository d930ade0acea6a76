/* admin.c -- the admin console: SHOW and control commands on the pseudo-database. */
#include "proxy.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "proto.h"
#include "slab.h"
#include "sysalloc.h"

/* ---- result sets, written straight into the client's out buffer ---- */

static void rs_header(struct client *c, int n, const char *const *names, const uint32_t *types)
{
	size_t cap = 64;
	uint8_t *buf;
	struct pkt k;
	int i;

	for (i = 0; i < n; i++)
		cap += strlen(names[i]) + 20;
	buf = stream_write_reserve(&c->st, cap);
	if (buf == NULL)
		return;
	pkt_init(&k, buf, cap);
	proto_write_row_desc(&k, n, names, types);
	if (pkt_ok(&k))
		stream_write_commit(&c->st, k.len);
}

static void rs_row(struct client *c, int n, const char *const *vals)
{
	size_t cap = 16;
	uint8_t *buf;
	struct pkt k;
	int i;

	for (i = 0; i < n; i++)
		cap += (vals[i] ? strlen(vals[i]) : 0) + 4;
	buf = stream_write_reserve(&c->st, cap);
	if (buf == NULL)
		return;
	pkt_init(&k, buf, cap);
	proto_write_data_row(&k, n, vals);
	if (pkt_ok(&k))
		stream_write_commit(&c->st, k.len);
}

static void rs_done(struct client *c, const char *tag)
{
	uint8_t buf[128];
	struct pkt k;

	pkt_init(&k, buf, sizeof(buf));
	proto_write_command_complete(&k, tag);
	stream_write(&c->st, buf, k.len);
}

#define T PROTO_OID_TEXT
#define I PROTO_OID_INT8
#define F PROTO_OID_FLOAT8

/* Formatting helpers: values are kept in a small ring of buffers per row. */
struct fmt {
	char buf[32][64];
	int n;
};

static const char *fu(struct fmt *f, unsigned long long v)
{
	char *b = f->buf[f->n++ % 32];

	snprintf(b, 64, "%llu", v);
	return b;
}

static const char *fi(struct fmt *f, long long v)
{
	char *b = f->buf[f->n++ % 32];

	snprintf(b, 64, "%lld", v);
	return b;
}

static const char *ff(struct fmt *f, double v)
{
	char *b = f->buf[f->n++ % 32];

	snprintf(b, 64, "%.4f", v);
	return b;
}

static double rate(uint64_t hits, uint64_t total)
{
	return total ? (double)hits / (double)total : 0.0;
}

/* ---- SHOW commands ---- */

static void show_pools(struct client *c)
{
	static const char *const names[] = { "database", "user", "cl_active", "cl_waiting",
		"cl_active_cancel_req", "cl_waiting_cancel_req", "sv_active", "sv_active_cancel",
		"sv_being_canceled", "sv_idle", "sv_used", "sv_tested", "sv_login", "maxwait",
		"maxwait_us", "pool_mode", "load_balance_hosts", "hits", "misses", "hit_rate" };
	static const uint32_t types[] = { T, T, I, I, I, I, I, I, I, I, I, I, I, I, I, T, T, I, I, F };
	struct proxy *p = proxy_of(&c->st);
	int64_t now = proxy_now_us();
	struct list *it;

	rs_header(c, 20, names, types);
	list_for_each(it, &p->pools) {
		struct pool *pool = list_entry(it, struct pool, node);
		int64_t wait = 0;
		struct fmt f = { .n = 0 };
		const char *v[20];

		if (!list_empty(&pool->waiting))
			wait = now - list_first_entry(&pool->waiting, struct client, node)->wait_start_us;
		v[0] = pool->db->name;
		v[1] = pool->cred->name;
		v[2] = fi(&f, pool->n_clients);
		v[3] = fi(&f, pool->n_waiting);
		v[4] = v[5] = "0";
		v[6] = fi(&f, pool->n_active);
		v[7] = v[8] = "0";
		v[9] = fi(&f, pool->n_idle);
		v[10] = v[11] = "0";
		v[12] = fi(&f, pool->n_login);
		v[13] = fi(&f, wait / 1000000);
		v[14] = fi(&f, wait % 1000000);
		v[15] = config_pool_mode_name(pool->mode);
		v[16] = NULL;
		v[17] = fu(&f, pool->st.hits);
		v[18] = fu(&f, pool->st.misses);
		v[19] = ff(&f, rate(pool->st.hits, pool->st.hits + pool->st.misses));
		rs_row(c, 20, v);
	}
	rs_done(c, "SHOW");
}

static void slab_row(const struct slab_stats *st, void *arg)
{
	struct client *c = arg;
	struct fmt f = { .n = 0 };
	const char *v[15];

	v[0] = st->name;
	v[1] = fu(&f, st->obj_size);
	v[2] = fu(&f, st->objs_per_slab);
	v[3] = fu(&f, st->active_objs);
	v[4] = fu(&f, st->total_objs);
	v[5] = fu(&f, st->slabs);
	v[6] = fu(&f, st->allocs);
	v[7] = fu(&f, st->frees);
	v[8] = fu(&f, st->hits);
	v[9] = fu(&f, st->misses);
	v[10] = ff(&f, rate(st->hits, st->hits + st->misses));
	v[11] = fu(&f, st->grows);
	v[12] = fu(&f, st->reaps);
	v[13] = fu(&f, st->high_water);
	v[14] = fu(&f, st->bytes);
	rs_row(c, 15, v);
}

static void show_slabs(struct client *c)
{
	static const char *const names[] = { "name", "obj_size", "objs_per_slab", "active_objs",
		"total_objs", "slabs", "allocs", "frees", "hits", "misses", "hit_rate", "grows",
		"reaps", "high_water", "bytes" };
	static const uint32_t types[] = { T, I, I, I, I, I, I, I, I, I, F, I, I, I, I };
	struct proxy *p = proxy_of(&c->st);

	rs_header(c, 15, names, types);
	slab_arena_foreach(p->arena, slab_row, c);
	rs_done(c, "SHOW");
}

static void mem_row(const struct slab_stats *st, void *arg)
{
	struct client *c = arg;
	struct fmt f = { .n = 0 };
	const char *v[5];

	v[0] = st->name;
	v[1] = fu(&f, st->obj_size);
	v[2] = fu(&f, st->active_objs);
	v[3] = fu(&f, st->total_objs - st->active_objs);
	v[4] = fu(&f, st->total_objs * st->obj_size);
	rs_row(c, 5, v);
}

static void show_mem(struct client *c)
{
	static const char *const names[] = { "name", "size", "used", "free", "memtotal" };
	static const uint32_t types[] = { T, I, I, I, I };
	struct proxy *p = proxy_of(&c->st);
	struct slab_arena_stats as;
	struct sysalloc_stats ss;
	struct fmt f = { .n = 0 };
	const char *v[5];

	rs_header(c, 5, names, types);
	slab_arena_foreach(p->arena, mem_row, c);
	/* pgslab's own rows: the system allocator counter and arena totals */
	sysalloc_stats_get(&ss);
	slab_arena_stats(p->arena, &as);
	v[0] = "sysalloc_calls";
	v[1] = "0";
	v[2] = fu(&f, sysalloc_calls());
	v[3] = fu(&f, ss.free_calls);
	v[4] = "0";
	rs_row(c, 5, v);
	v[0] = "arena";
	v[1] = fu(&f, SLAB_PAGE_SIZE);
	v[2] = fu(&f, as.used_bytes);
	v[3] = fu(&f, as.mapped_bytes - as.used_bytes);
	v[4] = fu(&f, as.mapped_bytes);
	rs_row(c, 5, v);
	rs_done(c, "SHOW");
}

static void show_stats(struct client *c)
{
	static const char *const names[] = { "database", "total_server_assignment_count",
		"total_xact_count", "total_query_count", "total_received", "total_sent",
		"total_xact_time", "total_query_time", "total_wait_time",
		"total_client_parse_count", "total_server_parse_count", "total_bind_count",
		"total_client_login_count", "avg_server_assignment_count", "avg_xact_count",
		"avg_query_count", "avg_recv", "avg_sent", "avg_xact_time", "avg_query_time",
		"avg_wait_time", "avg_client_parse_count", "avg_server_parse_count",
		"avg_bind_count", "avg_client_login_count" };
	static const uint32_t types[25] = { T, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I, I,
		I, I, I, I, I, I, I };
	struct proxy *p = proxy_of(&c->st);
	struct list *it;

	rs_header(c, 25, names, types);
	list_for_each(it, &p->dbs) {
		struct db *db = list_entry(it, struct db, node);
		struct pool_stats t, a;
		struct list *pi;
		struct fmt f = { .n = 0 };
		const char *v[25];

		if (db->admin)
			continue;
		memset(&t, 0, sizeof(t));
		memset(&a, 0, sizeof(a));
		list_for_each(pi, &p->pools) {
			struct pool *pool = list_entry(pi, struct pool, node);

			if (pool->db != db)
				continue;
#define ADD(x) t.x += pool->st.x, a.x += pool->avg.x
			ADD(server_assignment_count);
			ADD(xact_count);
			ADD(query_count);
			ADD(bytes_recv);
			ADD(bytes_sent);
			ADD(xact_time_us);
			ADD(query_time_us);
			ADD(wait_time_us);
			ADD(client_login_count);
#undef ADD
		}
		v[0] = db->name;
		v[1] = fu(&f, t.server_assignment_count);
		v[2] = fu(&f, t.xact_count);
		v[3] = fu(&f, t.query_count);
		v[4] = fu(&f, t.bytes_recv);
		v[5] = fu(&f, t.bytes_sent);
		v[6] = fu(&f, t.xact_time_us);
		v[7] = fu(&f, t.query_time_us);
		v[8] = fu(&f, t.wait_time_us);
		v[9] = v[10] = v[11] = "0";
		v[12] = fu(&f, t.client_login_count);
		v[13] = fu(&f, a.server_assignment_count);
		v[14] = fu(&f, a.xact_count);
		v[15] = fu(&f, a.query_count);
		v[16] = fu(&f, a.bytes_recv);
		v[17] = fu(&f, a.bytes_sent);
		v[18] = fu(&f, a.xact_time_us);
		v[19] = fu(&f, a.query_time_us);
		v[20] = fu(&f, a.wait_time_us);
		v[21] = v[22] = v[23] = "0";
		v[24] = fu(&f, a.client_login_count);
		rs_row(c, 25, v);
	}
	rs_done(c, "SHOW");
}

static void show_version(struct client *c)
{
	static const char *const names[] = { "version" };
	static const uint32_t types[] = { T };
	const char *v[] = { "pgslab " PGSLAB_VERSION };

	rs_header(c, 1, names, types);
	rs_row(c, 1, v);
	rs_done(c, "SHOW");
}

/* ---- dispatch ---- */

static void lower_words(const char *sql, char *out, size_t cap)
{
	size_t n = 0;

	while (*sql && isspace((unsigned char)*sql))
		sql++;
	for (; *sql && n + 1 < cap; sql++) {
		if (*sql == ';')
			break;
		out[n++] = (char)tolower((unsigned char)*sql);
	}
	while (n > 0 && isspace((unsigned char)out[n - 1]))
		n--;
	out[n] = 0;
}

void admin_query(struct client *c, const char *sql)
{
	struct proxy *p = proxy_of(&c->st);
	char cmd[256];

	lower_words(sql, cmd, sizeof(cmd));
	if (strcmp(cmd, "show pools") == 0)
		show_pools(c);
	else if (strcmp(cmd, "show slabs") == 0)
		show_slabs(c);
	else if (strcmp(cmd, "show mem") == 0)
		show_mem(c);
	else if (strcmp(cmd, "show stats") == 0)
		show_stats(c);
	else if (strcmp(cmd, "show version") == 0)
		show_version(c);
	else if (strcmp(cmd, "reload") == 0 && c->admin == 2) {
		proxy_reload(p);
		rs_done(c, "RELOAD");
	} else
		client_error(c, SQLSTATE_SYNTAX_ERROR, "invalid command '%s', use SHOW HELP;", sql);
}
