/* proxy.h -- the pooler's objects: instance, databases, pools, clients, servers.
 *
 * Theory.  One struct proxy per event loop owns everything below it: the
 * slab arena every object comes from, the pools, the listening sockets and
 * the cancel-key table.  Nothing is global, so a future worker thread owns
 * its proxy outright (workers.h has the design).
 *
 * Lists (every object is on exactly one list of its owner):
 *   proxy->login_clients   clients still in startup/authentication
 *   pool->waiting          clients waiting for a server, oldest first
 *   pool->clients          logged-in clients not waiting, least recently active first
 *   pool->idle             idle servers, most recently used first (LIFO: warm caches)
 *   pool->active           servers linked to a client, or running a reset/sync
 *   pool->login            servers connecting or logging in
 *   proxy->dead            closed clients/servers whose memory is freed after
 *                          the current loop iteration (libevent or a caller
 *                          up the stack may still hold a pointer)
 *
 * Counting: pool->n_servers == |idle| + |active| + |login|, and
 * db->n_servers is the sum over the db's pools; both are bounded by the
 * configured limits.
 */
#ifndef PGSLAB_PROXY_H
#define PGSLAB_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "budget.h"
#include "config.h"
#include "hist.h"
#include "list.h"
#include "nametab.h"
#include "prep.h"
#include "scram_client.h"
#include "scram_server.h"
#include "stream.h"
#include "track.h"
#include "vars.h"

#define PGSLAB_VERSION "0.1.0"
#define PROXY_MAX_PACKET 0x3fffffffu /* PostgreSQL's largest message (1 GiB) */

struct slab_cache;
struct slab_arena;
struct userlist;
struct hba;
struct logger;
struct control;
struct metrics;
struct cred;

/* ---- credentials, databases, pools ---- */

struct db {
	struct list node;
	struct nametab_node hnode;   /* in proxy.db_index, by <name> */
	char name[NAME_MAX_LEN];
	char dbname[NAME_MAX_LEN];
	char host[256];
	int port;
	char force_user[NAME_MAX_LEN];
	char password[SCRAM_SECRET_STR_MAX];
	char connect_query[256];
	/* sent in the server's startup packet when set */
	char client_encoding[NAME_MAX_LEN], datestyle[NAME_MAX_LEN], timezone[NAME_MAX_LEN],
			application_name[NAME_MAX_LEN];
	struct sockaddr_storage addr;
	socklen_t addrlen;
	bool addr_ok;
	bool admin;                  /* the console pseudo-database */
	bool paused, disabled;
	bool dead;                   /* removed from config; freed when unused */
	bool autodb;                 /* made from the "*" entry; freed when idle */
	bool pool_warm;              /* its force_user pool exists for min_pool_size */
	int64_t idle_since_us;       /* autodb: no client or server since */
	int pool_size, min_pool_size, reserve_pool_size, max_db_connections, pool_weight;
	struct budget *budget;       /* backend slots shared by the db's pools */
	int pool_mode;               /* enum pool_mode or CONFIG_INHERIT */
	int n_servers;               /* over all pools */
	int n_clients;
	int64_t server_lifetime_us;
};

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
	enum pool_mode mode;
	uint8_t *welcome;            /* ParameterStatus messages from a server login */
	uint32_t welcome_len, welcome_cap;
	struct varset *defaults;     /* server's values right after login */
	int64_t retry_at_us;         /* no new connect before this (after failures) */
	bool login_failing;          /* the last server login was refused */
	char login_error[128];       /* ... and why */
	struct pool_stats st, st_prev; /* totals, and at the last stats period */
	struct budget_member bm;     /* slots held in db->budget */
	bool launching;              /* pool_launch() is on the stack */
	uint64_t wait_hist[POOL_WAIT_BUCKETS]; /* waits: <100us, <1ms, ... , >=10s */
	struct hist query_lat, xact_lat, wait_lat; /* since start, for percentiles */
	struct pool_stats avg;       /* per-second averages over the last period */
};

/* ---- connections ---- */

enum client_state {
	CL_LOGIN,     /* proxy->login_clients */
	CL_WELCOME,   /* pool->welcome_wait: authenticated, pool has no parameters yet */
	CL_WAITING,   /* pool->waiting */
	CL_ACTIVE,    /* pool->clients (linked to a server or idle) */
	CL_CLOSED,
};

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

struct client_login;
struct authq_req;
struct server_login;

struct client {
	struct stream st;
	struct list node;
	struct pool *pool;
	struct server *server;
	struct client_login *login;  /* only during startup/auth */
	struct varset *vars;
	struct client *hnext;        /* cancel-key hash chain */
	struct db *db;               /* as asked for at login (NULL before) */
	uint64_t id;
	int64_t connect_us, active_us;  /* connect time; last state change */
	int64_t xact_start_us, query_start_us, wait_start_us, request_us;
	uint32_t cancel_pid, cancel_key;
	uint16_t port;
	uint8_t family;
	uint8_t state;
	uint8_t admin;               /* 0, or 1 stats-only / 2 admin console user */
	uint8_t txn;                 /* last ReadyForQuery status seen */
	bool closing;                /* client_close() ran; torn down from the loop */
	bool prep_wait;              /* stopped until owed answers settle (prep.h) */
	bool wait_notified;          /* this wait's query_wait_notify notice was sent */
	uint8_t addr[16];
	struct cred *cred;           /* the user it logged in as */
	struct prep_client pst;      /* its prepared-statement names */
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
	uint8_t prep;                /* PREP_* steps done since linked */
	struct prep_server pst;      /* statements prepared on the backend */
};

#define PREP_CHECKED 0x1
#define PREP_SYNCED 0x2
#define PREP_FAILED 0x4   /* an internal step's query failed */

/* ---- the instance ---- */

enum shutdown_mode {
	SHUTDOWN_NONE,
	SHUTDOWN_WAIT_SERVERS,   /* SIGINT: when no server is in use */
	SHUTDOWN_WAIT_CLIENTS,   /* SIGTERM: when no client is left */
	SHUTDOWN_NOW,
};

struct proxy {
	struct event_base *base;
	struct slab_arena *arena;
	struct stream_ctx sctx;
	struct config *cfg;
	struct userlist *userlist;
	struct hba *hba;             /* auth_hba_file's rules (with auth_ident_file), or NULL */
	struct logger *log;
	const char *config_path;

	struct slab_cache *client_cache, *server_cache, *client_login_cache,
			*server_login_cache, *pool_cache, *db_cache, *cred_cache, *cancel_cache,
			*varset_cache, *authq_cache;

	struct list dbs, creds, pools, login_clients, listeners, cancels;
	struct nametab db_index, cred_index;  /* dbs and creds by name */
	struct nametab dyn_index;    /* auth_query creds by "authdb\x01user" (cred.h) */
	struct nametab authq_index;  /* lookups under way, by the same key (authq.h) */
	struct list dead_clients, dead_servers, dead_cancels;
	struct vartab vars;

	unsigned worker;             /* index in cancel pids (cancel.h); 0 today */
	struct client **keytab;      /* cancel key -> client */
	uint32_t keytab_size, n_keyed;
	size_t keytab_cap;

	struct event janitor_ev, stats_ev, sig_ev[6];
	struct event accept_ev;      /* resumes accepting after a backoff */
	bool accept_paused;
	uint64_t accept_backoffs;
	uint64_t next_id;
	uint64_t console_queries;    /* console commands run, for SHOW TOTALS */
	int n_clients;               /* all client connections, for max_client_conn */
	int n_prelogin;              /* of which TCP ones not yet authenticated (CL_LOGIN) */
	uint64_t prelogin_refused;   /* refused at the max_login_clients cap */
	int n_cancels;               /* forwarded cancels connecting (p->cancels) */
	uint64_t cancels_forwarded, cancels_dropped;
	int n_servers;
	enum shutdown_mode shutdown;
	bool paused;                 /* PAUSE: hold new server assignments */
	bool log_to_stderr;          /* not daemonized and not -q */
	int verbose_min;             /* -v on the command line */
	int64_t start_us;
	int64_t last_reap_us;
	struct control *control;     /* console control state (control.c) */
	struct metrics *metrics;     /* Prometheus endpoint (metrics.c) */
	struct tls_ctx *tls_connect; /* towards servers (server_tls_*); accepting
				      * clients: sctx.tls_accept */
	struct prep_reg *prep;       /* prepared-statement registry (prep.h) */
	uint8_t rnd[256];            /* OS CSPRNG bytes for cancel keys and salts */
	uint32_t rnd_pos;
	uint8_t mock_key[SCRAM_KEY_LEN]; /* SCRAM mock secrets for unknown users */
};

static inline struct proxy *proxy_of(const struct stream *s)
{
	return (struct proxy *)(void *)((char *)s->ctx - offsetof(struct proxy, sctx));
}

/* monotonic microseconds (one clock read per stream event: stream_now_us) */
static inline int64_t proxy_now_us(void)
{
	return stream_now_us();
}

/* proxy.c */
int proxy_init(struct proxy *p, const char *config_path, struct config *cfg, char *err,
		size_t errlen);
int proxy_apply_config(struct proxy *p, struct config *cfg, char *err, size_t errlen);
void proxy_run(struct proxy *p);
void proxy_destroy(struct proxy *p);
void proxy_reap_dead(struct proxy *p);
/* Reload config and userlist; on failure the old ones stay and <err> says why. */
int proxy_reload(struct proxy *p, char *err, size_t errlen);
void proxy_shutdown(struct proxy *p, enum shutdown_mode mode);
/* A database by name; with <create>, an auto-database from the "*" entry
 * when there is one (call only after authentication). */
struct db *proxy_find_db(struct proxy *p, const char *name, bool create);
/* Run every deferred close (stream failures); call after each callback. */
void proxy_settle(struct proxy *p);
uint32_t proxy_random(struct proxy *p);
int proxy_resolve_db(struct db *db);

#endif
