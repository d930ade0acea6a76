/* server.c -- backend connections: non-blocking connect, login, result forwarding.
 *
 * Login is ours, driven by the event loop: StartupMessage, then whatever the
 * server asks for -- cleartext, md5 (from a plain or md5 secret) or
 * SCRAM-SHA-256 with a password or, when only the verifier is known, with the
 * ClientKey recovered from a client's own SCRAM proof (pass-through).
 * ParameterStatus and BackendKeyData are kept; the first login of a pool
 * also records the ParameterStatus set that its clients are welcomed with.
 *
 * While linked, the server's messages stream to the client and every
 * message type on both directions feeds the protocol tracker (track.h);
 * only ReadyForQuery and ParameterStatus are looked at whole.  When the
 * tracker says the backend is idle, in transaction and statement mode the
 * server goes back to the pool once the bytes before it have reached the
 * client's socket (on_drained) -- if by then the client has sent nothing
 * more, which the tracker would show.
 *
 * Draining (SV_DRAIN): a client that leaves with work in flight leaves its
 * backend mid-transaction.  Its server is not closed but brought back:
 * CopyFail ends a COPY FROM STDIN, an extended-protocol ROLLBACK + Sync
 * ends an implicit transaction without committing it (never a bare Sync:
 * that would commit the departed client's work), a simple ROLLBACK ends an
 * open transaction block; every answer is discarded.  This costs a round
 * trip or two instead of a new backend (fork, authentication, cold caches).
 * A drain that takes longer than SERVER_DRAIN_US or discards more than
 * SERVER_DRAIN_BYTES (the client left in the middle of a long query or a
 * large result) closes the server instead.  A client that leaves in the
 * middle of a message (the backend waits for the rest of it) always costs
 * its server: no bytes can finish that message safely.
 */
#include "server.h"
#include "proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client.h"
#include "cred.h"
#include "db.h"
#include "log.h"
#include "pool.h"
#include "prepwire.h"
#include "proto.h"
#include "pwd.h"
#include "scram_client.h"
#include "slab.h"
#include "vars.h"

#define SERVER_LOGIN_PARAMS 4096
#define SERVER_DRAIN_US (5 * 1000000)
#define SERVER_DRAIN_BYTES (4u << 20)

struct server_login {
	bool started;
	bool tls_asked;         /* SSLRequest sent */
	uint32_t params_len;
	struct scram_client scram;
	uint8_t params[SERVER_LOGIN_PARAMS]; /* ParameterStatus messages seen */
};

static const struct stream_ops server_ops;

size_t server_login_size(void)
{
	return sizeof(struct server_login);
}

static inline struct server *server_of(struct stream *s)
{
	return (struct server *)(void *)((char *)s - offsetof(struct server, st));
}

void server_logid(const struct server *s, char *buf, size_t len)
{
	snprintf(buf, len, "S-%llu: %s/%s@%s:%d", (unsigned long long)s->id, s->pool->db->name,
			s->pool->cred->name, s->host, s->pool->db->port);
}

static void login_free(struct server *s)
{
	struct proxy *p = proxy_of(&s->st);

	if (s->login == NULL)
		return;
	scram_client_clear(&s->login->scram);
	slab_free(p->server_login_cache, s->login);
	s->login = NULL;
}

static unsigned host_count(const char *list)
{
	unsigned n = 1;

	while ((list = strchr(list, ',')) != NULL) {
		list++;
		n++;
	}
	return n;
}

/* The host of its db's list <s> uses, as PgBouncer picks it: round-robin
 * takes the next one each time, disable the one in use (host_failed()
 * moves on from it). */
static void pick_host(struct server *s)
{
	struct pool *pool = s->pool;
	const char *h = pool->db->host, *comma;
	unsigned i, idx = pool->host_rr % host_count(h);

	if (pool->db->load_balance_hosts == LOAD_BALANCE_HOSTS_ROUND_ROBIN)
		pool->host_rr++;
	for (i = 0; i < idx; i++)
		h = strchr(h, ',') + 1;
	comma = strchr(h, ',');
	snprintf(s->host, sizeof(s->host), "%.*s", (int)(comma ? (size_t)(comma - h) : strlen(h)), h);
	s->host_idx = (uint8_t)idx;
}

/* <s>'s host failed: a pool that keeps to one host (disable) moves on to
 * the next, once however many of its servers saw the failure. */
static void host_failed(struct server *s)
{
	struct pool *pool = s->pool;
	unsigned n = host_count(pool->db->host);

	if (n > 1 && pool->db->load_balance_hosts != LOAD_BALANCE_HOSTS_ROUND_ROBIN &&
			s->host_idx == pool->host_rr % n)
		pool->host_rr++;
}

/* A server could not be reached, or its login broke before it was ready:
 * the pool waits server_login_retry (at most 1 s) before the next one and
 * moves on from a failing host, and logins waiting on an auth_query lookup
 * of the pool hear it now, not at client_login_timeout. */
static void login_broke(struct server *s, const char *reason)
{
	struct proxy *p = proxy_of(&s->st);
	struct pool *pool = s->pool;

	pool->retry_at_us = proxy_now_us() + (p->cfg->s.server_login_retry_us < 1000000 ?
			p->cfg->s.server_login_retry_us : 1000000);
	pool->st.server_login_fail++;
	host_failed(s);
	server_close(s, reason);
	p->server_ops->lookups_failed(pool, NULL, reason);
}

static void server_dns_done(struct dns_wait *w, const struct sockaddr *sa, socklen_t len);

/* Pick <s>'s host, resolve it and connect: 0 (connecting), 1 (the resolver
 * will call back), or <0 with <why> set. */
static int server_start(struct server *s, const char **why)
{
	struct proxy *p = proxy_of(&s->st);
	int rc;

	pick_host(s);
	s->dns.done = server_dns_done;
	rc = dns_resolve(p->dns, s->host, s->pool->db->port, &s->dns, &s->addr, &s->addrlen);
	if (rc < 0) {
		*why = rc == -EHOSTUNREACH ? "server DNS lookup failed" : "server address invalid";
		return rc;
	}
	if (rc == 1)
		return 1;
	rc = stream_connect(&s->st, &p->sctx, (const struct sockaddr *)&s->addr, s->addrlen,
			&server_ops);
	if (rc < 0)
		*why = "connect failed";
	return rc;
}

static void server_dns_done(struct dns_wait *w, const struct sockaddr *sa, socklen_t len)
{
	struct server *s = (struct server *)(void *)((char *)w - offsetof(struct server, dns));
	struct proxy *p = proxy_of(&s->st);
	const char *why = "server DNS lookup failed";
	int rc = -EHOSTUNREACH;

	if (sa != NULL) {
		memcpy(&s->addr, sa, len);
		s->addrlen = len;
		rc = stream_connect(&s->st, &p->sctx, sa, len, &server_ops);
		why = "connect failed";
	} else if (s->pool->db->load_balance_hosts != LOAD_BALANCE_HOSTS_ROUND_ROBIN &&
			s->host_idx != s->pool->host_rr % host_count(s->pool->db->host)) {
		/* a server of the pool found this host failing first: the pool
		 * has moved on, and so does this one */
		rc = server_start(s, &why);
	}
	if (rc < 0)
		login_broke(s, why);
	proxy_settle(p); /* a resolver callback, not a stream event */
}

struct server *server_launch(struct pool *pool)
{
	struct proxy *p = pool->proxy;
	struct db *db = pool->db;
	const char *why = NULL;
	struct server *s;
	int rc;

	s = slab_alloc(p->server_cache);
	if (s == NULL)
		return NULL;
	memset(s, 0, sizeof(*s));
	s->login = slab_alloc(p->server_login_cache);
	if (s->login == NULL) {
		slab_free(p->server_cache, s);
		return NULL;
	}
	s->login->started = false;
	s->login->tls_asked = false;
	s->login->params_len = 0;
	scram_client_init(&s->login->scram);
	s->id = ++p->next_id;
	s->pool = pool;
	s->connect_us = s->used_us = proxy_now_us();
	s->state = SV_LOGIN;
	/* no socket until its address is known: proxy_of() and server_close()
	 * work on the stream's context alone */
	s->st.ctx = &p->sctx;
	s->st.fd = -1;
	rc = server_start(s, &why);
	if (rc < 0) {
		/* nothing started: PgBouncer's line, and the pool retries later */
		char id[200];

		server_logid(s, id, sizeof(id));
		if (p->cfg->s.log_disconnections)
			slog_info(id, "closing because: %s (age=0s)", why);
		pool->st.server_login_fail++;
		host_failed(s);
		login_free(s);
		slab_free(p->server_cache, s);
		return NULL;
	}
	track_init(&s->tr);
	s->tr.settle = prepwire_settle;
	prep_server_init(&s->pst, s->id);
	s->vars = vars_get(p->vars.empty);
	list_append(&pool->login, &s->node);
	pool->n_login++;
	pool->n_servers++;
	db->n_servers++;
	p->n_servers++;
	return s;
}

void server_close(struct server *s, const char *reason)
{
	struct proxy *p = proxy_of(&s->st);
	struct client *c = s->client;
	char id[200];

	if (s->state == SV_CLOSED)
		return;
	server_logid(s, id, sizeof(id));
	if (p->cfg->s.log_disconnections)
		slog_info(id, "closing because: %s (age=%llds)", reason,
				(long long)((proxy_now_us() - s->connect_us) / 1000000));
	if (c) {
		c->server = NULL;
		s->client = NULL;
	}
	dns_cancel(&s->dns);
	login_free(s);
	p->server_ops->gone(s);
	vars_put(p, s->vars);
	s->vars = NULL;
	s->state = SV_CLOSED;
	track_reset(&s->tr, p->arena);
	prep_server_clear(p->prep, &s->pst);
	stream_close(&s->st);
	list_append(&p->dead_servers, &s->node);
	if (c) /* deferred: torn down from the loop */
		client_close(c, SQLSTATE_CONNECTION_FAILURE,
				"server closed the connection unexpectedly");
}

int server_send_internal(struct server *s, const char *sql)
{
	size_t n = strlen(sql) + 6;
	uint8_t *buf = stream_write_reserve(&s->st, n);
	struct pkt k;

	if (buf == NULL)
		return -ENOMEM;
	pkt_init(&k, buf, n);
	proto_write_query(&k, sql);
	if (s->state != SV_DRAIN)
		s->state = SV_RESET;
	s->query_start_us = proxy_now_us();
	track_req(&s->tr, proxy_of(&s->st)->arena, 'Q');
	stream_write_commit(&s->st, k.len);
	return 0;
}

void server_drain(struct server *s)
{
	struct proxy *p = proxy_of(&s->st);
	uint8_t buf[96];
	struct pkt k;

	s->state = SV_DRAIN;
	s->drain_until_us = proxy_now_us() + SERVER_DRAIN_US;
	s->drain_bytes = 0;
	pkt_init(&k, buf, sizeof(buf));
	if (s->tr.flags & TRACK_F_COPY_IN) {
		pkt_begin(&k, 'f');
		pkt_str(&k, "client disconnected");
		pkt_end(&k);
		if (track_req(&s->tr, p->arena, 'f') < 0)
			goto untracked;
	}
	if (s->tr.flags & TRACK_F_UNSYNCED) {
		/* roll the implicit transaction back, then Sync */
		pkt_begin(&k, 'P');
		pkt_str(&k, "");
		pkt_str(&k, "ROLLBACK");
		pkt_u16(&k, 0);
		pkt_end(&k);
		pkt_begin(&k, 'B');
		pkt_str(&k, "");
		pkt_str(&k, "");
		pkt_u16(&k, 0);
		pkt_u16(&k, 0);
		pkt_u16(&k, 0);
		pkt_end(&k);
		pkt_begin(&k, 'E');
		pkt_str(&k, "");
		pkt_u32(&k, 0);
		pkt_end(&k);
		pkt_begin(&k, 'S');
		pkt_end(&k);
		if (track_req(&s->tr, p->arena, 'P') < 0 || track_req(&s->tr, p->arena, 'B') < 0 ||
				track_req(&s->tr, p->arena, 'E') < 0 || track_req(&s->tr, p->arena, 'S') < 0)
			goto untracked;
	}
	if (k.len)
		stream_write(&s->st, buf, k.len);
	server_drain_step(s);
	return;
untracked:
	/* a full pipeline (TRACK_MAX): what it would send could not be
	 * followed, so the backend is closed rather than drained */
	server_close(s, "too many requests in flight to drain");
}

/* Nothing more owed: end an open transaction block, or go back to the pool. */
void server_drain_step(struct server *s)
{
	if (s->tr.n > 0)
		return;
	if (s->tr.flags & TRACK_F_DESYNC) {
		server_close(s, "lost protocol sync while draining");
	} else if (s->tr.txn != 'I') {
		server_send_internal(s, "ROLLBACK");
	} else {
		s->state = SV_ACTIVE; /* pool_release() starts from a clean active server */
		proxy_of(&s->st)->server_ops->release(s);
	}
}

/* ---- login ---- */

static void startup_param(struct pkt *k, const char *name, const char *value)
{
	if (value[0]) {
		pkt_str(k, name);
		pkt_str(k, value);
	}
}

/* The StartupMessage: the pool's user and database, the db entry's
 * parameters; a replication client's own server also gets "replication"
 * and the client's parameters (client_repl_params(): later ones win at
 * the server, so the client's own values override the entry's). */
static void send_startup(struct server *s)
{
	struct pool *pool = s->pool;
	uint32_t extra_len = 0;
	const uint8_t *extra = s->repl && s->client ? client_repl_params(s->client, &extra_len) : NULL;
	size_t cap = 1024 + extra_len;
	uint8_t *buf = stream_write_reserve(&s->st, cap);
	struct pkt k;

	s->login->started = true;
	if (buf == NULL) {
		stream_fail(&s->st, STREAM_E_NOMEM, "out of memory for the startup packet");
		return;
	}
	pkt_init(&k, buf, cap);
	pkt_begin(&k, 0);
	pkt_u32(&k, PROTO_V3);
	pkt_str(&k, "user");
	pkt_str(&k, pool->cred->name);
	pkt_str(&k, "database");
	pkt_str(&k, pool->db->dbname);
	startup_param(&k, "client_encoding", pool->db->client_encoding);
	startup_param(&k, "datestyle", pool->db->datestyle);
	startup_param(&k, "timezone", pool->db->timezone);
	startup_param(&k, "application_name", pool->db->application_name);
	if (extra)
		pkt_bytes(&k, extra, extra_len);
	pkt_u8(&k, 0);
	pkt_end(&k);
	if (!pkt_ok(&k)) {
		stream_fail(&s->st, STREAM_E_OWNER, "startup packet too large");
		return;
	}
	stream_write_commit(&s->st, k.len);
}

static void send_password_msg(struct server *s, const void *data, size_t len)
{
	uint8_t *buf = stream_write_reserve(&s->st, len + 8);
	struct pkt k;

	if (buf == NULL)
		return;
	pkt_init(&k, buf, len + 8);
	pkt_begin(&k, 'p');
	pkt_bytes(&k, data, len);
	pkt_end(&k);
	stream_write_commit(&s->st, k.len);
}

/* The secret servers log in with: the db entry's password, else the
 * auth_file's. */
static const char *login_secret(const struct server *s)
{
	return s->pool->db->password[0] ? s->pool->db->password : s->pool->cred->secret;
}

/* A replication client's own server was refused (no REPLICATION
 * attribute, no pg_hba.conf line for replication, most often), already
 * logged: as PgBouncer, both close with "login failed" and nobody else
 * hears of it; the pool's other clients and logins are not held back
 * (server_login_retry), since their logins may well succeed. */
static void repl_login_failed(struct server *s, const char *sqlstate)
{
	struct client *c = s->client;

	s->pool->st.server_login_fail++;
	if (c) {
		c->server = NULL;
		s->client = NULL;
	}
	server_close(s, "login failed");
	if (c)
		client_close(c, sqlstate, "login failed");
}

/* severity: the server's (as "FATAL"), NULL when the failure is ours */
static void login_failed_sev(struct server *s, const char *severity, const char *sqlstate,
		const char *msg)
{
	struct proxy *p = proxy_of(&s->st);
	struct pool *pool = s->pool;
	char id[200], state[8], why[400];

	/* <sqlstate> and <msg> may point into the server's input buffer (its
	 * ErrorResponse), which server_close() frees: copy them first. */
	snprintf(state, sizeof(state), "%s", sqlstate);
	snprintf(why, sizeof(why), "%s", msg);
	server_logid(s, id, sizeof(id));
	slog_warning(id, "server login failed: %s%s%s", severity ? severity : "",
			severity ? " " : "", why);
	if (s->repl) {
		repl_login_failed(s, state);
		return;
	}
	pool->st.server_login_fail++;
	pool->retry_at_us = proxy_now_us() + p->cfg->s.server_login_retry_us;
	pool->login_failing = true;
	snprintf(pool->login_error, sizeof(pool->login_error), "%s", why);
	host_failed(s);
	/* as PgBouncer: the server closes with the server's own words, so
	 * "closing because: password authentication failed ..." is greppable */
	server_close(s, why);
	p->server_ops->fail_waiting(pool, state, why);
}

static void login_failed(struct server *s, const char *sqlstate, const char *msg)
{
	login_failed_sev(s, NULL, sqlstate, msg);
}

/* We cannot answer the server's request with the secret we hold.  As
 * PgBouncer: <why> is logged as an error, the waiting clients hear
 * "server login failed: wrong password type". */
static void login_wrong_type(struct server *s, const char *why)
{
	char id[200];

	server_logid(s, id, sizeof(id));
	slog_error(id, "%s", why);
	login_failed(s, SQLSTATE_INVALID_PASSWORD, "server login failed: wrong password type");
}

/* PgBouncer's line, with the local address of a TCP connection. */
static void log_new_connection(struct server *s)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char id[200], addr[INET6_ADDRSTRLEN];
	int port;

	server_logid(s, id, sizeof(id));
	if (getsockname(s->st.fd, (struct sockaddr *)&ss, &sl) < 0 ||
			(ss.ss_family != AF_INET && ss.ss_family != AF_INET6)) {
		slog_info(id, "new connection to server");
		return;
	}
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)&ss;

		inet_ntop(AF_INET, &in->sin_addr, addr, sizeof(addr));
		port = ntohs(in->sin_port);
	} else {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)&ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, addr, sizeof(addr));
		port = ntohs(in6->sin6_port);
	}
	slog_info(id, "new connection to server (from %s:%d)", addr, port);
}

static bool handle_auth(struct server *s, const uint8_t *msg, uint32_t len)
{
	struct proto_reader r;
	const char *secret = login_secret(s);
	enum pwd_kind kind = pwd_classify(secret);
	uint32_t code;
	char out[SCRAM_MSG_MAX];
	size_t outlen = 0;
	int rc;

	/* as PgBouncer: no secret is an empty password, which the server
	 * refuses in its own words */
	if (kind == PWD_NONE)
		kind = PWD_PLAIN;
	proto_reader_init(&r, msg + PROTO_HDR_LEN, len - PROTO_HDR_LEN);
	code = proto_get_u32(&r);
	switch (code) {
	case PROTO_AUTH_OK:
		return true;
	case PROTO_AUTH_CLEARTEXT:
		if (kind != PWD_PLAIN) { /* a hash is not the password */
			login_wrong_type(s, "cannot do cleartext password authentication: wrong password type");
			return false;
		}
		send_password_msg(s, secret, strlen(secret) + 1);
		return true;
	case PROTO_AUTH_MD5: {
		const uint8_t *salt = proto_get_bytes(&r, 4);
		char md5[PWD_MD5_BUF], resp[PWD_MD5_BUF];

		if (salt == NULL) {
			login_failed(s, SQLSTATE_PROTOCOL_VIOLATION, "malformed md5 request from server");
			return false;
		}
		if (kind != PWD_PLAIN && kind != PWD_MD5) {
			login_wrong_type(s, "cannot do MD5 authentication: wrong password type");
			return false;
		}
		if (kind == PWD_PLAIN)
			pwd_md5_secret(s->pool->cred->name, secret, md5);
		else
			snprintf(md5, sizeof(md5), "%s", secret);
		pwd_md5_response(md5, salt, resp);
		send_password_msg(s, resp, strlen(resp) + 1);
		return true;
	}
	case PROTO_AUTH_SASL: {
		bool found = false;
		const char *m;
		uint8_t buf[SCRAM_MSG_MAX + 64];
		struct pkt k;

		while ((m = proto_get_str(&r)) != NULL && m[0])
			if (strcmp(m, SCRAM_MECHANISM) == 0)
				found = true;
		if (!found) {
			login_failed(s, SQLSTATE_INVALID_AUTH_SPEC,
					"server login failed: none of the server's SASL authentication mechanisms are supported");
			return false;
		}
		/* as PgBouncer: the secret is checked before the exchange starts */
		if (kind == PWD_SCRAM && (s->pool->db->password[0] || !s->pool->cred->has_client_key)) {
			login_wrong_type(s, "cannot do SCRAM authentication: password is SCRAM secret "
					    "but client authentication did not provide SCRAM keys");
			return false;
		}
		if (kind != PWD_PLAIN && kind != PWD_SCRAM) {
			login_wrong_type(s, "cannot do SCRAM authentication: wrong password type");
			return false;
		}
		rc = scram_client_begin(&s->login->scram, out, sizeof(out), &outlen);
		if (rc != 0) {
			login_failed(s, SQLSTATE_INTERNAL, scram_strerror(rc));
			return false;
		}
		pkt_init(&k, buf, sizeof(buf));
		pkt_begin(&k, 'p');
		pkt_str(&k, SCRAM_MECHANISM);
		pkt_u32(&k, (uint32_t)outlen);
		pkt_bytes(&k, out, outlen);
		pkt_end(&k);
		stream_write(&s->st, buf, k.len);
		return true;
	}
	case PROTO_AUTH_SASL_CONTINUE: {
		struct scram_client_keys keys;
		struct cred *cr = s->pool->cred;

		memset(&keys, 0, sizeof(keys));
		if (kind == PWD_SCRAM && !s->pool->db->password[0]) {
			if (!cr->has_client_key) { /* checked at AuthenticationSASL */
				login_wrong_type(s, "cannot do SCRAM authentication: password is SCRAM "
						    "secret but client authentication did not provide SCRAM keys");
				return false;
			}
			keys.secret = &cr->scram;
			memcpy(keys.client_key, cr->client_key, SCRAM_KEY_LEN);
		} else if (kind == PWD_PLAIN) {
			keys.password = secret;
		} else {
			login_wrong_type(s, "cannot do SCRAM authentication: wrong password type");
			return false;
		}
		rc = scram_client_continue(&s->login->scram, (const char *)r.p,
				proto_reader_left(&r), &keys, out, sizeof(out), &outlen);
		memset(&keys, 0, sizeof(keys));
		if (rc != 0) {
			login_failed(s, SQLSTATE_INVALID_PASSWORD, scram_strerror(rc));
			return false;
		}
		send_password_msg(s, out, outlen);
		return true;
	}
	case PROTO_AUTH_SASL_FINAL:
		rc = scram_client_finish(&s->login->scram, (const char *)r.p, proto_reader_left(&r));
		if (rc != 0) {
			login_failed(s, SQLSTATE_INVALID_PASSWORD, scram_strerror(rc));
			return false;
		}
		return true;
	default:
		login_failed(s, SQLSTATE_INVALID_AUTH_SPEC, "server asks for an unsupported authentication method");
		return false;
	}
}

/* ParameterStatus: update the server's (and a linked client's) values. */
static void track_param(struct server *s, const uint8_t *msg, uint32_t len)
{
	struct proxy *p = proxy_of(&s->st);
	struct proto_reader r;
	const char *name, *value;
	struct varset *vs;
	int idx;

	proto_reader_init(&r, msg + PROTO_HDR_LEN, len - PROTO_HDR_LEN);
	name = proto_get_str(&r);
	value = proto_get_str(&r);
	if (name == NULL || value == NULL || (idx = vars_index(&p->vars, name)) < 0)
		return;
	vs = vars_set(p, s->vars, idx, value);
	vars_put(p, s->vars);
	s->vars = vs;
	if (s->client) {
		/* only this value: the client's others (some never reported by
		 * the server, such as search_path) stay what it asked for */
		vs = vars_set(p, s->client->vars, idx, value);
		vars_put(p, s->client->vars);
		s->client->vars = vs;
	}
}

/* A replication client's own server has logged in: it is linked to its
 * client at once, never idle, and the client is welcomed with this
 * server's parameters.  Unlike a pooled server it does not teach the pool
 * its parameters (they carry the client's own settings) and runs no
 * connect_query (the session is the client's; a physical walsender takes
 * no SQL). */
static enum stream_act repl_ready(struct server *s)
{
	struct proxy *p = proxy_of(&s->st);
	struct pool *pool = s->pool;
	struct client *c = s->client;

	pool->st.server_logins++;
	if (c == NULL || c->closing || s->close_needed) {
		/* its client is leaving, or RECONNECT came during the login: a
		 * client still waiting gets another server (the janitor's next
		 * pool_launch) rather than one about to be closed */
		if (c) {
			c->server = NULL;
			s->client = NULL;
		}
		server_close(s, c && !c->closing ? "obsolete connection" :
						   "replication client disconnected");
		return STREAM_CLOSED;
	}
	list_del(&s->node);
	pool->n_login--;
	pool->n_repl_login--;
	s->state = SV_ACTIVE;
	s->used_us = proxy_now_us();
	list_append(&pool->active, &s->node);
	pool->n_active++;
	pool->st.server_assignment_count++;
	if (p->cfg->s.log_connections)
		log_new_connection(s);
	stream_link(&c->st, &s->st);
	client_repl_welcome(c, s->login->params, s->login->params_len);
	login_free(s);
	return s->state == SV_CLOSED ? STREAM_CLOSED : STREAM_DROP;
}

static enum stream_act login_message(struct server *s, uint8_t type, const uint8_t *msg,
		uint32_t len)
{
	struct proxy *p = proxy_of(&s->st);
	struct server_login *l = s->login;
	struct pool *pool = s->pool;
	struct proto_reader r;

	switch (type) {
	case 'R':
		if (!handle_auth(s, msg, len))
			return STREAM_CLOSED;
		return STREAM_DROP;
	case 'S':
		track_param(s, msg, len);
		if (l->params_len + len <= SERVER_LOGIN_PARAMS) {
			memcpy(l->params + l->params_len, msg, len);
			l->params_len += len;
		}
		return STREAM_DROP;
	case 'K':
		proto_reader_init(&r, msg + PROTO_HDR_LEN, len - PROTO_HDR_LEN);
		s->backend_pid = proto_get_u32(&r);
		s->backend_key = proto_get_u32(&r);
		return STREAM_DROP;
	case 'E': {
		const uint8_t *body = msg + PROTO_HDR_LEN;
		const char *m = proto_error_field(body, len - PROTO_HDR_LEN, 'M');
		const char *code = proto_error_field(body, len - PROTO_HDR_LEN, 'C');
		const char *sev = proto_error_field(body, len - PROTO_HDR_LEN, 'S');

		login_failed_sev(s, sev, code ? code : SQLSTATE_CONNECTION_FAILURE,
				m ? m : "server login failed");
		return STREAM_CLOSED;
	}
	case 'Z':
		if (s->repl)
			return repl_ready(s);
		if (pool->welcome == NULL && l->params_len > 0) {
			size_t cap;

			pool->welcome = slab_buf_alloc(p->arena, l->params_len, &cap);
			if (pool->welcome) {
				memcpy(pool->welcome, l->params, l->params_len);
				pool->welcome_len = l->params_len;
				pool->welcome_cap = (uint32_t)cap;
				pool->defaults = vars_get(s->vars);
				p->server_ops->welcome_all(pool);
			}
		}
		login_free(s);
		pool->st.server_logins++;
		pool->login_failing = false;
		list_del(&s->node);
		pool->n_login--;
		s->state = SV_IDLE;
		list_prepend(&pool->idle, &s->node);
		pool->n_idle++;
		if (p->cfg->s.log_connections)
			log_new_connection(s);
		if (pool->db->connect_query[0]) {
			list_del(&s->node);
			pool->n_idle--;
			list_append(&pool->active, &s->node);
			pool->n_active++;
			server_send_internal(s, pool->db->connect_query);
			return STREAM_DROP;
		}
		p->server_ops->idle(s);
		return STREAM_DROP;
	default: /* NoticeResponse, NegotiateProtocolVersion */
		return STREAM_DROP;
	}
}

/* ---- stream callbacks ---- */

/* Everything but a linked server's plain replies (server_on_header). */
static __attribute__((noinline)) enum stream_act header_slow(struct server *s, uint8_t type,
		uint32_t len)
{
	if (s->state == SV_ACTIVE) {
		/* a replication session is the client's own: no rewriting */
		if (__builtin_expect(type == '1' || type == '3' || type == 'C', 0) && !s->repl &&
				prepwire_server_header(s, type, len))
			return STREAM_WANT;
		track_reply(&s->tr, type, 0);
		return STREAM_FWD;
	}
	if (s->state == SV_DRAIN) {
		s->drain_bytes += len;
		if (s->drain_bytes > SERVER_DRAIN_BYTES) {
			server_close(s, "client left a large result behind");
			return STREAM_CLOSED;
		}
		if (type == 'Z' || type == 'S' || type == 'E' ||
				((type == '1' || type == '3' || type == 'C') &&
						prepwire_server_header(s, type, len)))
			return STREAM_WANT;
		track_reply(&s->tr, type, 0);
		return STREAM_FWD; /* unlinked: discarded */
	}
	if (len > 65536) {
		server_close(s, "oversized message outside a query");
		return STREAM_CLOSED;
	}
	return STREAM_WANT;
}

/* The hot path, kept small: rows, a simple Query's RowDescription and a
 * CommandComplete that is no statement command (prepwire's first-letter
 * test) change nothing but the byte count; ReadyForQuery and
 * ParameterStatus are read whole. */
static enum stream_act server_on_header(struct stream *st, uint8_t type, uint32_t len)
{
	struct server *s = server_of(st);
	const struct track *t = &s->tr;

	if (__builtin_expect(s->state != SV_ACTIVE, 0))
		return header_slow(s, type, len);
	s->pool->st.bytes_sent += (uint64_t)len + 1;
	if (type == 'D')
		return STREAM_FWD; /* rows change nothing the tracker holds */
	if (type == 'Z' || type == 'S')
		return STREAM_WANT;
	if (type == 'T' && t->n > 0 && t->q[t->head] == 'Q')
		return STREAM_FWD;
	if (type == 'C' && t->n > 0 && t->q[t->head] == 'Q' && !prepwire_msg_maybe(st))
		return STREAM_FWD;
	return header_slow(s, type, len);
}

static void end_query(struct server *s, char status)
{
	struct pool *pool = s->pool;
	struct client *c = s->client;
	int64_t now = proxy_now_us();

	pool->st.query_count++;
	pool->st.query_time_us += (uint64_t)(now - s->query_start_us);
	hist_add(&pool->query_lat, now - s->query_start_us);
	s->query_start_us = now;
	if (status == 'I') {
		int64_t t = now - (c->txn != 'I' ? c->xact_start_us : c->query_start_us);

		pool->st.xact_count++;
		pool->st.xact_time_us += (uint64_t)t;
		hist_add(&pool->xact_lat, t);
	}
	c->txn = (uint8_t)status;
	c->active_us = now;
}

/* An internal query's answer (SV_RESET, SV_DRAIN): tracked, discarded. */
static enum stream_act internal_message(struct server *s, uint8_t type, const uint8_t *msg,
		uint32_t len)
{
	char id[200];
	uint8_t status = len == PROTO_HDR_LEN + 1 ? msg[PROTO_HDR_LEN] : 'E';

	if (type == 'C' || type == '1' || type == '3') {
		prepwire_server_message(s, type, msg, len); /* tracks it */
		return STREAM_DROP;
	}
	track_reply(&s->tr, type, status);
	if (type == 'S') {
		track_param(s, msg, len);
	} else if (type == 'E' && s->state == SV_RESET) {
		const char *m = proto_error_field(msg + PROTO_HDR_LEN, len - PROTO_HDR_LEN, 'M');

		s->prep |= PREP_FAILED;
		server_logid(s, id, sizeof(id));
		slog_warning(id, "internal query failed: %s", m ? m : "?");
	} else if (type == 'Z' && s->state == SV_DRAIN) {
		server_drain_step(s);
		return s->state == SV_CLOSED ? STREAM_CLOSED : STREAM_DROP;
	} else if (type == 'Z' && s->tr.n == 0) {
		if (s->tr.txn != 'I' || (s->tr.flags & TRACK_F_DESYNC)) {
			server_close(s, "internal query left a transaction open");
			return STREAM_CLOSED;
		}
		if (s->client) {
			/* the parameter SET went through: the server now holds the
			 * client's values, reported or not */
			if ((s->prep & (PREP_SYNCED | PREP_FAILED)) == PREP_SYNCED &&
					s->vars != s->client->vars) {
				vars_put(proxy_of(&s->st), s->vars);
				s->vars = vars_get(s->client->vars);
			}
			if (proxy_of(&s->st)->server_ops->prepare(s))
				client_server_ready(s->client);
		} else {
			proxy_of(&s->st)->server_ops->idle(s);
		}
	}
	return STREAM_DROP;
}

static enum stream_act server_on_message(struct stream *st, uint8_t type, const uint8_t *msg,
		uint32_t len)
{
	struct server *s = server_of(st);

	switch (s->state) {
	case SV_LOGIN:
		return login_message(s, type, msg, len);
	case SV_ACTIVE:
		if (type == 'S') {
			track_param(s, msg, len);
		} else if (type == 'Z') {
			char status = len == PROTO_HDR_LEN + 1 ? (char)msg[PROTO_HDR_LEN] : 'E';

			track_reply(&s->tr, 'Z', (uint8_t)status);
			prepwire_ready(s);
			end_query(s, status);
			if (s->pool->mode == POOL_MODE_SESSION || s->repl) {
				/* held until the client leaves */
			} else if (track_idle(&s->tr)) {
				s->release_on_drain = true;
				s->st.flags |= STREAM_F_DRAIN_CB;
			} else if (s->pool->mode == POOL_MODE_STATEMENT && s->tr.n == 0 &&
					status != 'I') {
				/* the client's teardown drains this server (ROLLBACK) */
				client_close(s->client, SQLSTATE_FEATURE_NOT_SUPPORTED,
						"transaction blocks not allowed in statement pooling mode");
				return STREAM_DROP;
			}
		} else if ((type == '1' || type == '3' || type == 'C') && !s->repl) {
			return prepwire_server_message(s, type, msg, len);
		}
		return STREAM_FWD;
	case SV_RESET:
	case SV_DRAIN:
		return internal_message(s, type, msg, len);
	case SV_AUTHQ:
		return proxy_of(st)->server_ops->lookup_message(s, type, msg, len);
	default: /* idle: nobody is listening */
		if (type == 'E') {
			const char *m = proto_error_field(msg + PROTO_HDR_LEN, len - PROTO_HDR_LEN, 'M');
			char id[200];

			server_logid(s, id, sizeof(id));
			slog_info(id, "server error while idle: %s", m ? m : "?");
			/* a backend only errors while idle on its way out (FATAL,
			 * terminated): never hand it to a client, its EOF may lag */
			server_close(s, "server error while idle");
			return STREAM_CLOSED;
		}
		return STREAM_DROP;
	}
}

/* server_tls_sslmode above disable, over TCP: SSLRequest first (as
 * PgBouncer, allow asks too).  False when plain it is. */
static bool ask_tls(struct server *s)
{
	struct proxy *p = proxy_of(&s->st);
	uint8_t buf[8];
	struct pkt k;

	s->login->tls_asked = true;
	if (p->tls_connect == NULL || s->addr.ss_family == AF_UNIX)
		return false;
	pkt_init(&k, buf, sizeof(buf));
	pkt_begin(&k, 0);
	pkt_u32(&k, PROTO_SSL_CODE);
	pkt_end(&k);
	if (stream_write(&s->st, buf, k.len) < 0 ||
			stream_tls_request(&s->st, p->tls_connect, s->host,
					p->cfg->s.server_tls_sslmode == SSLMODE_VERIFY_FULL) < 0)
		stream_fail(&s->st, STREAM_E_NOMEM, "out of memory for TLS");
	return true;
}

/* The SSLRequest was answered: TLS is up, or the server said 'N'. */
static void server_on_tls(struct stream *st, bool encrypted)
{
	struct server *s = server_of(st);

	if (!encrypted && proxy_of(st)->cfg->s.server_tls_sslmode >= SSLMODE_REQUIRE) {
		stream_fail(st, STREAM_E_OWNER, "server refused SSL");
		return;
	}
	send_startup(s);
}

static void server_on_drained(struct stream *st)
{
	struct server *s = server_of(st);

	if (s->state == SV_LOGIN && !s->login->started) {
		if (!s->login->tls_asked && ask_tls(s)) /* connect finished */
			return;
		send_startup(s);
		return;
	}
	if (s->release_on_drain) {
		struct client *c = s->client;

		s->release_on_drain = false;
		/* the client may have sent more since the ReadyForQuery */
		if (s->state == SV_ACTIVE && c && !c->closing && track_idle(&s->tr) &&
				!stream_in_flight(&c->st))
			proxy_of(st)->server_ops->release(s);
		if (c && c->prep_wait && !c->closing) { /* its answers are in: go on */
			c->prep_wait = false;
			stream_resume(&c->st);
		}
	} else if (s->client && s->client->prep_wait && !s->client->closing) {
		s->client->prep_wait = false;
		stream_resume(&s->client->st);
	}
}

static void server_on_error(struct stream *st, enum stream_err kind, const char *reason)
{
	struct server *s = server_of(st);
	char why[160];

	if (s->state != SV_LOGIN) {
		server_close(s, reason);
		return;
	}
	if (!s->login->started && !s->login->tls_asked) {
		/* PgBouncer's words for a connect that did not complete */
		snprintf(why, sizeof(why), "connect failed: %s", reason ? reason : "?");
		reason = why;
	}
	login_broke(s, reason);
}

static const struct stream_ops server_ops = {
	.on_header = server_on_header,
	.on_message = server_on_message,
	.on_drained = server_on_drained,
	.on_error = server_on_error,
	.on_tls = server_on_tls,
};
