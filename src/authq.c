/* authq.c -- auth_query lookups on pooled server connections (theory in authq.h).
 */
#include "authq.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "client.h"
#include "config.h"
#include "cred.h"
#include "db.h"
#include "log.h"
#include "pool.h"
#include "proxy.h"
#include "pwd.h"
#include "server.h"
#include "slab.h"

/* Run before the auth_query in the same implicit transaction: search_path
 * becomes the auth role's session default (whatever an earlier client SET
 * on this pooled connection), with pg_temp searched last, until the Sync.
 * Every name is schema-qualified so the pin itself cannot be steered. */
static const char pin_sql[] =
	"SELECT pg_catalog.set_config('search_path', "
	"pg_catalog.concat_ws(', ', NULLIF(s.reset_val, ''), 'pg_temp'), true) "
	"FROM pg_catalog.pg_settings s WHERE s.name OPERATOR(pg_catalog.=) 'search_path'";

/* ---- settings ---- */

static const struct config_db *db_entry(const struct proxy *p, const char *dbname)
{
	const struct config_db *e = config_find_db(p->cfg, dbname);

	return e ? e : p->cfg->fallback_db;
}

static const char *pick(const char *dbval, const char *global)
{
	return dbval && dbval[0] ? dbval : global ? global : "";
}

const char *authq_user_for(const struct proxy *p, const struct db *db, const char *dbname)
{
	const struct config_db *e = db && db->admin ? NULL : db_entry(p, db ? db->name : dbname);

	return pick(e ? e->auth_user : NULL, p->cfg->s.auth_user);
}

/* ---- requests ---- */

static struct authq_req *req_find(struct proxy *p, const char *key)
{
	struct nametab_node *n = nametab_find(&p->authq_index, key);

	return n ? list_entry(n, struct authq_req, hnode) : NULL;
}

static void req_free(struct proxy *p, struct authq_req *r)
{
	nametab_del(&p->authq_index, &r->hnode);
	memset(r->secret, 0, sizeof(r->secret));
	slab_free(p->authq_cache, r);
}

/* Take <r> off its pool's queue (it is not running). */
static void req_unqueue(struct authq_req *r)
{
	list_del(&r->node);
	list_init(&r->node);
	r->pool->n_lookups--;
}

/* Answer every waiter of <r> and free it. */
static void req_finish(struct proxy *p, struct authq_req *r)
{
	struct cred *cr = NULL;
	const char *err = NULL;

	if (r->failed) {
		err = r->error;
	} else {
		/* the cache: updated by every answer, "" when the user is gone */
		cr = cred_dynamic(p, r->authdb, r->user, r->found || r->exists);
		if (cr) {
			cred_set_secret(cr, r->found ? r->secret : "");
			cr->looked_up_us = proxy_now_us();
		}
		/* as PgBouncer: a role without a password (NULL, expired) is a
		 * user with an empty secret: trust admits it, every password
		 * exchange fails as for a wrong password */
		if (!r->found && !r->exists)
			cr = NULL;
	}
	while (!list_empty(&r->waiters)) {
		struct authq_wait *w = list_first_entry(&r->waiters, struct authq_wait, node);

		list_del(&w->node);
		w->req = NULL;
		client_lookup_done(w->c, cr, r->sqlstate[0] ? r->sqlstate : SQLSTATE_INVALID_AUTH_SPEC,
				err);
	}
	req_free(p, r);
}

static void req_fail(struct proxy *p, struct authq_req *r, const char *fmt, const char *arg)
{
	r->failed = true;
	snprintf(r->error, sizeof(r->error), fmt, arg);
	req_finish(p, r);
}

int authq_start(struct client *c, struct authq_wait *w, struct db *db, const char *dbname,
		const char *user, char *err, size_t errlen)
{
	struct proxy *p = proxy_of(&c->st);
	const struct config_db *e = db && db->admin ? NULL : db_entry(p, db ? db->name : dbname);
	const char *auth_user = pick(e ? e->auth_user : NULL, p->cfg->s.auth_user);
	const char *query = pick(e ? e->auth_query : NULL, p->cfg->s.auth_query);
	const char *adb = pick(e ? e->auth_dbname : NULL, p->cfg->s.auth_dbname);
	struct db *authdb;
	struct cred *acr;
	struct pool *pool;
	struct authq_req *r;
	char key[sizeof(r->key)];

	if (adb[0] == 0)
		adb = db ? db->name : dbname;
	authdb = db_find(p, adb, true);
	if (authdb && authdb->admin) {
		log_warning("cannot use the reserved \"%s\" database as an auth_dbname", adb);
		snprintf(err, errlen, "bouncer config error");
		return -EINVAL;
	}
	if (authdb == NULL) {
		log_warning("authentication database \"%s\" is not configured", adb);
		snprintf(err, errlen, "bouncer config error");
		return -ENOENT;
	}
	if (authdb->disabled) {
		snprintf(err, errlen, "authentication database \"%s\" is disabled", adb);
		return -EPERM;
	}
	if (strlen(query) >= sizeof(r->query)) {
		log_warning("auth_query is too long (%zu bytes)", strlen(query));
		snprintf(err, errlen, "bouncer config error");
		return -EINVAL;
	}
	snprintf(key, sizeof(key), "%s\x01%s", authdb->name, user);
	r = req_find(p, key);
	if (r == NULL) {
		acr = cred_find(p, auth_user, true);
		pool = acr ? pool_get(p, authdb, acr) : NULL;
		if (pool == NULL) {
			snprintf(err, errlen, "out of memory for the authentication pool");
			return -ENOMEM;
		}
		if (pool->login_failing && proxy_now_us() < pool->retry_at_us) {
			log_warning("auth_query for db %s: the auth user's server login is failing: %s",
					authdb->name, pool->login_error);
			snprintf(err, errlen, "authentication lookup failed: server login of auth_user has been failing (server_login_retry)");
			return -EAGAIN;
		}
		r = slab_alloc(p->authq_cache);
		if (r == NULL) {
			snprintf(err, errlen, "out of memory for the authentication lookup");
			return -ENOMEM;
		}
		memset(r, 0, offsetof(struct authq_req, query));
		list_init(&r->node);
		list_init(&r->waiters);
		r->pool = pool;
		r->start_us = proxy_now_us();
		strcpy(r->key, key);
		snprintf(r->authdb, sizeof(r->authdb), "%s", authdb->name);
		snprintf(r->user, sizeof(r->user), "%s", user);
		snprintf(r->query, sizeof(r->query), "%s", query);
		r->secret[0] = r->error[0] = r->sqlstate[0] = 0;
		if (nametab_add(&p->authq_index, &r->hnode) < 0) {
			slab_free(p->authq_cache, r);
			snprintf(err, errlen, "out of memory for the authentication lookup");
			return -ENOMEM;
		}
		w->c = c;
		w->req = r;
		list_append(&r->waiters, &w->node);
		pool_lookup(pool, r);
		return 0;
	}
	w->c = c;
	w->req = r;
	list_append(&r->waiters, &w->node);
	return 0;
}

void authq_cancel(struct proxy *p, struct authq_wait *w)
{
	struct authq_req *r = w->req;

	if (r == NULL)
		return;
	list_del(&w->node);
	w->req = NULL;
	if (list_empty(&r->waiters) && r->server == NULL) {
		/* nobody wants it and it has not started: no query at all */
		req_unqueue(r);
		req_free(p, r);
	}
}

/* ---- on the server ---- */

static void put_parse_bind_exec(struct pkt *k, const char *sql, const char *param)
{
	pkt_begin(k, 'P');
	pkt_str(k, "");
	pkt_str(k, sql);
	pkt_u16(k, 0);
	pkt_end(k);
	pkt_begin(k, 'B');
	pkt_str(k, "");
	pkt_str(k, "");
	pkt_u16(k, 0);             /* parameters in text format */
	if (param) {
		pkt_u16(k, 1);
		pkt_u32(k, (uint32_t)strlen(param));
		pkt_bytes(k, param, strlen(param));
	} else {
		pkt_u16(k, 0);
	}
	pkt_u16(k, 0);             /* results in text format */
	pkt_end(k);
	pkt_begin(k, 'E');
	pkt_str(k, "");
	pkt_u32(k, 0);
	pkt_end(k);
}

void authq_run(struct server *s, struct authq_req *r)
{
	struct proxy *p = proxy_of(&s->st);
	static const uint8_t types[] = { 'P', 'B', 'E', 'P', 'B', 'E', 'S' };
	size_t cap = sizeof(pin_sql) + strlen(r->query) + strlen(r->user) + 128;
	uint8_t *buf = stream_write_reserve(&s->st, cap);
	struct pkt k;
	size_t i;

	r->server = s;
	s->lookup = r;
	r->phase = 0;
	if (p->cfg->s.verbose >= 2)
		log_debug("auth_query for user %s in db %s", r->user, r->authdb);
	if (buf == NULL) {
		server_close(s, "out of memory for auth_query");
		return;
	}
	pkt_init(&k, buf, cap);
	put_parse_bind_exec(&k, pin_sql, NULL);
	/* the user name travels as a bind parameter, never in SQL text */
	put_parse_bind_exec(&k, r->query, r->user);
	pkt_begin(&k, 'S');
	pkt_end(&k);
	if (!pkt_ok(&k)) {
		server_close(s, "auth_query message too large");
		return;
	}
	for (i = 0; i < sizeof(types); i++)
		track_req(&s->tr, p->arena, types[i]);
	s->query_start_us = proxy_now_us();
	stream_write_commit(&s->st, k.len);
}

/* A DataRow of the auth_query: (name, secret). */
static void take_row(struct server *s, struct authq_req *r, const uint8_t *msg, uint32_t len)
{
	struct proto_reader rd;
	uint32_t nlen, slen;
	const uint8_t *name, *secret;
	char id[200];

	proto_reader_init(&rd, msg + PROTO_HDR_LEN, len - PROTO_HDR_LEN);
	if (r->found || r->failed)
		return; /* the first row counts */
	server_logid(s, id, sizeof(id));
	if (proto_get_u16(&rd) != 2 || rd.bad) {
		slog_warning(id, "auth_query must return 2 columns (name, secret)");
		snprintf(r->error, sizeof(r->error), "bouncer config error");
		r->failed = true;
		return;
	}
	nlen = proto_get_u32(&rd);
	name = nlen == 0xffffffffu ? NULL : proto_get_bytes(&rd, nlen);
	slen = proto_get_u32(&rd);
	secret = slen == 0xffffffffu ? NULL : proto_get_bytes(&rd, slen);
	if (rd.bad || name == NULL) {
		slog_warning(id, "auth_query returned a malformed row or a NULL user name");
		snprintf(r->error, sizeof(r->error), "bouncer config error");
		r->failed = true;
		return;
	}
	if (nlen != strlen(r->user) || memcmp(name, r->user, nlen) != 0) {
		slog_warning(id, "auth_query returned another user name than asked for; ignored");
		return;
	}
	/* NULL (expired, no password) and "" authenticate nobody: the user
	 * exists with an empty secret */
	r->exists = true;
	if (secret == NULL || slen == 0)
		return;
	if (slen >= sizeof(r->secret) || memchr(secret, 0, slen)) {
		slog_warning(id, "auth_query returned an unusable secret for user %s", r->user);
		return;
	}
	memcpy(r->secret, secret, slen);
	r->secret[slen] = 0;
	r->found = pwd_classify(r->secret) != PWD_NONE;
}

enum stream_act authq_server_message(struct server *s, uint8_t type, const uint8_t *msg,
		uint32_t len)
{
	struct proxy *p = proxy_of(&s->st);
	struct authq_req *r = s->lookup;
	uint8_t status = len == PROTO_HDR_LEN + 1 ? msg[PROTO_HDR_LEN] : 'E';
	char id[200];

	track_reply(&s->tr, type, status);
	switch (type) {
	case 'C':
		r->phase++;
		break;
	case 'D':
		if (r->phase == 1)
			take_row(s, r, msg, len);
		break;
	case 'E': {
		const char *m = proto_error_field(msg + PROTO_HDR_LEN, len - PROTO_HDR_LEN, 'M');

		server_logid(s, id, sizeof(id));
		slog_warning(id, "error in auth_query for user %s: %s", r->user, m ? m : "?");
		if (!r->failed) {
			r->failed = true;
			snprintf(r->error, sizeof(r->error), "bouncer config error");
		}
		break;
	}
	case 'Z':
		if (s->tr.n > 0)
			break;
		s->lookup = NULL;
		r->server = NULL;
		req_finish(p, r);
		if (!track_idle(&s->tr)) {
			server_close(s, "auth_query left the server busy");
			return STREAM_CLOSED;
		}
		s->state = SV_ACTIVE;
		pool_server_idle(s);
		return s->state == SV_CLOSED ? STREAM_CLOSED : STREAM_DROP;
	default: /* 1 2 N S n: nothing to learn */
		break;
	}
	if (s->tr.flags & TRACK_F_DESYNC) {
		server_close(s, "lost protocol sync in auth_query");
		return STREAM_CLOSED;
	}
	return STREAM_DROP;
}

void authq_server_gone(struct server *s)
{
	struct proxy *p = proxy_of(&s->st);
	struct authq_req *r = s->lookup;

	if (r == NULL)
		return;
	s->lookup = NULL;
	r->server = NULL;
	if (r->failed || list_empty(&r->waiters) || r->retries > 0 ||
			p->shutdown != SHUTDOWN_NONE) {
		if (!r->failed)
			snprintf(r->error, sizeof(r->error),
					"authentication lookup failed: connection to the auth server lost");
		r->failed = true;
		req_finish(p, r);
		return;
	}
	/* a pooled connection that died while idle: once more on another */
	r->retries++;
	r->phase = 0;
	r->found = false;
	r->exists = false;
	pool_lookup(r->pool, r);
}

void authq_pool_failed(struct pool *pool, const char *sqlstate, const char *why)
{
	struct proxy *p = pool->proxy;

	while (!list_empty(&pool->lookups)) {
		struct authq_req *r = list_first_entry(&pool->lookups, struct authq_req, node);

		req_unqueue(r);
		log_warning("auth_query for user %s in db %s: cannot reach the server: %s", r->user,
				r->authdb, why);
		if (sqlstate) {
			/* the server refused the auth user's login: its words
			 * (they name no user of the client's) */
			snprintf(r->sqlstate, sizeof(r->sqlstate), "%s", sqlstate);
			req_fail(p, r, "%s", why);
		} else {
			req_fail(p, r, "authentication lookup failed: cannot reach the auth server (%s)",
					why);
		}
	}
}

void authq_expire(struct proxy *p, int64_t now, int64_t limit_us)
{
	struct list *it, *tmp;

	if (limit_us <= 0)
		return;
	list_for_each_safe(it, tmp, &p->pools) {
		struct pool *pool = list_entry(it, struct pool, node);
		struct list *si, *stmp;

		list_for_each_safe(si, stmp, &pool->active) {
			struct server *s = list_entry(si, struct server, node);

			if (s->state == SV_AUTHQ && s->lookup && now - s->lookup->start_us > limit_us) {
				s->lookup->retries = 1; /* no second try */
				server_close(s, "auth_query took too long");
			}
		}
		while (!list_empty(&pool->lookups) &&
				now - list_first_entry(&pool->lookups, struct authq_req, node)->start_us >
						limit_us) {
			struct authq_req *r = list_first_entry(&pool->lookups, struct authq_req, node);

			req_unqueue(r);
			req_fail(p, r, "%s", "authentication lookup failed: timed out waiting for a server");
		}
	}
}

void authq_destroy_all(struct proxy *p)
{
	nametab_destroy(&p->authq_index);
}
