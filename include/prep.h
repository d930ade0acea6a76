/* prep.h -- protocol-level prepared statements across pooled backends.
 *
 * Theory.  In transaction and statement mode a client's named statement
 * must follow it to whichever backend it lands on.  Three maps do it:
 *
 *   registry   query text + parameter types -> struct prep_stmt (one per
 *              distinct statement, shared by every client and server; its
 *              server-side name is PGSLAB_<id>)
 *   client map (client id, name) -> statement        what the client sees
 *   server set (server id, statement) -> LRU record  what the backend holds
 *
 * A client's Parse puts its name in the client map; its Bind, Describe and
 * Close of a named statement are rewritten to PGSLAB_<id>, preceded by an
 * injected Parse when the backend lacks it (and an injected Close of the
 * least recently used statement when the backend would hold more than
 * max_prepared_statements).  prep_plan_*() decide that; the caller writes
 * the messages (prep_write_*) and queues one tracker request per message.
 *
 * What actually got prepared is learnt from the backend's answers: every
 * message whose outcome changes a map leaves a struct prep_pend on the
 * server's FIFO, in request order; the tracker pops requests in the same
 * order and prep_server_settle() applies the outcome (a Parse that failed
 * or was skipped after an error takes its statement out of the server set;
 * a Close that was skipped puts the name back).  So the server sets never
 * claim a statement the backend does not hold.  A client's name whose Parse
 * failed stays, marked <failed> (as in PgBouncer: drivers that pipeline go
 * on to Bind it, and the Bind then prepares the text, or fails as the Parse
 * did); a new Parse of that name replaces it, as PostgreSQL, which never
 * had it, would allow.
 *
 * Ownership and memory: statements, map records and pending records come
 * from slab caches of the arena; a statement's key (query text and types)
 * from its size classes.  Statements are refcounted: each client-map record,
 * server-set record and pending record holds one reference; the last one
 * frees it.  Client-map records are refcounted too (the client's table
 * holds one, a pending record one), so a record outlives a client that
 * leaves while its server still owes answers.  The three hash tables own
 * their bucket arrays and double them as they fill; nothing here is
 * allocated once every statement is known everywhere, so the transaction
 * path stays allocation-free.  Knows nothing of sockets, pools or config.
 */
#ifndef PGSLAB_PREP_H
#define PGSLAB_PREP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "list.h"

struct slab_arena;
struct prep_reg;

#define PREP_NAME_MAX 63    /* PostgreSQL keeps NAMEDATALEN-1 bytes of a name */
#define PREP_SERVER_NAME_MAX 32 /* "PGSLAB_" + a decimal uint64 + NUL */
#define PREP_NAME_PREFIX "PGSLAB_"
#define PREP_KEY_MAX (4u << 20) /* largest query text + types kept */
#define PREP_KEY_SMALL 192u     /* texts up to this size come from the prep_text cache */

/* A hash-table link; first member of each record below. */
struct prep_hnode {
	struct prep_hnode *next;
	uint32_t hash;
};

struct prep_stmt {
	struct prep_hnode h;
	uint32_t refs;
	uint64_t id;
	uint8_t *key;            /* query\0 int16 nparams int32[nparams] */
	uint32_t key_len;
	uint32_t key_cap;        /* slab_buf capacity of <key> */
	uint32_t n_servers;      /* servers that hold it */
	uint32_t n_clients;      /* client names that map to it */
	uint8_t ctx;             /* parse context: standard_conforming_strings off (1) or on (0) */
};

struct prep_client;

struct prep_cmap {
	struct prep_hnode h;
	struct prep_client *pc;  /* NULL once the client dropped its names */
	uint32_t refs;           /* the client's table (while linked) + pendings */
	uint64_t owner;          /* client id */
	struct list node;        /* on <pc>'s list (linked, or detached by a pending Close) */
	struct prep_stmt *stmt;
	bool linked;
	bool failed;             /* its Parse failed or was skipped: a Parse may replace it */
	uint8_t name_len;
	char name[PREP_NAME_MAX + 1];
};

struct prep_pend;

struct prep_smap {
	struct prep_hnode h;
	uint64_t owner;          /* server id */
	struct prep_stmt *stmt;
	struct prep_pend *adder; /* the Parse that prepares it, until answered */
	struct list lru;         /* most recently used first */
};

/* What a pending answer means (see prep_server_settle). */
enum prep_pend_kind {
	PREP_P_INJECT,   /* injected Parse: failure -> not in the server set */
	PREP_P_PARSE,    /* client's Parse sent as Parse: failure -> neither map */
	PREP_P_HAVE,     /* client's Parse answered by a stand-in Close: failure -> not in client map */
	PREP_P_DUP,      /* client's Parse of a name it has: fails on purpose, no change */
	PREP_P_EVICT,    /* injected Close: skipped -> the backend still holds it (if
	                  * it held it: <held>), else its set is not known (LOST) */
	PREP_P_CLOSE,    /* client's Close: skipped -> the name comes back */
	PREP_P_SQL_DEALLOC, /* client's SQL DEALLOCATE <name> (a Query: settled by its tags,
	                  * prep_server_sql_end, not the tracker); <held>: its PREPARE
	                  * tag came */
};

struct prep_pend {
	struct prep_pend *next;
	uint8_t kind;            /* enum prep_pend_kind */
	bool held;               /* EVICT: the backend had answered the statement's Parse */
	uint32_t seg;            /* the server's Sync count when queued */
	struct prep_stmt *stmt;  /* holds a reference */
	struct prep_cmap *map;   /* PARSE/HAVE/CLOSE: holds a reference */
};

/* One client's names; embedded in the client. */
struct prep_client {
	struct list maps;
	uint64_t id;
	uint32_t n;
};

#define PREP_SV_LOST 0x1u      /* the set may miss statements the backend holds: every
                                * Parse goes behind a Close, and it closes at release */
#define PREP_SV_RESETTING 0x2u /* a DEALLOCATE ALL / DISCARD ALL awaits its tag */

/* One backend's statements; embedded in the server. */
struct prep_server {
	struct list lru;
	struct prep_pend *ph, *pt; /* FIFO, oldest first */
	uint64_t id;
	uint32_t n;
	uint32_t seg;            /* Syncs sent (prep_server_sync) */
	uint32_t max;            /* max_prepared_statements at the last plan: <n> stays
	                          * at most one over it (a skipped eviction) */
	uint8_t flags;
};

/* Figures of the registry (prep_reg_stats).  Gauges: <stmts> distinct
 * statements, <cmaps> client names, <smaps> statements held by servers,
 * <key_bytes> bytes of statement texts, <bytes> all the registry holds
 * (records of the three maps, texts, bucket arrays; not pending records).
 * Counters:
 *   parses       client Parses of a named statement
 *   binds        client Binds/Describes of a name the client prepared
 *   hits         Parses whose text and types the registry already held
 *   misses       Parses that added a statement to the registry
 *   server_hits  Parses and Binds/Describes whose statement the backend
 *                already held: nothing prepared (a Parse becomes a
 *                stand-in Close)
 *   server_misses Parses sent to the backend for a statement: the client's
 *                own (its backend lacked it) plus the injected ones
 *   injects      injected Parses (a Bind/Describe on a backend lacking it)
 *   evicts       injected Closes (max_prepared_statements reached)
 * A Parse of a name the client already has (answered 42P05) counts in
 * <parses> only. */
struct prep_stats {
	uint64_t stmts, cmaps, smaps, key_bytes, bytes;
	uint64_t parses, binds, hits, misses, server_hits, server_misses, injects, evicts;
};

/* ---- messages the caller queues, in order ---- */

/* What to send for one client message: a run of Closes (of the statement
 * itself, then of the least recently used ones until the backend holds
 * fewer than max_prepared_statements), its Parse, the client's message. */
enum prep_op_kind {
	PREP_OP_CLOSE_EVICT, /* <count> x Close S (tracker 'x' each, answers swallowed): the
	                      * statements of <count> pending records from <pend> on */
	PREP_OP_PARSE_INJECT,/* Parse <stmt> (tracker 'p', answer swallowed) */
	PREP_OP_PARSE,       /* the client's Parse as Parse <stmt> (tracker 'P') */
	PREP_OP_PARSE_HAVE,  /* the client's Parse as Close S PGSLAB_0 (tracker 'k': 3 -> 1) */
	PREP_OP_REWRITE,     /* the client's Bind/Describe/Close with <stmt>'s name */
	PREP_OP_CLOSE_NONE,  /* the client's Close as Close S PGSLAB_0 (tracker 'C') */
};

struct prep_op {
	uint8_t kind;
	uint8_t track;           /* tracker request type (track.h), 0: the message's */
	uint32_t count;          /* CLOSE_EVICT: Closes in the run; else 1 */
	struct prep_stmt *stmt;  /* CLOSE_EVICT: the first one's */
	const struct prep_pend *pend; /* CLOSE_EVICT: the first one's pending record */
};

struct prep_plan {
	struct prep_op op[4];
	unsigned n;
	bool dup;                /* a Parse of a name the client has (answered 42P05) */
};

struct prep_reg *prep_reg_create(struct slab_arena *a);
void prep_reg_destroy(struct prep_reg *r);
void prep_reg_stats(const struct prep_reg *r, struct prep_stats *st);
/* Call <fn> for each registered statement. */
void prep_reg_foreach(const struct prep_reg *r, void (*fn)(const struct prep_stmt *, void *),
		void *arg);

void prep_client_init(struct prep_client *pc, uint64_t id);
/* Drop every name of <pc> (DEALLOCATE ALL, DISCARD ALL, disconnect). */
void prep_client_clear(struct prep_reg *r, struct prep_client *pc);
void prep_server_init(struct prep_server *ps, uint64_t id);
/* Forget everything of <ps>: its set and pending answers (server closed, or
 * the backend deallocated all).  Pending records are dropped too, so only
 * call it when no answer is owed or the backend is gone. */
void prep_server_clear(struct prep_reg *r, struct prep_server *ps);
/* The backend deallocated everything: empty the set, keep pending answers. */
void prep_server_forget_all(struct prep_reg *r, struct prep_server *ps);

/* Parse a Parse/Bind/Describe/Close body (after the 5-byte header).
 * Return false on a malformed body. */
bool prep_parse_body(const uint8_t *body, uint32_t len, const char **name, const uint8_t **key,
		uint32_t *key_len);
bool prep_bind_body(const uint8_t *body, uint32_t len, const char **portal, const char **name,
		const uint8_t **rest, uint32_t *rest_len);

/* A Sync went to the backend: answers owed from before it no longer decide
 * what comes after (an error skips only to the Sync). */
static inline void prep_server_sync(struct prep_server *ps)
{
	ps->seg++;
}

/* Plans.  <max> is max_prepared_statements (> 0).  Each returns 0; or
 * -EAGAIN when an answer owed from before the last Sync could change the
 * plan (the caller waits for that ReadyForQuery and asks again); -ENOMEM;
 * -E2BIG (text too large); -ENOENT (prep_plan_use: the client has no such
 * name; PgBouncer closes the client then, and so does the caller).
 * prep_plan_parse for a name the client already has makes the backend
 * answer 42P05 itself (<pl>->dup).  On success the pending
 * records are already on <ps>'s FIFO, in the plan's order, and each op's
 * <track> says what the tracker must queue for it (0: the client message's
 * own type). */
/* <sure>: the backend is known not to be in a failed transaction (nothing
 * in flight, last status not 'E'); only then may a Parse of a statement it
 * holds be answered by a stand-in Close.  <ctx>: the backend's parse
 * context now (1: standard_conforming_strings off).  It is part of the key
 * of a text with a backslash (the only texts it changes), so a statement a
 * backend must re-prepare under another context is registered as the
 * statement of that context (never under the client's: no other client
 * gets a text read differently than it sent). */
int prep_plan_parse(struct prep_reg *r, struct prep_client *pc, struct prep_server *ps, int max,
		const char *name, const uint8_t *key, uint32_t key_len, uint8_t ctx, bool sure,
		struct prep_plan *pl);
/* Bind or Describe of statement <name>. */
int prep_plan_use(struct prep_reg *r, struct prep_client *pc, struct prep_server *ps, int max,
		const char *name, uint8_t ctx, struct prep_plan *pl);
/* Close of statement <name>. */
int prep_plan_close(struct prep_reg *r, struct prep_client *pc, struct prep_server *ps,
		const char *name, struct prep_plan *pl);

/* The tracker popped a request of a kind with a pending record ('p', 'P'
 * named, 'k', 'x', 'y'): apply its outcome.  <answered>: the backend
 * answered it (false: it failed or was skipped after an error). */
void prep_server_settle(struct prep_reg *r, struct prep_server *ps, bool answered);

/* ---- message writers: into <buf> of at least the size the _len call says ---- */

void prep_server_name(const struct prep_stmt *st, char out[PREP_SERVER_NAME_MAX]);
size_t prep_parse_len(const struct prep_stmt *st);
size_t prep_write_parse(const struct prep_stmt *st, uint8_t *buf);
/* Close S of <st>, or of PGSLAB_0 (never prepared) when <st> is NULL. */
size_t prep_close_len(const struct prep_stmt *st);
size_t prep_write_close(const struct prep_stmt *st, uint8_t *buf);
/* A Bind (<type> 'B', <portal> and <rest> from the client's) or Describe
 * ('D', <portal> ignored, <rest> empty) naming <st>.  With <rest> NULL only
 * the head is written (its length word counting <rest_len> more bytes). */
size_t prep_rewrite_len(uint8_t type, const char *portal, const struct prep_stmt *st,
		uint32_t rest_len);
size_t prep_write_rewrite(uint8_t type, const char *portal, const struct prep_stmt *st,
		const uint8_t *rest, uint32_t rest_len, uint8_t *buf);

/* The first keyword of SQL text <q> (<len> bytes, maybe not all of the
 * text): what pgslab must do about it in transaction mode. */
enum prep_sql {
	PREP_SQL_OTHER,
	PREP_SQL_PREPARE,     /* PREPARE / EXECUTE / DEALLOCATE name: refused, but
	                       * for prep_sql_dealloc_name()'s one statement */
	PREP_SQL_RESET,       /* DEALLOCATE [PREPARE] ALL, DISCARD ALL */
	PREP_SQL_UNSURE,      /* the text ends before the keyword is known */
	PREP_SQL_DEALLOC,     /* prep_tag_classify only: the tag DEALLOCATE */
};
enum prep_sql prep_sql_classify(const uint8_t *q, uint32_t len);
/* The cheap first test: can a statement or command tag whose first byte
 * is <ch> be PREPARE, EXECUTE, DEALLOCATE or DISCARD at all?  (Any other
 * letter: no; D, E, P, a space or a comment: ask prep_sql_classify.) */
static inline bool prep_sql_maybe(uint8_t ch)
{
	uint8_t l = ch | 0x20;

	return l < 'a' || l > 'z' || l == 'd' || l == 'e' || l == 'p';
}
/* A CommandComplete tag: PREP_SQL_RESET for DEALLOCATE ALL / DISCARD ALL,
 * PREP_SQL_PREPARE for PREPARE, PREP_SQL_DEALLOC for DEALLOCATE, else OTHER. */
enum prep_sql prep_tag_classify(const uint8_t *tag, uint32_t len);

/* SQL-level DEALLOCATE of a protocol-level name (DBD::Pg frees a statement
 * handle so).  Is Query text <q> (<len> bytes) exactly one
 * "DEALLOCATE [PREPARE] name [;]" (blanks and comments around)?  Then
 * <out> has the name as PostgreSQL reads it: unquoted folded to lower
 * case (ASCII only), quoted with "" undone; at most PREP_NAME_MAX bytes
 * (a longer one, which PostgreSQL truncates with a notice, is not taken). */
bool prep_sql_dealloc_name(const uint8_t *q, uint32_t len, char out[PREP_NAME_MAX + 1]);
/* The text the backend runs in its place: it answers exactly as
 * PostgreSQL answers a DEALLOCATE of an existing statement (its PREPARE
 * tag swallowed), leaving every statement it held in place. */
#define PREP_SQL_DEALLOC_TEXT "PREPARE \"PGSLAB_0\" AS SELECT; DEALLOCATE \"PGSLAB_0\""
/* <pc> deallocates <name> by SQL on <ps>, which owes nothing (the caller
 * checked).  1: the name is the client's; it leaves the client's table
 * now (a Parse of it may follow) and for good once the DEALLOCATE tag
 * comes (prep_server_sql_end), the caller sends PREP_SQL_DEALLOC_TEXT.
 * 0: not the client's (a failed Parse's name is dropped): the caller
 * sends the text as it came, and the backend answers 26000 in the
 * client's own words.  -ENOMEM. */
int prep_sql_dealloc(struct prep_reg *r, struct prep_client *pc, struct prep_server *ps,
		const char *name);
/* Is an SQL DEALLOCATE the oldest answer <ps> owes? */
static inline bool prep_server_sql_pending(const struct prep_server *ps)
{
	return ps->ph != NULL && ps->ph->kind == PREP_P_SQL_DEALLOC;
}
/* Its Query answered: with its DEALLOCATE tag (<done>: the name goes) or
 * ended without it (the name comes back; had its PREPARE run, the backend
 * may hold PGSLAB_0: PREP_SV_LOST).  Nothing when none is pending. */
void prep_server_sql_end(struct prep_reg *r, struct prep_server *ps, bool done);

#endif
