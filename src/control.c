/* control.c -- console verbs that change the pooler's state: PAUSE, RESUME, KILL, SET...
 *
 * See control.h for the verbs' semantics.  Invariants:
 *   - a pool is "held" while p->paused || pool->db->paused: pool.c then gives
 *     no server to a client and opens none, so new transactions queue on
 *     pool->waiting (they are never failed by a pause);
 *   - while held (and not merely SUSPENDed) the tick closes every idle and
 *     connecting server of the pool, so a PAUSE ends with only the servers
 *     still inside a transaction, each closed as pool.c releases it;
 *   - the tick runs while something is held or a reply is deferred, and
 *     never otherwise (an idle pooler has no timer of ours).
 * Waiters name their console client by id and are looked up on
 * p->login_clients (where logged-in console clients live), so a client
 * that disconnects while waiting is simply not found.
 */
#include "control.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client.h"
#include "db.h"
#include "listener.h"
#include "log.h"
#include "pool.h"
#include "proto.h"
#include "proxy.h"
#include "slab.h"
#include "sysalloc.h"

enum waiter_kind { W_PAUSE, W_WAIT_CLOSE };

struct waiter {
	struct list node;          /* on control->waiters, oldest first */
	uint64_t client_id;
	uint8_t kind;
	bool all;                  /* every database, else <db> */
	char db[NAME_MAX_LEN];
	const char *tag;           /* CommandComplete tag, static */
};

struct control {
	struct proxy *p;
	struct event tick;
	bool tick_on;
	struct list waiters;       /* held replies, from waiter_cache */
	struct slab_cache *waiter_cache;
};


static void tick_cb(evutil_socket_t fd, short what, void *arg);

struct control *control_get(struct proxy *p)
{
	struct control *ctl = p->control;

	if (ctl)
		return ctl;
	ctl = sys_calloc(1, sizeof(*ctl));
	if (ctl == NULL)
		return NULL;
	ctl->p = p;
	list_init(&ctl->waiters);
	ctl->waiter_cache = slab_cache_create(p->arena, "console_waiter", sizeof(struct waiter), 0,
			NULL, NULL, NULL);
	if (ctl->waiter_cache == NULL) {
		sys_free(ctl);
		return NULL;
	}
	event_assign(&ctl->tick, p->base, -1, EV_PERSIST, tick_cb, ctl);
	p->control = ctl;
	return ctl;
}

void control_destroy(struct proxy *p)
{
	struct control *ctl = p->control;

	if (ctl == NULL || ctl->p != p)
		return;
	if (ctl->tick_on)
		event_del(&ctl->tick);
	while (!list_empty(&ctl->waiters)) {
		struct waiter *w = list_first_entry(&ctl->waiters, struct waiter, node);

		list_del(&w->node);
		slab_free(ctl->waiter_cache, w);
	}
	slab_cache_destroy(ctl->waiter_cache);
	p->control = NULL;
	sys_free(ctl);
}

static void tick_start(struct control *ctl)
{
	struct timeval tv = { 0, CONTROL_TICK_US };

	if (ctl->tick_on)
		return;
	event_add(&ctl->tick, &tv);
	ctl->tick_on = true;
}

/* ---- lookups ---- */

struct db *control_find_db(struct proxy *p, const char *name)
{
	struct list *it;

	list_for_each(it, &p->dbs) {
		struct db *db = list_entry(it, struct db, node);

		if (strcmp(db->name, name) == 0 && (!db->dead || db->admin))
			return db;
	}
	return NULL;
}

static bool pool_in(const struct pool *pool, const struct db *db)
{
	return !pool->db->admin && (db == NULL || pool->db == db);
}

static bool pool_held(const struct proxy *p, const struct pool *pool)
{
	return p->paused || pool->db->paused;
}

static bool any_db_paused(struct proxy *p)
{
	struct list *it;

	list_for_each(it, &p->dbs)
		if (list_entry(it, struct db, node)->paused)
			return true;
	return false;
}

static struct client *console_client(struct proxy *p, uint64_t id)
{
	struct list *it;

	list_for_each(it, &p->login_clients) {
		struct client *c = list_entry(it, struct client, node);

		if (c->id == id && c->admin && c->state == CL_ACTIVE)
			return c;
	}
	return NULL;
}

/* ---- holding and releasing pools ---- */

/* PgBouncer's pause loop: a held pool keeps only servers still in use. */
static void enforce_pause(struct control *ctl)
{
	struct proxy *p = ctl->p;
	struct list *it;

	list_for_each(it, &p->pools) {
		struct pool *pool = list_entry(it, struct pool, node);

		if (pool->db->admin || !(pool->db->paused || (p->paused && !ctl->p->suspended)))
			continue;
		pool_shed(pool, "pause mode");
	}
}

/* A released pool: hand idle servers to its waiters, open what is missing. */
static void kick(struct proxy *p, struct pool *pool)
{
	if (!pool_held(p, pool))
		pool_kick(pool);
}

static void kick_all(struct proxy *p, const struct db *db)
{
	struct list *it, *tmp;

	list_for_each_safe(it, tmp, &p->pools) {
		struct pool *pool = list_entry(it, struct pool, node);

		if (pool_in(pool, db))
			kick(p, pool);
	}
}

bool control_pause_done(struct proxy *p, struct db *db)
{
	struct list *it;

	list_for_each(it, &p->pools) {
		struct pool *pool = list_entry(it, struct pool, node);

		if (pool_in(pool, db) && pool->n_active > 0)
			return false;
	}
	return true;
}

bool control_close_done(struct proxy *p, struct db *db)
{
	struct list *it;

	list_for_each(it, &p->pools) {
		struct pool *pool = list_entry(it, struct pool, node);

		if (pool_in(pool, db) && pool_closing(pool))
			return false;
	}
	return true;
}

static void suspend_client(struct client *c, void *arg)
{
	/* login owns the flag until welcomed */
	if (c->login == NULL && c->state != CL_WELCOME)
		stream_pause_read(&c->st, *(bool *)arg);
}

/* Reading from pooled clients stops while suspended (console clients go on). */
static void suspend_clients(struct proxy *p, bool suspend)
{
	struct list *it;

	list_for_each(it, &p->pools)
		pool_foreach_client(list_entry(it, struct pool, node), suspend_client, &suspend);
	listener_pause(p, suspend);
}

int control_pause(struct proxy *p, struct db *db)
{
	struct control *ctl = control_get(p);

	if (ctl == NULL)
		return -ENOMEM;
	if (db && db->admin)
		return -EINVAL;
	if (db == NULL) {
		if (p->paused || ctl->p->suspended)
			return -EALREADY;
		p->paused = true;
	} else {
		db->paused = true;
	}
	enforce_pause(ctl);
	tick_start(ctl);
	return 0;
}

int control_resume(struct proxy *p, struct db *db)
{
	struct control *ctl = control_get(p);
	struct list *it;

	if (ctl == NULL)
		return -ENOMEM;
	if (db) {
		if (!db->paused)
			return -EALREADY;
		db->paused = false;
		kick_all(p, db);
		return 0;
	}
	if (!p->paused && !ctl->p->suspended && !any_db_paused(p))
		return -EALREADY;
	if (ctl->p->suspended) {
		ctl->p->suspended = false;
		suspend_clients(p, false);
	}
	p->paused = false;
	list_for_each(it, &p->dbs)
		list_entry(it, struct db, node)->paused = false;
	kick_all(p, NULL);
	return 0;
}

int control_suspend(struct proxy *p)
{
	struct control *ctl = control_get(p);

	if (ctl == NULL)
		return -ENOMEM;
	if (p->paused || ctl->p->suspended || any_db_paused(p))
		return -EALREADY;
	ctl->p->suspended = true;
	p->paused = true;
	suspend_clients(p, true);
	tick_start(ctl);
	return 0;
}

void control_reconnect(struct proxy *p, struct db *db)
{
	struct list *it, *tmp;

	list_for_each_safe(it, tmp, &p->pools) {
		struct pool *pool = list_entry(it, struct pool, node);

		if (!pool_in(pool, db))
			continue;
		pool_reconnect(pool, "reconnect requested");
		kick(p, pool);
	}
}

void control_kill(struct proxy *p, struct db *db, const char *reason)
{
	struct control *ctl = control_get(p);
	struct list *it;

	list_for_each(it, &p->dbs) {
		struct db *d = list_entry(it, struct db, node);

		if (!d->admin && (db == NULL || d == db))
			d->paused = true;
	}
	list_for_each(it, &p->pools) {
		struct pool *pool = list_entry(it, struct pool, node);

		if (pool_in(pool, db))
			pool_kill(pool, reason);
	}
	if (ctl)
		tick_start(ctl);
}

struct kill_arg {
	uint64_t id;
	bool found;
};

static void kill_client(struct client *c, void *arg)
{
	struct kill_arg *k = arg;

	if (c->id == k->id && !k->found) {
		client_close(c, SQLSTATE_ADMIN_SHUTDOWN, "admin forced disconnect (KILL_CLIENT)");
		k->found = true;
	}
}

int control_kill_client(struct proxy *p, uint64_t id)
{
	struct kill_arg k = { .id = id, .found = false };
	struct list *it, *ci;

	list_for_each(it, &p->pools) {
		pool_foreach_client(list_entry(it, struct pool, node), kill_client, &k);
		if (k.found)
			return 0;
	}
	list_for_each(ci, &p->login_clients) {
		struct client *c = list_entry(ci, struct client, node);

		if (c->id == id && !c->closing) {
			client_close(c, SQLSTATE_ADMIN_SHUTDOWN, "admin forced disconnect (KILL_CLIENT)");
			return 0;
		}
	}
	return -ENOENT;
}

/* ---- SET ---- */

static void apply_pool_modes(struct proxy *p)
{
	struct list *it;

	list_for_each(it, &p->pools)
		pool_refresh_mode(list_entry(it, struct pool, node));
}

int control_set(struct proxy *p, const char *key, const char *value, char *err, size_t errlen)
{
	const struct config_settings *s;
	struct config *next;
	int rc, tls = 0;

	if (strcasecmp(key, "max_packet_size") == 0) {
		char *end;
		long long v = strtoll(value, &end, 10);

		/* PostgreSQL takes no message over 1 GiB: a larger limit would let a
		 * client leave a backend waiting mid-message */
		if (*value == 0 || *end != 0 || v < 1024 || v > PROXY_MAX_PACKET) {
			snprintf(err, errlen, "max_packet_size must be between 1024 and %u",
					PROXY_MAX_PACKET);
			return -EINVAL;
		}
	}
	/* the running config is a snapshot nobody writes: the change goes into
	 * a copy, which replaces it only once the value is known good */
	next = config_clone(p->cfg);
	if (next == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	rc = config_set(next, key, value, err, errlen);
	if (rc < 0) {
		config_free(next);
		return rc;
	}
	/* a TLS setting takes effect now, as in PgBouncer: new contexts, and
	 * servers reconnect when their side changed.  When the contexts cannot
	 * be made the setting is still stored (a change of key and certificate
	 * takes two SETs) and the old contexts stay: a notice says so. */
	if (strncasecmp(key, "client_tls", 10) == 0 || strncasecmp(key, "server_tls", 10) == 0) {
		tls = proxy_tls_apply(p, next, err, errlen);
		if (tls < 0)
			log_error("TLS settings could not be applied, still using old configuration: %s",
					err);
	}
	proxy_swap_config(p, next);
	if (tls > 0)
		proxy_reconnect_servers(p);
	s = &p->cfg->s;
	if (strcasecmp(key, "verbose") == 0 && p->log) {
		log_set_verbose(p->log, s->verbose);
	} else if (strcasecmp(key, "max_packet_size") == 0) {
		p->sctx.max_packet = (uint32_t)s->max_packet_size;
	} else if (strcasecmp(key, "pool_mode") == 0) {
		apply_pool_modes(p);
	} else if (strcasecmp(key, "stats_period") == 0 && event_initialized(&p->stats_ev)) {
		struct timeval tv;

		tv.tv_sec = (time_t)(s->stats_period_us / 1000000);
		tv.tv_usec = (suseconds_t)(s->stats_period_us % 1000000);
		if (tv.tv_sec == 0 && tv.tv_usec == 0)
			tv.tv_sec = 60;
		event_del(&p->stats_ev);
		event_add(&p->stats_ev, &tv);
	} else if (strcasecmp(key, "default_pool_size") == 0 ||
			strcasecmp(key, "min_pool_size") == 0 ||
			strcasecmp(key, "reserve_pool_size") == 0 ||
			strcasecmp(key, "max_db_connections") == 0 ||
			strcasecmp(key, "max_user_connections") == 0) {
		pool_budget_refresh(p); /* the databases' slot budgets follow the sizes */
		kick_all(p, NULL); /* a larger pool admits waiting clients now */
	}
	return tls < 0 ? 1 : 0;
}

/* ---- deferred replies and the tick ---- */

static void reply_tag(struct client *c, const char *tag)
{
	uint8_t buf[128];
	struct pkt k;

	pkt_init(&k, buf, sizeof(buf));
	proto_write_command_complete(&k, tag);
	stream_write(&c->st, buf, k.len);
}

/* Complete a held command: the reply the caller did not send, then let
 * the client's pipelined input through. */
static void finish(struct client *c, const char *tag)
{
	uint8_t buf[128];
	struct pkt k;

	pkt_init(&k, buf, sizeof(buf));
	proto_write_command_complete(&k, tag);
	proto_write_ready(&k, 'I');
	stream_write(&c->st, buf, k.len);
	stream_resume(&c->st);
}

/* The held PAUSE was lifted (RESUME) before it completed: an error, then
 * the client's pipelined input. */
static void finish_lifted(struct client *c, const char *tag)
{
	uint8_t buf[8];
	struct pkt k;

	client_error(c, SQLSTATE_QUERY_CANCELED, "%s canceled: RESUME was issued before it completed",
			tag);
	pkt_init(&k, buf, sizeof(buf));
	proto_write_ready(&k, 'I');
	stream_write(&c->st, buf, k.len);
	stream_resume(&c->st);
}

/* Is the pause a held PAUSE waits for no longer asked for? */
static bool waiter_lifted(struct proxy *p, const struct waiter *w)
{
	struct db *db;

	if (w->kind != W_PAUSE)
		return false;
	if (w->all)
		return !p->paused;
	db = control_find_db(p, w->db);
	return db != NULL && !db->paused;
}

static bool waiter_done(struct proxy *p, const struct waiter *w)
{
	struct db *db = NULL;

	if (!w->all) {
		db = control_find_db(p, w->db);
		if (db == NULL)
			return true; /* gone with a reload: nothing left to wait for */
	}
	if (w->kind == W_PAUSE)
		return control_pause_done(p, db);
	return control_close_done(p, db);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct control *ctl = arg;
	struct proxy *p = ctl->p;
	struct list *it, *tmp;

	(void)fd;
	(void)what;
	enforce_pause(ctl);
	list_for_each_safe(it, tmp, &ctl->waiters) {
		struct waiter *w = list_entry(it, struct waiter, node);
		struct client *c = console_client(p, w->client_id);
		const char *tag = w->tag;
		bool lifted = c != NULL && waiter_lifted(p, w);

		if (c != NULL && !lifted && !waiter_done(p, w))
			continue;
		list_del(&w->node);
		slab_free(ctl->waiter_cache, w);
		if (c && lifted) {
			log_info("%s canceled by RESUME", tag);
			finish_lifted(c, tag);
		} else if (c) {
			log_info("%s complete", tag);
			finish(c, tag); /* may run the client's next command (and queue at the tail) */
		}
	}
	proxy_settle(p);
	if (list_empty(&ctl->waiters) && !p->paused && !ctl->p->suspended && !any_db_paused(p)) {
		event_del(&ctl->tick);
		ctl->tick_on = false;
	}
}

/* Hold <c>'s reply until the tick sees <kind> done; false when out of memory. */
static bool defer(struct client *c, enum waiter_kind kind, const struct db *db, const char *tag)
{
	struct control *ctl = control_get(proxy_of(&c->st));
	struct waiter *w;

	if (ctl == NULL || (w = slab_alloc(ctl->waiter_cache)) == NULL)
		return false;
	memset(w, 0, sizeof(*w));
	list_append(&ctl->waiters, &w->node);
	w->client_id = c->id;
	w->kind = (uint8_t)kind;
	w->all = db == NULL;
	if (db)
		snprintf(w->db, sizeof(w->db), "%s", db->name);
	w->tag = tag;
	/* parse nothing more until finish() (the current message is still
	 * dropped), but keep reading: a client that leaves meanwhile must be
	 * seen to leave, or it, its buffer, its fd and this waiter stay for as
	 * long as the wait lasts */
	c->st.flags |= STREAM_F_STOPPED;
	tick_start(ctl);
	return true;
}

/* ---- the verbs ---- */

static const char *const verbs[] = { "pause", "resume", "suspend", "disable", "enable",
	"reconnect", "kill", "kill_client", "wait_close", "shutdown" };

bool control_is_verb(const char *verb)
{
	size_t i;

	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (strcmp(verb, verbs[i]) == 0)
			return true;
	return false;
}

/* <arg> as a database for <verb>: NULL with an error sent when it is no
 * database or is the console itself. */
static struct db *arg_db(struct client *c, const char *verb, const char *arg)
{
	/* the errors of the console's commands are PgBouncer's: 08P01 */
	struct db *db = control_find_db(proxy_of(&c->st), arg);

	if (db == NULL) {
		client_error(c, SQLSTATE_PROTOCOL_VIOLATION, "no such database: %s", arg);
		return NULL;
	}
	if (db->admin) {
		client_error(c, "42809", "cannot %s admin db: %s", verb, arg);
		return NULL;
	}
	return db;
}

static bool do_pause(struct client *c, const char *arg, bool can_defer)
{
	struct proxy *p = proxy_of(&c->st);
	struct db *db = NULL;
	int rc;

	if (arg[0] && (db = arg_db(c, "pause", arg)) == NULL)
		return false;
	rc = control_pause(p, db);
	if (rc == -EALREADY) {
		client_error(c, "55000", "already suspended/paused");
		return false;
	}
	if (rc < 0) {
		client_error(c, SQLSTATE_INTERNAL, "PAUSE failed: %s", strerror(-rc));
		return false;
	}
	log_info(db ? "PAUSE '%s' command issued" : "PAUSE command issued%s", db ? db->name : "");
	if (!control_pause_done(p, db) && can_defer && defer(c, W_PAUSE, db, "PAUSE"))
		return true;
	reply_tag(c, "PAUSE");
	return false;
}

static void do_resume(struct client *c, const char *arg)
{
	struct proxy *p = proxy_of(&c->st);
	struct db *db = NULL;

	if (arg[0] && (db = arg_db(c, "resume", arg)) == NULL)
		return;
	if (p->shutdown != SHUTDOWN_NONE) {
		client_error(c, "55000", "pooler is shutting down");
		return;
	}
	if (control_resume(p, db) < 0) {
		if (db)
			client_error(c, "55000", "database %s is not paused", db->name);
		else
			client_error(c, "55000", "pooler is not paused/suspended");
		return;
	}
	log_info(db ? "RESUME '%s' command issued" : "RESUME command issued%s", db ? db->name : "");
	reply_tag(c, "RESUME");
}

static void do_kill(struct client *c, const char *arg)
{
	struct proxy *p = proxy_of(&c->st);
	struct db *db = NULL;
	char reason[160];

	if (arg[0] && (db = arg_db(c, "kill", arg)) == NULL)
		return;
	if (db) {
		snprintf(reason, sizeof(reason),
				"database \"%s\" was killed by the administrator (KILL)", db->name);
		log_info("KILL '%s' command issued", db->name);
	} else {
		snprintf(reason, sizeof(reason), "all databases were killed by the administrator (KILL)");
		log_info("KILL command issued");
	}
	control_kill(p, db, reason);
	reply_tag(c, "KILL");
}

static void do_kill_client(struct client *c, const char *arg)
{
	char *end;
	unsigned long long id;

	errno = 0;
	id = strtoull(arg, &end, 10);
	if (arg[0] == 0 || *end != 0 || errno != 0) {
		client_error(c, SQLSTATE_PROTOCOL_VIOLATION, "invalid client pointer supplied");
		return;
	}
	log_info("KILL_CLIENT %llu command issued", id);
	if (id == c->id) {
		reply_tag(c, "KILL_CLIENT");
		client_close(c, SQLSTATE_ADMIN_SHUTDOWN, "admin forced disconnect (KILL_CLIENT)");
		return;
	}
	if (control_kill_client(proxy_of(&c->st), id) < 0) {
		client_error(c, SQLSTATE_PROTOCOL_VIOLATION, "client not found");
		return;
	}
	reply_tag(c, "KILL_CLIENT");
}

static void do_enable(struct client *c, const char *verb, const char *arg)
{
	bool disable = strcmp(verb, "disable") == 0;
	struct db *db;

	if (arg[0] == 0) {
		client_error(c, SQLSTATE_SYNTAX_ERROR, "a database is required");
		return;
	}
	db = arg_db(c, verb, arg);
	if (db == NULL)
		return;
	db->disabled = disable;
	log_info("%s '%s' command issued", disable ? "DISABLE" : "ENABLE", db->name);
	reply_tag(c, disable ? "DISABLE" : "ENABLE");
}

static bool do_wait_close(struct client *c, const char *arg, bool can_defer)
{
	struct proxy *p = proxy_of(&c->st);
	struct db *db = NULL;

	if (arg[0] && (db = arg_db(c, "wait in", arg)) == NULL)
		return false;
	log_info(db ? "WAIT_CLOSE '%s' command issued" : "WAIT_CLOSE command issued%s",
			db ? db->name : "");
	if (!control_close_done(p, db) && can_defer && defer(c, W_WAIT_CLOSE, db, "WAIT_CLOSE"))
		return true;
	reply_tag(c, "WAIT_CLOSE");
	return false;
}

static void do_shutdown(struct client *c, const char *arg)
{
	struct proxy *p = proxy_of(&c->st);
	enum shutdown_mode mode;

	if (arg[0] == 0) {
		mode = SHUTDOWN_NOW;
	} else if (strcasecmp(arg, "wait_for_servers") == 0) {
		mode = SHUTDOWN_WAIT_SERVERS;
	} else if (strcasecmp(arg, "wait_for_clients") == 0) {
		mode = SHUTDOWN_WAIT_CLIENTS;
	} else {
		client_error(c, SQLSTATE_SYNTAX_ERROR, "invalid command 'SHUTDOWN %s', use SHOW HELP;",
				arg);
		return;
	}
	log_info("SHUTDOWN%s%s command issued", arg[0] ? " " : "", arg);
	reply_tag(c, "SHUTDOWN");
	proxy_shutdown(p, mode);
}

bool control_exec(struct client *c, const char *verb, const char *arg, bool can_defer)
{
	struct proxy *p = proxy_of(&c->st);

	if (control_get(p) == NULL) {
		client_error(c, SQLSTATE_INTERNAL, "out of memory");
		return false;
	}
	if (strcmp(verb, "pause") == 0)
		return do_pause(c, arg, can_defer);
	if (strcmp(verb, "wait_close") == 0)
		return do_wait_close(c, arg, can_defer);
	if (strcmp(verb, "resume") == 0) {
		do_resume(c, arg);
	} else if (strcmp(verb, "suspend") == 0) {
		if (arg[0]) {
			client_error(c, SQLSTATE_SYNTAX_ERROR, "SUSPEND takes no argument");
		} else if (control_suspend(p) < 0) {
			client_error(c, "55000", "already suspended/paused");
		} else {
			log_info("SUSPEND command issued");
			reply_tag(c, "SUSPEND");
		}
	} else if (strcmp(verb, "disable") == 0 || strcmp(verb, "enable") == 0) {
		do_enable(c, verb, arg);
	} else if (strcmp(verb, "reconnect") == 0) {
		struct db *db = NULL;

		if (arg[0] && (db = arg_db(c, "reconnect", arg)) == NULL)
			return false;
		log_info(db ? "RECONNECT '%s' command issued" : "RECONNECT command issued%s",
				db ? db->name : "");
		control_reconnect(p, db);
		reply_tag(c, "RECONNECT");
	} else if (strcmp(verb, "kill") == 0) {
		do_kill(c, arg);
	} else if (strcmp(verb, "kill_client") == 0) {
		do_kill_client(c, arg);
	} else if (strcmp(verb, "shutdown") == 0) {
		do_shutdown(c, arg);
	}
	return false;
}
