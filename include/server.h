/* server.h -- server connections: connect, login, the protocol tracker's
 * reading side, drain after an unclean release (server.c). */
#ifndef PGSLAB_SERVER_H
#define PGSLAB_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "dns.h"
#include "list.h"
#include "prep.h"
#include "stream.h"
#include "track.h"

struct pool;
struct client;
struct varset;
struct authq_req;
struct server_login;

enum server_state {
	SV_LOGIN,     /* pool->login */
	SV_IDLE,      /* pool->idle */
	SV_ACTIVE,    /* pool->active, linked to <client> */
	SV_RESET,     /* pool->active, running server_reset_query / SET sync */
	SV_DRAIN,     /* pool->active, unlinked: its client left with work in
		       * flight; answers are discarded until the backend is idle */
	SV_AUTHQ,     /* pool->active, unlinked: running an auth_query <lookup> */
	SV_CLOSED,
};

struct server {
	struct stream st;
	struct list node;
	struct pool *pool;
	struct client *client;
	struct server_login *login;
	struct authq_req *lookup;    /* SV_AUTHQ: the lookup it runs */
	struct varset *vars;
	uint64_t id;
	int64_t connect_us, used_us, query_start_us;
	int64_t drain_until_us;      /* SV_DRAIN: closed if not idle by then */
	uint64_t drain_bytes;        /* SV_DRAIN: bytes discarded so far */
	uint32_t backend_pid, backend_key;
	struct track tr;             /* what the backend owes (track.h) */
	uint8_t state;
	bool close_needed;
	bool release_on_drain;
	uint8_t repl;                /* enum client_repl: a replication client's own
				      * server, linked from launch, never pooled */
	uint8_t prep;                /* PREP_* steps done since linked */
	struct prep_server pst;      /* statements prepared on the backend */
	struct dns_wait dns;         /* SV_LOGIN: waiting for its host's address */
	struct sockaddr_storage addr; /* where it connects (cancels go there too) */
	socklen_t addrlen;           /* 0 until resolved */
	uint8_t host_idx;            /* which host of its db's list */
	char host[256];              /* ... and its name */
};

#define PREP_CHECKED 0x1
#define PREP_SYNCED 0x2
#define PREP_FAILED 0x4   /* an internal step's query failed */


/* The server side's calls upward (the pool, auth_query), which server.c
 * makes through this table only: main.c fills it at start-up
 * (proxy.server_ops). */
struct server_ops {
	/* the client is done with <s> at a transaction boundary: reset or park it */
	void (*release)(struct server *s);
	/* <s> finished login or reset: hand it to a waiter or park it */
	void (*idle)(struct server *s);
	/* run the statements <s> owes before its client (false: none) */
	bool (*prepare)(struct server *s);
	/* <s> is torn down: off its pool, its lookup (if any) fails */
	void (*gone)(struct server *s);
	/* a login was refused: the clients waiting for <pool> get the error */
	void (*fail_waiting)(struct pool *pool, const char *sqlstate, const char *msg);
	/* a connect failed: logins waiting on a lookup in <pool> are refused */
	void (*lookups_failed)(struct pool *pool, const char *sqlstate, const char *why);
	/* <pool> learnt its server parameters: welcome its waiting clients */
	void (*welcome_all)(struct pool *pool);
	/* a message from <s> while it runs an auth_query lookup (SV_AUTHQ) */
	enum stream_act (*lookup_message)(struct server *s, uint8_t type, const uint8_t *msg,
			uint32_t len);
};

struct server *server_launch(struct pool *pool);
void server_close(struct server *s, const char *reason);
/* Send <sql> as a simple query whose results pgslab swallows; the server is
 * SV_RESET until its ReadyForQuery. */
int server_send_internal(struct server *s, const char *sql);
/* Unlinked <s> was left with work in flight: bring it back to idle (see
 * server.c), then pool_release() it; or close it. */
void server_drain(struct server *s);
void server_drain_step(struct server *s);
void server_logid(const struct server *s, char *buf, size_t len);
size_t server_login_size(void);

#endif
