/* admin.c -- the admin console: command parsing, access control and the SHOW commands.
 *
 * Theory.  A console client (c->admin: 2 for admin_users, 1 for stats_users)
 * sends simple Query messages; admin_query() parses one command per message
 * (admin_cmd_parse() in admincmd.c):
 *
 *	[ws] WORD [ws WORD] [ws] [;] [ws]
 *	[ws] SET ws WORD ws (= | TO) ws ('string' | "word" | word) [ws] [;] [ws]
 *
 * where WORD is [A-Za-z0-9_.$-]+ or a double-quoted name ("" for a quote).
 * Verbs are case-insensitive; database names keep their case.  stats_users
 * may run SHOW (and its alias SELECT) only; everything else needs
 * admin_users, else 42501 with the reason.  Verbs that change state are
 * carried out by control.c.
 *
 * Result sets follow PgBouncer exactly: column names, order, and type oids
 * (text, int4, int8 and numeric where PgBouncer uses them); pgslab's own
 * columns come last and pgslab's own data in new commands (SLABS, LOG).
 * Rows are built in a struct rs, an 8 KiB batch on the stack flushed to the
 * client's out buffer when full, so a 10,000-row SHOW CLIENTS costs a few
 * writes and never calls the system allocator.
 */
#include "proxy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "admin.h"
#include "admincmd.h"
#include "cancel.h"
#include "client.h"
#include "control.h"
#include "cred.h"
#include "db.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "proto.h"
#include "server.h"
#include "slab.h"
#include "sysalloc.h"
#include "userlist.h"
#include "vars.h"

#define OID_NUMERIC 1700u
#define RS_BUF 8192
#define RS_MAX_COLS 40

/* ---- result sets ---- */

struct rs {
	struct client *c;
	int ncols;
	size_t len;
	uint64_t rows;
	bool lost;            /* a row could not be queued: end with an error */
	uint8_t buf[RS_BUF];
};

static void rs_flush(struct rs *r)
{
	if (r->len > 0 && !r->c->closing && stream_write(&r->c->st, r->buf, r->len) < 0)
		r->lost = true;
	r->len = 0;
}

/* Room for a message of at most <cap> bytes: in the batch, or NULL when it
 * can never fit there (the caller then writes it straight to the stream). */
static uint8_t *rs_room(struct rs *r, size_t cap)
{
	if (cap > RS_BUF)
		return NULL;
	if (RS_BUF - r->len < cap)
		rs_flush(r);
	return r->buf + r->len;
}

static uint32_t type_oid(char t)
{
	switch (t) {
	case 'i':
		return PROTO_OID_INT4;
	case 'q':
		return PROTO_OID_INT8;
	case 'N':
		return OID_NUMERIC;
	case 'f':
		return PROTO_OID_FLOAT8;
	default:
		return PROTO_OID_TEXT;
	}
}

/* Start a result set: <types> has one letter per column of <names>:
 * s text, i int4, q int8, N numeric, f float8. */
static void rs_begin(struct rs *r, struct client *c, const char *types, const char *const *names)
{
	uint32_t oids[RS_MAX_COLS];
	size_t cap = 16;
	uint8_t *p;
	struct pkt k;
	int i, n = (int)strlen(types);

	r->c = c;
	r->len = 0;
	r->rows = 0;
	r->lost = false;
	r->ncols = n;
	for (i = 0; i < n; i++) {
		oids[i] = type_oid(types[i]);
		cap += strlen(names[i]) + 20;
	}
	p = rs_room(r, cap);
	if (p == NULL)
		return;
	pkt_init(&k, p, cap);
	proto_write_row_desc(&k, n, names, oids);
	if (pkt_ok(&k))
		r->len += k.len;
}

static void rs_row(struct rs *r, const char *const *vals)
{
	size_t cap = 16;
	uint8_t *p;
	struct pkt k;
	bool direct = false;
	int i;

	for (i = 0; i < r->ncols; i++)
		cap += (vals[i] ? strlen(vals[i]) : 0) + 4;
	p = rs_room(r, cap);
	if (p == NULL) {
		rs_flush(r);
		p = stream_write_reserve(&r->c->st, cap);
		if (p == NULL) {
			r->lost = true;
			return;
		}
		direct = true;
	}
	pkt_init(&k, p, cap);
	proto_write_data_row(&k, r->ncols, vals);
	if (!pkt_ok(&k))
		return;
	if (direct)
		stream_write_commit(&r->c->st, k.len);
	else
		r->len += k.len;
	r->rows++;
}

static void rs_end(struct rs *r, const char *tag)
{
	uint8_t *p;
	struct pkt k;

	rs_flush(r);
	if (r->lost) {
		/* never a silently shortened result */
		client_error(r->c, SQLSTATE_PROGRAM_LIMIT,
				"result too large for the console: rows were dropped");
		return;
	}
	p = rs_room(r, 128);
	pkt_init(&k, p, 128);
	proto_write_command_complete(&k, tag);
	r->len += k.len;
	rs_flush(r);
}

static void admin_done(struct client *c, const char *tag)
{
	uint8_t buf[128];
	struct pkt k;

	pkt_init(&k, buf, sizeof(buf));
	proto_write_command_complete(&k, tag);
	stream_write(&c->st, buf, k.len);
}

/* A NOTICE with message and detail (SHOW HELP, fake SET). */
static void admin_notice(struct client *c, const char *msg, const char *detail)
{
	size_t cap = strlen(msg) + (detail ? strlen(detail) : 0) + 64;
	uint8_t *p = stream_write_reserve(&c->st, cap);
	struct pkt k;

	if (p == NULL)
		return;
	pkt_init(&k, p, cap);
	pkt_begin(&k, 'N');
	pkt_u8(&k, 'S');
	pkt_str(&k, "NOTICE");
	pkt_u8(&k, 'V');
	pkt_str(&k, "NOTICE");
	pkt_u8(&k, 'C');
	pkt_str(&k, "00000");
	pkt_u8(&k, 'M');
	pkt_str(&k, msg);
	if (detail) {
		pkt_u8(&k, 'D');
		pkt_str(&k, detail);
	}
	pkt_u8(&k, 0);
	pkt_end(&k);
	if (pkt_ok(&k))
		stream_write_commit(&c->st, k.len);
}

/* ---- value formatting: a ring of small buffers per row ---- */

#define FMT_N 48

struct fmt {
	char buf[FMT_N][64];
	int n;
};

static char *fbuf(struct fmt *f)
{
	return f->buf[f->n++ % FMT_N];
}

static const char *fu(struct fmt *f, unsigned long long v)
{
	char *b = fbuf(f);

	snprintf(b, 64, "%llu", v);
	return b;
}

/* PgBouncer's tls column: protocol/cipher/ECDH=curve, or "" for plain. */
static const char *ftls(struct fmt *f, const struct stream *st)
{
	char *b = fbuf(f);

	stream_tls_info(st, b, 64);
	return b;
}

static const char *fi(struct fmt *f, long long v)
{
	char *b = fbuf(f);

	snprintf(b, 64, "%lld", v);
	return b;
}

static const char *ff(struct fmt *f, double v)
{
	char *b = fbuf(f);

	snprintf(b, 64, "%.4f", v);
	return b;
}

static const char *fptr(struct fmt *f, const void *ptr)
{
	char *b = fbuf(f);

	snprintf(b, 64, "%p", ptr);
	return b;
}

/* Wall-clock time of monotonic instant <mono_us>, as PgBouncer prints it. */
static const char *ftime(struct fmt *f, int64_t mono_us)
{
	char *b = fbuf(f);
	struct timespec rt;
	struct tm tm;
	time_t t;

	if (mono_us <= 0)
		return "";
	clock_gettime(CLOCK_REALTIME, &rt);
	t = rt.tv_sec - (time_t)((proxy_now_us() - mono_us) / 1000000);
	localtime_r(&t, &tm);
	strftime(b, 64, "%Y-%m-%d %H:%M:%S %Z", &tm);
	return b;
}

static double rate(uint64_t hits, uint64_t total)
{
	return total ? (double)hits / (double)total : 0.0;
}

/* ---- SHOW HELP, VERSION, CONFIG, STATE ---- */

static const char help_text[] =
		"\n\tSHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION\n"
		"\tSHOW SOCKETS|ACTIVE_SOCKETS|LISTS|MEM|STATE\n"
		"\tSHOW DNS_HOSTS|DNS_ZONES\n"
		"\tSHOW STATS|STATS_TOTALS|STATS_AVERAGES|TOTALS\n"
		"\tSHOW SLABS|LOG|BUDDY|WAITS|LATENCY|PREPARED_STATEMENTS|PREPARED_STATS|TLS (pgslab)\n"
		"\tSET key = arg\n"
		"\tRELOAD\n"
		"\tPAUSE [<db>]\n"
		"\tRESUME [<db>]\n"
		"\tDISABLE <db>\n"
		"\tENABLE <db>\n"
		"\tRECONNECT [<db>]\n"
		"\tKILL [<db>]\n"
		"\tKILL_CLIENT <client_id>\n"
		"\tSUSPEND\n"
		"\tSHUTDOWN\n"
		"\tSHUTDOWN WAIT_FOR_SERVERS|WAIT_FOR_CLIENTS\n"
		"\tWAIT_CLOSE [<db>]";

static void show_help(struct client *c)
{
	admin_notice(c, "Console usage", help_text);
	admin_done(c, "SHOW");
}

static void show_version(struct client *c)
{
	static const char *const names[] = { "version" };
	const char *v[] = { "pgslab " PGSLAB_VERSION };
	struct rs r;

	rs_begin(&r, c, "s", names);
	rs_row(&r, v);
	rs_end(&r, "SHOW");
}

static void config_row(const char *key, const char *value, const char *dflt, bool changeable,
		void *arg)
{
	const char *v[4] = { key, value, dflt, changeable ? "yes" : "no" };

	rs_row(arg, v);
}

static void show_config(struct client *c)
{
	static const char *const names[] = { "key", "value", "default", "changeable" };
	struct proxy *p = proxy_of(&c->st);
	struct rs r;

	rs_begin(&r, c, "ssss", names);
	config_foreach_setting(p->cfg, config_row, &r);
	rs_end(&r, "SHOW");
}

static void show_state(struct client *c)
{
	static const char *const names[] = { "key", "value" };
	struct proxy *p = proxy_of(&c->st);
	bool susp = p->suspended;
	const char *v[2];
	struct rs r;

	rs_begin(&r, c, "ss", names);
	v[0] = "active";
	v[1] = !p->paused && !susp ? "yes" : "no";
	rs_row(&r, v);
	v[0] = "paused";
	v[1] = p->paused && !susp ? "yes" : "no";
	rs_row(&r, v);
	v[0] = "suspended";
	v[1] = susp ? "yes" : "no";
	rs_row(&r, v);
	rs_end(&r, "SHOW");
}

static void show_empty(struct client *c, const char *types, const char *const *names)
{
	struct rs r;

	rs_begin(&r, c, types, names);
	rs_end(&r, "SHOW");
}

static void show_dns_hosts(struct client *c)
{
	static const char *const names[] = { "hostname", "ttl", "addrs" };

	show_empty(c, "sqs", names); /* no DNS cache: resolved once per db */
}

static void show_dns_zones(struct client *c)
{
	static const char *const names[] = { "zonename", "serial", "count" };

	show_empty(c, "sqi", names);
}

static void show_peers(struct client *c)
{
	static const char *const names[] = { "peer_id", "host", "port", "pool_size" };
	const struct config *cfg = proxy_of(&c->st)->cfg;
	struct rs r;
	int i;

	rs_begin(&r, c, "isii", names);
	for (i = 0; i < cfg->n_peers; i++) {
		const struct config_peer *pe = &cfg->peers[i];
		struct fmt f = { .n = 0 };
		const char *v[4];

		v[0] = fi(&f, pe->id);
		v[1] = pe->host;
		v[2] = fi(&f, pe->port);
		v[3] = fi(&f, pe->pool_size >= 0 ? pe->pool_size : cfg->s.default_pool_size);
		rs_row(&r, v);
	}
	rs_end(&r, "SHOW");
}

/* Per peer: the cancel requests being forwarded to it (connecting or sent). */
static void show_peer_pools(struct client *c)
{
	static const char *const names[] = { "peer_id", "cl_active_cancel_req",
		"cl_waiting_cancel_req", "sv_active_cancel", "sv_login" };
	struct proxy *p = proxy_of(&c->st);
	struct rs r;
	int i;

	rs_begin(&r, c, "iiiii", names);
	for (i = 0; i < p->cfg->n_peers; i++) {
		struct fmt f = { .n = 0 };
		const char *v[5];
		int n = cancel_peer_count(p, (unsigned)p->cfg->peers[i].id);

		v[0] = fi(&f, p->cfg->peers[i].id);
		v[1] = fi(&f, n); /* each forwarded request is its own connection */
		v[2] = fi(&f, 0);
		v[3] = fi(&f, n);
		v[4] = fi(&f, 0);
		rs_row(&r, v);
	}
	rs_end(&r, "SHOW");
}

/* ---- SHOW DATABASES, USERS, POOLS ---- */

static int console_clients(struct proxy *p)
{
	struct list *it;
	int n = 0;

	list_for_each(it, &p->login_clients) {
		struct client *c = list_entry(it, struct client, node);

		n += c->admin && c->state == CL_ACTIVE;
	}
	return n;
}

static void show_databases(struct client *c)
{
	static const char *const names[] = { "name", "host", "port", "database", "force_user",
		"pool_size", "min_pool_size", "reserve_pool_size", "server_lifetime", "pool_mode",
		"load_balance_hosts", "max_connections", "current_connections",
		"max_client_connections", "current_client_connections", "paused", "disabled" };
	struct proxy *p = proxy_of(&c->st);
	const struct config_settings *s = &p->cfg->s;
	struct list *it;
	struct rs r;

	rs_begin(&r, c, "ssissiiiissiiiiii", names);
	list_for_each(it, &p->dbs) {
		struct db *db = list_entry(it, struct db, node);
		const struct config_db *e;
		struct fmt f = { .n = 0 };
		const char *v[17];
		int64_t life;
		int maxc, maxcc;

		if (db->dead && !db->admin)
			continue;
		if (db->admin) {
			/* the console, as PgBouncer shows its own pseudo-database */
			v[0] = db->name;
			v[1] = NULL;
			v[2] = fi(&f, s->listen_port);
			v[3] = db->name;
			v[4] = NULL;
			v[5] = v[6] = v[7] = "0";
			v[8] = "0";
			v[9] = "statement";
			v[10] = NULL;
			v[11] = v[12] = "0";
			v[13] = fi(&f, s->max_db_client_connections);
			v[14] = fi(&f, db->n_clients);
			v[15] = v[16] = "0";
			rs_row(&r, v);
			continue;
		}
		e = config_find_db(p->cfg, db->name);
		life = db->server_lifetime_us >= 0 ? db->server_lifetime_us : s->server_lifetime_us;
		maxc = db->max_db_connections >= 0 ? db->max_db_connections : s->max_db_connections;
		maxcc = e && e->max_db_client_connections >= 0 ? e->max_db_client_connections :
								  s->max_db_client_connections;
		v[0] = db->name;
		v[1] = db->host[0] ? db->host : NULL;
		v[2] = fi(&f, db->port);
		v[3] = db->dbname;
		v[4] = db->force_user[0] ? db->force_user : NULL;
		v[5] = fi(&f, pool_size_for(p, db, NULL));
		v[6] = fi(&f, db->min_pool_size >= 0 ? db->min_pool_size : s->min_pool_size);
		v[7] = fi(&f, db->reserve_pool_size >= 0 ? db->reserve_pool_size :
							    s->reserve_pool_size);
		v[8] = fi(&f, life / 1000000);
		v[9] = db->pool_mode != CONFIG_INHERIT ?
				config_pool_mode_name((enum pool_mode)db->pool_mode) : NULL;
		v[10] = e && strchr(db->host, ',') ?
				config_load_balance_hosts_name(e->load_balance_hosts) : NULL;
		v[11] = fi(&f, maxc);
		v[12] = fi(&f, db->n_servers);
		v[13] = fi(&f, maxcc);
		v[14] = fi(&f, db->n_clients);
		v[15] = db->paused ? "1" : "0";
		v[16] = db->disabled ? "1" : "0";
		rs_row(&r, v);
	}
	rs_end(&r, "SHOW");
}

static const char *const user_names[] = { "name", "pool_size", "reserve_pool_size",
	"pool_mode", "max_user_connections", "current_connections",
	"max_user_client_connections", "current_client_connections" };

/* One SHOW USERS row: <name>'s settings, with the counts of <cr> (NULL: a
 * user nobody has used yet). */
static void user_row(struct rs *r, struct proxy *p, const char *name, const struct cred *cr)
{
	const struct config_settings *s = &p->cfg->s;
	const struct config_user *u = config_find_user(p->cfg, name);
	struct fmt f = { .n = 0 };
	char *ps = fbuf(&f), *rps = fbuf(&f);
	int servers = 0;
	const char *v[8];
	struct list *pi;

	ps[0] = rps[0] = 0;
	if (u && u->pool_size >= 0)
		snprintf(ps, 64, "%9d", u->pool_size);
	if (u && u->reserve_pool_size >= 0)
		snprintf(rps, 64, "%9d", u->reserve_pool_size);
	if (cr) {
		list_for_each(pi, &p->pools) {
			struct pool *pool = list_entry(pi, struct pool, node);

			if (pool->cred == cr)
				servers += pool->n_servers;
		}
	}
	v[0] = name;
	v[1] = ps;
	v[2] = rps;
	v[3] = u && u->pool_mode != CONFIG_INHERIT ?
			config_pool_mode_name((enum pool_mode)u->pool_mode) : NULL;
	v[4] = fi(&f, u && u->max_user_connections >= 0 ? u->max_user_connections :
							  s->max_user_connections);
	v[5] = fi(&f, servers);
	v[6] = fi(&f, u && u->max_user_client_connections >= 0 ?
					u->max_user_client_connections :
					s->max_user_client_connections);
	v[7] = fi(&f, cr ? cr->n_clients : 0);
	rs_row(r, v);
}

/* As PgBouncer: every user in use, in the auth_file or in [users]; never
 * a name that only failed to log in. */
static void show_users(struct client *c)
{
	struct proxy *p = proxy_of(&c->st);
	struct list *it;
	struct rs r;
	size_t i, n = p->userlist ? userlist_count(p->userlist) : 0;
	int k;

	rs_begin(&r, c, "ssssiiii", user_names);
	list_for_each(it, &p->creds) {
		struct cred *cr = list_entry(it, struct cred, node);

		user_row(&r, p, cr->name, cr);
	}
	for (i = 0; i < n; i++) {
		const struct userlist_entry *e = userlist_entry_at(p->userlist, i);

		if (cred_lookup(p, e->name) == NULL)
			user_row(&r, p, e->name, NULL);
	}
	for (k = 0; k < p->cfg->n_users; k++) {
		const char *name = p->cfg->users[k].name;

		if (cred_lookup(p, name) == NULL &&
				(p->userlist == NULL || userlist_find(p->userlist, name) == NULL))
			user_row(&r, p, name, NULL);
	}
	rs_end(&r, "SHOW");
}

struct pools_ctx {
	struct proxy *p;
	struct rs *r;
};

static void pools_row(const struct pool_view *n, void *arg)
{
	const struct pools_ctx *x = arg;
	const struct pool *pool = n->pool;
	const struct config_db *e = config_find_db(x->p->cfg, pool->db->name);
	struct fmt f = { .n = 0 };
	const char *v[20];

	v[0] = pool->db->name;
	v[1] = pool->cred->name;
	v[2] = fi(&f, n->cl_active);
	v[3] = fi(&f, n->cl_waiting);
	v[4] = v[5] = "0";
	v[6] = fi(&f, n->sv_active);
	v[7] = v[8] = "0";
	v[9] = fi(&f, n->sv_idle);
	v[10] = fi(&f, n->sv_used);
	v[11] = "0";
	v[12] = fi(&f, n->sv_login);
	v[13] = fi(&f, n->maxwait_us / 1000000);
	v[14] = fi(&f, n->maxwait_us % 1000000);
	v[15] = config_pool_mode_name(pool->mode);
	v[16] = e && strchr(pool->db->host, ',') ?
			config_load_balance_hosts_name(e->load_balance_hosts) : NULL;
	v[17] = fu(&f, pool->st.hits);
	v[18] = fu(&f, pool->st.misses);
	v[19] = ff(&f, rate(pool->st.hits, pool->st.hits + pool->st.misses));
	rs_row(x->r, v);
}

static void show_pools(struct client *c)
{
	static const char *const names[] = { "database", "user", "cl_active", "cl_waiting",
		"cl_active_cancel_req", "cl_waiting_cancel_req", "sv_active", "sv_active_cancel",
		"sv_being_canceled", "sv_idle", "sv_used", "sv_tested", "sv_login", "maxwait",
		"maxwait_us", "pool_mode", "load_balance_hosts", "hits", "misses", "hit_rate" };
	struct proxy *p = proxy_of(&c->st);
	struct fmt f = { .n = 0 };
	const char *v[20];
	struct rs r;
	struct pools_ctx x = { p, &r };

	rs_begin(&r, c, "ssiiiiiiiiiiiiissqqf", names);
	/* the console's own pool, as PgBouncer lists it */
	v[0] = v[1] = "pgslab";
	v[2] = fi(&f, console_clients(p));
	v[3] = v[4] = v[5] = v[6] = v[7] = v[8] = v[9] = v[10] = v[11] = v[12] = "0";
	v[13] = v[14] = "0";
	v[15] = "statement";
	v[16] = NULL;
	v[17] = v[18] = "0";
	v[19] = "0.0000";
	rs_row(&r, v);
	pool_stats_foreach(p, proxy_now_us(), pools_row, &x);
	rs_end(&r, "SHOW");
}

/* ---- SHOW CLIENTS, SERVERS, SOCKETS, ACTIVE_SOCKETS ---- */

static const char *const sock_names[] = { "type", "user", "database", "replication", "state",
	"addr", "port", "local_addr", "local_port", "connect_time", "request_time", "wait",
	"wait_us", "close_needed", "ptr", "link", "remote_pid", "tls", "application_name",
	"prepared_statements", "id", "recv_pos", "pkt_pos", "pkt_remain", "send_pos",
	"send_remain", "pkt_avail", "send_avail" };
#define SOCK_TYPES "ssssssisissiiississiq"
#define SOCK_TYPES_DBG SOCK_TYPES "iiiiiii"

static void fmt_sockaddr(struct fmt *f, const struct sockaddr_storage *ss, const char **addr,
		const char **port)
{
	char *b = fbuf(f);

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)ss;

		inet_ntop(AF_INET, &in->sin_addr, b, 64);
		*addr = b;
		*port = fi(f, ntohs(in->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, b, 64);
		*addr = b;
		*port = fi(f, ntohs(in6->sin6_port));
	} else {
		*addr = "unix";
		*port = "0";
	}
}

static void sock_local(struct fmt *f, int fd, const char **addr, const char **port)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	memset(&ss, 0, sizeof(ss));
	if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		ss.ss_family = AF_UNIX;
	fmt_sockaddr(f, &ss, addr, port);
}

static const char *var_value(struct proxy *p, const struct varset *vs, const char *name)
{
	int i = vars_index(&p->vars, name);

	if (i < 0 || vs == NULL || vs->v[i] == NULL)
		return "";
	return vs->v[i]->s;
}

/* The buffer columns of SHOW SOCKETS for <st>. */
static void sock_debug(struct fmt *f, const struct stream *st, const char **v)
{
	const struct iobuf *b = st->in;

	v[0] = fu(f, b ? b->tail : 0);
	v[1] = fu(f, b ? b->parse : 0);
	v[2] = fu(f, st->pkt_remain);
	v[3] = fu(f, b ? b->head : 0);
	v[4] = fu(f, st->out_bytes);
	v[5] = fu(f, b ? b->tail - b->parse : 0);
	v[6] = fu(f, b ? b->parse - b->head : 0);
}

static bool sock_busy(const struct stream *st)
{
	return stream_has_input(st) || stream_pending(st) > 0;
}

/* <state> NULL: derive PgBouncer's client state name. */
static void client_row(struct rs *r, struct client *cl, const char *state, bool debug)
{
	struct proxy *p = proxy_of(&cl->st);
	struct fmt f = { .n = 0 };
	const char *v[28];
	int64_t wait = 0;
	char *addr = fbuf(&f);

	if (state == NULL)
		state = cl->state == CL_WAITING ? "waiting" : cl->server ? "active" : "idle";
	if (cl->state == CL_WAITING)
		wait = proxy_now_us() - cl->wait_start_us;
	client_addr_str(cl, addr, 64);
	v[0] = "C";
	v[1] = cl->cred ? cl->cred->name : "(nouser)";
	v[2] = cl->db ? cl->db->name : "(nodb)";
	v[3] = client_repl_name(cl->replication);
	v[4] = state;
	v[5] = addr;
	v[6] = fi(&f, cl->family == AF_INET || cl->family == AF_INET6 ? cl->port : 0);
	sock_local(&f, cl->st.fd, &v[7], &v[8]);
	v[9] = ftime(&f, cl->connect_us);
	v[10] = ftime(&f, cl->request_us ? cl->request_us : cl->connect_us);
	v[11] = fi(&f, wait / 1000000);
	v[12] = fi(&f, wait % 1000000);
	v[13] = "0";
	v[14] = fptr(&f, cl);
	v[15] = cl->server ? fptr(&f, cl->server) : "";
	v[16] = "0";
	v[17] = ftls(&f, &cl->st);
	v[18] = var_value(p, cl->vars, "application_name");
	v[19] = fu(&f, cl->pst.n);
	v[20] = fu(&f, cl->id);
	if (debug)
		sock_debug(&f, &cl->st, v + 21);
	rs_row(r, v);
}

static void server_row(struct rs *r, struct server *s, const char *state, bool debug)
{
	struct proxy *p = proxy_of(&s->st);
	struct fmt f = { .n = 0 };
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	const char *v[28];

	memset(&ss, 0, sizeof(ss));
	if (s->st.fd < 0 || getpeername(s->st.fd, (struct sockaddr *)&ss, &sl) < 0)
		ss.ss_family = AF_UNIX;
	v[0] = "S";
	v[1] = s->pool->cred->name;
	v[2] = s->pool->db->name;
	v[3] = client_repl_name(s->repl);
	v[4] = state;
	fmt_sockaddr(&f, &ss, &v[5], &v[6]);
	if (ss.ss_family == AF_UNIX)
		v[6] = fi(&f, s->pool->db->port);
	sock_local(&f, s->st.fd, &v[7], &v[8]);
	v[9] = ftime(&f, s->connect_us);
	v[10] = ftime(&f, s->used_us);
	v[11] = v[12] = "0";
	v[13] = s->close_needed ? "1" : "0";
	v[14] = fptr(&f, s);
	v[15] = s->client ? fptr(&f, s->client) : "";
	v[16] = fu(&f, s->backend_pid);
	v[17] = ftls(&f, &s->st);
	v[18] = var_value(p, s->vars, "application_name");
	v[19] = fu(&f, s->pst.n);
	v[20] = fu(&f, s->id);
	if (debug)
		sock_debug(&f, &s->st, v + 21);
	rs_row(r, v);
}

static const char *server_state_name(const struct server *s, bool sockets)
{
	switch (s->state) {
	case SV_LOGIN:
		return sockets ? "sv_login" : "new";
	case SV_IDLE:
		return sockets ? "sv_idle" : "idle";
	case SV_RESET:
	case SV_DRAIN:
		if (s->client == NULL)
			return sockets ? "sv_used" : "used";
		return sockets ? "sv_active" : "active";
	default:
		return sockets ? "sv_active" : "active";
	}
}

struct rows_arg {
	struct rs *r;
	bool sockets, busy_only;
};

static void server_row_of(struct server *s, void *arg)
{
	struct rows_arg *a = arg;

	if (!a->busy_only || sock_busy(&s->st))
		server_row(a->r, s, server_state_name(s, a->sockets), a->sockets);
}

/* Servers of every pool, or only those with buffered data (<busy_only>). */
static void server_rows(struct rs *r, struct proxy *p, bool sockets, bool busy_only)
{
	struct rows_arg a = { r, sockets, busy_only };
	struct list *it;

	list_for_each(it, &p->pools)
		pool_foreach_server(list_entry(it, struct pool, node), server_row_of, &a);
}

static void client_row_of(struct client *cl, void *arg)
{
	struct rows_arg *a = arg;
	const char *state;

	if (a->busy_only && !sock_busy(&cl->st))
		return;
	if (cl->state == CL_WELCOME) /* waiting for the pool's first server parameters */
		state = a->sockets ? "cl_waiting" : "waiting";
	else if (a->sockets)
		state = cl->state == CL_WAITING ? "cl_waiting" : "cl_active";
	else
		state = NULL;
	client_row(a->r, cl, state, a->sockets);
}

static void client_rows(struct rs *r, struct proxy *p, bool sockets, bool busy_only)
{
	struct rows_arg a = { r, sockets, busy_only };
	struct list *it, *ci;

	list_for_each(it, &p->pools)
		pool_foreach_client(list_entry(it, struct pool, node), client_row_of, &a);
	/* console clients (and, for SOCKETS, clients still logging in) */
	list_for_each(ci, &p->login_clients) {
		struct client *cl = list_entry(ci, struct client, node);

		if (busy_only && !sock_busy(&cl->st))
			continue;
		if (cl->state == CL_LOGIN && sockets)
			client_row(r, cl, "cl_login", true);
		else if (cl->state == CL_ACTIVE)
			client_row(r, cl, sockets ? "cl_active" : "active", sockets);
	}
}

static void show_clients(struct client *c)
{
	struct rs r;

	rs_begin(&r, c, SOCK_TYPES, sock_names);
	client_rows(&r, proxy_of(&c->st), false, false);
	rs_end(&r, "SHOW");
}

static void show_servers(struct client *c)
{
	struct rs r;

	rs_begin(&r, c, SOCK_TYPES, sock_names);
	server_rows(&r, proxy_of(&c->st), false, false);
	rs_end(&r, "SHOW");
}

static void show_sockets(struct client *c, bool busy_only)
{
	struct proxy *p = proxy_of(&c->st);
	struct rs r;

	rs_begin(&r, c, SOCK_TYPES_DBG, sock_names);
	client_rows(&r, p, true, busy_only);
	server_rows(&r, p, true, busy_only);
	rs_end(&r, "SHOW");
}

/* ---- SHOW STATS, STATS_TOTALS, STATS_AVERAGES, TOTALS ---- */

/* Values of <s> in PgBouncer's STATS order: assignments, xacts, queries,
 * received, sent, xact time, query time, wait time, client parse, server
 * parse, bind, logins (12 values). */
static void stats_values(struct fmt *f, const struct pool_stats *s, const char **v)
{
	v[0] = fu(f, s->server_assignment_count);
	v[1] = fu(f, s->xact_count);
	v[2] = fu(f, s->query_count);
	v[3] = fu(f, s->bytes_recv);
	v[4] = fu(f, s->bytes_sent);
	v[5] = fu(f, s->xact_time_us);
	v[6] = fu(f, s->query_time_us);
	v[7] = fu(f, s->wait_time_us);
	v[8] = fu(f, s->client_parse_count);
	v[9] = fu(f, s->server_parse_count);
	v[10] = fu(f, s->bind_count);
	v[11] = fu(f, s->client_login_count);
}

enum stats_kind { STATS_BOTH, STATS_TOTALS, STATS_AVERAGES };

static void show_stats(struct client *c, enum stats_kind kind)
{
	static const char *const both[] = { "database", "total_server_assignment_count",
		"total_xact_count", "total_query_count", "total_received", "total_sent",
		"total_xact_time", "total_query_time", "total_wait_time",
		"total_client_parse_count", "total_server_parse_count", "total_bind_count",
		"total_client_login_count", "avg_server_assignment_count", "avg_xact_count",
		"avg_query_count", "avg_recv", "avg_sent", "avg_xact_time", "avg_query_time",
		"avg_wait_time", "avg_client_parse_count", "avg_server_parse_count",
		"avg_bind_count", "avg_client_login_count" };
	static const char *const totals[] = { "database", "server_assignment_count",
		"xact_count", "query_count", "bytes_received", "bytes_sent", "xact_time",
		"query_time", "wait_time", "client_parse_count", "server_parse_count",
		"bind_count", "client_login_count" };
	static const char *const avgs[] = { "database", "server_assignment_count", "xact_count",
		"query_count", "bytes_received", "bytes_sent", "xact_time", "query_time",
		"wait_time", "avg_client_parse_count", "avg_server_parse_count", "avg_bind_count",
		"avg_client_login_count" };
	struct proxy *p = proxy_of(&c->st);
	struct list *it;
	struct rs r;

	if (kind == STATS_BOTH)
		rs_begin(&r, c, "sNNNNNNNNNNNNNNNNNNNNNNNN", both);
	else
		rs_begin(&r, c, "sNNNNNNNNNNNN", kind == STATS_TOTALS ? totals : avgs);
	list_for_each(it, &p->dbs) {
		struct db *db = list_entry(it, struct db, node);
		struct pool_stats t, a;
		struct fmt f = { .n = 0 };
		const char *v[25];

		if (db->admin || (db->dead && db->n_servers == 0 && db->n_clients == 0))
			continue;
		pool_stats_sum(p, db, &t, &a);
		v[0] = db->name;
		if (kind == STATS_BOTH) {
			stats_values(&f, &t, v + 1);
			stats_values(&f, &a, v + 13);
		} else {
			stats_values(&f, kind == STATS_TOTALS ? &t : &a, v + 1);
		}
		rs_row(&r, v);
	}
	rs_end(&r, "SHOW");
}

static void show_totals(struct client *c)
{
	static const char *const names[] = { "name", "value" };
	static const char *const fields[] = { "server_assignment_count", "xact_count",
		"query_count", "client_bytes", "server_bytes", "xact_time", "query_time",
		"wait_time", "ps_client_parse_count", "ps_server_parse_count", "ps_bind_count",
		"client_login_count" };
	struct proxy *p = proxy_of(&c->st);
	struct pool_stats t, a;
	struct fmt f = { .n = 0 };
	const char *vals[2][12];
	char name[64];
	struct rs r;
	int i, k;

	pool_stats_sum(p, NULL, &t, &a);
	/* as PgBouncer, whose console is a pool too: each console command
	 * is one transaction of one query */
	t.xact_count += p->console_queries;
	t.query_count += p->console_queries;
	stats_values(&f, &t, vals[0]);
	stats_values(&f, &a, vals[1]);
	rs_begin(&r, c, "sN", names);
	for (k = 0; k < 2; k++) {
		for (i = 0; i < 12; i++) {
			const char *v[2] = { name, vals[k][i] };

			snprintf(name, sizeof(name), "%s_%s", k ? "avg" : "total", fields[i]);
			rs_row(&r, v);
		}
	}
	rs_end(&r, "SHOW");
}

/* ---- SHOW LISTS, MEM, SLABS, LOG ---- */

static void list_row(struct rs *r, const char *name, long long n)
{
	struct fmt f = { .n = 0 };
	const char *v[2] = { name, fi(&f, n) };

	rs_row(r, v);
}

static void show_lists(struct client *c)
{
	static const char *const names[] = { "list", "items" };
	struct proxy *p = proxy_of(&c->st);
	struct slab_stats cs, ss;
	struct list *it;
	int dbs = 0, login = 0;
	struct rs r;

	list_for_each(it, &p->dbs)
		dbs += !list_entry(it, struct db, node)->dead;
	list_for_each(it, &p->login_clients)
		login += list_entry(it, struct client, node)->state == CL_LOGIN;
	slab_cache_stats(p->client_cache, &cs);
	slab_cache_stats(p->server_cache, &ss);
	rs_begin(&r, c, "si", names);
	list_row(&r, "databases", dbs);
	list_row(&r, "users", (long long)list_count(&p->creds));
	list_row(&r, "peers", p->cfg->n_peers);
	list_row(&r, "pools", (long long)list_count(&p->pools));
	list_row(&r, "peer_pools", p->cfg->n_peers);
	list_row(&r, "free_clients", (long long)(cs.total_objs - cs.active_objs));
	list_row(&r, "used_clients", (long long)cs.active_objs);
	list_row(&r, "login_clients", login);
	list_row(&r, "free_servers", (long long)(ss.total_objs - ss.active_objs));
	list_row(&r, "used_servers", (long long)ss.active_objs);
	list_row(&r, "dns_names", 0);
	list_row(&r, "dns_zones", 0);
	list_row(&r, "dns_queries", 0);
	list_row(&r, "dns_pending", 0);
	rs_end(&r, "SHOW");
}

static void mem_row(const struct slab_stats *st, void *arg)
{
	struct fmt f = { .n = 0 };
	const char *v[5];

	v[0] = st->name;
	v[1] = fu(&f, st->obj_size);
	v[2] = fu(&f, st->active_objs);
	v[3] = fu(&f, st->total_objs - st->active_objs);
	v[4] = fu(&f, st->total_objs * st->obj_size);
	rs_row(arg, v);
}

static void show_mem(struct client *c)
{
	static const char *const names[] = { "name", "size", "used", "free", "memtotal" };
	struct proxy *p = proxy_of(&c->st);
	struct slab_arena_stats as;
	struct sysalloc_stats ss;
	struct fmt f = { .n = 0 };
	const char *v[5];
	struct rs r;

	/* int8 rather than PgBouncer's int4: pgslab's counters outgrow it */
	rs_begin(&r, c, "sqqqq", names);
	slab_arena_foreach(p->arena, mem_row, &r);
	/* pgslab's rows: the system-allocator call counter (in "used") and the
	 * arena's pages (size = page size, used/free/memtotal in bytes) */
	sysalloc_stats_get(&ss);
	slab_arena_stats(p->arena, &as);
	v[0] = "sysalloc_calls";
	v[1] = "0";
	v[2] = fu(&f, sysalloc_calls());
	v[3] = fu(&f, ss.free_calls);
	v[4] = "0";
	rs_row(&r, v);
	{
		/* OpenSSL record buffers kept for reuse: used = reuses, free =
		 * buffers waiting, memtotal = their bytes */
		uint64_t reuses;
		unsigned cached;
		size_t bytes;

		sysalloc_ossl_stats(&reuses, &cached, &bytes);
		v[0] = "openssl_buffers";
		v[1] = "0";
		v[2] = fu(&f, reuses);
		v[3] = fu(&f, cached);
		v[4] = fu(&f, bytes);
		rs_row(&r, v);
	}
	v[0] = "arena";
	v[1] = fu(&f, SLAB_PAGE_SIZE);
	v[2] = fu(&f, as.used_bytes);
	v[3] = fu(&f, as.mapped_bytes - as.used_bytes);
	v[4] = fu(&f, as.mapped_bytes);
	rs_row(&r, v);
	rs_end(&r, "SHOW");
}

static void slab_row(const struct slab_stats *st, void *arg)
{
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
	rs_row(arg, v);
}

static void show_slabs(struct client *c)
{
	static const char *const names[] = { "name", "obj_size", "objs_per_slab", "active_objs",
		"total_objs", "slabs", "allocs", "frees", "hits", "misses", "hit_rate", "grows",
		"reaps", "high_water", "bytes" };
	struct rs r;

	rs_begin(&r, c, "sqqqqqqqqqfqqqq", names);
	slab_arena_foreach(proxy_of(&c->st)->arena, slab_row, &r);
	rs_end(&r, "SHOW");
}

static void prep_row(const struct prep_stmt *st, void *arg)
{
	struct fmt f = { .n = 0 };
	char name[PREP_SERVER_NAME_MAX], q[201];
	const char *v[6];
	size_t i;

	prep_server_name(st, name);
	/* the text as sent, cut at 200 bytes, control characters blanked */
	for (i = 0; i + 1 < sizeof(q) && i < st->key_len && st->key[i]; i++)
		q[i] = st->key[i] < 0x20 || st->key[i] == 0x7f ? ' ' : (char)st->key[i];
	q[i] = 0;
	v[0] = name;
	v[1] = fu(&f, st->refs);
	v[2] = fu(&f, st->n_clients);
	v[3] = fu(&f, st->n_servers);
	v[4] = fu(&f, (unsigned long long)st->key_cap + sizeof(*st));
	v[5] = q;
	rs_row(arg, v);
}

/* The prepared-statement registry: one row per distinct statement. */
static void show_prepared(struct client *c)
{
	static const char *const names[] = { "name", "refcount", "client_names", "servers",
		"bytes", "statement" };
	struct rs r;

	rs_begin(&r, c, "sqqqqs", names);
	prep_reg_foreach(proxy_of(&c->st)->prep, prep_row, &r);
	rs_end(&r, "SHOW");
}

/* The registry's figures in one row (struct prep_stats says what each
 * counts); proxy-wide, so not in the per-database SHOW STATS. */
static void show_prepared_stats(struct client *c)
{
	static const char *const names[] = { "statements", "client_names", "server_statements",
		"bytes", "parses", "binds", "hits", "misses", "hit_rate", "server_hits",
		"server_misses", "server_hit_rate", "injected_parses", "evictions" };
	struct proxy *p = proxy_of(&c->st);
	struct fmt f = { .n = 0 };
	struct prep_stats st;
	const char *v[14];
	struct rs r;

	memset(&st, 0, sizeof(st));
	if (p->prep)
		prep_reg_stats(p->prep, &st);
	v[0] = fu(&f, st.stmts);
	v[1] = fu(&f, st.cmaps);
	v[2] = fu(&f, st.smaps);
	v[3] = fu(&f, st.bytes);
	v[4] = fu(&f, st.parses);
	v[5] = fu(&f, st.binds);
	v[6] = fu(&f, st.hits);
	v[7] = fu(&f, st.misses);
	v[8] = ff(&f, rate(st.hits, st.hits + st.misses));
	v[9] = fu(&f, st.server_hits);
	v[10] = fu(&f, st.server_misses);
	v[11] = ff(&f, rate(st.server_hits, st.server_hits + st.server_misses));
	v[12] = fu(&f, st.injects);
	v[13] = fu(&f, st.evicts);
	rs_begin(&r, c, "qqqqqqqqfqqfqq", names);
	rs_row(&r, v);
	rs_end(&r, "SHOW");
}

/* TLS per side: the configured mode and protocols, handshakes completed and
 * failed since start, connections with TLS open now. */
static void show_tls(struct client *c)
{
	static const char *const names[] = { "side", "sslmode", "protocols", "handshakes",
		"handshake_failures", "connections" };
	struct proxy *p = proxy_of(&c->st);
	const struct config_settings *cfg = &p->cfg->s;
	struct fmt f = { .n = 0 };
	const char *v[6];
	struct rs r;
	int i;

	rs_begin(&r, c, "sssqqq", names);
	for (i = 0; i < 2; i++) {
		bool cl = i == STREAM_TLS_CLIENT;
		const char *proto = cl ? cfg->client_tls_protocols : cfg->server_tls_protocols;

		v[0] = cl ? "client" : "server";
		v[1] = config_sslmode_name(cl ? cfg->client_tls_sslmode : cfg->server_tls_sslmode);
		v[2] = proto && proto[0] ? proto : "secure";
		v[3] = fu(&f, p->sctx.tls_handshakes[i]);
		v[4] = fu(&f, p->sctx.tls_handshake_fail[i]);
		v[5] = fu(&f, p->sctx.tls_open[i]);
		rs_row(&r, v);
	}
	rs_end(&r, "SHOW");
}

/* One row per budget domain (a database's backend slots), then one per pool:
 * the buddy blocks it holds, capacity, use, fair share and reclaim counts. */
static void show_buddy(struct client *c)
{
	static const char *const names[] = { "type", "database", "user", "slots", "used", "free",
		"blocks", "frag_index", "fair_share", "demand", "grows", "shrinks", "lent", "taken" };
	struct proxy *p = proxy_of(&c->st);
	struct list *it, *pi;
	struct rs r;

	rs_begin(&r, c, "sssqqqsfqqqqqq", names);
	list_for_each(it, &p->dbs) {
		struct db *db = list_entry(it, struct db, node);
		struct budget_stats bs;
		struct fmt f = { .n = 0 };
		char blocks[256];
		const char *v[14];
		size_t len = 0;
		int o;

		if (db->budget == NULL)
			continue;
		budget_stats_get(db->budget, &bs);
		/* free blocks per order, largest first: "1x8 1x2" */
		blocks[0] = 0;
		for (o = (int)bs.buddy.max_order; o >= 0; o--)
			if (bs.buddy.nr_free[o] && len < sizeof(blocks) - 32)
				len += (size_t)snprintf(blocks + len, sizeof(blocks) - len, "%s%llux%llu",
						len ? " " : "", (unsigned long long)bs.buddy.nr_free[o],
						1ull << o);
		v[0] = "domain";
		v[1] = db->name;
		v[2] = NULL;
		v[3] = fu(&f, bs.slots);
		v[4] = fu(&f, bs.held);
		v[5] = fu(&f, bs.free);
		v[6] = len ? blocks : "-";
		v[7] = ff(&f, bs.buddy.frag_index);
		v[8] = NULL;
		v[9] = fu(&f, bs.demanding);
		v[10] = fu(&f, bs.grows);
		v[11] = fu(&f, bs.shrinks);
		v[12] = NULL;
		v[13] = fu(&f, bs.reclaims); /* slots taken back from pools above share */
		rs_row(&r, v);
		list_for_each(pi, &p->pools) {
			struct pool *pool = list_entry(pi, struct pool, node);
			const struct budget_member *m = &pool->bm;
			char held[128];

			if (pool->db != db)
				continue;
			budget_member_blocks_str(m, held, sizeof(held));
			v[0] = "pool";
			v[2] = pool->cred->name;
			v[3] = fu(&f, m->capacity);
			v[4] = fu(&f, (uint64_t)pool->n_servers);
			v[5] = fu(&f, m->capacity > (unsigned)pool->n_servers ?
						m->capacity - (unsigned)pool->n_servers : 0);
			v[6] = held;
			v[7] = NULL;
			v[8] = fu(&f, budget_fair_share(db->budget, m));
			v[9] = fu(&f, m->demand);
			v[10] = fu(&f, m->grows);
			v[11] = fu(&f, m->shrinks);
			v[12] = fu(&f, m->lent);
			v[13] = fu(&f, m->taken);
			rs_row(&r, v);
		}
	}
	rs_end(&r, "SHOW");
}

/* Per pool: p50/p95/p99 of query time, transaction time and pool wait,
 * in microseconds, since start (upper bounds of log2 buckets). */
static void show_latency(struct client *c)
{
	static const char *const names[] = { "database", "user", "queries", "query_p50_us",
		"query_p95_us", "query_p99_us", "xacts", "xact_p50_us", "xact_p95_us", "xact_p99_us",
		"waits", "wait_p50_us", "wait_p95_us", "wait_p99_us" };
	static const double pct[3] = { 50, 95, 99 };
	struct proxy *p = proxy_of(&c->st);
	struct list *it;
	struct rs r;

	rs_begin(&r, c, "ssqqqqqqqqqqqq", names);
	list_for_each(it, &p->pools) {
		struct pool *pool = list_entry(it, struct pool, node);
		const struct hist *h[3] = { &pool->query_lat, &pool->xact_lat, &pool->wait_lat };
		struct fmt f = { .n = 0 };
		const char *v[14];
		int i, j;

		v[0] = pool->db->name;
		v[1] = pool->cred->name;
		for (i = 0; i < 3; i++) {
			v[2 + 4 * i] = fu(&f, h[i]->n);
			for (j = 0; j < 3; j++)
				v[3 + 4 * i + j] = fu(&f, hist_percentile(h[i], pct[j]));
		}
		rs_row(&r, v);
	}
	rs_end(&r, "SHOW");
}

/* Per pool: how assignments were served and how long the misses waited. */
static void show_waits(struct client *c)
{
	static const char *const names[] = { "database", "user", "hits", "misses", "hit_rate",
		"waits", "avg_wait_us", "wait_lt_100us", "wait_lt_1ms", "wait_lt_10ms",
		"wait_lt_100ms", "wait_lt_1s", "wait_lt_10s", "wait_ge_10s" };
	struct proxy *p = proxy_of(&c->st);
	struct list *it;
	struct rs r;

	rs_begin(&r, c, "ssqqfqqqqqqqqq", names);
	list_for_each(it, &p->pools) {
		struct pool *pool = list_entry(it, struct pool, node);
		struct fmt f = { .n = 0 };
		const char *v[14];
		uint64_t waits = 0, total = pool->st.hits + pool->st.misses;
		int i;

		for (i = 0; i < POOL_WAIT_BUCKETS; i++)
			waits += pool->wait_hist[i];
		v[0] = pool->db->name;
		v[1] = pool->cred->name;
		v[2] = fu(&f, pool->st.hits);
		v[3] = fu(&f, pool->st.misses);
		v[4] = ff(&f, total ? (double)pool->st.hits / (double)total : 0.0);
		v[5] = fu(&f, waits);
		v[6] = fu(&f, waits ? pool->st.wait_time_us / waits : 0);
		for (i = 0; i < POOL_WAIT_BUCKETS; i++)
			v[7 + i] = fu(&f, pool->wait_hist[i]);
		rs_row(&r, v);
	}
	rs_end(&r, "SHOW");
}

static void show_log(struct client *c)
{
	static const char *const names[] = { "records", "written", "dropped", "dropped_important",
		"pending", "bytes", "queue_high_water", "writes", "write_errors", "buffer_allocs",
		"buffer_reuses", "buffer_reuse_rate" };
	struct proxy *p = proxy_of(&c->st);
	struct log_stats st;
	struct fmt f = { .n = 0 };
	const char *v[12];
	struct rs r;

	memset(&st, 0, sizeof(st));
	if (p->log)
		log_stats_get(p->log, &st);
	v[0] = fu(&f, st.records);
	v[1] = fu(&f, st.written);
	v[2] = fu(&f, st.dropped);
	v[3] = fu(&f, st.dropped_important);
	v[4] = fu(&f, st.pending);
	v[5] = fu(&f, st.bytes);
	v[6] = fu(&f, st.queue_high_water);
	v[7] = fu(&f, st.writes);
	v[8] = fu(&f, st.write_errors);
	v[9] = fu(&f, st.buffer_allocs);
	v[10] = fu(&f, st.buffer_reuses);
	v[11] = ff(&f, rate(st.buffer_reuses, st.buffer_allocs));
	rs_begin(&r, c, "qqqqqqqqqqqf", names);
	rs_row(&r, v);
	rs_end(&r, "SHOW");
}

/* Drivers ask for these; answer as a server would (PgBouncer does too). */
static const char *const fake_params[][2] = {
	{ "client_encoding", "UTF8" },
	{ "default_transaction_isolation", "read committed" },
	{ "standard_conforming_strings", "on" },
	{ "datestyle", "ISO" },
	{ "timezone", "GMT" },
};

static int fake_param(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(fake_params) / sizeof(fake_params[0]); i++)
		if (strcasecmp(name, fake_params[i][0]) == 0)
			return (int)i;
	return -1;
}

/* ---- dispatch ---- */

static void syntax_error(struct client *c, const char *sql)
{
	client_error(c, SQLSTATE_SYNTAX_ERROR, "invalid command '%.200s', use SHOW HELP;", sql);
}

static bool admin_only(struct client *c, const char *what)
{
	if (c->admin == 2)
		return true;
	client_error(c, SQLSTATE_INSUFFICIENT_PRIVILEGE,
			"permission denied for %s: user \"%s\" is in stats_users, not in admin_users",
			what, c->cred ? c->cred->name : "?");
	return false;
}

static bool run_show(struct client *c, const char *what, const char *sql)
{
	char w[ADMINCMD_ARG_MAX];
	size_t i;
	int fp;

	for (i = 0; what[i] && i + 1 < sizeof(w); i++)
		w[i] = (char)tolower((unsigned char)what[i]);
	w[i] = 0;
	if (strcmp(w, "help") == 0)
		show_help(c);
	else if (strcmp(w, "version") == 0)
		show_version(c);
	else if (strcmp(w, "config") == 0)
		show_config(c);
	else if (strcmp(w, "databases") == 0)
		show_databases(c);
	else if (strcmp(w, "users") == 0)
		show_users(c);
	else if (strcmp(w, "pools") == 0)
		show_pools(c);
	else if (strcmp(w, "clients") == 0)
		show_clients(c);
	else if (strcmp(w, "servers") == 0)
		show_servers(c);
	else if (strcmp(w, "sockets") == 0)
		show_sockets(c, false);
	else if (strcmp(w, "active_sockets") == 0)
		show_sockets(c, true);
	else if (strcmp(w, "stats") == 0)
		show_stats(c, STATS_BOTH);
	else if (strcmp(w, "stats_totals") == 0)
		show_stats(c, STATS_TOTALS);
	else if (strcmp(w, "stats_averages") == 0)
		show_stats(c, STATS_AVERAGES);
	else if (strcmp(w, "totals") == 0)
		show_totals(c);
	else if (strcmp(w, "lists") == 0)
		show_lists(c);
	else if (strcmp(w, "mem") == 0)
		show_mem(c);
	else if (strcmp(w, "state") == 0)
		show_state(c);
	else if (strcmp(w, "dns_hosts") == 0)
		show_dns_hosts(c);
	else if (strcmp(w, "dns_zones") == 0)
		show_dns_zones(c);
	else if (strcmp(w, "peers") == 0)
		show_peers(c);
	else if (strcmp(w, "peer_pools") == 0)
		show_peer_pools(c);
	else if (strcmp(w, "slabs") == 0)
		show_slabs(c);
	else if (strcmp(w, "log") == 0)
		show_log(c);
	else if (strcmp(w, "buddy") == 0)
		show_buddy(c);
	else if (strcmp(w, "waits") == 0)
		show_waits(c);
	else if (strcmp(w, "latency") == 0)
		show_latency(c);
	else if (strcmp(w, "prepared_statements") == 0)
		show_prepared(c);
	else if (strcmp(w, "prepared_stats") == 0)
		show_prepared_stats(c);
	else if (strcmp(w, "tls") == 0)
		show_tls(c);
	else if ((fp = fake_param(w)) >= 0) {
		const char *names[1] = { fake_params[fp][0] };
		const char *v[1] = { fake_params[fp][1] };
		struct rs r;

		rs_begin(&r, c, "s", names);
		rs_row(&r, v);
		rs_end(&r, "SHOW");
	} else {
		syntax_error(c, sql);
		return false;
	}
	return true;
}

static void run_set(struct client *c, const struct admin_cmd *cmd)
{
	struct proxy *p = proxy_of(&c->st);
	char err[300];
	int rc;

	if (fake_param(cmd->arg) >= 0) {
		admin_notice(c, "SET ignored", NULL);
		admin_done(c, "SET");
		return;
	}
	if (!admin_only(c, "SET"))
		return;
	rc = control_set(p, cmd->arg, cmd->value, err, sizeof(err));
	if (rc >= 0) {
		log_info("SET %s = %s by console user %s", cmd->arg, cmd->value,
				c->cred ? c->cred->name : "?");
		if (rc > 0)
			client_notice(c, "TLS settings could not be applied, still using old "
					 "configuration");
		admin_done(c, "SET");
	} else {
		client_error(c, rc == -ENOENT ? "42704" : rc == -EPERM ? "55P02" : "22023", "%s",
				err);
	}
}

static void run_reload(struct client *c)
{
	struct proxy *p = proxy_of(&c->st);
	char err[400];

	log_info("RELOAD command issued");
	if (proxy_reload(p, err, sizeof(err)) < 0) {
		/* as PgBouncer: the detail (a path, a line) goes to the log only,
		 * once (proxy_reload() logged it) */
		client_error(c, "F0000", "RELOAD failed, see logs for additional details");
		return;
	}
	admin_done(c, "RELOAD");
}

/* Returns true when the reply is deferred (only if <can_defer>). */
static bool admin_exec(struct client *c, const char *sql, bool can_defer)
{
	struct admin_cmd cmd;

	if (admin_cmd_parse(sql, &cmd) < 0) {
		syntax_error(c, sql);
		return false;
	}
	if (cmd.is_set) {
		run_set(c, &cmd);
		return false;
	}
	if (strcmp(cmd.verb, "show") == 0 || strcmp(cmd.verb, "select") == 0) {
		if (cmd.arg[0] == 0)
			syntax_error(c, sql);
		else
			run_show(c, cmd.arg, sql);
		return false;
	}
	if (strcmp(cmd.verb, "reload") == 0) {
		if (cmd.arg[0])
			syntax_error(c, sql);
		else if (admin_only(c, "RELOAD"))
			run_reload(c);
		return false;
	}
	if (control_is_verb(cmd.verb)) {
		char what[ADMINCMD_VERB_MAX];
		size_t i;

		for (i = 0; cmd.verb[i]; i++)
			what[i] = (char)toupper((unsigned char)cmd.verb[i]);
		what[i] = 0;
		if (!admin_only(c, what))
			return false;
		return control_exec(c, cmd.verb, cmd.arg, can_defer);
	}
	syntax_error(c, sql);
	return false;
}

bool admin_query(struct client *c, const char *sql)
{
	proxy_of(&c->st)->console_queries++;
	return !admin_exec(c, sql, true);
}
