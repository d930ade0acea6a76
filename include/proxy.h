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

#include "config.h"
#include "crypto.h"
#include "list.h"
#include "nametab.h"
#include "scram.h"
#include "stream.h"
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

/* ---- the instance ---- */

struct client_ops;
struct server_ops;
struct prepwire_ops;
struct pool_ops;
struct db;

/* The instance's calls up to the console (control.c, metrics.c): signals
 * pause and resume like PAUSE and RESUME, and teardown stops them. */
struct console_ops {
	int (*pause)(struct proxy *p, struct db *db);
	int (*resume)(struct proxy *p, struct db *db);
	void (*stop)(struct proxy *p);
};

/* Every table of upward calls, filled by main.c and handed to proxy_init():
 * the lower layers reach the upper ones through these only (093_layers.pl
 * checks that the call graph between files has no other cycle). */
struct proxy_wiring {
	const struct client_ops *client;
	const struct server_ops *server;
	const struct prepwire_ops *prepwire;
	const struct pool_ops *pool;
	const struct console_ops *console;
};

enum shutdown_mode {
	SHUTDOWN_NONE,
	SHUTDOWN_WAIT_SERVERS,   /* SIGINT: when no server is in use */
	SHUTDOWN_WAIT_CLIENTS,   /* SIGTERM: when no client is left */
	SHUTDOWN_NOW,
};

struct proxy {
	struct event_base *base;
	const struct client_ops *client_ops;   /* upward calls (struct proxy_wiring) */
	const struct server_ops *server_ops;
	const struct prepwire_ops *prepwire_ops;
	const struct pool_ops *pool_ops;
	const struct console_ops *console_ops;
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
	struct list log_wait;        /* logins whose refusal waits for the log (client.c) */
	struct event log_wait_ev;    /* ... checked every millisecond */
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
	bool suspended;              /* SUSPEND: clients' sockets are not read */
	bool log_to_stderr;          /* not daemonized and not -q */
	int verbose_min;             /* -v on the command line */
	int64_t start_us;
	int64_t last_reap_us;
	struct control *control;     /* console control state (control.c) */
	struct metrics *metrics;     /* Prometheus endpoint (metrics.c) */
	struct tls_ctx *tls_connect; /* towards servers (server_tls_*); accepting
				      * clients: sctx.tls_accept */
	struct prep_reg *prep;       /* prepared-statement registry (prep.h) */
	struct dns *dns;             /* server host names (dns.h) */
	struct crypto_rng rng;       /* cancel keys and salts */
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

/* Run every deferred close (stream failures); call after each callback. */
static inline void proxy_settle(struct proxy *p)
{
	stream_ctx_run_failed(&p->sctx);
}

static inline uint32_t proxy_random(struct proxy *p)
{
	return crypto_rng_u32(&p->rng);
}

/* proxy.c */
int proxy_init(struct proxy *p, const struct proxy_wiring *w, const char *config_path,
		struct config *cfg, char *err, size_t errlen);
int proxy_apply_config(struct proxy *p, struct config *cfg, char *err, size_t errlen);
/* Make <cfg> the running config, taking it, and free the one it replaces:
 * a running config is never written, a change (SET, reload) is a new
 * snapshot swapped in here. */
void proxy_swap_config(struct proxy *p, struct config *cfg);
/* New TLS contexts from <cfg>'s *_tls_* settings, replacing the running
 * ones; on failure (<err>) the running ones stay.  Returns 1 when the
 * server side changed (its servers then belong to the old settings:
 * proxy_reconnect_servers() once <cfg> runs), else 0, or <0. */
int proxy_tls_apply(struct proxy *p, const struct config *cfg, char *err, size_t errlen);
void proxy_reconnect_servers(struct proxy *p);
void proxy_run(struct proxy *p);
void proxy_destroy(struct proxy *p);
void proxy_reap_dead(struct proxy *p);
/* Reload config and userlist; on failure the old ones stay and <err> says why. */
int proxy_reload(struct proxy *p, char *err, size_t errlen);
void proxy_shutdown(struct proxy *p, enum shutdown_mode mode);

#endif
