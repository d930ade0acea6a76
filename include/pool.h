/* pool.h -- pools: assignment of servers to clients, release, the wait
 * queue, the backend-slot budget's shares (pool.c). */
#ifndef PGSLAB_POOL_H
#define PGSLAB_POOL_H

#include "proxy.h"

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
/* Close <pool>'s idle servers (<reason>) and mark the others to close when
 * released (RECONNECT, a changed database entry). */
void pool_reconnect(struct pool *pool, const char *reason);
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
