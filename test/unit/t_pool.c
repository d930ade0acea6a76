/* t_pool.c -- the middle layer without the loop: databases (db.c) and pools
 * (pool.c) on a struct proxy built by hand.
 *
 * Only pool.c, db.c and what lies below them are linked (UNIT_DEPS_t_pool):
 * no proxy.c, no authq.c.  Where pool.c calls up (struct pool_ops) this test
 * is the layer above and records the calls.  No socket is opened: the one
 * database a pool may launch servers for has a Unix socket path longer than
 * sun_path, so dns_resolve() refuses it before a socket is made.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "authq.h"
#include "budget.h"
#include "config.h"
#include "cred.h"
#include "db.h"
#include "dns.h"
#include "pool.h"
#include "proxy.h"
#include "server.h"
#include "slab.h"
#include "tap.h"
#include "testutil.h"

#define SEC 1000000LL

/* ---- the layer above: struct pool_ops, recording ---- */

static struct {
	int run, failed, expired, unqueued;
	const struct pool *failed_pool;
	char why[64];
	int64_t limit_us;
} up;

static void rec_lookup_run(struct server *s, struct authq_req *r)
{
	up.run++;
}

/* As authq_pool_failed(): the pool's queued lookups leave it (they would
 * fail their waiters), so nothing stays on pool->lookups. */
static void rec_lookups_failed(struct pool *pool, const char *sqlstate, const char *why)
{
	up.failed++;
	up.failed_pool = pool;
	snprintf(up.why, sizeof(up.why), "%s", why);
	while (!list_empty(&pool->lookups)) {
		struct authq_req *r = list_first_entry(&pool->lookups, struct authq_req, node);

		list_del(&r->node);
		list_init(&r->node);
		pool->n_lookups--;
		up.unqueued++;
	}
}

static void rec_lookups_expire(struct proxy *p, int64_t now, int64_t limit_us)
{
	up.expired++;
	up.limit_us = limit_us;
}

static const struct pool_ops rec_ops = {
	.lookup_run = rec_lookup_run,
	.lookups_failed = rec_lookups_failed,
	.lookups_expire = rec_lookups_expire,
};

/* ---- a proxy by hand: what proxy_init() and apply_dbs() would set ---- */

static struct proxy P;
static struct config *cfg;

static struct config *load_ini(const char *text)
{
	char path[] = "/tmp/t_pool.XXXXXX", err[512];
	struct config *c;
	int fd = mkstemp(path);

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		exit(2);
	close(fd);
	c = config_load(path, err, sizeof(err));
	unlink(path);
	if (c == NULL) {
		diag("config: %s", err);
		exit(2);
	}
	return c;
}

static void proxy_build(struct proxy *p)
{
	int i;

	memset(p, 0, sizeof(*p));
	p->pool_ops = &rec_ops;
	list_init(&p->dbs);
	list_init(&p->creds);
	list_init(&p->pools);
	list_init(&p->login_clients); /* pool_janitor() walks it */
	list_init(&p->cancels);	      /* ... and cancel_expire() this one */
	NAMETAB_INIT(&p->db_index, struct db, hnode, name);
	NAMETAB_INIT(&p->cred_index, struct cred, hnode, name);
	NAMETAB_INIT(&p->dyn_index, struct cred, hnode, dkey);
	p->base = event_base_new();
	p->arena = slab_arena_create(0);
	if (p->base == NULL || p->arena == NULL)
		exit(2);
	p->sctx.base = p->base;
	p->sctx.arena = p->arena;
	p->pool_cache = slab_cache_create(
			p->arena, "pool", sizeof(struct pool), 0, NULL, NULL, NULL);
	p->db_cache = slab_cache_create(p->arena, "db", sizeof(struct db), 0, NULL, NULL, NULL);
	p->cred_cache = slab_cache_create(
			p->arena, "credentials", sizeof(struct cred), 0, NULL, NULL, NULL);
	/* a launch takes its server before it resolves the host */
	p->server_cache = slab_cache_create(
			p->arena, "server", sizeof(struct server), 0, NULL, NULL, NULL);
	p->server_login_cache = slab_cache_create(
			p->arena, "server_login", server_login_size(), 0, NULL, NULL, NULL);
	if (!p->pool_cache || !p->db_cache || !p->cred_cache || !p->server_cache ||
			!p->server_login_cache)
		exit(2);
	p->cfg = cfg;
	for (i = 0; i < cfg->n_dbs; i++)
		db_set(db_new(p, cfg->dbs[i].name), &cfg->dbs[i], cfg->dbs[i].name);
	db_new(p, "pgslab")->admin = true;
	db_new(p, "pgbouncer")->admin = true;
}

static struct db *DB(const char *name)
{
	struct db *db = db_lookup(&P, name);

	if (db == NULL) {
		diag("no database %s", name);
		exit(2);
	}
	return db;
}

static struct pool *pool_of(const char *db, const char *user)
{
	return pool_get(&P, DB(db), cred_find(&P, user, true));
}

static uint64_t active(struct slab_cache *c)
{
	struct slab_stats st;

	slab_cache_stats(c, &st);
	return st.active_objs;
}

/* ---- db.c ---- */

/* db_set() on <db> from <base>, then from <v>: did <v> move it? */
static bool moved_by(struct db *db, const struct config_db *base, const struct config_db *v)
{
	db_set(db, base, db->name);
	return db_set(db, v, db->name);
}

static void test_db(void)
{
	const struct config_db *e = config_find_db(cfg, "sized");
	struct config_db v;
	struct config_db *fallback;
	struct db *db, *auto_db;
	char longname[NAME_MAX_LEN + 1];

	db = DB("sized");
	ok(db_find(&P, "sized", false) == db && db->port == 5432 && db->pool_size == 5 &&
					db->reserve_pool_size == 2 &&
					strcmp(db->dbname, "sized") == 0,
			"db_find: a [databases] entry, dbname defaulting to its name");
	is_str(DB("plain")->dbname, "real", "dbname= names the server's database");
	ok(db_find(&P, "nosuch", false) == NULL, "unknown name, no create: NULL");

	auto_db = db_find(&P, "nosuch", true);
	ok(auto_db && auto_db->autodb && auto_db->port == 5433 &&
					strcmp(auto_db->dbname, "nosuch") == 0,
			"create: an auto-database from \"*\", connecting to the name asked for");
	ok(db_lookup(&P, "nosuch") == auto_db && db_find(&P, "nosuch", true) == auto_db,
			"the auto-database is found again, not made twice");
	memset(longname, 'n', NAME_MAX_LEN);
	longname[NAME_MAX_LEN] = 0;
	ok(db_find(&P, longname, true) == NULL, "a name of NAME_MAX_LEN bytes is refused");

	/* without a "*" entry nothing is made (the pointer is the config's own) */
	fallback = cfg->fallback_db;
	cfg->fallback_db = NULL;
	ok(db_find(&P, "other", true) == NULL && db_lookup(&P, "other") == NULL,
			"create without a \"*\" entry: NULL");
	cfg->fallback_db = fallback;

	auto_db->dead = true;
	ok(db_find(&P, "nosuch", false) == NULL && db_lookup(&P, "nosuch") == auto_db,
			"a dead db: db_find misses it, db_lookup still has it");
	DB("pgslab")->dead = true;
	ok(db_find(&P, "pgslab", false) == DB("pgslab"), "a dead console db is still found");
	DB("pgslab")->dead = false;
	db_free(&P, auto_db);
	ok(db_lookup(&P, "nosuch") == NULL, "db_free: gone from the index");

	ok(db_is_console("pgslab") && db_is_console("pgbouncer"), "console: pgslab, pgbouncer");
	ok(!db_is_console("postgres") && !db_is_console("PGSLAB") && !db_is_console("PgBouncer") &&
					!db_is_console("pgslab2"),
			"console: no other name, case counts");

	/* db_set: which changes mean the servers belong to the old entry */
	db = db_new(&P, "scratch");
	ok(db && db->pool_size == -1 && db->max_db_connections == -1 && db->pool_weight == 1 &&
					db->pool_mode == CONFIG_INHERIT,
			"db_new: limits inherited, weight 1");
	v = *e;
	ok(!moved_by(db, e, &v), "db_set: same entry, not moved");
	v.pool_size = 9;
	v.min_pool_size = 1;
	v.pool_mode = POOL_MODE_STATEMENT;
	ok(!moved_by(db, e, &v) && db->pool_size == 9 && db->pool_mode == POOL_MODE_STATEMENT,
			"db_set: pool_size, min_pool_size, pool_mode applied, not moved");
	v = *e;
	v.dbname = "elsewhere";
	ok(moved_by(db, e, &v) && strcmp(db->dbname, "elsewhere") == 0, "db_set: dbname moves");
	v = *e;
	v.host = "10.0.0.9";
	ok(moved_by(db, e, &v), "db_set: host moves");
	v = *e;
	v.port = 5434;
	ok(moved_by(db, e, &v) && db->port == 5434, "db_set: port moves");
	v = *e;
	v.user = "dave";
	ok(moved_by(db, e, &v) && strcmp(db->force_user, "dave") == 0, "db_set: user moves");
	db->dead = true;
	db_set(db, e, db->name);
	ok(!db->dead, "db_set revives a dead entry");
	db_free(&P, db);

	{
		struct sockaddr_storage ss;
		socklen_t sl = 0;
		struct dns_wait w;

		/* no resolver needed for a socket directory or a numeric address */
		ok(dns_resolve(NULL, DB("sock")->host, DB("sock")->port, &w, &ss, &sl) == 0 &&
						strcmp(((struct sockaddr_un *)&ss)->sun_path,
								"/tmp/pgs/.s.PGSQL.5433") == 0,
				"dns_resolve: a socket directory gives <dir>/.s.PGSQL.<port>");
		is_int(dns_resolve(NULL, DB("warm")->host, DB("warm")->port, &w, &ss, &sl),
				-ENAMETOOLONG, "dns_resolve: a path longer than sun_path is refused");
	}
}

/* ---- pool size and mode: one rule each ---- */

static void test_sizes(void)
{
	is_int(pool_size_for(&P, DB("sized"), "alice"), 3,
			"size: [users] pool_size beats the db's");
	is_int(pool_size_for(&P, DB("sized"), "bob"), 5, "size: the db's pool_size");
	is_int(pool_size_for(&P, DB("plain"), "bob"), 11, "size: default_pool_size");
	is_int(pool_size_for(&P, DB("sized"), NULL), 5, "size: the db as a whole leaves users out");
	is_int(pool_size_for(&P, DB("plain"), NULL), 11, "size: the db as a whole, default");
	is_int(pool_size_for(&P, DB("forced"), "bob"), 3,
			"size: forced user's [users] entry counts, not the login user's");
	is_int(pool_size_for(&P, DB("forced2"), "alice"), 7,
			"size: login user's entry ignored under a forced user without one");
	is_int(pool_effective_size(pool_of("sized", "alice")), 3,
			"pool_effective_size asks pool_size_for with the pool's cred");

	is_int(pool_of("plain", "alice")->mode, POOL_MODE_TRANSACTION, "mode: [users] pool_mode");
	is_int(pool_of("stmt", "alice")->mode, POOL_MODE_TRANSACTION,
			"mode: [users] beats the db's");
	is_int(pool_of("stmt", "bob")->mode, POOL_MODE_STATEMENT, "mode: the db's pool_mode");
	is_int(pool_of("plain", "bob")->mode, POOL_MODE_SESSION, "mode: the global pool_mode");
}

/* ---- pools: identity, views, budget, stats ---- */

static void count_client(struct client *c, void *arg)
{
	(*(int *)arg)++;
}

static void count_server(struct server *s, void *arg)
{
	(*(int *)arg)++;
}

static void count_view(const struct pool_view *v, void *arg)
{
	(*(int *)arg)++;
}

static void test_pools(void)
{
	struct pool *a = pool_of("sized", "alice"), *b = pool_of("sized", "bob");
	struct pool *c = pool_of("capped", "bob");
	struct config_db v = *config_find_db(cfg, "sized");
	struct pool_view view;
	struct pool_stats t, avg;
	int n = 0, visits = 0;

	ok(a && b && a != b && pool_of("sized", "alice") == a, "pool_get: one pool per (db, cred)");
	ok(a->db == DB("sized") && a->cred == cred_lookup(&P, "alice") && a->proxy == &P,
			"pool_get: the pool knows its db, cred and proxy");
	is_int(list_count(&P.pools), 7, "pool_get: only new pairs add pools");

	memset(&view, 0xff, sizeof(view));
	pool_view(a, proxy_now_us(), &view);
	ok(view.pool == a && view.cl_active == 0 && view.cl_waiting == 0 && view.sv_active == 0 &&
					view.sv_used == 0 && view.sv_idle == 0 &&
					view.sv_login == 0 && view.maxwait_us == 0,
			"pool_view: a fresh pool counts nothing");
	pool_foreach_client(a, count_client, &visits);
	pool_foreach_server(a, count_server, &visits);
	is_int(visits, 0, "pool_foreach_client/server: nothing on an empty pool");
	ok(!pool_closing(a), "pool_closing: no server to close");
	pool_stats_foreach(&P, proxy_now_us(), count_view, &n);
	is_int(n, 7, "pool_stats_foreach: one view per pool");

	/* slots: each pool's size plus its reserve (alice 3+2, bob 5+2), or
	 * max_db_connections when set */
	is_int(budget_slots(DB("sized")->budget), 12, "budget: the db's pools' sizes and reserves");
	is_int(budget_slots(c->db->budget), 3, "budget: max_db_connections caps it");
	v.pool_size = 6;
	db_set(DB("sized"), &v, "sized");
	pool_budget_refresh(&P);
	is_int(budget_slots(DB("sized")->budget), 13,
			"pool_budget_refresh: a new pool_size counts");

	a->st.xact_count = 1;
	b->st.xact_count = 2;
	c->st.xact_count = 4;
	a->st.hits = b->st.hits = 5;
	a->avg.xact_count = 10;
	a->avg.xact_time_us = 100;
	b->avg.xact_count = 30;
	b->avg.xact_time_us = 200;
	pool_stats_sum(&P, DB("sized"), &t, &avg);
	ok(t.xact_count == 3 && t.hits == 10, "pool_stats_sum: the db's two pools");
	ok(avg.xact_count == 40 && avg.xact_time_us == 175,
			"pool_stats_sum: rates add, mean times weighted by rate");
	pool_stats_sum(&P, NULL, &t, &avg);
	is_int(t.xact_count, 7, "pool_stats_sum: NULL sums every pool");
}

/* ---- calls up: the janitor, a lookup, a launch that fails ---- */

static void test_up(void)
{
	struct db *warm = DB("warm");
	struct authq_req r;
	struct pool *pool;
	int64_t before = proxy_now_us();

	/* forced user and min_pool_size: the janitor makes the pool and tries
	 * to fill it; the connect fails (dns_resolve) and the layer above hears */
	pool_janitor(&P);
	pool = pool_get(&P, warm, cred_lookup(&P, "carol"));
	ok(warm->pool_warm && pool && list_count(&P.pools) == 8,
			"janitor: a forced-user db with min_pool_size gets its pool");
	ok(up.expired == 1 && up.limit_us == 30 * SEC,
			"janitor: lookups_expire up, limit client_login_timeout");
	ok(up.failed == 1 && up.failed_pool == pool && strcmp(up.why, "could not connect") == 0,
			"failed launch: lookups_failed up with the pool");
	ok(pool->n_servers == 0 && warm->n_servers == 0 && P.n_servers == 0 &&
					pool->retry_at_us > before,
			"failed launch: nothing counted, retry later");

	/* a lookup with no idle server queues and launches: the launch fails
	 * again (retry time passed), the request is handed back up */
	pool->retry_at_us = 0;
	memset(&r, 0, sizeof(r));
	list_init(&r.node);
	pool_lookup(pool, &r);
	ok(up.run == 0 && pool->st.misses == 1 && pool->st.hits == 0,
			"pool_lookup: no idle server, a miss, nothing run");
	ok(up.failed == 2 && up.unqueued == 1 && pool->n_lookups == 0 && list_empty(&pool->lookups),
			"pool_lookup: failed launch hands the queued request up");
	pool_launch(pool);
	is_int(up.failed, 2, "pool_launch: nothing before retry_at");
}

int main(void)
{
	char ini[1024], longdir[160];
	struct list *it, *tmp;

	memset(longdir, 'x', sizeof(longdir) - 1);
	longdir[0] = '/';
	longdir[sizeof(longdir) - 1] = 0;
	snprintf(ini, sizeof(ini),
			"[databases]\n"
			"sized = host=127.0.0.1 port=5432 pool_size=5 reserve_pool=2\n"
			"plain = host=127.0.0.1 dbname=real\n"
			"forced = host=127.0.0.1 user=alice pool_size=7\n"
			"forced2 = host=127.0.0.1 user=carol pool_size=7\n"
			"capped = host=127.0.0.1 max_db_connections=3\n"
			"stmt = host=127.0.0.1 pool_mode=statement\n"
			"sock = host=/tmp/pgs port=5433\n"
			"warm = host=%s user=carol min_pool_size=1\n"
			"* = host=127.0.0.1 port=5433\n"
			"[users]\n"
			"alice = pool_size=3 pool_mode=transaction\n"
			"[pgbouncer]\n"
			"default_pool_size = 11\n"
			"client_login_timeout = 30\n",
			longdir);
	plan(58);
	cfg = load_ini(ini);
	proxy_build(&P);

	test_db();
	test_sizes();
	test_pools();
	test_up();

	pool_destroy_unused(&P);
	is_int(list_count(&P.pools), 8, "pool_destroy_unused: pools of live dbs stay");
	DB("capped")->dead = true;
	pool_destroy_unused(&P);
	is_int(list_count(&P.pools), 7, "pool_destroy_unused: a dead db's unused pool goes");
	/* as proxy_destroy(): every db dead, unused pools go, then dbs, creds */
	list_for_each(it, &P.dbs)
		list_entry(it, struct db, node)->dead = true;
	pool_destroy_unused(&P);
	ok(list_empty(&P.pools), "every pool freed once its db is dead");
	list_for_each_safe(it, tmp, &P.dbs)
		db_free(&P, list_entry(it, struct db, node));
	nametab_destroy(&P.db_index);
	cred_destroy_all(&P);
	ok(active(P.pool_cache) == 0 && active(P.db_cache) == 0 && active(P.cred_cache) == 0 &&
					active(P.server_cache) == 0 && active(P.server_login_cache) == 0,
			"no pool, db, cred or server left in the caches");
	slab_cache_destroy(P.pool_cache);
	slab_cache_destroy(P.db_cache);
	slab_cache_destroy(P.cred_cache);
	slab_cache_destroy(P.server_cache);
	slab_cache_destroy(P.server_login_cache);
	slab_arena_destroy(P.arena);
	event_base_free(P.base);
	config_free(cfg);
	return tap_exit_status();
}
