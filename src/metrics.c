/* metrics.c -- the Prometheus endpoint: GET /metrics on metrics_listen, on the proxy's loop.
 *
 * Theory.  One listening socket and at most METRICS_MAX_CONNS connections,
 * each a small state machine: READ (collect the request head into <req>
 * until a blank line), then WRITE (header + body with writev until sent),
 * then closed.  One non-persistent event per connection, always re-armed
 * with the time left to its deadline (set at accept), so a client trickling
 * bytes cannot keep a connection past METRICS_TIMEOUT_MS.
 *
 * Ownership: struct metrics owns the listener, its connections (from the
 * "metrics_conn" slab cache) and each connection's body buffer (from
 * slab_buf_alloc, returned on close).  The body is rendered completely when
 * the request is parsed, so nothing refers to pools or clients afterwards.
 */
#include "metrics.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "cred.h"
#include "db.h"
#include "log.h"
#include "pool.h"
#include "prep.h"
#include "proxy.h"
#include "slab.h"
#include "sysalloc.h"

enum conn_state { MC_READ, MC_WRITE };

struct metrics_conn {
	struct list node;
	struct metrics *m;
	struct event ev;
	int fd;
	uint8_t state;
	int64_t deadline_us;
	size_t req_len;
	char *body;             /* slab_buf; NULL for bodiless replies */
	size_t body_len, body_cap, sent;
	size_t hdr_len;
	char hdr[256];
	char req[METRICS_REQ_MAX];
};

struct metrics {
	struct proxy *p;
	struct slab_cache *conn_cache;
	struct list conns;
	struct event ev;
	int fd;
	int n_conns;
	int error;              /* a failed start, not retried */
	uint64_t scrapes;
};


/* ---- the body: a growable buffer in the arena ---- */

struct mbuf {
	struct slab_arena *a;
	char *p;
	size_t len, cap;
	bool failed;
};

static bool mb_grow(struct mbuf *b, size_t need)
{
	size_t want = b->cap ? b->cap * 2 : 16384, cap;
	char *np;

	while (want < b->len + need)
		want *= 2;
	if (want > METRICS_BODY_MAX) {
		b->failed = true;
		return false;
	}
	np = slab_buf_alloc(b->a, want, &cap);
	if (np == NULL) {
		b->failed = true;
		return false;
	}
	if (b->p) {
		memcpy(np, b->p, b->len);
		slab_buf_free(b->a, b->p, b->cap);
	}
	b->p = np;
	b->cap = cap;
	return true;
}

static void mb_printf(struct mbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void mb_printf(struct mbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->failed)
		return;
	for (;;) {
		size_t room = b->cap - b->len;

		va_start(ap, fmt);
		n = b->p ? vsnprintf(b->p + b->len, room, fmt, ap) : -1;
		va_end(ap);
		if (n >= 0 && (size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		if (!mb_grow(b, n > 0 ? (size_t)n + 1 : 256))
			return;
	}
}

/* A label value with \, " and newline escaped. */
static void mb_label(struct mbuf *b, const char *s)
{
	char tmp[2 * NAME_MAX_LEN + 8];
	size_t n = 0;

	for (; *s && n + 3 < sizeof(tmp); s++) {
		if (*s == '\\' || *s == '"') {
			tmp[n++] = '\\';
			tmp[n++] = *s;
		} else if (*s == '\n') {
			tmp[n++] = '\\';
			tmp[n++] = 'n';
		} else {
			tmp[n++] = *s;
		}
	}
	tmp[n] = 0;
	mb_printf(b, "%s", tmp);
}

static void family(struct mbuf *b, const char *name, const char *type, const char *help)
{
	mb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample_u(struct mbuf *b, const char *name, unsigned long long v)
{
	mb_printf(b, "%s %llu\n", name, v);
}

/* ---- rendering ---- */

enum pool_metric {
	PM_CL_ACTIVE, PM_CL_WAITING, PM_SV_ACTIVE, PM_SV_IDLE, PM_SV_USED, PM_SV_LOGIN,
	PM_MAXWAIT, PM_HITS, PM_MISSES, PM_HIT_RATIO, PM_LOGINS, PM_LOGIN_FAIL,
};

static const struct {
	const char *name, *type, *help;
} pool_metrics[] = {
	[PM_CL_ACTIVE] = { "pgslab_pool_client_active", "gauge",
		"Clients linked to a server or idle (cl_active)." },
	[PM_CL_WAITING] = { "pgslab_pool_client_waiting", "gauge",
		"Clients waiting for a server (cl_waiting)." },
	[PM_SV_ACTIVE] = { "pgslab_pool_server_active", "gauge",
		"Servers linked to a client (sv_active)." },
	[PM_SV_IDLE] = { "pgslab_pool_server_idle", "gauge", "Idle servers (sv_idle)." },
	[PM_SV_USED] = { "pgslab_pool_server_used", "gauge",
		"Servers running their reset query (sv_used)." },
	[PM_SV_LOGIN] = { "pgslab_pool_server_login", "gauge",
		"Servers connecting or logging in (sv_login)." },
	[PM_MAXWAIT] = { "pgslab_pool_maxwait_seconds", "gauge",
		"How long the oldest waiting client has waited." },
	[PM_HITS] = { "pgslab_pool_hits_total", "counter",
		"Server assignments served by an idle server at once." },
	[PM_MISSES] = { "pgslab_pool_misses_total", "counter",
		"Server assignments that had to wait." },
	[PM_HIT_RATIO] = { "pgslab_pool_hit_ratio", "gauge", "hits / (hits + misses) so far." },
	[PM_LOGINS] = { "pgslab_pool_server_logins_total", "counter",
		"Server connections that logged in." },
	[PM_LOGIN_FAIL] = { "pgslab_pool_server_login_failures_total", "counter",
		"Server connections that failed to log in." },
};

static double pool_value(const struct pool_view *v, enum pool_metric k)
{
	const struct pool_stats *st = &v->pool->st;

	switch (k) {
	case PM_CL_ACTIVE:
		return v->cl_active;
	case PM_CL_WAITING:
		return v->cl_waiting;
	case PM_SV_ACTIVE:
		return v->sv_active;
	case PM_SV_IDLE:
		return v->sv_idle;
	case PM_SV_USED:
		return v->sv_used;
	case PM_SV_LOGIN:
		return v->sv_login;
	case PM_MAXWAIT:
		return (double)v->maxwait_us / 1e6;
	case PM_HITS:
		return (double)st->hits;
	case PM_MISSES:
		return (double)st->misses;
	case PM_HIT_RATIO:
		return st->hits + st->misses ? (double)st->hits / (double)(st->hits + st->misses) : 0;
	case PM_LOGINS:
		return (double)st->server_logins;
	case PM_LOGIN_FAIL:
		return (double)st->server_login_fail;
	}
	return 0;
}

struct pool_sample {
	struct mbuf *b;
	enum pool_metric k;
};

static void pool_sample(const struct pool_view *v, void *arg)
{
	const struct pool_sample *x = arg;
	const char *name = pool_metrics[x->k].name;

	mb_printf(x->b, "%s{database=\"", name);
	mb_label(x->b, v->pool->db->name);
	mb_printf(x->b, "\",user=\"");
	mb_label(x->b, v->pool->cred->name);
	mb_printf(x->b, "\"} %.17g\n", pool_value(v, x->k));
}

static void render_pools(struct mbuf *b, struct proxy *p)
{
	int64_t now = proxy_now_us();
	size_t k;

	for (k = 0; k < sizeof(pool_metrics) / sizeof(pool_metrics[0]); k++) {
		struct pool_sample x = { b, (enum pool_metric)k };

		family(b, pool_metrics[k].name, pool_metrics[k].type, pool_metrics[k].help);
		pool_stats_foreach(p, now, pool_sample, &x);
	}
}

enum db_metric {
	DM_XACT, DM_QUERY, DM_ASSIGN, DM_RECV, DM_SENT, DM_XACT_TIME, DM_QUERY_TIME,
	DM_WAIT_TIME, DM_LOGINS, DM_SERVERS, DM_CLIENTS, DM_POOL_SIZE, DM_PAUSED, DM_DISABLED,
};

static const struct {
	const char *name, *type, *help;
} db_metrics[] = {
	[DM_XACT] = { "pgslab_database_transactions_total", "counter",
		"Transactions pooled (SHOW STATS total_xact_count)." },
	[DM_QUERY] = { "pgslab_database_queries_total", "counter",
		"Queries pooled (SHOW STATS total_query_count)." },
	[DM_ASSIGN] = { "pgslab_database_server_assignments_total", "counter",
		"Times a server was assigned to a client." },
	[DM_RECV] = { "pgslab_database_received_bytes_total", "counter",
		"Bytes received from clients." },
	[DM_SENT] = { "pgslab_database_sent_bytes_total", "counter", "Bytes sent to clients." },
	[DM_XACT_TIME] = { "pgslab_database_transaction_time_seconds_total", "counter",
		"Time spent in transactions." },
	[DM_QUERY_TIME] = { "pgslab_database_query_time_seconds_total", "counter",
		"Time spent in queries." },
	[DM_WAIT_TIME] = { "pgslab_database_wait_time_seconds_total", "counter",
		"Time clients waited for a server." },
	[DM_LOGINS] = { "pgslab_database_client_logins_total", "counter", "Client logins." },
	[DM_SERVERS] = { "pgslab_database_server_connections", "gauge",
		"Server connections (current_connections)." },
	[DM_CLIENTS] = { "pgslab_database_client_connections", "gauge",
		"Client connections (current_client_connections)." },
	[DM_POOL_SIZE] = { "pgslab_database_pool_size", "gauge", "Effective pool size." },
	[DM_PAUSED] = { "pgslab_database_paused", "gauge", "1 while PAUSEd or KILLed." },
	[DM_DISABLED] = { "pgslab_database_disabled", "gauge", "1 while DISABLEd." },
};

static double db_value(struct proxy *p, const struct db *db, enum db_metric k)
{
	struct pool_stats t, avg;

	switch (k) {
	case DM_SERVERS:
		return db->n_servers;
	case DM_CLIENTS:
		return db->n_clients;
	case DM_POOL_SIZE:
		return pool_size_for(p, db, NULL);
	case DM_PAUSED:
		return db->paused;
	case DM_DISABLED:
		return db->disabled;
	default:
		break;
	}
	pool_stats_sum(p, db, &t, &avg);
	switch (k) {
	case DM_XACT:
		return (double)t.xact_count;
	case DM_QUERY:
		return (double)t.query_count;
	case DM_ASSIGN:
		return (double)t.server_assignment_count;
	case DM_RECV:
		return (double)t.bytes_recv;
	case DM_SENT:
		return (double)t.bytes_sent;
	case DM_XACT_TIME:
		return (double)t.xact_time_us / 1e6;
	case DM_QUERY_TIME:
		return (double)t.query_time_us / 1e6;
	case DM_WAIT_TIME:
		return (double)t.wait_time_us / 1e6;
	case DM_LOGINS:
		return (double)t.client_login_count;
	default:
		return 0;
	}
}

static void render_dbs(struct mbuf *b, struct proxy *p)
{
	struct list *it;
	size_t k;

	for (k = 0; k < sizeof(db_metrics) / sizeof(db_metrics[0]); k++) {
		family(b, db_metrics[k].name, db_metrics[k].type, db_metrics[k].help);
		list_for_each(it, &p->dbs) {
			struct db *db = list_entry(it, struct db, node);

			if (db->admin || db->dead)
				continue;
			mb_printf(b, "%s{database=\"", db_metrics[k].name);
			mb_label(b, db->name);
			mb_printf(b, "\"} %.17g\n", db_value(p, db, (enum db_metric)k));
		}
	}
}

/* Slab caches: one family per field, one sample per cache. */
struct slab_visit {
	struct mbuf *b;
	const char *name;
	size_t off; /* offset of a uint64_t/size_t field in struct slab_stats */
	bool is_size;
};

static void slab_sample(const struct slab_stats *st, void *arg)
{
	struct slab_visit *v = arg;
	const char *f = (const char *)st + v->off;
	unsigned long long val;

	if (v->is_size) {
		size_t x;

		memcpy(&x, f, sizeof(x));
		val = x;
	} else {
		uint64_t x;

		memcpy(&x, f, sizeof(x));
		val = x;
	}
	mb_printf(v->b, "%s{cache=\"", v->name);
	mb_label(v->b, st->name);
	mb_printf(v->b, "\"} %llu\n", val);
}

static void render_slabs(struct mbuf *b, struct proxy *p)
{
	static const struct {
		const char *name, *type, *help;
		size_t off;
		bool is_size;
	} f[] = {
		{ "pgslab_slab_object_size_bytes", "gauge", "Object size of the cache.",
			offsetof(struct slab_stats, obj_size), true },
		{ "pgslab_slab_active_objects", "gauge", "Objects allocated.",
			offsetof(struct slab_stats, active_objs), false },
		{ "pgslab_slab_total_objects", "gauge", "Objects allocated or free in slabs.",
			offsetof(struct slab_stats, total_objs), false },
		{ "pgslab_slab_slabs", "gauge", "Slabs held.", offsetof(struct slab_stats, slabs),
			false },
		{ "pgslab_slab_bytes", "gauge", "Bytes held in slabs.",
			offsetof(struct slab_stats, bytes), false },
		{ "pgslab_slab_high_water_objects", "gauge", "Most objects active at once.",
			offsetof(struct slab_stats, high_water), false },
		{ "pgslab_slab_allocs_total", "counter", "Successful allocations.",
			offsetof(struct slab_stats, allocs), false },
		{ "pgslab_slab_frees_total", "counter", "Frees.", offsetof(struct slab_stats, frees),
			false },
		{ "pgslab_slab_hits_total", "counter", "Allocations served from a free object.",
			offsetof(struct slab_stats, hits), false },
		{ "pgslab_slab_misses_total", "counter", "Allocations that grew the cache first.",
			offsetof(struct slab_stats, misses), false },
		{ "pgslab_slab_grows_total", "counter", "Slabs added.",
			offsetof(struct slab_stats, grows), false },
		{ "pgslab_slab_reaps_total", "counter", "Slabs given back to the buddy allocator.",
			offsetof(struct slab_stats, reaps), false },
		{ "pgslab_slab_alloc_failures_total", "counter", "Allocations that failed.",
			offsetof(struct slab_stats, alloc_fail), false },
	};
	size_t i;

	for (i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		struct slab_visit v = { b, f[i].name, f[i].off, f[i].is_size };

		family(b, f[i].name, f[i].type, f[i].help);
		slab_arena_foreach(p->arena, slab_sample, &v);
	}
}

/* TLS by side: side="client" (connections accepted from clients),
 * side="server" (connections pgslab opened to servers). */
static void render_tls(struct mbuf *b, struct proxy *p)
{
	static const char *const side[2] = { [STREAM_TLS_CLIENT] = "client",
		[STREAM_TLS_SERVER] = "server" };
	int i;

	family(b, "pgslab_tls_handshakes_total", "counter", "TLS handshakes completed, by side.");
	for (i = 0; i < 2; i++)
		mb_printf(b, "pgslab_tls_handshakes_total{side=\"%s\"} %llu\n", side[i],
				(unsigned long long)p->sctx.tls_handshakes[i]);
	family(b, "pgslab_tls_handshake_failures_total", "counter",
			"TLS handshakes that failed (bad record, certificate, EOF), by side.");
	for (i = 0; i < 2; i++)
		mb_printf(b, "pgslab_tls_handshake_failures_total{side=\"%s\"} %llu\n", side[i],
				(unsigned long long)p->sctx.tls_handshake_fail[i]);
	family(b, "pgslab_tls_connections", "gauge", "Open connections with TLS established, by side.");
	for (i = 0; i < 2; i++)
		mb_printf(b, "pgslab_tls_connections{side=\"%s\"} %u\n", side[i],
				p->sctx.tls_open[i]);
}

/* The prepared-statement registry (see struct prep_stats). */
static void render_prepared(struct mbuf *b, struct proxy *p)
{
	static const struct {
		const char *name, *type, *help;
		size_t off;
	} f[] = {
		{ "pgslab_prepared_statements", "gauge", "Distinct statements in the registry.",
			offsetof(struct prep_stats, stmts) },
		{ "pgslab_prepared_client_names", "gauge", "Client statement names mapped.",
			offsetof(struct prep_stats, cmaps) },
		{ "pgslab_prepared_server_statements", "gauge",
			"Statements prepared on servers, summed over servers.",
			offsetof(struct prep_stats, smaps) },
		{ "pgslab_prepared_parses_total", "counter", "Client Parses of named statements.",
			offsetof(struct prep_stats, parses) },
		{ "pgslab_prepared_binds_total", "counter",
			"Client Binds and Describes of prepared names.", offsetof(struct prep_stats, binds) },
		{ "pgslab_prepared_hits_total", "counter",
			"Parses whose text and types the registry already held.",
			offsetof(struct prep_stats, hits) },
		{ "pgslab_prepared_misses_total", "counter",
			"Parses that added a statement to the registry.",
			offsetof(struct prep_stats, misses) },
		{ "pgslab_prepared_server_hits_total", "counter",
			"Parses and Binds whose statement the backend already held.",
			offsetof(struct prep_stats, server_hits) },
		{ "pgslab_prepared_server_misses_total", "counter",
			"Parses sent to backends (the client's own and injected ones).",
			offsetof(struct prep_stats, server_misses) },
		{ "pgslab_prepared_injected_parses_total", "counter",
			"Parses injected before a Bind or Describe.", offsetof(struct prep_stats, injects) },
		{ "pgslab_prepared_evictions_total", "counter",
			"Closes injected at max_prepared_statements.", offsetof(struct prep_stats, evicts) },
		{ "pgslab_prepared_bytes", "gauge",
			"Bytes the registry holds (records, texts, hash buckets).",
			offsetof(struct prep_stats, bytes) },
	};
	struct prep_stats st;
	size_t i;

	memset(&st, 0, sizeof(st));
	if (p->prep)
		prep_reg_stats(p->prep, &st);
	for (i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
		uint64_t v;

		memcpy(&v, (const char *)&st + f[i].off, sizeof(v));
		family(b, f[i].name, f[i].type, f[i].help);
		sample_u(b, f[i].name, (unsigned long long)v);
	}
}

static void render_process(struct mbuf *b, struct proxy *p)
{
	struct slab_arena_stats as;
	struct sysalloc_stats ss;
	struct log_stats ls;

	family(b, "pgslab_info", "gauge", "pgslab version.");
	mb_printf(b, "pgslab_info{version=\"%s\"} 1\n", PGSLAB_VERSION);
	family(b, "pgslab_uptime_seconds", "gauge", "Seconds since pgslab started.");
	mb_printf(b, "pgslab_uptime_seconds %.3f\n", (double)(proxy_now_us() - p->start_us) / 1e6);
	family(b, "pgslab_client_connections", "gauge", "Client connections, console included.");
	sample_u(b, "pgslab_client_connections", (unsigned long long)p->n_clients);
	family(b, "pgslab_server_connections", "gauge", "Server connections.");
	sample_u(b, "pgslab_server_connections", (unsigned long long)p->n_servers);
	family(b, "pgslab_paused", "gauge", "1 while PAUSEd (all databases).");
	sample_u(b, "pgslab_paused", p->paused && !p->suspended);
	family(b, "pgslab_suspended", "gauge", "1 while SUSPENDed.");
	sample_u(b, "pgslab_suspended", p->suspended);
	family(b, "pgslab_network_received_bytes_total", "counter", "Bytes read from sockets.");
	sample_u(b, "pgslab_network_received_bytes_total", p->sctx.bytes_in);
	family(b, "pgslab_network_sent_bytes_total", "counter", "Bytes written to sockets.");
	sample_u(b, "pgslab_network_sent_bytes_total", p->sctx.bytes_out);
	family(b, "pgslab_network_reads_total", "counter", "recv() calls.");
	sample_u(b, "pgslab_network_reads_total", p->sctx.reads);
	family(b, "pgslab_network_writes_total", "counter", "sendmsg() calls.");
	sample_u(b, "pgslab_network_writes_total", p->sctx.writes);
	family(b, "pgslab_login_refused_total", "counter", "Connections refused at max_login_clients.");
	sample_u(b, "pgslab_login_refused_total", p->prelogin_refused);
	family(b, "pgslab_cancels_forwarded_total", "counter", "Cancel requests forwarded to servers.");
	sample_u(b, "pgslab_cancels_forwarded_total", p->cancels_forwarded);
	family(b, "pgslab_cancels_dropped_total", "counter",
			"Valid cancel requests dropped: one already on its way, or the in-flight cap.");
	sample_u(b, "pgslab_cancels_dropped_total", p->cancels_dropped);

	sysalloc_stats_get(&ss);
	family(b, "pgslab_sysalloc_calls_total", "counter",
			"System allocator calls (malloc, calloc, realloc, mmap).");
	sample_u(b, "pgslab_sysalloc_calls_total", sysalloc_calls());
	family(b, "pgslab_sysalloc_frees_total", "counter", "System allocator free() calls.");
	sample_u(b, "pgslab_sysalloc_frees_total", ss.free_calls);

	slab_arena_stats(p->arena, &as);
	family(b, "pgslab_arena_reserved_bytes", "gauge", "Address space reserved by the arena.");
	sample_u(b, "pgslab_arena_reserved_bytes", as.reserved_bytes);
	family(b, "pgslab_arena_mapped_bytes", "gauge", "Arena pages not returned to the OS.");
	sample_u(b, "pgslab_arena_mapped_bytes", as.mapped_bytes);
	family(b, "pgslab_arena_used_bytes", "gauge", "Arena pages held by slabs and buffers.");
	sample_u(b, "pgslab_arena_used_bytes", as.used_bytes);
	family(b, "pgslab_arena_os_returns_total", "counter", "Blocks given back to the kernel.");
	sample_u(b, "pgslab_arena_os_returns_total", as.os_returns);

	memset(&ls, 0, sizeof(ls));
	if (p->log)
		log_stats_get(p->log, &ls);
	family(b, "pgslab_log_records_total", "counter", "Log records accepted.");
	sample_u(b, "pgslab_log_records_total", ls.records);
	family(b, "pgslab_log_dropped_total", "counter", "Log records dropped (queue full).");
	sample_u(b, "pgslab_log_dropped_total", ls.dropped);
	family(b, "pgslab_log_written_bytes_total", "counter", "Bytes of log text written.");
	sample_u(b, "pgslab_log_written_bytes_total", ls.bytes);
	family(b, "pgslab_log_queue_high_water", "gauge", "Most log records queued at once.");
	sample_u(b, "pgslab_log_queue_high_water", ls.queue_high_water);
}

/* The whole exposition into <b>; false when it could not be built. */
/* Backend-slot budgets: size, use and free buddy blocks per order; pool
 * wait-time histograms in Prometheus' cumulative-bucket form. */
static void render_budgets(struct mbuf *b, struct proxy *p)
{
	static const char *const le[POOL_WAIT_BUCKETS] = { "0.0001", "0.001", "0.01", "0.1", "1",
		"10", "+Inf" };
	struct list *it;
	unsigned o;
	int i;

	family(b, "pgslab_budget_slots", "gauge", "Backend connection slots of a database.");
	family(b, "pgslab_budget_held_slots", "gauge", "Slots held by the database's pools.");
	family(b, "pgslab_budget_free_blocks", "gauge", "Free buddy blocks of the budget, by order.");
	list_for_each(it, &p->dbs) {
		struct db *db = list_entry(it, struct db, node);
		struct budget_stats bs;

		if (db->budget == NULL)
			continue;
		budget_stats_get(db->budget, &bs);
		mb_printf(b, "pgslab_budget_slots{database=\"");
		mb_label(b, db->name);
		mb_printf(b, "\"} %u\npgslab_budget_held_slots{database=\"", bs.slots);
		mb_label(b, db->name);
		mb_printf(b, "\"} %u\n", bs.held);
		for (o = 0; o <= bs.buddy.max_order; o++) {
			if (bs.buddy.nr_free[o] == 0)
				continue;
			mb_printf(b, "pgslab_budget_free_blocks{database=\"");
			mb_label(b, db->name);
			mb_printf(b, "\",order=\"%u\"} %llu\n", o,
					(unsigned long long)bs.buddy.nr_free[o]);
		}
	}
	family(b, "pgslab_pool_wait_seconds", "histogram",
			"Time clients waited for a server (misses only).");
	list_for_each(it, &p->pools) {
		struct pool *pool = list_entry(it, struct pool, node);
		unsigned long long cum = 0;

		for (i = 0; i < POOL_WAIT_BUCKETS; i++) {
			cum += pool->wait_hist[i];
			mb_printf(b, "pgslab_pool_wait_seconds_bucket{database=\"");
			mb_label(b, pool->db->name);
			mb_printf(b, "\",user=\"");
			mb_label(b, pool->cred->name);
			mb_printf(b, "\",le=\"%s\"} %llu\n", le[i], cum);
		}
		mb_printf(b, "pgslab_pool_wait_seconds_sum{database=\"");
		mb_label(b, pool->db->name);
		mb_printf(b, "\",user=\"");
		mb_label(b, pool->cred->name);
		mb_printf(b, "\"} %.6f\npgslab_pool_wait_seconds_count{database=\"",
				(double)pool->st.wait_time_us / 1e6);
		mb_label(b, pool->db->name);
		mb_printf(b, "\",user=\"");
		mb_label(b, pool->cred->name);
		mb_printf(b, "\"} %llu\n", cum);
	}
}

static bool render(struct mbuf *b, struct proxy *p)
{
	render_process(b, p);
	render_pools(b, p);
	render_dbs(b, p);
	render_slabs(b, p);
	render_budgets(b, p);
	render_tls(b, p);
	render_prepared(b, p);
	return !b->failed;
}

/* ---- connections ---- */

static void conn_event(evutil_socket_t fd, short what, void *arg);

static void conn_close(struct metrics_conn *mc)
{
	struct metrics *m = mc->m;

	event_del(&mc->ev);
	close(mc->fd);
	if (mc->body)
		slab_buf_free(m->p->arena, mc->body, mc->body_cap);
	list_del(&mc->node);
	m->n_conns--;
	slab_free(m->conn_cache, mc);
}

/* Wait for <what> on <mc>'s socket until its deadline. */
static void conn_arm(struct metrics_conn *mc, short what)
{
	int64_t left = mc->deadline_us - proxy_now_us();
	struct timeval tv;

	if (left < 1000)
		left = 1000;
	tv.tv_sec = (time_t)(left / 1000000);
	tv.tv_usec = (suseconds_t)(left % 1000000);
	event_assign(&mc->ev, mc->m->p->base, mc->fd, what, conn_event, mc);
	event_add(&mc->ev, &tv);
}

static void conn_reply(struct metrics_conn *mc, const char *status, const char *extra,
		bool head_only)
{
	int n;

	if (mc->body == NULL) {
		/* a short text body for errors */
		const char *msg = status;

		n = snprintf(mc->hdr, sizeof(mc->hdr),
				"HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
				"Content-Length: %zu\r\n%sConnection: close\r\n\r\n%s\n",
				status, strlen(msg) + 1, extra ? extra : "", head_only ? "" : msg);
	} else {
		n = snprintf(mc->hdr, sizeof(mc->hdr),
				"HTTP/1.1 %s\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
				"Content-Length: %zu\r\nConnection: close\r\n\r\n",
				status, mc->body_len);
		if (head_only)
			mc->body_len = 0;
	}
	mc->hdr_len = n > 0 && (size_t)n < sizeof(mc->hdr) ? (size_t)n : 0;
	mc->sent = 0;
	mc->state = MC_WRITE;
	conn_arm(mc, EV_WRITE);
}

/* The request head is complete in <req>: answer it. */
static void conn_request(struct metrics_conn *mc)
{
	char method[16], target[512], version[16];
	bool head;
	char *q;

	if (sscanf(mc->req, "%15s %511s %15s", method, target, version) != 3 ||
			strncmp(version, "HTTP/", 5) != 0) {
		conn_reply(mc, "400 Bad Request", NULL, false);
		return;
	}
	head = strcmp(method, "HEAD") == 0;
	if (strcmp(method, "GET") != 0 && !head) {
		conn_reply(mc, "405 Method Not Allowed", "Allow: GET, HEAD\r\n", false);
		return;
	}
	q = strchr(target, '?');
	if (q)
		*q = 0;
	if (strcmp(target, "/metrics") != 0) {
		conn_reply(mc, "404 Not Found", NULL, head);
		return;
	}
	{
		struct mbuf b = { mc->m->p->arena, NULL, 0, 0, false };

		if (!render(&b, mc->m->p)) {
			if (b.p)
				slab_buf_free(b.a, b.p, b.cap);
			conn_reply(mc, "500 Internal Server Error", NULL, head);
			return;
		}
		mc->body = b.p;
		mc->body_len = b.len;
		mc->body_cap = b.cap;
	}
	mc->m->scrapes++;
	conn_reply(mc, "200 OK", NULL, head);
}

static void conn_read(struct metrics_conn *mc)
{
	ssize_t n = recv(mc->fd, mc->req + mc->req_len, sizeof(mc->req) - 1 - mc->req_len, 0);

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
		conn_close(mc);
		return;
	}
	if (n > 0) {
		mc->req_len += (size_t)n;
		mc->req[mc->req_len] = 0;
		if (strstr(mc->req, "\r\n\r\n") || strstr(mc->req, "\n\n")) {
			conn_request(mc);
			return;
		}
		if (mc->req_len == sizeof(mc->req) - 1) {
			conn_reply(mc, "431 Request Header Fields Too Large", NULL, false);
			return;
		}
	}
	conn_arm(mc, EV_READ);
}

static void conn_write(struct metrics_conn *mc)
{
	struct iovec iov[2];
	size_t total = mc->hdr_len + mc->body_len;
	int cnt = 0;
	ssize_t n;

	if (mc->sent < mc->hdr_len) {
		iov[cnt].iov_base = mc->hdr + mc->sent;
		iov[cnt++].iov_len = mc->hdr_len - mc->sent;
	}
	if (mc->body_len > 0) {
		size_t off = mc->sent > mc->hdr_len ? mc->sent - mc->hdr_len : 0;

		iov[cnt].iov_base = mc->body + off;
		iov[cnt++].iov_len = mc->body_len - off;
	}
	n = cnt ? writev(mc->fd, iov, cnt) : 0;
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
		conn_arm(mc, EV_WRITE);
		return;
	}
	if (n < 0) {
		conn_close(mc);
		return;
	}
	mc->sent += (size_t)n;
	if (mc->sent >= total) {
		shutdown(mc->fd, SHUT_WR);
		conn_close(mc);
		return;
	}
	conn_arm(mc, EV_WRITE);
}

static void conn_event(evutil_socket_t fd, short what, void *arg)
{
	struct metrics_conn *mc = arg;

	(void)fd;
	if (what & EV_TIMEOUT) {
		conn_close(mc);
		return;
	}
	if (mc->state == MC_READ)
		conn_read(mc);
	else
		conn_write(mc);
}

static void accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct metrics *m = arg;
	int i;

	(void)what;
	for (i = 0; i < 16; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct metrics_conn *mc;

		if (fd < 0)
			return;
		if (m->n_conns >= METRICS_MAX_CONNS ||
				(mc = slab_alloc(m->conn_cache)) == NULL) {
			close(fd);
			continue;
		}
		memset(mc, 0, offsetof(struct metrics_conn, req));
		mc->req[0] = 0;
		mc->m = m;
		mc->fd = fd;
		mc->state = MC_READ;
		mc->deadline_us = proxy_now_us() + (int64_t)METRICS_TIMEOUT_MS * 1000;
		list_append(&m->conns, &mc->node);
		m->n_conns++;
		conn_arm(mc, EV_READ);
	}
}

/* ---- listener ---- */

/* Split "host:port", "[v6]:port", "*:port", ":port". */
static int split_addr(const char *spec, char *host, size_t hcap, char *port, size_t pcap)
{
	const char *colon;
	size_t hl;

	if (spec[0] == '[') {
		const char *end = strchr(spec, ']');

		if (end == NULL || end[1] != ':')
			return -EINVAL;
		hl = (size_t)(end - spec - 1);
		if (hl >= hcap)
			return -EINVAL;
		memcpy(host, spec + 1, hl);
		host[hl] = 0;
		colon = end + 1;
	} else {
		colon = strrchr(spec, ':');
		if (colon == NULL)
			return -EINVAL;
		hl = (size_t)(colon - spec);
		if (hl >= hcap)
			return -EINVAL;
		memcpy(host, spec, hl);
		host[hl] = 0;
		if (strcmp(host, "*") == 0)
			host[0] = 0;
	}
	if (colon[1] == 0 || strlen(colon + 1) >= pcap)
		return -EINVAL;
	strcpy(port, colon + 1);
	return 0;
}

static int open_listener(const char *spec, char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL, *ai;
	char host[256], port[32];
	int fd = -1, rc, one = 1, e = EADDRNOTAVAIL;

	if (split_addr(spec, host, sizeof(host), port, sizeof(port)) < 0) {
		snprintf(err, errlen, "metrics_listen \"%s\": expected host:port", spec);
		return -EINVAL;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "metrics_listen \"%s\": %s", spec, gai_strerror(rc));
		return -EINVAL;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			e = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 16) == 0)
			break;
		e = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		snprintf(err, errlen, "metrics_listen \"%s\": %s", spec, strerror(e));
		return -e;
	}
	return fd;
}

int metrics_start(struct proxy *p, char *err, size_t errlen)
{
	const char *spec = p->cfg->s.metrics_listen;
	struct metrics *m = p->metrics;
	char ebuf[300];
	int fd;

	if (err == NULL) {
		err = ebuf;
		errlen = sizeof(ebuf);
	}
	if (m && m->p == p) {
		if (m->error)
			snprintf(err, errlen, "metrics endpoint failed to start");
		return m->error;
	}
	if (m || spec[0] == 0)
		return 0;
	m = sys_calloc(1, sizeof(*m));
	if (m == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	m->p = p;
	m->fd = -1;
	list_init(&m->conns);
	p->metrics = m;
	m->conn_cache = slab_cache_create(p->arena, "metrics_conn", sizeof(struct metrics_conn), 0,
			NULL, NULL, NULL);
	if (m->conn_cache == NULL) {
		snprintf(err, errlen, "could not create the metrics_conn cache");
		m->error = -ENOMEM;
		goto fail;
	}
	fd = open_listener(spec, err, errlen);
	if (fd < 0) {
		m->error = fd;
		goto fail;
	}
	m->fd = fd;
	event_assign(&m->ev, p->base, fd, EV_READ | EV_PERSIST, accept_cb, m);
	event_add(&m->ev, NULL);
	log_info("metrics endpoint listening on %s", spec);
	return 0;
fail:
	log_error("%s", err);
	return m->error;
}

void metrics_stop(struct proxy *p)
{
	struct metrics *m = p->metrics;

	if (m == NULL || m->p != p)
		return;
	while (!list_empty(&m->conns))
		conn_close(list_first_entry(&m->conns, struct metrics_conn, node));
	if (m->fd >= 0) {
		event_del(&m->ev);
		close(m->fd);
	}
	if (m->conn_cache)
		slab_cache_destroy(m->conn_cache);
	p->metrics = NULL;
	sys_free(m);
}
