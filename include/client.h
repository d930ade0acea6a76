/* client.h -- client connections: accept, startup, authentication, welcome,
 * and the forwarding callbacks of a linked client (client.c). */
#ifndef PGSLAB_CLIENT_H
#define PGSLAB_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "list.h"
#include "prep.h"
#include "stream.h"

struct proxy;
struct pool;
struct server;
struct db;
struct cred;
struct varset;
struct client_login;
struct authq_wait;

/* A replication connection (startup parameter "replication"): logical
 * ("database"), physical (a true boolean), or none.  Such a client gets a
 * server of its own, opened for it with its startup parameters and closed
 * when it leaves; it is never shared or pooled (pool.c). */
enum client_repl {
	CLIENT_REPL_NONE,
	CLIENT_REPL_LOGICAL,
	CLIENT_REPL_PHYSICAL,
};

enum client_state {
	CL_LOGIN,     /* proxy->login_clients */
	CL_WELCOME,   /* pool->welcome_wait: authenticated, pool has no parameters yet;
		       * or a replication client waiting for its own server */
	CL_WAITING,   /* pool->waiting */
	CL_ACTIVE,    /* pool->clients (linked to a server or idle) */
	CL_CLOSED,
};

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
	uint8_t replication;         /* enum client_repl */
	uint8_t addr[16];
	struct cred *cred;           /* the user it logged in as */
	struct prep_client pst;      /* its prepared-statement names */
};


/* The client side's calls upward (pools, auth_query, the console), which
 * client.c makes through this table only: main.c fills it at start-up
 * (proxy.client_ops).  client.c knows nothing of how they work. */
struct client_ops {
	/* the pool serving <db> with <cred> (made on first use), or NULL */
	struct pool *(*pool_get)(struct proxy *p, struct db *db, struct cred *cred);
	/* <c> waits on pool->welcome_wait: open a server for it, or refuse it
	 * now while the pool's server logins fail */
	void (*welcome_wait)(struct client *c);
	/* give <c> a server now (true), or queue it (false) */
	bool (*assign)(struct client *c);
	/* <c> is torn down while linked to <s>: release, drain or close <s> */
	void (*left)(struct server *s, struct client *c);
	/* <c> is torn down; it was in state <prev> (off its list, counts) */
	void (*gone)(struct client *c, enum client_state prev);
	/* auth_query: the user whose server runs lookups for <db> ("" for none) */
	const char *(*lookup_user)(const struct proxy *p, const struct db *db, const char *dbname);
	/* start or join the lookup of <user>; 0, or <0 with <err> for the client */
	int (*lookup_start)(struct client *c, struct authq_wait *w, struct db *db,
			const char *dbname, const char *user, char *err, size_t errlen);
	/* <w>'s client leaves before the answer (idempotent) */
	void (*lookup_cancel)(struct proxy *p, struct authq_wait *w);
	/* run console query <sql>; false when the reply is held (admin.h) */
	bool (*console_query)(struct client *c, const char *sql);
};

void client_accept(struct proxy *p, int fd, const struct sockaddr *sa, socklen_t salen);
/* Close <c>: log, send the ErrorResponse (when <sqlstate>) and mark its
 * stream failed.  <c> stays valid and listed; it is torn down from the
 * event loop (stream_ctx_run_failed), never inside the caller.  Idempotent.
 * A client still logging in gets its error (and its stream fails) only
 * once the log line is written, a few milliseconds later. */
void client_close(struct client *c, const char *sqlstate, const char *reason);
void client_error(struct client *c, const char *sqlstate, const char *fmt, ...)
		__attribute__((format(printf, 3, 4)));
/* Send <c> a NoticeResponse (severity NOTICE, SQLSTATE 00000). */
void client_notice(struct client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A server became linked to waiting client <c>: start forwarding. */
void client_server_ready(struct client *c);
/* The pool learnt its server parameters: complete <c>'s login. */
void client_welcome(struct client *c);
void client_logid(const struct client *c, char *buf, size_t len);
void client_addr_str(const struct client *c, char *buf, size_t len);
void client_finish_login(struct client *c);
/* Replication client <c>'s own server logged in (and is linked to it):
 * welcome <c> with that server's ParameterStatus messages (<params>,
 * <len> bytes) and start forwarding. */
void client_repl_welcome(struct client *c, const uint8_t *params, uint32_t len);
/* The startup parameters a replication client's server is opened with
 * (name\0value\0 pairs: replication, the client's tracked parameters and
 * options as it sent them), <*len> bytes; NULL once it is welcomed. */
const uint8_t *client_repl_params(const struct client *c, uint32_t *len);
/* PgBouncer's names of <kind> (enum client_repl): the login line's
 * "no"/"database"/"yes", SHOW CLIENTS' "none"/"logical"/"physical". */
const char *client_repl_param(uint8_t kind);
const char *client_repl_name(uint8_t kind);
size_t client_login_size(void);
/* proxy.c: set up proxy->log_wait (refusals held until their log line is
 * written, see client_close); at the end, send every held one now. */
void client_defer_init(struct proxy *p);
void client_defer_release_all(struct proxy *p);
/* <c> sends a request to linked <s>: timing and byte counts, and the
 * tracker unless <type> is 0.  False when the pipeline is too deep to
 * track (<c> is closed). */
bool client_note_request(struct client *c, struct server *s, uint8_t type, uint32_t len);

#endif
