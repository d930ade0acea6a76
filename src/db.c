/* db.c -- databases: create, find, update (see db.h). */
#include "db.h"

#include <stdio.h>
#include <string.h>

#include "budget.h"
#include "config.h"
#include "log.h"
#include "proxy.h"
#include "slab.h"

struct db *db_new(struct proxy *p, const char *name)
{
	struct db *db = slab_alloc(p->db_cache);

	if (db == NULL)
		return NULL;
	memset(db, 0, sizeof(*db));
	snprintf(db->name, sizeof(db->name), "%s", name);
	db->pool_size = db->min_pool_size = db->reserve_pool_size = db->max_db_connections = -1;
	db->pool_mode = CONFIG_INHERIT;
	db->pool_weight = 1;
	db->server_lifetime_us = -1;
	if (nametab_add(&p->db_index, &db->hnode) < 0) {
		slab_free(p->db_cache, db);
		return NULL;
	}
	list_append(&p->dbs, &db->node);
	return db;
}

void db_free(struct proxy *p, struct db *db)
{
	list_del(&db->node);
	nametab_del(&p->db_index, &db->hnode);
	budget_destroy(db->budget);
	slab_free(p->db_cache, db);
}

struct db *db_lookup(struct proxy *p, const char *name)
{
	struct nametab_node *n = nametab_find(&p->db_index, name);

	return n ? list_entry(n, struct db, hnode) : NULL;
}

struct db *db_find(struct proxy *p, const char *name, bool create)
{
	struct db *db = db_lookup(p, name);

	if (db)
		return db->dead && !db->admin ? NULL : db;
	if (!create || p->cfg->fallback_db == NULL || strlen(name) >= NAME_MAX_LEN)
		return NULL;
	db = db_new(p, name);
	if (db) {
		db_set(db, p->cfg->fallback_db, name);
		db->autodb = true;
		log_info("registered new auto-database: %s", name);
	}
	return db;
}

bool db_is_console(const char *dbname)
{
	return strcmp(dbname, "pgslab") == 0 || strcmp(dbname, "pgbouncer") == 0;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
	snprintf(dst, cap, "%s", src ? src : "");
}

#define COPY(dst, src) copy_str((dst), sizeof(dst), (src))

bool db_set(struct db *db, const struct config_db *e, const char *name)
{
	char dbname[NAME_MAX_LEN], host[256], user[NAME_MAX_LEN];
	bool moved;

	COPY(dbname, e->dbname ? e->dbname : name);
	COPY(host, e->host);
	COPY(user, e->user);
	moved = strcmp(dbname, db->dbname) || strcmp(host, db->host) || e->port != db->port ||
		strcmp(user, db->force_user);
	COPY(db->dbname, dbname);
	COPY(db->host, host);
	COPY(db->force_user, user);
	COPY(db->password, e->password);
	COPY(db->connect_query, e->connect_query);
	COPY(db->client_encoding, e->client_encoding);
	COPY(db->datestyle, e->datestyle);
	COPY(db->timezone, e->timezone);
	COPY(db->application_name, e->application_name);
	db->port = e->port;
	db->load_balance_hosts = e->load_balance_hosts;
	db->pool_size = e->pool_size;
	db->min_pool_size = e->min_pool_size;
	db->reserve_pool_size = e->reserve_pool_size;
	db->max_db_connections = e->max_db_connections;
	db->pool_weight = e->pool_weight > 0 ? e->pool_weight : 1;
	db->pool_mode = e->pool_mode;
	db->server_lifetime_us = e->server_lifetime_us;
	db->dead = false;
	db->pool_warm = false; /* force_user or min_pool_size may have changed */
	return moved;
}
