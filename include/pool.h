/* pool.h -- pools: assignment of servers to clients, release, the wait
 * queue, the backend-slot budget's shares (pool.c). */
#ifndef PGSLAB_POOL_H
#define PGSLAB_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "budget.h"
#include "client.h"
#include "config.h"
#include "hist.h"
#include "list.h"

struct proxy;
struct db;
struct cred;
struct client;
struct server;
struct varset;
struct authq_req;

#define POOL_WAIT_BUCKETS 7

struct pool_stats {
	uint64_t xact_count, query_count, server_assignment_count;
	uint64_t bytes_recv, bytes_sent;
	uint64_t xact_time_us, query_time_us, wait_time_us;
	uint64_t client_login_count;
	uint64_t hits, misses;       /* assignment served by an idle server at once, or not */
	uint64_t server_logins, server_login_fail;
	uint64_t client_parse_count, server_parse_count, bind_count; /* prepared statements */
};

struct pool {
	struct list node;
	struct proxy *proxy;
	struct db *db;
	struct cred *cred;           /* whose credentials servers log in with */
	struct list idle, active, login, waiting, clients;
	struct list welcome_wait;    /* authenticated clients waiting for <welcome> (read stopped) */
	struct list lookups;         /* auth_query requests waiting for a server (authq.h) */
	int n_idle, n_active, n_login, n_waiting, n_clients, n_welcome, n_lookups;
	int n_servers;
	/* replication (client.h): clients on welcome_wait waiting for a server
	 * of their own; such servers (any state), and those logging in */
	int n_repl_wait, n_repl, n_repl_login;
	enum pool_mode mode;
	uint8_t *welcome;            /* ParameterStatus messages from a server login */
	uint32_t welcome_len, welcome_cap;
	struct varset *defaults;     /* server's values right after login */
	int64_t retry_at_us;         /* no new connect before this (after failures) */
	bool login_failing;          /* the last server login was refused */
	uint32_t host_rr;            /* host list: the next host (round-robin), or the
				      * one in use (load_balance_hosts = disable) */
	char login_error[128];       /* ... and why */
	struct pool_stats st, st_prev; /* totals, and at the last stats period */
	struct budget_member bm;     /* slots held in db->budget */
	bool launching;              /* pool_launch() is on the stack */
	uint64_t wait_hist[POOL_WAIT_BUCKETS]; /* waits: <100us, <1ms, ... , >=10s */
	struct hist query_lat, xact_lat, wait_lat; /* since start, for percentiles */
	struct pool_stats avg;       /* per-second averages over the last period */
};


/* The pool's calls up to auth_query (authq.c borrows pool servers for its
 * lookups), filled by main.c at start-up (proxy.pool_ops). */
struct pool_ops {
	/* idle server <s> of <r>'s pool (now SV_AUTHQ, on pool->active) runs <r> */
	void (*lookup_run)(struct server *s, struct authq_req *r);
	/* the pool cannot get a server: its lookups fail with <why> (the
	 * server's own error when <sqlstate> is not NULL) */
	void (*lookups_failed)(struct pool *pool, const char *sqlstate, const char *why);
	/* lookups older than <limit_us> give up (janitor) */
	void (*lookups_expire)(struct proxy *p, int64_t now, int64_t limit_us);
};

struct pool *pool_get(struct proxy *p, struct db *db, struct cred *cred);
/* Run auth_query request <r> on a server of <pool> now, or queue it. */
void pool_lookup(struct pool *pool, struct authq_req *r);
/* Give <c> a server now (true) or queue it (false). */
bool pool_assign(struct client *c);
/* The client is done with <s> at a transaction boundary (its tracker idle,
 * nothing in flight): reset or park it. */
void pool_release(struct server *s);
/* Client <c> is being torn down while linked to <s>: release, drain or
 * close <s> as its tracker says. */
void pool_client_left(struct server *s, struct client *c);
/* A server finished login or reset: hand it to a waiter or park it. */
void pool_server_idle(struct server *s);
bool pool_prepare(struct server *s);
void pool_server_gone(struct server *s);
void pool_launch(struct pool *pool);
/* <c> waits on pool->welcome_wait for the pool's first server parameters:
 * open a server for it, or close it at once while the pool's logins are
 * being refused (server_login_retry). */
void pool_welcome_wait(struct client *c);
/* Close <pool>'s idle servers (<reason>) and mark the others to close when
 * released (RECONNECT, a changed database entry or server TLS setting); a
 * cached login failure is forgotten. */
void pool_reconnect(struct pool *pool, const char *reason);
/* The console's verbs (control.c, admin.c).  Close <pool>'s idle and
 * connecting servers: a paused pool keeps only those in use. */
void pool_shed(struct pool *pool, const char *reason);
/* Hand idle servers to waiters and open what is missing (after a pause). */
void pool_kick(struct pool *pool);
/* KILL: close every client (57P01, <reason>) and server of <pool>. */
void pool_kill(struct pool *pool, const char *reason);
/* Is a server of <pool> still to close once released (RECONNECT)? */
bool pool_closing(const struct pool *pool);
/* Call <fn> for each logged-in client of <pool> (linked or idle, waiting for
 * a server, waiting for the welcome: in that order), or each server
 * (linked, idle, logging in).  <fn> may close the one it is given. */
void pool_foreach_client(struct pool *pool, void (*fn)(struct client *c, void *arg), void *arg);
void pool_foreach_server(struct pool *pool, void (*fn)(struct server *s, void *arg), void *arg);
void pool_fail_waiting(struct pool *pool, const char *sqlstate, const char *msg);
/* client_close() every client on list <l>. */
void pool_close_clients(struct list *l, const char *sqlstate, const char *msg);
void pool_welcome_all(struct pool *pool);
void pool_janitor(struct proxy *p);
void pool_stats_period(struct proxy *p);
void pool_client_gone(struct client *c, enum client_state prev);
void pool_destroy_unused(struct proxy *p);
/* What SHOW POOLS and /metrics report of one pool, counted in one place
 * (PgBouncer's names). */
struct pool_view {
	const struct pool *pool;
	int cl_active, cl_waiting;   /* linked or idle; waiting or not yet welcomed */
	int sv_active, sv_used;      /* linked (or draining for a client); resetting */
	int sv_idle, sv_login;
	int64_t maxwait_us;          /* the oldest waiting client's wait so far */
};
void pool_view(const struct pool *pool, int64_t now, struct pool_view *v);
/* <fn> for every pool, in list order, with its view at <now>. */
void pool_stats_foreach(struct proxy *p, int64_t now,
		void (*fn)(const struct pool_view *v, void *arg), void *arg);
/* Totals <t> and per-second averages <a> (last stats period) of every pool
 * of <db> (NULL: all), as SHOW STATS and /metrics report them. */
void pool_stats_sum(const struct proxy *p, const struct db *db, struct pool_stats *t,
		struct pool_stats *a);
int pool_size_for(const struct proxy *p, const struct db *db, const char *user);
int pool_effective_size(const struct pool *pool);
void pool_refresh_mode(struct pool *pool);
/* Recompute every db's budget and pool shares after a config change. */
void pool_budget_refresh(struct proxy *p);

#endif
