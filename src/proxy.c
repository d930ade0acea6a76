/* proxy.c -- the pooler instance: caches, databases, credentials, loop, reload.
 *
 * Ownership: struct proxy owns its slab arena and every cache in it; the
 * config and userlist it runs with (replaced whole on reload); the dbs, creds
 * and pools derived from them.  Closed clients and servers are parked on
 * dead lists and returned to their caches after the loop iteration in which
 * they closed (see stream.c for why).
 */
#include "proxy.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#include "authq.h"
#include "cancel.h"
#include "client.h"
#include "cred.h"
#include "db.h"
#include "dns.h"
#include "hba.h"
#include "ident.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "proto.h"
#include "sdnotify.h"
#include "server.h"
#include "slab.h"
#include "sysalloc.h"
#include "tls.h"
#include "userlist.h"
#include "vars.h"

/* ---- databases ---- */

/* The servers of <db> (of every database when NULL) belong to an old
 * configuration: idle ones close now, busy ones when released (PgBouncer's
 * words for both).  With <kick>, a pool not paused opens new ones for its
 * waiting clients at once. */
static void reconnect_servers(struct proxy *p, struct db *db, bool kick)
{
	struct list *it, *tmp;

	list_for_each_safe(it, tmp, &p->pools) {
		struct pool *pool = list_entry(it, struct pool, node);

		if (pool->db->admin || (db && pool->db != db))
			continue;
		pool_reconnect(pool, "database configuration changed");
		if (kick && !p->paused && !pool->db->paused)
			pool_kick(pool);
	}
}

/* ---- config ---- */

/* Bring <db> in line with config entry <e>; the servers of an entry that
 * now points elsewhere go (idle ones now), once it is the new one. */
static void db_apply(struct proxy *p, struct db *db, const struct config_db *e, const char *name)
{
	if (db_set(db, e, name) && db->n_servers)
		reconnect_servers(p, db, false);
}

static void apply_dbs(struct proxy *p)
{
	struct list *it;
	int i;

	list_for_each(it, &p->dbs) {
		struct db *db = list_entry(it, struct db, node);

		if (!db->admin)
			db->dead = true;
	}
	for (i = 0; i < p->cfg->n_dbs; i++) {
		const struct config_db *e = &p->cfg->dbs[i];
		struct db *db;

		if (db_is_console(e->name))
			continue;
		db = db_lookup(p, e->name);
		if (db == NULL)
			db = db_new(p, e->name);
		if (db)
			db_apply(p, db, e, e->name);
	}
	/* auto-databases from "*" stay while the fallback exists */
	if (p->cfg->fallback_db) {
		list_for_each(it, &p->dbs) {
			struct db *db = list_entry(it, struct db, node);

			if (db->dead && !db->admin)
				db_apply(p, db, p->cfg->fallback_db, db->name);
		}
	}
	list_for_each(it, &p->dbs) {
		struct db *db = list_entry(it, struct db, node);

		if (db->dead)
			reconnect_servers(p, db, false);
	}
	list_for_each(it, &p->pools)
		pool_refresh_mode(list_entry(it, struct pool, node));
}

static struct userlist *load_userlist(struct config *cfg, char *err, size_t errlen)
{
	if (cfg->s.auth_file[0] == 0)
		return NULL;
	return userlist_load(cfg->s.auth_file, err, errlen);
}

/* auth_hba_file with its auth_ident_file; NULL (and *<rc> 0) when none is
 * set, NULL with *<rc> < 0 and <err> when one does not load. */
static struct hba *load_hba(const struct config *cfg, int *rc, char *err, size_t errlen)
{
	struct ident *id;
	struct hba *h;

	*rc = 0;
	if (cfg->s.auth_hba_file[0] == 0) {
		if (cfg->s.auth_type == AUTH_TYPE_HBA) {
			snprintf(err, errlen, "auth_type = hba needs auth_hba_file");
			*rc = -EINVAL;
		}
		return NULL;
	}
	id = cfg->s.auth_ident_file[0] ? ident_load(cfg->s.auth_ident_file, err, errlen) :
					 ident_empty();
	if (id == NULL) {
		*rc = -EINVAL;
		return NULL;
	}
	h = hba_load(cfg->s.auth_hba_file, id, err, errlen); /* frees <id> on failure */
	if (h && h->n_warnings > 0) {
		const char *w = h->warnings ? h->warnings : "";
		int shown = 0;

		for (; *w; shown++) {
			const char *nl = strchr(w, '\n');

			log_warning("%.*s", (int)(nl - w), w);
			w = nl + 1;
		}
		if (shown < h->n_warnings)
			log_warning("%s: %d more warnings not shown", cfg->s.auth_hba_file,
					h->n_warnings - shown);
	}
	return h;
}

static void tls_settings_of(const struct config_settings *s, bool clients,
		struct tls_settings *ts)
{
	memset(ts, 0, sizeof(*ts));
	if (clients) {
		ts->mode = (enum tls_mode)s->client_tls_sslmode;
		ts->key_file = s->client_tls_key_file;
		ts->cert_file = s->client_tls_cert_file;
		ts->ca_file = s->client_tls_ca_file;
		ts->protocols = s->client_tls_protocols;
		ts->ciphers = s->client_tls_ciphers;
		ts->tls13_ciphers = s->client_tls13_ciphers;
		ts->ecdhcurve = s->client_tls_ecdhcurve;
		ts->dheparams = s->client_tls_dheparams;
	} else {
		ts->mode = (enum tls_mode)s->server_tls_sslmode;
		ts->key_file = s->server_tls_key_file;
		ts->cert_file = s->server_tls_cert_file;
		ts->ca_file = s->server_tls_ca_file;
		ts->protocols = s->server_tls_protocols;
		ts->ciphers = s->server_tls_ciphers;
		ts->tls13_ciphers = s->server_tls13_ciphers;
	}
}

/* Build both TLS contexts from <cfg> (certificate files are read again on
 * every reload) and swap them in only if both succeed.  Live connections
 * keep the context they started with.  Returns 1 when a server_tls_*
 * setting changed (the servers are then recycled, as PgBouncer 1.24 does),
 * 0, or -EINVAL with <err>. */
int proxy_tls_apply(struct proxy *p, const struct config *cfg, char *err, size_t errlen)
{
	struct tls_settings cs, ss, old;
	struct tls_ctx *acc = NULL, *con = NULL;
	int changed = 0;

	tls_settings_of(&cfg->s, true, &cs);
	tls_settings_of(&cfg->s, false, &ss);
	if (cs.mode != TLS_MODE_DISABLE && (acc = tls_ctx_new(&cs, true, err, errlen)) == NULL)
		return -EINVAL;
	if (ss.mode != TLS_MODE_DISABLE && (con = tls_ctx_new(&ss, false, err, errlen)) == NULL) {
		tls_ctx_free(acc);
		return -EINVAL;
	}
	if (p->cfg) {
		tls_settings_of(&p->cfg->s, false, &old);
		changed = !tls_settings_equal(&old, &ss);
	}
	tls_ctx_free(p->sctx.tls_accept);
	p->sctx.tls_accept = acc;
	tls_ctx_free(p->tls_connect);
	p->tls_connect = con;
	return changed;
}

/* Nothing keeps a pointer into a config past the call that read it: every
 * reader goes through p->cfg, and what outlives a call is copied out (a
 * db's fields, TLS contexts, the log's paths, tracked parameter names, an
 * auth_query's text).  So the replaced snapshot can go at once; with
 * several workers it would go once each had passed a loop boundary. */
void proxy_swap_config(struct proxy *p, struct config *cfg)
{
	struct config *old = p->cfg;

	p->cfg = cfg;
	config_free(old);
}

int proxy_apply_config(struct proxy *p, struct config *cfg, char *err, size_t errlen)
{
	struct userlist *ul = NULL;
	struct hba *hba;
	int i, rc, tls_changed;

	hba = load_hba(cfg, &rc, err, errlen);
	if (hba == NULL && (rc < 0 || cfg->s.auth_hba_file[0]))
		return -EINVAL;
	if (cfg->s.auth_file[0]) {
		ul = load_userlist(cfg, err, errlen);
		if (ul == NULL) {
			hba_free(hba);
			return -EINVAL;
		}
	}
	if ((tls_changed = proxy_tls_apply(p, cfg, err, errlen)) < 0) {
		if (ul)
			userlist_free(ul);
		hba_free(hba);
		return -EINVAL;
	}
	hba_free(p->hba);
	p->hba = hba;
	for (i = 0; i < cfg->n_warnings; i++)
		if (!cfg->warnings[i].is_default)
			log_warning("%s", cfg->warnings[i].msg);
	if (p->userlist)
		userlist_free(p->userlist);
	p->userlist = ul;
	proxy_swap_config(p, cfg);
	p->sctx.buf_size = cfg->s.pkt_buf >= 512 ? (uint32_t)cfg->s.pkt_buf : 4096;
	/* PostgreSQL accepts no message over 1 GiB (PQ_LARGE_MESSAGE_LIMIT):
	 * refusing it here keeps a backend from being left mid-message. */
	p->sctx.max_packet = cfg->s.max_packet_size > 0 &&
					(uint32_t)cfg->s.max_packet_size < PROXY_MAX_PACKET ?
			(uint32_t)cfg->s.max_packet_size : PROXY_MAX_PACKET;
	p->sctx.max_whole = 1u << 20;
	dns_set_ttl(p->dns, cfg->s.dns_max_ttl_us, cfg->s.dns_nxdomain_ttl_us);
	apply_dbs(p);
	cred_sync_all(p);
	pool_budget_refresh(p);
	if (tls_changed)
		proxy_reconnect_servers(p);
	return 0;
}

void proxy_reconnect_servers(struct proxy *p)
{
	log_info("server TLS settings changed: reconnecting servers");
	reconnect_servers(p, NULL, true);
}

/* ---- loop ---- */

static bool db_has_pools(struct proxy *p, const struct db *db)
{
	struct list *it;

	list_for_each(it, &p->pools)
		if (list_entry(it, struct pool, node)->db == db)
			return true;
	return false;
}

/* Auto-databases (from "*") with no client and no server for
 * autodb_idle_timeout go away, their pools first. */
static void expire_autodbs(struct proxy *p)
{
	int64_t now = proxy_now_us(), limit = p->cfg->s.autodb_idle_timeout_us;
	struct list *it, *tmp;

	list_for_each_safe(it, tmp, &p->dbs) {
		struct db *db = list_entry(it, struct db, node);

		if (!db->autodb)
			continue;
		if (!db->dead) {
			struct list *pi;

			if (db->n_clients > 0) {
				db->idle_since_us = 0;
				continue;
			}
			if (db->idle_since_us == 0)
				db->idle_since_us = now;
			if (limit <= 0 || now - db->idle_since_us < limit)
				continue;
			/* unused: its idle servers go now, busy ones when done */
			db->dead = true;
			list_for_each(pi, &p->pools) {
				struct pool *pool = list_entry(pi, struct pool, node);

				while (pool->db == db && !list_empty(&pool->idle))
					server_close(list_first_entry(&pool->idle, struct server, node),
							"auto-database unused (autodb_idle_timeout)");
			}
			pool_destroy_unused(p);
		}
		if (db->n_clients == 0 && db->n_servers == 0 && !db_has_pools(p, db)) {
			db_free(p, db);
		}
	}
}

static void janitor_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	pool_janitor(arg);
	expire_autodbs(arg);
	proxy_settle(arg);
}

static void stats_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	pool_stats_period(arg);
	proxy_settle(arg);
}

/* A setting that differs in the reloaded file: one needing a restart is not
 * applied (the running value stays in effect), so say so. */
static void reload_report(const char *key, const char *old_value, const char *new_value,
		bool changeable, void *arg)
{
	(void)arg;
	if (!changeable)
		log_warning("reload: %s changed from '%s' to '%s', which needs a restart to "
			    "take effect", key, old_value, new_value);
}

int proxy_reload(struct proxy *p, char *err, size_t errlen)
{
	struct config *cfg = config_load(p->config_path, err, errlen);
	struct list *it;

	if (cfg == NULL) {
		log_error("reload failed, the running configuration stays in force: %s", err);
		return -EINVAL;
	}
	if (p->cfg)
		config_foreach_changed(p->cfg, cfg, reload_report, NULL);
	if (proxy_apply_config(p, cfg, err, errlen) < 0) {
		log_error("reload failed, the running configuration stays in force: %s", err);
		config_free(cfg);
		return -EINVAL;
	}
	if (p->log) {
		struct log_config lc;

		memset(&lc, 0, sizeof(lc));
		lc.logfile = cfg->s.logfile;
		lc.to_stderr = p->log_to_stderr;
		lc.syslog = cfg->s.syslog;
		lc.syslog_ident = cfg->s.syslog_ident;
		lc.syslog_facility = cfg->s.syslog_facility;
		lc.verbose = cfg->s.verbose > p->verbose_min ? cfg->s.verbose : p->verbose_min;
		if (log_reconfigure(p->log, &lc) < 0)
			log_reopen(p->log);
	}
	log_info("configuration reloaded");
	/* new pool sizes may admit waiting clients right away */
	list_for_each(it, &p->pools)
		pool_launch(list_entry(it, struct pool, node));
	return 0;
}

void proxy_shutdown(struct proxy *p, enum shutdown_mode mode)
{
	struct list *it;

	if (mode <= p->shutdown && mode != SHUTDOWN_NOW)
		return;
	p->shutdown = mode;
	log_info("shutdown requested (%s)", mode == SHUTDOWN_NOW ? "immediate" :
			mode == SHUTDOWN_WAIT_SERVERS ? "wait for servers" : "wait for clients");
	if (mode == SHUTDOWN_NOW) {
		listener_close_all(p);
		return;
	}
	/* as PgBouncer: the Unix socket stays for the console until the end */
	listener_close_tcp(p);
	if (mode != SHUTDOWN_WAIT_SERVERS)
		return;
	/* let transactions end, start none: who waits for a server goes */
	p->paused = true;
	list_for_each(it, &p->pools) {
		struct pool *pool = list_entry(it, struct pool, node);

		pool_close_clients(&pool->waiting, SQLSTATE_ADMIN_SHUTDOWN, "server shutting down");
		pool_close_clients(&pool->welcome_wait, SQLSTATE_ADMIN_SHUTDOWN,
				"server shutting down");
	}
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct proxy *p = arg;

	(void)what;
	switch (sig) {
	case SIGHUP: {
		char err[512];

		sdnotify_reloading();
		log_info("got SIGHUP, reloading config");
		proxy_reload(p, err, sizeof(err));
		sdnotify_ready();
		break;
	}
	case SIGUSR1:
		p->console_ops->pause(p, NULL);
		break;
	case SIGUSR2:
		if (p->shutdown != SHUTDOWN_NONE)
			log_info("got SIGUSR2 while shutting down, ignoring");
		else
			p->console_ops->resume(p, NULL);
		break;
	case SIGINT:
	case SIGTERM:
		/* as PgBouncer: a second one, after either, is a fast exit */
		if (p->shutdown != SHUTDOWN_NONE)
			log_info("got %s while shutting down, fast exit",
					sig == SIGINT ? "SIGINT" : "SIGTERM");
		proxy_shutdown(p, p->shutdown != SHUTDOWN_NONE ? SHUTDOWN_NOW :
				sig == SIGINT ? SHUTDOWN_WAIT_SERVERS : SHUTDOWN_WAIT_CLIENTS);
		break;
	case SIGQUIT:
		proxy_shutdown(p, SHUTDOWN_NOW);
		break;
	}
	proxy_settle(p);
}

int proxy_init(struct proxy *p, const struct proxy_wiring *w, const char *config_path,
		struct config *cfg, char *err, size_t errlen)
{
	static const int sigs[] = { SIGHUP, SIGINT, SIGTERM, SIGQUIT, SIGUSR1, SIGUSR2 };
	struct timeval tv = { 0, 333333 };
	struct db *db;
	size_t i;

	memset(p, 0, sizeof(*p));
	p->client_ops = w->client;
	p->server_ops = w->server;
	p->prepwire_ops = w->prepwire;
	p->pool_ops = w->pool;
	p->console_ops = w->console;
	p->config_path = config_path;
	list_init(&p->dbs);
	list_init(&p->creds);
	list_init(&p->pools);
	list_init(&p->login_clients);
	list_init(&p->listeners);
	list_init(&p->cancels);
	NAMETAB_INIT(&p->db_index, struct db, hnode, name);
	NAMETAB_INIT(&p->cred_index, struct cred, hnode, name);
	NAMETAB_INIT(&p->dyn_index, struct cred, hnode, dkey);
	NAMETAB_INIT(&p->authq_index, struct authq_req, hnode, key);
	list_init(&p->dead_clients);
	list_init(&p->dead_servers);
	list_init(&p->dead_cancels);
	crypto_rng_init(&p->rng);
	p->start_us = proxy_now_us();
	p->base = event_base_new();
	p->arena = slab_arena_create(0);
	if (p->base == NULL || p->arena == NULL) {
		snprintf(err, errlen, "could not create the event loop or memory arena");
		return -ENOMEM;
	}
	if (crypto_random(p->mock_key, sizeof(p->mock_key)) < 0) {
		snprintf(err, errlen, "no random bytes for the SCRAM mock key");
		return -EIO;
	}
	p->sctx.base = p->base;
	p->sctx.arena = p->arena;
	p->client_cache = slab_cache_create(p->arena, "client", sizeof(struct client), 0, NULL, NULL, NULL);
	p->server_cache = slab_cache_create(p->arena, "server", sizeof(struct server), 0, NULL, NULL, NULL);
	p->client_login_cache = slab_cache_create(p->arena, "client_login", client_login_size(), 0,
			NULL, NULL, NULL);
	p->server_login_cache = slab_cache_create(p->arena, "server_login", server_login_size(), 0,
			NULL, NULL, NULL);
	p->pool_cache = slab_cache_create(p->arena, "pool", sizeof(struct pool), 0, NULL, NULL, NULL);
	p->db_cache = slab_cache_create(p->arena, "db", sizeof(struct db), 0, NULL, NULL, NULL);
	p->cred_cache = slab_cache_create(p->arena, "credentials", sizeof(struct cred), 0, NULL, NULL, NULL);
	p->cancel_cache = slab_cache_create(p->arena, "cancel_req", sizeof(struct cancel_req), 0, NULL,
			NULL, NULL);
	p->varset_cache = slab_cache_create(p->arena, "varset", sizeof(struct varset), 0, NULL, NULL, NULL);
	p->authq_cache = slab_cache_create(p->arena, "auth_query", sizeof(struct authq_req), 0, NULL,
			NULL, NULL);
	p->prep = prep_reg_create(p->arena);
	if (!p->prep || !p->client_cache || !p->server_cache || !p->client_login_cache || !p->server_login_cache ||
			!p->pool_cache || !p->db_cache || !p->cred_cache || !p->cancel_cache ||
			!p->varset_cache || !p->authq_cache) {
		snprintf(err, errlen, "could not create slab caches");
		return -ENOMEM;
	}
	p->dns = dns_new(p->base, cfg->s.resolv_conf, err, errlen);
	if (p->dns == NULL)
		return -EINVAL;
	p->cfg = NULL;
	if (proxy_apply_config(p, cfg, err, errlen) < 0)
		return -EINVAL;
	vars_init(p);
	/* the console answers to both names */
	db = db_new(p, "pgslab");
	if (db)
		db->admin = true;
	db = db_new(p, "pgbouncer");
	if (db)
		db->admin = true;
	client_defer_init(p);
	event_assign(&p->janitor_ev, p->base, -1, EV_PERSIST, janitor_cb, p);
	event_add(&p->janitor_ev, &tv);
	event_assign(&p->stats_ev, p->base, -1, EV_PERSIST, stats_cb, p);
	tv.tv_sec = (time_t)(cfg->s.stats_period_us / 1000000);
	tv.tv_usec = (suseconds_t)(cfg->s.stats_period_us % 1000000);
	if (tv.tv_sec == 0 && tv.tv_usec == 0)
		tv.tv_sec = 60;
	event_add(&p->stats_ev, &tv);
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		evsignal_assign(&p->sig_ev[i], p->base, sigs[i], signal_cb, p);
		evsignal_add(&p->sig_ev[i], NULL);
	}
	return 0;
}

void proxy_reap_dead(struct proxy *p)
{
	while (!list_empty(&p->dead_clients)) {
		struct client *c = list_first_entry(&p->dead_clients, struct client, node);

		list_del(&c->node);
		slab_free(p->client_cache, c);
	}
	while (!list_empty(&p->dead_servers)) {
		struct server *s = list_first_entry(&p->dead_servers, struct server, node);

		list_del(&s->node);
		slab_free(p->server_cache, s);
	}
	while (!list_empty(&p->dead_cancels)) {
		struct cancel_req *r = list_first_entry(&p->dead_cancels, struct cancel_req, node);

		list_del(&r->node);
		slab_free(p->cancel_cache, r);
	}
}

static bool servers_busy(struct proxy *p)
{
	struct list *it;

	list_for_each(it, &p->pools) {
		struct pool *pool = list_entry(it, struct pool, node);

		if (pool->n_active > 0)
			return true;
	}
	return false;
}

void proxy_run(struct proxy *p)
{
	for (;;) {
		event_base_loop(p->base, EVLOOP_ONCE);
		proxy_settle(p);
		proxy_reap_dead(p);
		log_poll(p->log);
		if (p->shutdown == SHUTDOWN_NOW)
			break;
		if (p->shutdown == SHUTDOWN_WAIT_SERVERS && !servers_busy(p))
			break;
		if (p->shutdown == SHUTDOWN_WAIT_CLIENTS && p->n_clients == 0)
			break;
	}
}

void proxy_destroy(struct proxy *p)
{
	struct list *it, *tmp;
	size_t i;

	listener_close_all(p);
	p->shutdown = SHUTDOWN_NOW;
	list_for_each_safe(it, tmp, &p->login_clients)
		client_close(list_entry(it, struct client, node), SQLSTATE_ADMIN_SHUTDOWN,
				"pgslab is shutting down");
	list_for_each_safe(it, tmp, &p->pools) {
		struct pool *pool = list_entry(it, struct pool, node);
		struct list *lists[3] = { &pool->welcome_wait, &pool->waiting, &pool->clients };
		size_t k;

		for (k = 0; k < 3; k++)
			pool_close_clients(lists[k], SQLSTATE_ADMIN_SHUTDOWN, "pgslab is shutting down");
	}
	client_defer_release_all(p); /* no more waiting for the log */
	proxy_settle(p);
	list_for_each_safe(it, tmp, &p->pools) {
		struct pool *pool = list_entry(it, struct pool, node);

		while (!list_empty(&pool->idle))
			server_close(list_first_entry(&pool->idle, struct server, node), "shutdown");
		while (!list_empty(&pool->active))
			server_close(list_first_entry(&pool->active, struct server, node), "shutdown");
		while (!list_empty(&pool->login))
			server_close(list_first_entry(&pool->login, struct server, node), "shutdown");
	}
	list_for_each_safe(it, tmp, &p->cancels) {
		struct cancel_req *r = list_entry(it, struct cancel_req, node);

		dns_cancel(&r->dns); /* a peer's name still being resolved */
		stream_close(&r->st);
		list_del(&r->node);
		list_append(&p->dead_cancels, &r->node);
	}
	p->n_cancels = 0;
	proxy_settle(p);
	proxy_reap_dead(p);
	list_for_each_safe(it, tmp, &p->dbs)
		list_entry(it, struct db, node)->dead = true;
	list_for_each_safe(it, tmp, &p->pools) {
		struct pool *pool = list_entry(it, struct pool, node);

		pool->n_clients = pool->n_waiting = 0;
	}
	pool_destroy_unused(p);
	list_for_each_safe(it, tmp, &p->dbs)
		db_free(p, list_entry(it, struct db, node));
	nametab_destroy(&p->db_index);
	cred_destroy_all(p);
	authq_destroy_all(p);
	p->console_ops->stop(p);
	cancel_destroy(p);
	dns_free(p->dns);
	p->dns = NULL;
	vars_destroy(p);
	event_del(&p->janitor_ev);
	event_del(&p->stats_ev);
	for (i = 0; i < sizeof(p->sig_ev) / sizeof(p->sig_ev[0]); i++)
		if (event_initialized(&p->sig_ev[i]))
			event_del(&p->sig_ev[i]);
	if (p->userlist)
		userlist_free(p->userlist);
	hba_free(p->hba);
	p->hba = NULL;
	tls_ctx_free(p->sctx.tls_accept);
	p->sctx.tls_accept = NULL;
	tls_ctx_free(p->tls_connect);
	p->tls_connect = NULL;
	sysalloc_trim();
	if (p->cfg)
		config_free(p->cfg);
	if (p->base)
		event_base_free(p->base);
	p->base = NULL;
}
