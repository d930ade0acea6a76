/* db.h -- databases: the [databases] entries (and auto-databases made from
 * the "*" entry) a client asks for by name, and where their servers are.
 *
 * A db is the instance's record of one entry: where to connect, its limits
 * and the counts its pools keep.  This module creates, finds, updates and
 * frees them (dns.c resolves their hosts); it knows nothing of pools, so
 * what a changed entry means for running servers is its caller's business
 * (db_set() only says whether the entry moved).
 */
#ifndef PGSLAB_DB_H
#define PGSLAB_DB_H

#include <stdbool.h>
#include <stdint.h>

#include "list.h"
#include "nametab.h"
#include "pwd.h"
#include "scram.h"
#include "vars.h"

struct proxy;
struct budget;
struct config_db;

struct db {
	struct list node;            /* in proxy.dbs */
	struct nametab_node hnode;   /* in proxy.db_index, by <name> */
	char name[NAME_MAX_LEN];
	char dbname[NAME_MAX_LEN];
	char host[256];              /* a host, or a comma-separated list of them */
	int load_balance_hosts;      /* enum load_balance_hosts */
	int port;
	char force_user[NAME_MAX_LEN];
	char password[PWD_SECRET_MAX];
	char connect_query[256];
	/* sent in the server's startup packet when set */
	char client_encoding[NAME_MAX_LEN], datestyle[NAME_MAX_LEN], timezone[NAME_MAX_LEN],
			application_name[NAME_MAX_LEN];
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

/* A new, empty entry <name> on p->dbs (NULL when out of memory). */
struct db *db_new(struct proxy *p, const char *name);
/* Take it off p->dbs and free it (its budget too); nothing may use it. */
void db_free(struct proxy *p, struct db *db);
/* The entry <name>, dead or alive, or NULL. */
struct db *db_lookup(struct proxy *p, const char *name);
/* A live database by name; with <create>, an auto-database from the "*"
 * entry when there is one (call only after authentication). */
struct db *db_find(struct proxy *p, const char *name, bool create);
/* Bring <db> in line with config entry <e> (<name> for the "*" entry).
 * True when it now points elsewhere (database, host, port or user): its
 * servers belong to the old entry. */
bool db_set(struct db *db, const struct config_db *e, const char *name);
/* Is <dbname> the admin console (pgslab, or PgBouncer's name for it)? */
bool db_is_console(const char *dbname);

#endif
