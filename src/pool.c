/* pool.c -- pools of server connections: assignment, release, limits, timeouts.
 *
 * Theory.  A pool is a (database, server-login user) pair.  A client that
 * needs a server takes the most recently used idle one (a hit) or queues on
 * pool->waiting (a miss), first come first served; a server that becomes
 * free goes to the oldest waiter before it goes idle.  Unlike PgBouncer, a
 * pool opens as many connections in parallel as it has waiters and free
 * capacity, so a cold start of N clients costs a few connect latencies.
 *
 * Capacity: pool->n_servers <= pool size (+ reserve_pool_size once a client
 * has waited reserve_pool_timeout), db->n_servers <= max_db_connections.
 *
 * Replication clients (client.h) share their pool's capacity but never its
 * servers: each waits on pool->welcome_wait (CL_WELCOME, counted in
 * n_repl_wait) until pool_launch() opens a server for it alone, linked to
 * it from the start (s->repl, s->client) and opened with its startup
 * parameters (server.c); a full pool closes an idle server of its own for
 * it ("evicted", as PgBouncer).  Such a server is never idle, released,
 * reset or synced (pool_prepare is never run): it is closed when its
 * client leaves, and its client goes when it does.
 *   n_repl = servers with s->repl, n_repl_login = those still in SV_LOGIN,
 *   n_repl_wait = replication clients on welcome_wait (with or without a
 *   server logging in for them).
 *
 * Timeouts are enforced by pool_janitor() a few times a second, walking only
 * list heads or tails ordered by time where it can (waiting clients oldest
 * first, idle servers newest first).
 */
#include "pool.h"
#include "db.h"
#include "proxy.h"

#include <string.h>

#include "authq.h"
#include "cancel.h"
#include "client.h"
#include "cred.h"
#include "log.h"
#include "proto.h"
#include "server.h"
#include "slab.h"
#include "vars.h"

static void pool_settle(struct pool *pool);
static void pool_budget_refresh_db(struct proxy *p, struct db *db);

static int64_t setting_or(int64_t v, int64_t dflt)
{
	return v >= 0 ? v : dflt;
}

/* The one source of truth for a pool's size, PgBouncer's precedence: the
 * pool user's [users] pool_size, else the database's pool_size, else
 * default_pool_size.  The pool user is the database's force_user when it has
 * one (so a login user's entry then does not count).  <user> NULL: the
 * database seen as a whole (SHOW DATABASES, /metrics), users left out. */
int pool_size_for(const struct proxy *p, const struct db *db, const char *user)
{
	const struct config *cfg = p->cfg;
	const struct config_user *u;

	if (user && db->force_user[0])
		user = db->force_user;
	u = user ? config_find_user(cfg, user) : NULL;
	if (u && u->pool_size >= 0)
		return u->pool_size;
	if (db->pool_size >= 0)
		return db->pool_size;
	return cfg->s.default_pool_size;
}

int pool_effective_size(const struct pool *pool)
{
	return pool_size_for(pool->proxy, pool->db, pool->cred->name);
}

/* pool_mode from [users], else [databases], else [pgbouncer]. */
void pool_refresh_mode(struct pool *pool)
{
	const struct config *cfg = pool->proxy->cfg;
	const struct config_user *u = config_find_user(cfg, pool->cred->name);

	if (u && u->pool_mode != CONFIG_INHERIT)
		pool->mode = (enum pool_mode)u->pool_mode;
	else if (pool->db->pool_mode != CONFIG_INHERIT)
		pool->mode = (enum pool_mode)pool->db->pool_mode;
	else
		pool->mode = cfg->s.pool_mode;
}

struct pool *pool_get(struct proxy *p, struct db *db, struct cred *cred)
{
	struct list *it;
	struct pool *pool;

	list_for_each(it, &p->pools) {
		pool = list_entry(it, struct pool, node);
		if (pool->db == db && pool->cred == cred)
			return pool;
	}
	pool = slab_alloc(p->pool_cache);
	if (pool == NULL)
		return NULL;
	memset(pool, 0, sizeof(*pool));
	pool->proxy = p;
	pool->db = db;
	pool->cred = cred;
	list_init(&pool->idle);
	list_init(&pool->active);
	list_init(&pool->login);
	list_init(&pool->waiting);
	list_init(&pool->clients);
	list_init(&pool->welcome_wait);
	list_init(&pool->lookups);
	pool_refresh_mode(pool);
	if (db->budget == NULL)
		db->budget = budget_create(1);
	budget_member_init(&pool->bm, 0, (unsigned)db->pool_weight);
	if (db->budget == NULL || budget_join(db->budget, &pool->bm) < 0) {
		slab_free(p->pool_cache, pool);
		return NULL;
	}
	list_append(&p->pools, &pool->node);
	pool_budget_refresh_db(p, db);
	return pool;
}

/* ---- list bookkeeping ---- */

static void server_unlist(struct server *s)
{
	struct pool *pool = s->pool;

	list_del(&s->node);
	switch (s->state) {
	case SV_LOGIN:
		pool->n_login--;
		if (s->repl)
			pool->n_repl_login--;
		break;
	case SV_IDLE:
		pool->n_idle--;
		break;
	case SV_ACTIVE:
	case SV_RESET:
	case SV_AUTHQ:
		pool->n_active--;
		break;
	default:
		break;
	}
}

static void client_move(struct client *c, enum client_state state)
{
	struct pool *pool = c->pool;

	list_del(&c->node);
	if (c->state == CL_WAITING)
		pool->n_waiting--;
	else if (c->state == CL_ACTIVE)
		pool->n_clients--;
	c->state = (uint8_t)state;
	if (state == CL_WAITING) {
		c->wait_notified = false;
		list_append(&pool->waiting, &c->node);
		pool->n_waiting++;
	} else {
		list_append(&pool->clients, &c->node);
		pool->n_clients++;
	}
}

void pool_client_gone(struct client *c, enum client_state prev)
{
	struct pool *pool = c->pool;

	list_del(&c->node);
	if (prev == CL_WAITING)
		pool->n_waiting--;
	else if (prev == CL_ACTIVE)
		pool->n_clients--;
	else if (prev == CL_WELCOME && c->replication)
		pool->n_repl_wait--;
	else if (prev == CL_WELCOME)
		pool->n_welcome--;
	pool->db->n_clients--;
}

/* Bring linked server <s> to its client's needs: a health check if it sat
 * idle past server_check_delay, then a SET for parameters that differ.  Each
 * step runs at most once per link.  True when the client may forward now;
 * false while a step runs (its ReadyForQuery calls this again). */
bool pool_prepare(struct server *s)
{
	struct pool *pool = s->pool;
	struct proxy *p = pool->proxy;
	struct client *c = s->client;
	const char *check = p->cfg->s.server_check_query;
	char sql[2048];

	if (!(s->prep & PREP_CHECKED)) {
		s->prep |= PREP_CHECKED;
		if (check[0] && p->cfg->s.server_check_delay_us >= 0 &&
				proxy_now_us() - s->used_us > p->cfg->s.server_check_delay_us) {
			server_send_internal(s, strcmp(check, "<empty>") == 0 ? "" : check);
			return false;
		}
	}
	if (!(s->prep & PREP_SYNCED)) {
		size_t n = c->vars != s->vars ?
				vars_sync_sql(&p->vars, s->vars, c->vars, sql, sizeof(sql)) : 0;

		s->prep |= PREP_SYNCED;
		if (n >= sizeof(sql)) {
			/* long values: a buffer of the size needed, never truncated */
			size_t cap;
			char *big = slab_buf_alloc(p->arena, n + 1, &cap);

			if (big == NULL) {
				client_close(c, SQLSTATE_INTERNAL, "out of memory for parameter sync");
				return false;
			}
			vars_sync_sql(&p->vars, s->vars, c->vars, big, cap);
			server_send_internal(s, big);
			slab_buf_free(p->arena, big, cap);
			return false;
		}
		if (n > 0) {
			server_send_internal(s, sql);
			return false;
		}
	}
	s->state = SV_ACTIVE;
	s->used_us = proxy_now_us();
	return true;
}

/* Move idle-or-new <s> to pool->active in <state>. */
static void server_activate(struct server *s, enum server_state state)
{
	struct pool *pool = s->pool;

	server_unlist(s);
	s->state = (uint8_t)state;
	list_append(&pool->active, &s->node);
	pool->n_active++;
	pool->st.server_assignment_count++;
}

/* Link <c> and idle-or-new server <s>; see pool_prepare() for the result. */
static bool link_pair(struct client *c, struct server *s)
{
	server_activate(s, SV_ACTIVE);
	s->client = c;
	c->server = s;
	s->prep = 0;
	stream_link(&c->st, &s->st);
	return pool_prepare(s);
}

/* Hand idle <s> to lookup <r> (an auth_query: no client, no SET sync). */
static void run_lookup(struct server *s, struct authq_req *r)
{
	server_activate(s, SV_AUTHQ);
	s->pool->proxy->pool_ops->lookup_run(s, r);
}

void pool_lookup(struct pool *pool, struct authq_req *r)
{
	struct proxy *p = pool->proxy;

	if (!p->paused && !pool->db->paused && !list_empty(&pool->idle)) {
		pool->st.hits++;
		run_lookup(list_first_entry(&pool->idle, struct server, node), r);
		return;
	}
	pool->st.misses++;
	list_append(&pool->lookups, &r->node);
	pool->n_lookups++;
	pool_launch(pool);
}

/* PgBouncer's fast fail: while the pool's last server login was refused
 * and server_login_retry has not passed, a client that would wait for a
 * server gets that refusal now. */
static bool fast_fail(struct pool *pool, struct client *c)
{
	char msg[256];

	if (!pool->login_failing || proxy_now_us() >= pool->retry_at_us ||
			pool->n_servers > pool->n_login)
		return false;
	snprintf(msg, sizeof(msg),
			"server login has been failing, try again later (server_login_retry): %s",
			pool->login_error);
	client_close(c, SQLSTATE_CANNOT_CONNECT_NOW, msg);
	return true;
}

void pool_welcome_wait(struct client *c)
{
	if (!fast_fail(c->pool, c))
		pool_launch(c->pool);
}

bool pool_assign(struct client *c)
{
	struct pool *pool = c->pool;
	struct proxy *p = pool->proxy;

	if (!p->paused && !pool->db->paused && !list_empty(&pool->idle)) {
		/* LIFO keeps the warmest backend busy; round robin spreads load */
		struct server *s = p->cfg->s.server_round_robin ?
				list_last_entry(&pool->idle, struct server, node) :
				list_first_entry(&pool->idle, struct server, node);

		pool->st.hits++;
		return link_pair(c, s);
	}
	if (p->shutdown == SHUTDOWN_WAIT_SERVERS) {
		client_close(c, SQLSTATE_ADMIN_SHUTDOWN, "server shutting down");
		return false;
	}
	if (fast_fail(pool, c))
		return false;
	pool->st.misses++;
	c->wait_start_us = proxy_now_us();
	client_move(c, CL_WAITING);
	pool_launch(pool);
	return false;
}

static void pool_note_wait(struct pool *pool, int64_t us)
{
	int b = 0;
	int64_t lim = 100;

	pool->st.wait_time_us += (uint64_t)us;
	hist_add(&pool->wait_lat, us);
	while (b < POOL_WAIT_BUCKETS - 1 && us >= lim) {
		b++;
		lim *= 10;
	}
	pool->wait_hist[b]++;
}

/* Hand free server <s> to the oldest waiter; false when nobody waits. */
static bool give_to_waiter(struct server *s)
{
	struct pool *pool = s->pool;
	struct proxy *p = pool->proxy;
	struct client *c;
	int64_t now;

	if (p->paused || pool->db->paused)
		return false;
	if (!list_empty(&pool->lookups)) {
		/* logins wait on lookups: they go first */
		struct authq_req *r = list_first_entry(&pool->lookups, struct authq_req, node);

		list_del(&r->node);
		list_init(&r->node);
		pool->n_lookups--;
		run_lookup(s, r);
		return true;
	}
	c = NULL;
	{
		struct list *it;

		list_for_each(it, &pool->waiting) {
			struct client *w = list_entry(it, struct client, node);

			if (!w->closing) {
				c = w;
				break;
			}
		}
	}
	if (c == NULL)
		return false;
	now = proxy_now_us();
	pool_note_wait(pool, now - c->wait_start_us);
	client_move(c, CL_ACTIVE);
	if (link_pair(c, s))
		client_server_ready(c);
	return true;
}

/* server_lifetime 0 is PgBouncer's "use once": an idle server is closed by
 * the janitor's next pass (<scan>), not on release, so a fresh server still
 * serves the client that waits for it. */
static bool too_old(const struct server *s, int64_t now, bool scan)
{
	struct proxy *p = s->pool->proxy;
	int64_t life = setting_or(s->pool->db->server_lifetime_us, p->cfg->s.server_lifetime_us);

	if (life == 0)
		return scan;
	return life > 0 && now - s->connect_us > life;
}

void pool_server_idle(struct server *s)
{
	struct pool *pool = s->pool;
	struct proxy *p = pool->proxy;

	if (s->repl) { /* never pooled (not reached: its client holds it) */
		server_close(s, "replication server cannot be reused");
		pool_launch(pool);
		return;
	}
	server_unlist(s);
	s->state = SV_IDLE;
	s->used_us = proxy_now_us();
	track_reset(&s->tr, p->arena);
	list_prepend(&pool->idle, &s->node);
	pool->n_idle++;
	if (s->close_needed || pool->db->dead || p->shutdown == SHUTDOWN_NOW ||
			too_old(s, s->used_us, false)) {
		server_close(s, s->close_needed ? "obsolete connection" : "server lifetime over");
		pool_launch(pool);
		return;
	}
	if (pool->bm.owed > 0) {
		/* over its fair share while another pool waits: hand the slot over */
		server_close(s, "slot handed to a pool below its fair share");
		return;
	}
	if (!give_to_waiter(s) && pool->n_repl_wait > 0)
		pool_launch(pool); /* a replication client may evict it */
}

static void unlink_pair(struct server *s)
{
	struct client *c = s->client;

	s->release_on_drain = false;
	if (c) {
		c->server = NULL;
		s->client = NULL;
		stream_unlink(&s->st);
	}
}

void pool_release(struct server *s)
{
	struct client *c = s->client;
	struct pool *pool = s->pool;
	struct proxy *p = pool->proxy;
	bool client_gone = c == NULL || c->closing || c->state == CL_CLOSED;

	unlink_pair(s);
	if (s->repl) { /* never pooled (not reached: held as in session mode) */
		server_close(s, "replication server cannot be reused");
		pool_launch(pool);
		return;
	}
	if (s->state != SV_ACTIVE || !track_idle(&s->tr)) {
		/* callers release only idle backends; never reuse a dirty one */
		server_close(s, "unclean server");
		pool_launch(pool);
		return;
	}
	/* session mode resets when its client leaves; server_reset_query_always
	 * resets on every release, in every mode (as PgBouncer) */
	if (p->cfg->s.server_reset_query[0] &&
			((client_gone && pool->mode == POOL_MODE_SESSION) ||
					p->cfg->s.server_reset_query_always)) {
		server_send_internal(s, p->cfg->s.server_reset_query);
		return;
	}
	pool_server_idle(s);
}

/* Replication client <c> leaves its own server <s>: <s> is closed, never
 * reused; a Terminate first when <c> left between messages, so the
 * walsender ends cleanly. */
static void repl_client_left(struct server *s, struct client *c)
{
	struct pool *pool = s->pool;
	bool partial = stream_in_flight(&c->st);

	unlink_pair(s);
	if (s->state == SV_ACTIVE && !partial) {
		static const uint8_t term[5] = { 'X', 0, 0, 0, 4 };

		if (stream_write(&s->st, term, sizeof(term)) == 0)
			stream_flush(&s->st);
	}
	server_close(s, "replication client disconnected");
	pool_launch(pool);
}

void pool_client_left(struct server *s, struct client *c)
{
	bool partial = stream_in_flight(&c->st);

	if (s->repl) {
		repl_client_left(s, c);
		return;
	}
	if (s->state == SV_ACTIVE && track_idle(&s->tr) && !partial) {
		pool_release(s);
		return;
	}
	unlink_pair(s);
	if (s->state == SV_RESET)
		return; /* its step's ReadyForQuery parks it (no client now) */
	if (partial || (s->tr.flags & TRACK_F_DESYNC)) {
		server_close(s, partial ? "client disconnected in the middle of a message" :
					  "client disconnected, protocol state unknown");
		pool_launch(s->pool);
		return;
	}
	server_drain(s);
}

void pool_server_gone(struct server *s)
{
	struct pool *pool = s->pool;
	struct proxy *p = pool->proxy;

	server_unlist(s);
	if (s->repl)
		pool->n_repl--;
	pool->n_servers--;
	pool->db->n_servers--;
	p->n_servers--;
	pool_settle(pool);
}

/* ---- backend slots: the db's budget, shared by its pools ---- */

/* reserve_pool_size, as pool_size: the pool user's, the database's, the
 * global one. */
static int reserve_size(const struct pool *pool)
{
	const struct db *db = pool->db;
	const struct config_user *u = config_find_user(pool->proxy->cfg, pool->cred->name);

	if (u && u->reserve_pool_size >= 0)
		return u->reserve_pool_size;
	return db->reserve_pool_size >= 0 ? db->reserve_pool_size :
					    pool->proxy->cfg->s.reserve_pool_size;
}

/* Slots in <db>'s budget: max_db_connections, else what its pools may use. */
static unsigned budget_slots_for(struct proxy *p, struct db *db)
{
	int dblimit = db->max_db_connections >= 0 ? db->max_db_connections :
						    p->cfg->s.max_db_connections;
	unsigned sum = 0;
	struct list *it;

	if (dblimit > 0)
		return (unsigned)dblimit;
	list_for_each(it, &p->pools) {
		struct pool *pool = list_entry(it, struct pool, node);
		int size = pool_effective_size(pool);

		if (pool->db == db)
			sum += size > 0 ? (unsigned)(size + reserve_size(pool)) :
					  (unsigned)p->cfg->s.max_client_conn;
	}
	return sum > 0 ? sum : 1;
}

/* Keep the member's inputs current: limit, weight, usage and demand. */
static void member_sync(struct pool *pool, int64_t now)
{
	struct budget_member *m = &pool->bm;
	int size = pool_effective_size(pool);

	if (size > 0 && !list_empty(&pool->waiting) &&
			now - list_first_entry(&pool->waiting, struct client, node)->wait_start_us >
					pool->proxy->cfg->s.reserve_pool_timeout_us)
		size += reserve_size(pool);
	m->max = size > 0 ? (unsigned)size : 0;
	m->used = (unsigned)pool->n_servers;
	m->demand = (unsigned)(pool->n_waiting + pool->n_lookups + pool->n_active +
			       pool->n_repl_wait + (pool->n_welcome > 0));
	/* shares in proportion to demand: every waiting client counts the same,
	 * whichever pool it is in; pool_weight scales that */
	m->weight = (unsigned)pool->db->pool_weight * (m->demand > 0 ? m->demand : 1);
}

/* pool_budget_refresh() for <db> alone: only its budget and pools change
 * when one of its pools is created.  O(pools). */
static void pool_budget_refresh_db(struct proxy *p, struct db *db)
{
	int64_t now = proxy_now_us();
	struct list *it;

	budget_resize(db->budget, budget_slots_for(p, db));
	list_for_each(it, &p->pools) {
		struct pool *pool = list_entry(it, struct pool, node);

		if (pool->db != db)
			continue;
		member_sync(pool, now);
		budget_shrink(db->budget, &pool->bm);
	}
}

void pool_budget_refresh(struct proxy *p)
{
	int64_t now = proxy_now_us();
	struct list *it;

	list_for_each(it, &p->dbs) {
		struct db *db = list_entry(it, struct db, node);

		if (db->budget)
			budget_resize(db->budget, budget_slots_for(p, db));
	}
	list_for_each(it, &p->pools) {
		struct pool *pool = list_entry(it, struct pool, node);

		member_sync(pool, now);
		budget_shrink(pool->db->budget, &pool->bm);
	}
}

/* Servers <pool> may open within its share of the budget, grown by buddy
 * blocks (doubling) from the free slots as far as <want> needs. */
static int grow_room(struct pool *pool, int want)
{
	struct budget *b = pool->db->budget;
	int room = (int)pool->bm.capacity - pool->n_servers;

	while (room < want) {
		unsigned got = budget_grow(b, &pool->bm);

		if (got == 0)
			break;
		budget_touch(b, &pool->bm);
		room += (int)got;
	}
	return room;
}

/* Servers <pool> may open now: grow_room(), and when the budget is
 * exhausted claim slots back from a pool above its fair share. */
static int pool_room(struct pool *pool, int want, int64_t now)
{
	struct proxy *p = pool->proxy;
	struct budget *b = pool->db->budget;
	const struct config_user *u = config_find_user(p->cfg, pool->cred->name);
	int room, ulimit;

	member_sync(pool, now);
	room = grow_room(pool, want);
	if (room < want && room <= 0 && (pool->n_waiting > 0 || pool->n_welcome > 0 ||
						    pool->n_lookups > 0 || pool->n_repl_wait > 0)) {
		struct budget_member *vm;

		/* the other pools' demands may be stale (a pool whose clients all
		 * left still counts as demanding): refresh them before the fair
		 * shares decide, or a late pool can starve at a tie */
		pool_budget_refresh_db(p, pool->db);
		vm = budget_pick_victim(b, &pool->bm);
		struct pool *victim = vm ? (struct pool *)(void *)((char *)vm -
							offsetof(struct pool, bm)) : NULL;

		/* an idle server pays the debt now; else its next release does.
		 * The slot it frees is this pool's to take at once: left in the
		 * budget, the janitor's next pass could give it back to a pool
		 * that only refills its min_pool_size, and so on for ever. */
		if (victim && !list_empty(&victim->idle)) {
			server_close(list_last_entry(&victim->idle, struct server, node),
					"slot handed to a pool below its fair share");
			room = grow_room(pool, want);
		}
	}
	ulimit = u && u->max_user_connections >= 0 ? u->max_user_connections :
						     p->cfg->s.max_user_connections;
	if (ulimit > 0) {
		struct list *it;
		int used = 0;

		list_for_each(it, &p->pools) {
			struct pool *q = list_entry(it, struct pool, node);

			if (q->cred == pool->cred)
				used += q->n_servers;
		}
		if (ulimit - used < room)
			room = ulimit - used;
	}
	return room;
}

/* A server of <pool> is gone: settle a slot debt by handing the slot to the
 * neediest pool, or give back blocks the pool no longer needs. */
static void pool_settle(struct pool *pool)
{
	struct budget *b = pool->db->budget;
	struct budget_member *needy;

	member_sync(pool, proxy_now_us());
	if (pool->bm.owed > 0) {
		budget_take_slot(b, &pool->bm);
		needy = budget_pick_needy(b);
		if (needy)
			pool_launch((struct pool *)(void *)((char *)needy - offsetof(struct pool, bm)));
	} else if (pool->n_waiting == 0 && pool->n_repl_wait == 0) {
		budget_shrink(b, &pool->bm);
	}
}

/* A server beyond the pool size for a waiting client comes from the
 * reserve: say so, as PgBouncer does. */
static void note_reserve(const struct pool *pool)
{
	int size = pool_effective_size(pool);
	char id[200];

	if (size <= 0 || pool->n_servers < size || list_empty(&pool->waiting))
		return;
	client_logid(list_first_entry(&pool->waiting, struct client, node), id, sizeof(id));
	slog_warning(id, "taking connection from reserve_pool");
}

static void close_servers(struct list *l, const char *reason)
{
	while (!list_empty(l))
		server_close(list_first_entry(l, struct server, node), reason);
}

void pool_reconnect(struct pool *pool, const char *reason)
{
	struct list *it;

	/* a failed login of the old settings says nothing of the new ones:
	 * the next client gets a fresh try, not the cached error */
	pool->login_failing = false;
	pool->retry_at_us = 0;

	list_for_each(it, &pool->active)
		list_entry(it, struct server, node)->close_needed = true;
	list_for_each(it, &pool->login)
		list_entry(it, struct server, node)->close_needed = true;
	close_servers(&pool->idle, reason);
}

/* ---- the console's verbs: control.c and admin.c reach a pool's clients
 * and servers through these, never through its lists ---- */

void pool_shed(struct pool *pool, const char *reason)
{
	struct list *it, *tmp;

	close_servers(&pool->idle, reason);
	list_for_each_safe(it, tmp, &pool->login) {
		struct server *s = list_entry(it, struct server, node);

		if (s->repl && s->client) {
			/* its client waits on for another (not linked yet) */
			s->client->server = NULL;
			s->client = NULL;
		}
		server_close(s, reason);
	}
}

void pool_kick(struct pool *pool)
{
	while (pool->n_waiting > 0 && !list_empty(&pool->idle))
		pool_server_idle(list_first_entry(&pool->idle, struct server, node));
	pool_launch(pool);
}

void pool_kill(struct pool *pool, const char *reason)
{
	pool_close_clients(&pool->welcome_wait, SQLSTATE_ADMIN_SHUTDOWN, reason);
	pool_close_clients(&pool->waiting, SQLSTATE_ADMIN_SHUTDOWN, reason);
	pool_close_clients(&pool->clients, SQLSTATE_ADMIN_SHUTDOWN, reason);
	close_servers(&pool->active, "database killed");
	close_servers(&pool->idle, "database killed");
	close_servers(&pool->login, "database killed");
}

static bool any_close_needed(const struct list *l)
{
	const struct list *it;

	for (it = l->next; it != l; it = it->next)
		if (list_entry(it, struct server, node)->close_needed)
			return true;
	return false;
}

bool pool_closing(const struct pool *pool)
{
	return any_close_needed(&pool->idle) || any_close_needed(&pool->active) ||
		any_close_needed(&pool->login);
}

void pool_foreach_client(struct pool *pool, void (*fn)(struct client *c, void *arg), void *arg)
{
	struct list *lists[3] = { &pool->clients, &pool->waiting, &pool->welcome_wait };
	struct list *it, *tmp;
	int i;

	for (i = 0; i < 3; i++)
		list_for_each_safe(it, tmp, lists[i])
			fn(list_entry(it, struct client, node), arg);
}

void pool_foreach_server(struct pool *pool, void (*fn)(struct server *s, void *arg), void *arg)
{
	struct list *lists[3] = { &pool->active, &pool->idle, &pool->login };
	struct list *it, *tmp;
	int i;

	for (i = 0; i < 3; i++)
		list_for_each_safe(it, tmp, lists[i])
			fn(list_entry(it, struct server, node), arg);
}

/* Close an idle server of <pool> to make room for a replication client's
 * own (PgBouncer's eviction).  False when it has none. */
static bool evict_idle(struct pool *pool)
{
	if (list_empty(&pool->idle))
		return false;
	server_close(list_last_entry(&pool->idle, struct server, node), "evicted");
	return true;
}

/* Open a server for each replication client of <pool> that has none yet,
 * oldest first, as capacity allows; see the theory at the top. */
static void launch_repl(struct pool *pool, int64_t now)
{
	struct list *it, *tmp;

	list_for_each_safe(it, tmp, &pool->welcome_wait) {
		struct client *c = list_entry(it, struct client, node);
		struct server *s;

		if (!c->replication || c->server != NULL || c->closing)
			continue;
		while (pool_room(pool, 1, now) <= 0)
			if (!evict_idle(pool))
				return;
		s = server_launch(pool);
		if (s == NULL) {
			pool->retry_at_us = now + 1000000;
			return;
		}
		s->repl = c->replication;
		s->client = c;
		c->server = s;
		pool->n_repl++;
		pool->n_repl_login++;
	}
}

void pool_launch(struct pool *pool)
{
	struct proxy *p = pool->proxy;
	int64_t now = proxy_now_us();
	int min = pool->db->min_pool_size >= 0 ? pool->db->min_pool_size : p->cfg->s.min_pool_size;

	/* SHUTDOWN WAIT_FOR_CLIENTS still serves the clients it has */
	if (pool->launching || (p->shutdown != SHUTDOWN_NONE && p->shutdown != SHUTDOWN_WAIT_CLIENTS) ||
			p->paused || pool->db->paused || pool->db->dead || now < pool->retry_at_us)
		return;
	pool->launching = true;
	if (pool->n_repl_wait > 0)
		launch_repl(pool, now);
	for (;;) {
		/* replication servers serve nobody else */
		int want = pool->n_waiting + pool->n_lookups +
			   (pool->n_welcome > 0 && pool->n_servers == pool->n_repl) -
			   (pool->n_login - pool->n_repl_login);

		if (pool->n_servers + (want > 0 ? want : 0) < min && p->shutdown == SHUTDOWN_NONE)
			want = min - pool->n_servers;
		if (want <= 0 || pool_room(pool, want, now) <= 0)
			break;
		note_reserve(pool);
		if (server_launch(pool) == NULL) {
			pool->retry_at_us = now + 1000000;
			pool->proxy->pool_ops->lookups_failed(pool, NULL, "could not connect");
			break;
		}
	}
	pool->launching = false;
}

void pool_welcome_all(struct pool *pool)
{
	struct list *it, *tmp;

	/* replication clients wait for their own server's parameters */
	list_for_each_safe(it, tmp, &pool->welcome_wait) {
		struct client *c = list_entry(it, struct client, node);

		if (!c->replication)
			client_welcome(c);
	}
}

/* client_close() every client of <l> (they leave their lists later). */
void pool_close_clients(struct list *l, const char *sqlstate, const char *msg)
{
	struct list *it, *tmp;

	list_for_each_safe(it, tmp, l)
		client_close(list_entry(it, struct client, node), sqlstate, msg);
}

void pool_fail_waiting(struct pool *pool, const char *sqlstate, const char *msg)
{
	pool_close_clients(&pool->welcome_wait, sqlstate, msg);
	pool_close_clients(&pool->waiting, sqlstate, msg);
	pool->proxy->pool_ops->lookups_failed(pool, sqlstate, msg);
}

/* client_close() the clients of <l> that have waited <timeout> or more. */
static void expire_waiters(struct list *l, int64_t now, int64_t timeout, const char *why)
{
	struct list *it, *tmp;

	list_for_each_safe(it, tmp, l) {
		struct client *c = list_entry(it, struct client, node);

		if (now - c->wait_start_us < timeout)
			break; /* oldest first */
		client_close(c, SQLSTATE_PROTOCOL_VIOLATION, why);
	}
}

/* ---- timeouts and maintenance ---- */

static void janitor_pool(struct pool *pool, int64_t now)
{
	struct proxy *p = pool->proxy;
	const struct config_settings *s = &p->cfg->s;
	const struct config_user *u = config_find_user(p->cfg, pool->cred->name);
	int64_t qwait = setting_or(u ? u->query_wait_timeout_us : -1, s->query_wait_timeout_us);
	int64_t qtime = setting_or(u ? u->query_timeout_us : -1, s->query_timeout_us);
	int64_t itx = setting_or(u ? u->idle_transaction_timeout_us : -1, s->idle_transaction_timeout_us);
	int64_t xto = setting_or(u ? u->transaction_timeout_us : -1, s->transaction_timeout_us);
	int64_t cidle = setting_or(u ? u->client_idle_timeout_us : -1, s->client_idle_timeout_us);
	int min = pool->db->min_pool_size >= 0 ? pool->db->min_pool_size : s->min_pool_size;
	struct list *it, *tmp;

	/* as PgBouncer: one notice a wait, to a welcomed client, past query_wait_notify */
	if (s->query_wait_notify_us > 0) {
		list_for_each(it, &pool->waiting) {
			struct client *c = list_entry(it, struct client, node);

			if (now - c->wait_start_us <= s->query_wait_notify_us)
				break; /* oldest first */
			if (!c->wait_notified) {
				c->wait_notified = true;
				client_notice(c, "No server connection available in postgres backend, "
						 "client being queued");
			}
		}
	}
	if (qwait > 0) {
		expire_waiters(&pool->waiting, now, qwait, "query_wait_timeout");
		expire_waiters(&pool->welcome_wait, now, qwait, "query_wait_timeout");
	}
	/* as PgBouncer, query_timeout counts while a query waits for a server */
	if (qtime > 0) {
		expire_waiters(&pool->waiting, now, qtime, "query_timeout");
		expire_waiters(&pool->welcome_wait, now, qtime, "query_timeout");
	}
	/* connects that take too long */
	list_for_each_safe(it, tmp, &pool->login) {
		struct server *sv = list_entry(it, struct server, node);

		if (s->server_connect_timeout_us > 0 &&
				now - sv->connect_us > s->server_connect_timeout_us) {
			pool->retry_at_us = now + s->server_login_retry_us;
			server_close(sv, "connect timeout");
		}
	}
	/* idle servers: the oldest sit at the tail */
	while (!list_empty(&pool->idle)) {
		struct server *sv = list_last_entry(&pool->idle, struct server, node);
		int size = pool_effective_size(pool);

		if (size > 0 && pool->n_servers > size) {
			server_close(sv, "pool size reduced");
			continue;
		}
		if (too_old(sv, now, true)) {
			server_close(sv, "server lifetime over");
			continue;
		}
		if (s->server_idle_timeout_us > 0 && now - sv->used_us > s->server_idle_timeout_us &&
				pool->n_servers > min) {
			server_close(sv, "server idle timeout");
			continue;
		}
		break;
	}
	/* running queries and open transactions */
	list_for_each_safe(it, tmp, &pool->active) {
		struct server *sv = list_entry(it, struct server, node);
		struct client *c = sv->client;

		if (sv->state == SV_DRAIN && now > sv->drain_until_us) {
			server_close(sv, "client left a long query behind");
			continue;
		}
		if (c == NULL || sv->state != SV_ACTIVE)
			continue;
		/* as PgBouncer: a replication session (a stream may last for
		 * ever) whose server must go (RECONNECT, changed database) ends
		 * at once */
		if (sv->repl && sv->close_needed) {
			unlink_pair(sv);
			server_close(sv, "database configuration changed");
			client_close(c, SQLSTATE_ADMIN_SHUTDOWN, "database configuration changed");
			continue;
		}
		/* as PgBouncer: server_fast_close ends a session whose server must
		 * go (RECONNECT, changed database) once no request is out and its
		 * transaction, if any, has ended */
		if (s->server_fast_close && sv->close_needed && !track_busy(&sv->tr) &&
				sv->tr.txn == 'I') {
			unlink_pair(sv);
			server_close(sv, "database configuration changed");
			client_close(c, SQLSTATE_ADMIN_SHUTDOWN, "database configuration changed");
			continue;
		}
		/* a replication stream or base backup is one long command:
		 * query_timeout would end every one */
		if (qtime > 0 && !sv->repl && track_busy(&sv->tr) &&
				now - sv->query_start_us > qtime) {
			client_close(c, SQLSTATE_QUERY_CANCELED, "query timeout");
		} else if (itx > 0 && !track_busy(&sv->tr) && sv->tr.txn != 'I' &&
				now - c->active_us > itx) {
			client_close(c, SQLSTATE_IDLE_IN_TXN_TIMEOUT, "idle transaction timeout");
		} else if (xto > 0 && sv->tr.txn != 'I' && now - c->xact_start_us > xto) {
			client_close(c, SQLSTATE_IDLE_IN_TXN_TIMEOUT, "transaction timeout");
		}
	}
	if (cidle > 0) {
		list_for_each_safe(it, tmp, &pool->clients) {
			struct client *c = list_entry(it, struct client, node);

			if (c->server == NULL && now - c->active_us > cidle)
				client_close(c, SQLSTATE_IDLE_SESSION_TIMEOUT, "client_idle_timeout");
		}
	}
	/* also retries a cold pool whose first connect failed */
	if (pool->n_waiting > 0 || pool->n_welcome > 0 || pool->n_lookups > 0 ||
			pool->n_repl_wait > 0 || pool->n_servers < min)
		pool_launch(pool);
}

/* As PgBouncer: a database with force_user and a min_pool_size keeps its
 * one pool filled even before any client came (its user is known). */
static void forced_min_pools(struct proxy *p)
{
	struct list *it;

	list_for_each(it, &p->dbs) {
		struct db *db = list_entry(it, struct db, node);
		int min = db->min_pool_size >= 0 ? db->min_pool_size : p->cfg->s.min_pool_size;
		struct cred *cr;

		if (min <= 0 || db->admin || db->dead || db->autodb || db->force_user[0] == 0 ||
				db->pool_warm)
			continue;
		cr = cred_find(p, db->force_user, true);
		if (cr != NULL && pool_get(p, db, cr) != NULL)
			db->pool_warm = true;
	}
}

void pool_janitor(struct proxy *p)
{
	int64_t now = proxy_now_us();
	int64_t login_to = p->cfg->s.client_login_timeout_us;
	struct list *it, *tmp;

	forced_min_pools(p);
	list_for_each_safe(it, tmp, &p->pools)
		janitor_pool(list_entry(it, struct pool, node), now);
	/* a lookup never outlives the logins it serves */
	p->pool_ops->lookups_expire(p, now, login_to > 0 ? login_to : 60 * 1000000);
	cancel_expire(p, now, p->cfg->s.cancel_wait_timeout_us);
	/* give memory back after bursts: empty slabs, then free 4 MiB blocks */
	if (now - p->last_reap_us > 10 * 1000000) {
		p->last_reap_us = now;
		slab_arena_reap(p->arena);
	}
	list_for_each_safe(it, tmp, &p->login_clients) {
		struct client *c = list_entry(it, struct client, node);

		if (c->state != CL_LOGIN)
			continue;
		if (login_to > 0 && now - c->connect_us > login_to)
			client_close(c, SQLSTATE_PROTOCOL_VIOLATION, "client_login_timeout");
	}
	pool_destroy_unused(p);
}

void pool_destroy_unused(struct proxy *p)
{
	struct list *it, *tmp;

	list_for_each_safe(it, tmp, &p->pools) {
		struct pool *pool = list_entry(it, struct pool, node);

		if (!pool->db->dead || pool->n_servers || pool->n_clients || pool->n_waiting ||
				pool->n_welcome || pool->n_repl_wait || pool->n_lookups)
			continue;
		list_del(&pool->node);
		budget_leave(pool->db->budget, &pool->bm);
		if (pool->welcome)
			slab_buf_free(p->arena, pool->welcome, pool->welcome_cap);
		vars_put(p, pool->defaults);
		slab_free(p->pool_cache, pool);
	}
}

void pool_view(const struct pool *pool, int64_t now, struct pool_view *v)
{
	const struct list *it;

	v->pool = pool;
	v->cl_active = pool->n_clients;
	v->cl_waiting = pool->n_waiting + pool->n_welcome + pool->n_repl_wait;
	v->sv_idle = pool->n_idle;
	v->sv_login = pool->n_login;
	v->sv_active = v->sv_used = 0;
	for (it = pool->active.next; it != &pool->active; it = it->next) {
		const struct server *s = list_entry(it, struct server, node);

		if ((s->state == SV_RESET || s->state == SV_DRAIN) && s->client == NULL)
			v->sv_used++; /* running the reset query */
		else
			v->sv_active++;
	}
	v->maxwait_us = list_empty(&pool->waiting) ? 0 :
			now - list_first_entry(&pool->waiting, struct client, node)->wait_start_us;
}

void pool_stats_foreach(struct proxy *p, int64_t now,
		void (*fn)(const struct pool_view *v, void *arg), void *arg)
{
	struct list *it;
	struct pool_view v;

	list_for_each(it, &p->pools) {
		pool_view(list_entry(it, struct pool, node), now, &v);
		fn(&v, arg);
	}
}

void pool_stats_sum(const struct proxy *p, const struct db *db, struct pool_stats *t,
		struct pool_stats *a)
{
	uint64_t wx = 0, wq = 0, ww = 0;
	const struct list *it;

	memset(t, 0, sizeof(*t));
	memset(a, 0, sizeof(*a));
	list_for_each(it, &p->pools) {
		const struct pool *pool = list_entry(it, struct pool, node);
		const struct pool_stats *s = &pool->st, *v = &pool->avg;

		if (db && pool->db != db)
			continue;
		t->server_assignment_count += s->server_assignment_count;
		t->xact_count += s->xact_count;
		t->query_count += s->query_count;
		t->bytes_recv += s->bytes_recv;
		t->bytes_sent += s->bytes_sent;
		t->xact_time_us += s->xact_time_us;
		t->query_time_us += s->query_time_us;
		t->wait_time_us += s->wait_time_us;
		t->client_login_count += s->client_login_count;
		t->client_parse_count += s->client_parse_count;
		t->server_parse_count += s->server_parse_count;
		t->bind_count += s->bind_count;
		t->hits += s->hits;
		t->misses += s->misses;
		a->server_assignment_count += v->server_assignment_count;
		a->xact_count += v->xact_count;
		a->query_count += v->query_count;
		a->bytes_recv += v->bytes_recv;
		a->bytes_sent += v->bytes_sent;
		a->client_login_count += v->client_login_count;
		a->client_parse_count += v->client_parse_count;
		a->server_parse_count += v->server_parse_count;
		a->bind_count += v->bind_count;
		/* per-transaction means: weight by each pool's rate */
		a->xact_time_us += v->xact_time_us * v->xact_count;
		a->query_time_us += v->query_time_us * v->query_count;
		a->wait_time_us += v->wait_time_us * v->server_assignment_count;
		wx += v->xact_count;
		wq += v->query_count;
		ww += v->server_assignment_count;
	}
	a->xact_time_us = wx ? a->xact_time_us / wx : 0;
	a->query_time_us = wq ? a->query_time_us / wq : 0;
	a->wait_time_us = ww ? a->wait_time_us / ww : 0;
}

void pool_stats_period(struct proxy *p)
{
	double secs = (double)p->cfg->s.stats_period_us / 1e6;
	struct list *it;

	if (secs <= 0)
		secs = 60;
	list_for_each(it, &p->pools) {
		struct pool *pool = list_entry(it, struct pool, node);
		struct pool_stats *a = &pool->avg, *cur = &pool->st, *old = &pool->st_prev;
		uint64_t dx = cur->xact_count - old->xact_count, dq = cur->query_count - old->query_count;
		uint64_t dw = cur->server_assignment_count - old->server_assignment_count;

		a->xact_count = (uint64_t)((double)dx / secs);
		a->query_count = (uint64_t)((double)dq / secs);
		a->server_assignment_count = (uint64_t)((double)dw / secs);
		a->bytes_recv = (uint64_t)((double)(cur->bytes_recv - old->bytes_recv) / secs);
		a->bytes_sent = (uint64_t)((double)(cur->bytes_sent - old->bytes_sent) / secs);
		a->xact_time_us = dx ? (cur->xact_time_us - old->xact_time_us) / dx : 0;
		a->query_time_us = dq ? (cur->query_time_us - old->query_time_us) / dq : 0;
		a->wait_time_us = dw ? (cur->wait_time_us - old->wait_time_us) / dw : 0;
		a->client_login_count =
				(uint64_t)((double)(cur->client_login_count - old->client_login_count) / secs);
		a->client_parse_count =
				(uint64_t)((double)(cur->client_parse_count - old->client_parse_count) / secs);
		a->server_parse_count =
				(uint64_t)((double)(cur->server_parse_count - old->server_parse_count) / secs);
		a->bind_count = (uint64_t)((double)(cur->bind_count - old->bind_count) / secs);
		if (p->cfg->s.log_stats)
			log_stats("stats: %s/%s %llu xacts/s, %llu queries/s, in %llu B/s, out %llu B/s, xact %llu us, query %llu us, wait %llu us",
					pool->db->name, pool->cred->name,
					(unsigned long long)a->xact_count, (unsigned long long)a->query_count,
					(unsigned long long)a->bytes_recv, (unsigned long long)a->bytes_sent,
					(unsigned long long)a->xact_time_us,
					(unsigned long long)a->query_time_us,
					(unsigned long long)a->wait_time_us);
		*old = *cur;
	}
}
