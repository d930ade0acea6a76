/* authq.h -- auth_query: a login's secret looked up in PostgreSQL (authq.c).
 *
 * Theory.  A client whose user is not in the auth_file, logging in to a
 * database with an auth_user (its own [databases] key, else the global
 * setting), waits while pgslab asks PostgreSQL for the user's secret.  The
 * lookup runs on a server of the pool (auth database, auth_user) -- the
 * auth_dbname's, else the client's database -- as one extended-protocol
 * pipeline, never blocking the loop:
 *
 *   Parse/Bind/Execute  set_config('search_path', <session default>, pg_temp last; local)
 *   Parse/Bind/Execute  auth_query, the user name as bind parameter $1
 *   Sync                ends the implicit transaction: search_path is back
 *
 * The client's startup parameters never reach that connection (CVE-2025-12819),
 * and whatever SET an earlier client left on the pooled server does not
 * steer the lookup.  Concurrent logins of one user share one lookup
 * (single flight).  Every login gets an answer asked for after it arrived:
 * nothing is authenticated from an older answer, so ALTER ROLE ... PASSWORD,
 * VALID UNTIL and NOLOGIN take effect on the next login, as in PgBouncer.
 * The answer is cached in a dynamic cred (cred.h), one per (auth database,
 * user): it is what that user's pools log in to servers with (md5 secret, or
 * the SCRAM verifier plus the ClientKey a client's proof gave), kept while
 * the proxy runs and replaced by every lookup.
 *
 * Ownership: a request comes from proxy->authq_cache, is on proxy->authq_index
 * (by key) from start to end and on pool->lookups while queued; its waiters
 * are struct authq_wait nodes embedded in the clients' login state.  A
 * request whose last waiter leaves while queued is freed at once; one that
 * runs finishes (the server stays clean) and caches its answer.
 */
#ifndef PGSLAB_AUTHQ_H
#define PGSLAB_AUTHQ_H

#include <stdbool.h>
#include <stdint.h>

#include "list.h"
#include "nametab.h"
#include "pwd.h"
#include "proto.h"
#include "scram.h"
#include "stream.h"
#include "vars.h"

struct proxy;
struct pool;
struct server;
struct client;
struct db;
struct cred;

/* A client waiting for a lookup (lives in its login state). */
struct authq_wait {
	struct list node;            /* authq_req.waiters */
	struct client *c;
	struct authq_req *req;       /* NULL when not waiting */
};

struct authq_req {
	struct list node;            /* pool->lookups while queued */
	struct nametab_node hnode;   /* proxy->authq_index, by <key> */
	struct list waiters;         /* struct authq_wait */
	struct pool *pool;           /* (auth database, auth_user) */
	struct server *server;       /* running on it, else NULL */
	int64_t start_us;
	uint8_t phase;               /* CommandCompletes seen: 0 pin, 1 auth_query */
	uint8_t retries;
	bool found;
	bool exists;                 /* a row named the user (<found>: with a usable secret) */
	bool failed;
	char key[2 * NAME_MAX_LEN + 2];
	char authdb[NAME_MAX_LEN];
	char user[NAME_MAX_LEN];
	char query[1024];
	char secret[PWD_SECRET_MAX];
	char error[256];
	char sqlstate[6];            /* of <error>; "" for SQLSTATE_INVALID_AUTH_SPEC */
};

/* The auth_user that applies to database <db> ("" when none). */
const char *authq_user_for(const struct proxy *p, const struct db *db, const char *dbname);
/* Start (or join) the lookup of <user> for client <c>, logging in to
 * <dbname> (<db> when known).  0: <w> waits and client_lookup_done() is
 * called later; <0: cannot start, <err> says why (for the client). */
int authq_start(struct client *c, struct authq_wait *w, struct db *db, const char *dbname,
		const char *user, char *err, size_t errlen);
/* <w>'s client leaves before the answer (idempotent). */
void authq_cancel(struct proxy *p, struct authq_wait *w);

/* pool.c: <pool> hands idle server <s> (now SV_AUTHQ, on pool->active) to <r>. */
void authq_run(struct server *s, struct authq_req *r);
/* server.c: a message while SV_AUTHQ. */
enum stream_act authq_server_message(struct server *s, uint8_t type, const uint8_t *msg,
		uint32_t len);
/* server.c: <s> closes mid-lookup. */
void authq_server_gone(struct server *s);
/* The auth pool cannot reach its server: fail its queued lookups.  With
 * <sqlstate>, <why> is the server's refusal of the auth user's login, which
 * the waiting clients get verbatim (as PgBouncer's kill_pool_logins). */
void authq_pool_failed(struct pool *pool, const char *sqlstate, const char *why);
/* Lookups running longer than <limit_us> close their server. */
void authq_expire(struct proxy *p, int64_t now, int64_t limit_us);
void authq_destroy_all(struct proxy *p);

/* client.c: the answer for <c>: <cr> (NULL: no such user, or no usable
 * secret -- refused like a wrong password), or <error> (the lookup failed). */
void client_lookup_done(struct client *c, struct cred *cr, const char *sqlstate,
		const char *error);

#endif
