/* client.c -- client connections: startup, authentication, query forwarding.
 *
 * A client starts in startup mode (messages without a type byte), answers
 * SSLRequest with 'S' and a TLS handshake when client_tls_sslmode is set
 * (else 'N'), GSSENCRequest with 'N', hands CancelRequests to cancel.c, and
 * authenticates against the auth_file with the configured method.  Once
 * logged in, each message either goes straight to the linked server (the
 * hot path: on_header returns STREAM_FWD and the body is streamed) or, when
 * no server is linked, asks its pool for one and stops until it arrives.
 *
 * Closing: client_close() only sends the error, logs and marks the stream
 * failed; the teardown (client_destroy) runs from on_error at the top of the
 * event loop, exactly once, so no handler ever sees its client vanish under
 * it and no counter is decremented twice.  Messages are gated by state: a
 * client that is not yet welcomed parses nothing beyond its login.
 *
 * Ownership: a client comes from proxy->client_cache at accept and goes to
 * proxy->dead_clients at teardown; proxy_reap_dead() returns it to the cache.
 * The login state (SCRAM buffers, ~4 KiB) is a separate object that exists
 * only until authentication ends, so an idle client holds only itself.
 */
#include "client.h"
#include "proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>

#include <openssl/crypto.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "authq.h"
#include "cancel.h"
#include "cred.h"
#include "db.h"
#include "hba.h"
#include "ident.h"
#include "log.h"
#include "pool.h"
#include "prepwire.h"
#include "proto.h"
#include "pwd.h"
#include "scram_server.h"
#include "server.h"
#include "slab.h"
#include "track.h"
#include "vars.h"

/* Where the authentication exchange stands. */
enum login_step {
	LOGIN_STARTUP,
	LOGIN_PASSWORD,   /* sent AuthenticationCleartextPassword */
	LOGIN_MD5,        /* sent AuthenticationMD5Password */
	LOGIN_SASL_INIT,  /* sent AuthenticationSASL */
	LOGIN_SASL_CONT,  /* sent AuthenticationSASLContinue */
	LOGIN_WELCOME,    /* authenticated, waiting for the pool's parameters */
	LOGIN_LOOKUP,     /* waiting for auth_query's answer (authq.h) */
};

struct client_login {
	uint8_t step;
	bool known_user;        /* false: a mock exchange that must fail */
	bool own_user;          /* console login by pgslab's own OS user (peer) */
	uint8_t md5_salt[4];
	struct db *db;             /* NULL while an auto-database waits for auth */
	char user[NAME_MAX_LEN];   /* as the client asked, known or not */
	char dbname[NAME_MAX_LEN]; /* as the client asked */
	uint8_t *repl_params;      /* replication: its server's startup parameters */
	uint32_t repl_len, repl_cap; /* ... their bytes, the slab buffer's size */
	/* a refusal held until its log line is written (client_close) */
	bool deferred;
	struct list defer_node;    /* proxy->log_wait while <deferred> */
	struct client *c;
	int64_t defer_until_us;
	char defer_state[6];
	char defer_msg[256];
	struct authq_wait wait;    /* LOGIN_LOOKUP */
	struct scram_server scram;
	struct scram_secret secret;
};

static const struct stream_ops client_ops;

size_t client_login_size(void)
{
	return sizeof(struct client_login);
}

static inline struct client *client_of(struct stream *s)
{
	return (struct client *)(void *)((char *)s - offsetof(struct client, st));
}

void client_addr_str(const struct client *c, char *buf, size_t len)
{
	if (c->family == AF_INET)
		inet_ntop(AF_INET, c->addr, buf, (socklen_t)len);
	else if (c->family == AF_INET6)
		inet_ntop(AF_INET6, c->addr, buf, (socklen_t)len);
	else
		snprintf(buf, len, "unix");
}

/* PgBouncer's prefix: "C-id: db/user@addr:port".  While logging in, the
 * names the client asked for (the logger escapes what a client sent). */
void client_logid(const struct client *c, char *buf, size_t len)
{
	const struct client_login *l = c->login;
	const char *db = c->pool ? c->pool->db->name : c->db ? c->db->name :
			 l && l->dbname[0] ? l->dbname : "(nodb)";
	const char *user = c->cred ? c->cred->name : l && l->user[0] ? l->user : "(nouser)";
	char addr[64];

	client_addr_str(c, addr, sizeof(addr));
	snprintf(buf, len, "C-%llu: %s/%s@%s:%u", (unsigned long long)c->id, db, user, addr,
			c->port);
}

/* ---- sending pgslab's own messages ---- */

/* Build one message with <fn> straight into the client's out buffer. */
/* An ErrorResponse (<sqlstate> not NULL) or a NoticeResponse to <c>. */
static void send_report(struct client *c, bool fatal, const char *sqlstate, const char *msg)
{
	uint8_t *p = stream_write_reserve(&c->st, 600);
	struct pkt k;

	if (p == NULL)
		return;
	pkt_init(&k, p, 600);
	if (sqlstate)
		proto_write_error(&k, fatal, sqlstate, "%s", msg);
	else
		proto_write_notice(&k, "%s", msg);
	if (pkt_ok(&k))
		stream_write_commit(&c->st, k.len);
}

void client_error(struct client *c, const char *sqlstate, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	send_report(c, false, sqlstate, msg);
}

void client_notice(struct client *c, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	send_report(c, false, NULL, msg);
}

static void send_ready(struct client *c, char status)
{
	uint8_t buf[8];
	struct pkt k;

	pkt_init(&k, buf, sizeof(buf));
	proto_write_ready(&k, status);
	stream_write(&c->st, buf, k.len);
}

static void send_auth(struct client *c, uint32_t code, const void *data, size_t len)
{
	uint8_t *p = stream_write_reserve(&c->st, len + 16);
	struct pkt k;

	if (p == NULL)
		return;
	pkt_init(&k, p, len + 16);
	proto_write_auth(&k, code, data, len);
	stream_write_commit(&c->st, k.len);
}

/* ---- closing ---- */

static void release_report(struct client *c);

static void login_free(struct client *c)
{
	struct proxy *p = proxy_of(&c->st);

	if (c->login == NULL)
		return;
	if (c->login->deferred)
		release_report(c); /* whoever frees the login sends what it held */
	p->client_ops->lookup_cancel(p, &c->login->wait);
	if (c->login->repl_params)
		slab_buf_free(p->arena, c->login->repl_params, c->login->repl_cap);
	scram_server_clear(&c->login->scram);
	memset(&c->login->secret, 0, sizeof(c->login->secret));
	slab_free(p->client_login_cache, c->login);
	c->login = NULL;
}

/* ---- refusals held until their log line is written ----
 *
 * As PgBouncer, whose log is synchronous: a client refused while logging
 * in finds the reason in the log as soon as it has the error.  The log is
 * written by a thread here and the event loop never waits on it, so the
 * client waits instead: its ErrorResponse and the close are held (reading
 * stopped, on proxy->log_wait) until the writer has nothing pending, at
 * most CLIENT_DEFER_US; a 1 ms timer checks.  Only clients that still
 * have their login state are held (it keeps the copy of the message), so
 * a logged-in client costs nothing more.  Whatever frees the login state
 * first (teardown, a welcome) sends the report at once. */

#define CLIENT_DEFER_US 100000

static void arm_log_wait(struct proxy *p)
{
	struct timeval tv = { 0, 1000 };

	if (!evtimer_pending(&p->log_wait_ev, NULL))
		evtimer_add(&p->log_wait_ev, &tv);
}

/* Send the held report of <c> and fail its stream (teardown follows). */
static void release_report(struct client *c)
{
	struct client_login *l = c->login;

	l->deferred = false;
	list_del(&l->defer_node);
	send_report(c, true, l->defer_state, l->defer_msg);
	stream_fail(&c->st, STREAM_E_OWNER, "closed after its error");
}

static void log_wait_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proxy *p = arg;
	struct log_stats st;
	int64_t now = proxy_now_us();
	struct list *it, *tmp;

	(void)fd;
	(void)what;
	log_stats_get(p->log, &st);
	list_for_each_safe(it, tmp, &p->log_wait) {
		struct client_login *l = list_entry(it, struct client_login, defer_node);

		if (st.pending == 0 || now >= l->defer_until_us)
			release_report(l->c);
	}
	if (!list_empty(&p->log_wait))
		arm_log_wait(p);
	proxy_settle(p);
}

void client_defer_init(struct proxy *p)
{
	list_init(&p->log_wait);
	evtimer_assign(&p->log_wait_ev, p->base, log_wait_cb, p);
}

void client_defer_release_all(struct proxy *p)
{
	while (!list_empty(&p->log_wait))
		release_report(list_first_entry(&p->log_wait, struct client_login, defer_node)->c);
	if (evtimer_initialized(&p->log_wait_ev))
		evtimer_del(&p->log_wait_ev);
}

/* Hold <c>'s refusal (<sqlstate>, <reason>) until the line just logged is
 * written; false when it cannot be held (then it goes now). */
static bool defer_report(struct client *c, const char *sqlstate, const char *reason)
{
	struct proxy *p = proxy_of(&c->st);
	struct client_login *l = c->login;

	if (l == NULL || p->log == NULL || log_synchronous(p->log) || stream_failed(&c->st) ||
			p->shutdown == SHUTDOWN_NOW || !evtimer_initialized(&p->log_wait_ev) ||
			strlen(reason) >= sizeof(l->defer_msg))
		return false;
	snprintf(l->defer_state, sizeof(l->defer_state), "%s", sqlstate);
	snprintf(l->defer_msg, sizeof(l->defer_msg), "%s", reason);
	l->c = c;
	l->defer_until_us = proxy_now_us() + CLIENT_DEFER_US;
	l->deferred = true;
	stream_pause_read(&c->st, true);
	list_append(&p->log_wait, &l->defer_node);
	arm_log_wait(p);
	return true;
}

void client_close(struct client *c, const char *sqlstate, const char *reason)
{
	struct proxy *p = proxy_of(&c->st);
	bool logged = false;
	char id[200];

	if (c->closing || c->state == CL_CLOSED)
		return;
	c->closing = true;
	client_logid(c, id, sizeof(id));
	/* as PgBouncer: a login that fails is logged with its reason too; a
	 * reasonless close during login (a cancel request) is not */
	if (p->cfg->s.log_disconnections && (c->state != CL_LOGIN || reason)) {
		slog_info(id, "closing because: %s (age=%llds)", reason ? reason : "client close request",
				(long long)((proxy_now_us() - c->connect_us) / 1000000));
		logged = true;
	} else if (sqlstate && p->cfg->s.log_pooler_errors) {
		slog_warning(id, "pooler error: %s", reason ? reason : "?");
		logged = true;
	}
	/* logged first: whoever reads the error may look for the line; a
	 * login's refusal waits until the writer thread has written it */
	if (sqlstate && reason && logged && defer_report(c, sqlstate, reason))
		return;
	if (sqlstate && reason)
		send_report(c, true, sqlstate, reason);
	stream_fail(&c->st, STREAM_E_OWNER, reason);
}

/* The teardown, from on_error only: every list, counter and link goes. */
/* n_prelogin: the TCP clients still logging in (max_login_clients). */
static inline void prelogin_count(struct proxy *p, const struct client *c, int d)
{
	if (c->family != AF_UNIX)
		p->n_prelogin += d;
}

static void client_destroy(struct client *c)
{
	struct proxy *p = proxy_of(&c->st);
	enum client_state prev = (enum client_state)c->state;

	if (prev == CL_CLOSED)
		return;
	if (prev == CL_LOGIN)
		prelogin_count(p, c, -1);
	c->state = CL_CLOSED;
	login_free(c);
	cancel_unregister(p, c);
	if (c->server)
		p->client_ops->left(c->server, c);
	prep_client_clear(p->prep, &c->pst);
	if (c->pool && prev != CL_LOGIN) {
		p->client_ops->gone(c, prev);
	} else {
		list_del(&c->node);
		if (c->db && prev != CL_LOGIN)
			c->db->n_clients--; /* a console client */
	}
	if (c->cred && prev != CL_LOGIN)
		c->cred->n_clients--;
	if (c->vars)
		vars_put(p, c->vars);
	c->vars = NULL;
	stream_close(&c->st);
	p->n_clients--;
	list_append(&p->dead_clients, &c->node);
}

/* ---- accept and startup ---- */

/* Refuse a connection before it is a client: one ErrorResponse, then close. */
static void refuse(int fd, const char *sqlstate, const char *msg)
{
	uint8_t buf[256];
	struct pkt k;

	pkt_init(&k, buf, sizeof(buf));
	proto_write_error(&k, true, sqlstate, "%s", msg);
	if (pkt_ok(&k) && send(fd, buf, k.len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		(void)0; /* it is going away either way */
	close(fd);
}

static int accept_margin(int max_client_conn)
{
	int m = max_client_conn / 8;

	return m < 2 ? 2 : m > 64 ? 64 : m;
}

/* The max_login_clients cap in force (INT_MAX: none). */
static int login_cap(const struct config *cfg)
{
	int v = cfg->s.max_login_clients;

	if (v < 0)
		return INT_MAX;
	if (v == 0)
		v = cfg->s.max_client_conn / 2 > 64 ? cfg->s.max_client_conn / 2 : 64;
	return v;
}

void client_accept(struct proxy *p, int fd, const struct sockaddr *sa, socklen_t salen)
{
	struct client *c = slab_alloc(p->client_cache);

	(void)salen;
	/* Past max_client_conn a connection is still read (so libpq, which sends
	 * SSLRequest first, gets the error after its StartupMessage), but only
	 * up to a margin: beyond it, it is refused at once, so connections that
	 * never send anything cannot pile up. */
	if (p->n_clients >= p->cfg->s.max_client_conn + accept_margin(p->cfg->s.max_client_conn)) {
		refuse(fd, SQLSTATE_TOO_MANY_CONNECTIONS,
				"no more connections allowed (max_client_conn)");
		slab_free(p->client_cache, c);
		return;
	}
	/* Unauthenticated connections are capped apart from max_client_conn,
	 * so a slowloris flood cannot take every slot.  A new one past the cap
	 * is refused (not the oldest evicted, which would let a fast flood push
	 * out real clients mid-login); each holds its slot at most
	 * client_login_timeout, counted from here.  Unix-socket peers are
	 * local and not counted: the console stays reachable during a flood. */
	if (sa->sa_family != AF_UNIX && p->n_prelogin >= login_cap(p->cfg)) {
		p->prelogin_refused++;
		refuse(fd, SQLSTATE_TOO_MANY_CONNECTIONS,
				"too many clients still logging in (max_login_clients)");
		slab_free(p->client_cache, c);
		return;
	}
	if (c == NULL) {
		close(fd);
		log_error("out of memory for a new client");
		return;
	}
	memset(c, 0, sizeof(*c));
	c->id = ++p->next_id;
	prep_client_init(&c->pst, c->id);
	c->connect_us = c->active_us = proxy_now_us();
	c->family = (uint8_t)sa->sa_family;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;

		memcpy(c->addr, &in->sin_addr, 4);
		c->port = ntohs(in->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;

		memcpy(c->addr, &in6->sin6_addr, 16);
		c->port = ntohs(in6->sin6_port);
	}
	c->state = CL_LOGIN;
	c->txn = 'I';
	c->vars = vars_get(p->vars.empty);
	list_append(&p->login_clients, &c->node);
	p->n_clients++;
	prelogin_count(p, c, 1);
	stream_init(&c->st, &p->sctx, fd, &client_ops, STREAM_F_STARTUP);
	if (sa->sa_family != AF_UNIX)
		stream_tls_sniff(&c->st); /* direct TLS (sslnegotiation=direct) */
}

static bool ignored_param(struct proxy *p, const char *name)
{
	return config_list_contains_nocase(p->cfg->s.ignore_startup_parameters.str, name);
}

/* Copy one word of an "options" value from <*pp> into <out> (at most
 * <cap> bytes with its NUL), stopping at unescaped whitespace; a backslash
 * escapes the next byte.  Returns false when the word does not fit. */
static bool options_word(const char **pp, char *out, size_t cap)
{
	const char *q = *pp;
	size_t n = 0;
	bool fits = true;

	while (*q && *q != ' ' && *q != '\t') {
		if (*q == '\\' && q[1])
			q++;
		if (n + 1 < cap)
			out[n++] = *q;
		else
			fits = false;
		q++;
	}
	out[n] = 0;
	*pp = q;
	return fits;
}

/* The "options" startup parameter, by PgBouncer's rules: only "-c name=value"
 * and "--name=value" words; tracked parameters are applied, ignored ones
 * (ignore_startup_parameters, or all unknown ones when it lists "options")
 * skipped.  Returns NULL, or the error for the client in <err>. */
static const char *apply_options(struct client *c, const char *opt, char *err, size_t errlen)
{
	static const char bad[] = "unsupported options startup parameter: only '-c config=val' and '--config=val' are allowed";
	struct proxy *p = proxy_of(&c->st);
	char word[NAME_MAX_LEN + 1024], *value;
	bool fits;

	for (;;) {
		int idx;

		while (*opt == ' ' || *opt == '\t')
			opt++;
		if (*opt == 0)
			return NULL;
		if (opt[0] == '-' && opt[1] == 'c') {
			opt += 2;
			while (*opt == ' ' || *opt == '\t')
				opt++;
		} else if (opt[0] == '-' && opt[1] == '-') {
			opt += 2;
		} else {
			return bad;
		}
		/* as PostgreSQL: the word is unescaped first, then split at its
		 * first '=' (so "dat\estyle\=ISO" sets datestyle); a value too
		 * long for <word> matters only if it is applied */
		fits = options_word(&opt, word, sizeof(word));
		value = strchr(word, '=');
		if (value == NULL || value == word || value - word >= NAME_MAX_LEN)
			return bad;
		*value++ = 0;
		idx = vars_index(&p->vars, word);
		if (idx >= 0 && !fits)
			return "options value too long";
		if (idx >= 0) {
			struct varset *vs = vars_set(p, c->vars, idx, value);

			vars_put(p, c->vars);
			c->vars = vs;
		} else if (!ignored_param(p, word) && !ignored_param(p, "options")) {
			snprintf(err, errlen, "unsupported startup parameter in options: %s", word);
			return err;
		}
	}
}

/* ---- replication connections ---- */

static const char *const repl_params[] = { "no", "database", "yes" };
static const char *const repl_names[] = { "none", "logical", "physical" };

const char *client_repl_param(uint8_t kind)
{
	return kind <= CLIENT_REPL_PHYSICAL ? repl_params[kind] : "?";
}

const char *client_repl_name(uint8_t kind)
{
	return kind <= CLIENT_REPL_PHYSICAL ? repl_names[kind] : "?";
}

/* PostgreSQL's reading of the "replication" startup parameter: exactly
 * "database" is logical; else a boolean as its parse_bool() reads one (a
 * prefix of true, false, yes or no, on/off from two letters, 1 or 0, in
 * any case), true being physical.  False when it is neither. */
static bool repl_parse(const char *v, uint8_t *kind)
{
	static const struct {
		const char *word;
		size_t min;
		bool val;
	} w[] = {
		{ "true", 1, true }, { "false", 1, false }, { "yes", 1, true }, { "no", 1, false },
		{ "on", 2, true }, { "off", 2, false }, { "1", 1, true }, { "0", 1, false },
	};
	size_t n = strlen(v), i;

	if (strcmp(v, "database") == 0) {
		*kind = CLIENT_REPL_LOGICAL;
		return true;
	}
	for (i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
		if (n >= w[i].min && n <= strlen(w[i].word) && strncasecmp(v, w[i].word, n) == 0) {
			*kind = w[i].val ? CLIENT_REPL_PHYSICAL : CLIENT_REPL_NONE;
			return true;
		}
	}
	return false;
}

/* Does a replication client's own server get startup parameter <name>?
 * Its tracked parameters and "options" (whole: any setting, not only
 * -c, as PgBouncer), as it sent them; never user and database (the
 * pool's), "replication" (written first, normalized), _pq_. extensions
 * (negotiated here) or ignore_startup_parameters. */
static bool repl_forwards(struct proxy *p, const char *name)
{
	return strcmp(name, "options") == 0 || vars_index(&p->vars, name) >= 0;
}

/* Keep what <c>'s own server will be opened with (client_repl_params()):
 * name\0value\0 pairs taken from startup packet <st>, in a slab buffer
 * owned by the login. */
static int repl_params_save(struct client *c, const struct proto_startup *st)
{
	struct proxy *p = proxy_of(&c->st);
	struct client_login *l = c->login;
	const char *kind = client_repl_param(c->replication), *name, *value;
	size_t n = sizeof("replication") + strlen(kind) + 1, pos = 0, cap, nl, vl;
	uint8_t *b;

	while (proto_startup_next(st, &pos, &name, &value))
		if (repl_forwards(p, name))
			n += strlen(name) + strlen(value) + 2;
	b = slab_buf_alloc(p->arena, n, &cap);
	if (b == NULL)
		return -ENOMEM;
	l->repl_params = b;
	l->repl_cap = (uint32_t)cap;
	memcpy(b, "replication", sizeof("replication"));
	memcpy(b + sizeof("replication"), kind, strlen(kind) + 1);
	l->repl_len = (uint32_t)(sizeof("replication") + strlen(kind) + 1);
	for (pos = 0; proto_startup_next(st, &pos, &name, &value);) {
		if (!repl_forwards(p, name))
			continue;
		nl = strlen(name) + 1;
		vl = strlen(value) + 1;
		memcpy(b + l->repl_len, name, nl);
		memcpy(b + l->repl_len + nl, value, vl);
		l->repl_len += (uint32_t)(nl + vl);
	}
	return 0;
}

const uint8_t *client_repl_params(const struct client *c, uint32_t *len)
{
	if (c->login == NULL || c->login->repl_params == NULL) {
		*len = 0;
		return NULL;
	}
	*len = c->login->repl_len;
	return c->login->repl_params;
}

/* The method <t> becomes for this login's secret.  As PgBouncer: md5 with
 * a SCRAM secret is SCRAM; SCRAM with an md5 secret stays SCRAM and fails
 * (an md5 secret cannot check a SCRAM proof), never falls back to md5. */
static enum auth_type login_method(struct client *c, enum auth_type t)
{
	if (t == AUTH_TYPE_MD5 && c->cred && c->cred->kind == PWD_SCRAM)
		t = AUTH_TYPE_SCRAM_SHA_256;
	return t;
}

/* Is the Unix-socket peer's OS user <user>, or mapped to it by <map>?
 * A map that does not match is logged in PgBouncer's words. */
static bool peer_ok(struct client *c, const char *map)
{
	struct proxy *p = proxy_of(&c->st);
	struct passwd pw, *res = NULL;
	char buf[2048], id[200];
	uid_t uid;

	if (c->family != AF_UNIX || stream_peer_uid(&c->st, &uid) != 0 ||
			getpwuid_r(uid, &pw, buf, sizeof(buf), &res) != 0 || res == NULL)
		return false;
	if (map == NULL)
		return strcmp(pw.pw_name, c->login->user) == 0;
	if (ident_check(p->hba->ident, map, pw.pw_name, c->login->user))
		return true;
	client_logid(c, id, sizeof(id));
	slog_error(id, "ident map %s cannot be matched (OS user \"%s\")", map, pw.pw_name);
	return false;
}

/* Peer authentication (a known user, over the Unix socket, whose peer's
 * OS user is that user or maps to it): log in or close. */
static void peer_login(struct client *c, const char *map)
{
	if (c->cred == NULL || !peer_ok(c, map))
		client_close(c, SQLSTATE_INVALID_AUTH_SPEC, "unix socket login rejected");
	else
		client_finish_login(c);
}

/* Certificate authentication (auth_type = cert, HBA "cert"): a known user,
 * over TLS, whose client certificate verified against client_tls_ca_file
 * and whose CommonName is that user (exactly, as PostgreSQL's cert method),
 * or maps to it by <map> in the auth_ident_file: log in or close.  The
 * client hears only PgBouncer's "certificate authentication failed"; the
 * log says why (the CN came from the client: the logger escapes control
 * bytes, so it cannot forge a line). */
static void cert_login(struct client *c, const char *map)
{
	struct proxy *p = proxy_of(&c->st);
	const char *user = c->login->user;
	char cn[256], id[200];
	int rc = stream_tls_peer_cn(&c->st, cn, sizeof(cn));

	client_logid(c, id, sizeof(id));
	if (rc == -ENOTCONN) {
		slog_error(id, "TLS connection required");
	} else if (rc == -ENOENT) {
		slog_error(id, "TLS client certificate required");
	} else if (rc < 0) {
		slog_error(id, "invalid TLS client certificate: %s",
				rc == -ENODATA ? "no CommonName" :
				rc == -ENAMETOOLONG ? "CommonName too long" :
				"CommonName ambiguous or with a NUL byte");
	} else if (c->cred == NULL) {
		slog_error(id, "TLS cert login: no such user \"%s\"", user);
	} else if (map != NULL) {
		if (ident_check(p->hba->ident, map, cn, user)) {
			slog_noise(id, "ident map %s: CN \"%s\" logs in as \"%s\"", map, cn, user);
			client_finish_login(c);
			return;
		}
		slog_error(id, "ident map: %s does not have a match (CN \"%s\", user \"%s\")", map,
				cn, user);
	} else if (strcmp(cn, user) != 0) {
		slog_error(id, "TLS certificate name mismatch: CN \"%s\", user \"%s\"", cn, user);
	} else {
		slog_debug(id, "TLS cert login: CN \"%s\"", cn);
		client_finish_login(c);
		return;
	}
	client_close(c, SQLSTATE_INVALID_AUTH_SPEC, "certificate authentication failed");
}

/* auth_type = hba: the first rule matching this connection names the
 * method; AUTH_TYPE_ANY means "decided here" (closed or logged in). */
static enum auth_type hba_method(struct client *c)
{
	struct proxy *p = proxy_of(&c->st);
	struct hba_conn hc;
	const struct hba_rule *r;
	char id[200];

	memset(&hc, 0, sizeof(hc));
	hc.local = c->family == AF_UNIX;
	hc.family = c->family;
	hc.addr = c->addr;
	hc.is_tls = stream_is_tls(&c->st);
	/* as PostgreSQL: only a physical replication connection matches the
	 * keyword "replication"; a logical one matches by database name */
	hc.replication = c->replication == CLIENT_REPL_PHYSICAL;
	hc.db = c->login->dbname;
	hc.user = c->login->user;
	r = hba_match(p->hba, &hc);
	if (r && p->cfg->s.verbose >= 2) {
		client_logid(c, id, sizeof(id));
		slog_debug(id, "HBA line %d matched: %s", r->line, hba_method_name(r->method));
	}
	switch (r ? r->method : HBA_REJECT) {
	case HBA_TRUST:
		return AUTH_TYPE_TRUST;
	case HBA_MD5:
		return AUTH_TYPE_MD5;
	case HBA_PASSWORD:
		return AUTH_TYPE_PLAIN;
	case HBA_SCRAM:
		return AUTH_TYPE_SCRAM_SHA_256;
	case HBA_PEER:
		peer_login(c, r->map);
		return AUTH_TYPE_ANY;
	case HBA_CERT:
		cert_login(c, r->map);
		return AUTH_TYPE_ANY;
	case HBA_REJECT:
	default:
		client_close(c, SQLSTATE_INVALID_AUTH_SPEC,
				r ? "login rejected" : "no authentication method is found");
		return AUTH_TYPE_ANY;
	}
}

static void start_auth(struct client *c)
{
	struct proxy *p = proxy_of(&c->st);
	struct client_login *l = c->login;
	enum auth_type t = p->cfg->s.auth_type;
	uint32_t r;

	if (t == AUTH_TYPE_HBA) {
		t = hba_method(c);
		if (t == AUTH_TYPE_ANY)
			return; /* decided by the rule */
	}
	switch (login_method(c, t)) {
	case AUTH_TYPE_PEER:
		peer_login(c, NULL);
		return;
	case AUTH_TYPE_CERT:
		cert_login(c, NULL);
		return;
	case AUTH_TYPE_ANY:
	case AUTH_TYPE_TRUST:
		/* as PgBouncer: a name auth_query did not find is "no such
		 * user" (trust admits every name that exists, so saying so
		 * tells nothing a login would not), else a mock failure */
		if (c->cred == NULL && t == AUTH_TYPE_TRUST) {
			if (l->step == LOGIN_LOOKUP)
				client_close(c, SQLSTATE_INVALID_AUTH_SPEC, "no such user");
			else
				client_close(c, SQLSTATE_INVALID_PASSWORD,
						"\"trust\" authentication failed");
			return;
		}
		client_finish_login(c);
		return;
	case AUTH_TYPE_PLAIN:
		l->step = LOGIN_PASSWORD;
		send_auth(c, PROTO_AUTH_CLEARTEXT, NULL, 0);
		return;
	case AUTH_TYPE_MD5:
		r = proxy_random(p);
		memcpy(l->md5_salt, &r, 4);
		l->step = LOGIN_MD5;
		send_auth(c, PROTO_AUTH_MD5, l->md5_salt, 4);
		return;
	case AUTH_TYPE_SCRAM_SHA_256: {
		static const char mech[] = SCRAM_MECHANISM "\0"; /* list ends in an empty string */
		const struct scram_secret *sec = c->cred ? cred_scram(p, c->cred) : NULL;
		int rc = 0;

		/* a plain secret's verifier is derived once and cached in the cred;
		 * unknown names (and empty secrets) get a stable fake verifier, so
		 * they look like wrong passwords, at the same cost */
		l->known_user = sec != NULL;
		if (sec)
			l->secret = *sec;
		else
			rc = scram_secret_mock(l->user, p->mock_key, &l->secret);
		if (rc != 0) {
			client_close(c, SQLSTATE_INVALID_AUTH_SPEC, scram_strerror(rc));
			return;
		}
		l->step = LOGIN_SASL_INIT;
		send_auth(c, PROTO_AUTH_SASL, mech, sizeof(mech));
		return;
	}
	default:
		client_close(c, SQLSTATE_INVALID_AUTH_SPEC, "auth_type not supported by pgslab yet");
		return;
	}
}

/* Does this login look its user up with auth_query?  Users of the
 * auth_file never do; nor does a login to a database that does not exist
 * (as PgBouncer's "fake" database: the exchange fails as a wrong password
 * would, and "no such database" is said only to those who authenticate).
 * The console does, through the global auth_user: in the global
 * auth_dbname, and without one it is refused as PgBouncer refuses it (the
 * console cannot be its own auth database: "bouncer config error"). */
static bool wants_lookup(struct proxy *p, const struct client *c)
{
	const struct db *db = c->login->db;

	if (c->cred != NULL || p->cfg->s.auth_type == AUTH_TYPE_ANY)
		return false;
	if (db == NULL && p->cfg->fallback_db == NULL)
		return false;
	return p->client_ops->lookup_user(p, db, c->login->dbname)[0] != 0;
}

/* Is this a console login by name "pgbouncer" or "pgslab" over the Unix
 * socket from a process running as pgslab's own OS user (SO_PEERCRED)? */
static bool own_user(const struct client *c, const char *user)
{
	uid_t uid;

	return c->family == AF_UNIX && db_is_console(user) &&
		stream_peer_uid(&c->st, &uid) == 0 && uid == geteuid();
}

/* SSLRequest: 'S' and a handshake driven by the loop (stream.c), or 'N'.
 * Bytes the client sent after it, before any answer, are plaintext that
 * would pass for encrypted (CVE-2021-23222): the connection is refused. */
static enum stream_act handle_sslrequest(struct client *c, uint32_t len)
{
	struct tls_ctx *ctx = proxy_of(&c->st)->sctx.tls_accept;

	if (c->st.tls) {
		client_close(c, NULL, "SSL req inside SSL");
		return STREAM_CLOSED;
	}
	if (stream_unparsed(&c->st) != len) {
		client_close(c, SQLSTATE_PROTOCOL_VIOLATION,
				"received unencrypted data after SSL request");
		return STREAM_CLOSED;
	}
	if (ctx == NULL || c->family == AF_UNIX) {
		if (stream_write(&c->st, "N", 1) < 0)
			return STREAM_CLOSED;
		return STREAM_DROP;
	}
	if (stream_write(&c->st, "S", 1) < 0 || stream_tls_accept(&c->st, ctx) < 0) {
		client_close(c, NULL, "failed to accept SSL");
		return STREAM_CLOSED;
	}
	return STREAM_DROP;
}

static enum stream_act handle_startup(struct client *c, const uint8_t *msg, uint32_t len)
{
	struct proxy *p = proxy_of(&c->st);
	struct proto_startup st;
	const char *why, *name, *value, *user = NULL, *dbname = NULL;
	const char *unknown_pq[8];
	int n_pq = 0;
	size_t pos = 0;
	char buf[256];

	if (proto_parse_startup(msg, len, &st, &why) < 0) {
		client_close(c, SQLSTATE_PROTOCOL_VIOLATION, why);
		return STREAM_CLOSED;
	}
	if (st.code == PROTO_SSL_CODE)
		return handle_sslrequest(c, len);
	if (st.code == PROTO_GSSENC_CODE) {
		if (stream_write(&c->st, "N", 1) < 0)
			return STREAM_CLOSED;
		return STREAM_DROP;
	}
	if (st.code == PROTO_CANCEL_CODE) {
		cancel_forward(p, st.cancel_pid, st.cancel_key);
		client_close(c, NULL, NULL);
		return STREAM_CLOSED;
	}
	/* as PgBouncer: require and above, except on the Unix socket */
	if (p->cfg->s.client_tls_sslmode >= SSLMODE_REQUIRE && !stream_is_tls(&c->st) &&
			c->family != AF_UNIX) {
		client_close(c, SQLSTATE_PROTOCOL_VIOLATION, "SSL required");
		return STREAM_CLOSED;
	}
	/* "replication" first: it decides how "options" is read */
	while (proto_startup_next(&st, &pos, &name, &value)) {
		if (strcmp(name, "replication") == 0 && !repl_parse(value, &c->replication)) {
			/* PostgreSQL's refusal (PgBouncer would take it for "no") */
			snprintf(buf, sizeof(buf), "invalid value for parameter \"replication\": \"%.64s\"",
					value);
			client_close(c, SQLSTATE_INVALID_PARAMETER_VALUE, buf);
			return STREAM_CLOSED;
		}
	}
	pos = 0;
	while (proto_startup_next(&st, &pos, &name, &value)) {
		int idx;

		if (strcmp(name, "user") == 0) {
			user = value;
		} else if (strcmp(name, "database") == 0) {
			dbname = value;
		} else if (strncmp(name, "_pq_.", 5) == 0) {
			if (n_pq < 8)
				unknown_pq[n_pq++] = name;
		} else if ((idx = vars_index(&p->vars, name)) >= 0) {
			struct varset *vs = vars_set(p, c->vars, idx, value);

			vars_put(p, c->vars);
			c->vars = vs;
		} else if (strcmp(name, "options") == 0) {
			/* a replication client's go to its own server as sent */
			const char *e = c->replication ? NULL : apply_options(c, value, buf, sizeof(buf));

			if (e != NULL) {
				client_close(c, SQLSTATE_PROTOCOL_VIOLATION, e);
				return STREAM_CLOSED;
			}
		} else if (strcmp(name, "replication") == 0) {
			/* read above */
		} else if (!ignored_param(p, name)) {
			snprintf(buf, sizeof(buf), "unsupported startup parameter: %s", name);
			client_close(c, SQLSTATE_PROTOCOL_VIOLATION, buf);
			return STREAM_CLOSED;
		}
	}
	if (user == NULL || user[0] == 0) {
		client_close(c, SQLSTATE_INVALID_AUTH_SPEC, "no user name specified in startup packet");
		return STREAM_CLOSED;
	}
	if (dbname == NULL || dbname[0] == 0)
		dbname = user;
	if (strlen(user) >= NAME_MAX_LEN || strlen(dbname) >= NAME_MAX_LEN) {
		client_close(c, SQLSTATE_PROTOCOL_VIOLATION, "user or database name too long");
		return STREAM_CLOSED;
	}
	if ((st.code & 0xffff) != 0 || n_pq > 0) {
		uint8_t nb[512];
		struct pkt k;

		pkt_init(&k, nb, sizeof(nb));
		proto_write_negotiate_version(&k, PROTO_V3, unknown_pq, n_pq);
		if (pkt_ok(&k) && (stream_write(&c->st, nb, k.len) < 0 || stream_failed(&c->st)))
			return STREAM_CLOSED; /* the client is gone: allocate nothing */
	}

	c->login = slab_alloc(p->client_login_cache);
	if (c->login == NULL) {
		client_close(c, SQLSTATE_TOO_MANY_CONNECTIONS, "out of memory");
		return STREAM_CLOSED;
	}
	memset(c->login, 0, offsetof(struct client_login, scram));
	scram_server_init(&c->login->scram);
	snprintf(c->login->user, sizeof(c->login->user), "%s", user);
	snprintf(c->login->dbname, sizeof(c->login->dbname), "%s", dbname);
	if (c->replication && repl_params_save(c, &st) < 0) {
		client_close(c, SQLSTATE_TOO_MANY_CONNECTIONS, "out of memory");
		return STREAM_CLOSED;
	}
	/* only the auth_file's users authenticate; "any" takes every name */
	c->cred = p->cfg->s.auth_type == AUTH_TYPE_ANY ? cred_find(p, user, true) :
							cred_auth(p, user);
	/* an auto-database is made only once the client has authenticated */
	c->login->db = db_find(p, dbname, false);
	if (c->login->db && c->login->db->autodb)
		c->login->db = NULL; /* may expire meanwhile: looked up again after auth */
	if (p->shutdown != SHUTDOWN_NONE && !(c->login->db && c->login->db->admin)) {
		/* the Unix socket stays open for the console only */
		client_close(c, SQLSTATE_CANNOT_CONNECT_NOW, "pooler is shutting down");
		return STREAM_CLOSED;
	}
	if (c->login->db && !c->login->db->admin && c->login->db->disabled) {
		char dis[NAME_MAX_LEN + 32];

		snprintf(dis, sizeof(dis), "database \"%s\" is disabled", c->login->db->name);
		client_close(c, SQLSTATE_CANNOT_CONNECT_NOW, dis);
		return STREAM_CLOSED;
	}
	if (p->n_clients > p->cfg->s.max_client_conn) {
		client_close(c, SQLSTATE_TOO_MANY_CONNECTIONS, "no more connections allowed (max_client_conn)");
		return STREAM_CLOSED;
	}
	stream_end_startup(&c->st);
	if (c->login->db && c->login->db->admin && own_user(c, user)) {
		/* as PgBouncer: the console's own name over the Unix socket from
		 * pgslab's own OS user needs no password and has admin rights */
		c->login->own_user = true;
		c->cred = cred_find(p, user, true);
		if (p->cfg->s.log_connections) {
			client_logid(c, buf, sizeof(buf));
			slog_info(buf, "console access from unix socket by pgslab's own OS user");
		}
		client_finish_login(c);
	} else if (wants_lookup(p, c)) {
		/* not in the auth_file: ask PostgreSQL (auth_query); the login
		 * waits, the loop does not */
		c->login->step = LOGIN_LOOKUP;
		if (p->client_ops->lookup_start(c, &c->login->wait, c->login->db, c->login->dbname, user, buf,
				    sizeof(buf)) < 0)
			client_close(c, SQLSTATE_INVALID_AUTH_SPEC, buf);
	} else {
		start_auth(c);
	}
	return c->closing ? STREAM_CLOSED : STREAM_DROP;
}

void client_lookup_done(struct client *c, struct cred *cr, const char *sqlstate,
		const char *error)
{
	if (c->closing || c->state != CL_LOGIN || c->login == NULL ||
			c->login->step != LOGIN_LOOKUP)
		return;
	if (error) {
		client_close(c, sqlstate, error);
		return;
	}
	/* NULL (no such user, expired, no login, no secret): the exchange
	 * still runs and fails as a wrong password would */
	c->cred = cr;
	start_auth(c);
}

/* The same words for an unknown user, an empty secret and a wrong password. */
static void auth_failed(struct client *c)
{
	char buf[160];

	snprintf(buf, sizeof(buf), "password authentication failed for user \"%s\"",
			c->login->user);
	client_close(c, SQLSTATE_INVALID_PASSWORD, buf);
}

/* Constant-time string equality (the length is not secret). */
static bool secret_eq(const char *a, const char *b)
{
	size_t n = strlen(a);

	return n == strlen(b) && CRYPTO_memcmp(a, b, n) == 0;
}

/* A plain password: check against whatever kind of secret we hold.  An
 * empty secret never matches. */
static bool check_plain(struct client *c, const char *password)
{
	struct cred *cr = c->cred;
	struct scram_secret s;
	char md5[PWD_MD5_BUF];

	if (cr == NULL || password[0] == 0)
		return false;
	switch ((enum pwd_kind)cr->kind) {
	case PWD_NONE:
		return false;
	case PWD_PLAIN:
		return secret_eq(cr->secret, password);
	case PWD_MD5:
		return pwd_md5_secret(cr->name, password, md5) == 0 && secret_eq(md5, cr->secret);
	case PWD_SCRAM:
		return scram_secret_from_password(password, cr->scram.salt, cr->scram.salt_len,
				       cr->scram.iterations, &s) == 0 &&
		       CRYPTO_memcmp(s.stored_key, cr->scram.stored_key, SCRAM_KEY_LEN) == 0;
	}
	return false;
}

static enum stream_act handle_password(struct client *c, const uint8_t *msg, uint32_t len)
{
	struct client_login *l = c->login;
	struct proto_reader r;
	char out[SCRAM_MSG_MAX];
	size_t outlen = 0;
	int rc;

	proto_reader_init(&r, msg + PROTO_HDR_LEN, len - PROTO_HDR_LEN);
	switch (l->step) {
	case LOGIN_PASSWORD:
	case LOGIN_MD5: {
		const char *pw = proto_get_str(&r);

		if (pw == NULL) {
			client_close(c, SQLSTATE_PROTOCOL_VIOLATION, "malformed password packet");
			return STREAM_CLOSED;
		}
		if (l->step == LOGIN_PASSWORD ? !check_plain(c, pw) :
				(c->cred == NULL || c->cred->kind == PWD_NONE ||
				 pwd_md5_check(c->cred->secret, c->cred->name, l->md5_salt, pw) != 0)) {
			auth_failed(c);
			return STREAM_CLOSED;
		}
		client_finish_login(c);
		break;
	}
	case LOGIN_SASL_INIT: {
		const char *mech = proto_get_str(&r);
		uint32_t dlen = proto_get_u32(&r);
		const uint8_t *data;

		if (mech == NULL || strcmp(mech, SCRAM_MECHANISM) != 0) {
			client_close(c, SQLSTATE_PROTOCOL_VIOLATION,
					"client selected an invalid SASL authentication mechanism");
			return STREAM_CLOSED;
		}
		data = proto_get_bytes(&r, dlen);
		if (data == NULL || dlen == 0xffffffffu) {
			client_close(c, SQLSTATE_PROTOCOL_VIOLATION, "malformed SASLInitialResponse");
			return STREAM_CLOSED;
		}
		rc = scram_server_begin(&l->scram, &l->secret, (const char *)data, dlen, out,
				sizeof(out), &outlen);
		if (rc != 0) {
			client_close(c, SQLSTATE_PROTOCOL_VIOLATION, scram_strerror(rc));
			return STREAM_CLOSED;
		}
		l->step = LOGIN_SASL_CONT;
		send_auth(c, PROTO_AUTH_SASL_CONTINUE, out, outlen);
		break;
	}
	case LOGIN_SASL_CONT: {
		uint8_t ck[SCRAM_KEY_LEN];

		rc = scram_server_finish(&l->scram, (const char *)r.p, proto_reader_left(&r), out,
				sizeof(out), &outlen, ck);
		if (rc == SCRAM_E_BAD_PROOF || (rc == 0 && !l->known_user)) {
			if (c->cred && c->cred->kind == PWD_MD5) {
				/* PgBouncer's line; the client's exchange ran to
				 * the end like any wrong password's */
				char id[200];

				client_logid(c, id, sizeof(id));
				slog_error(id, "SCRAM authentication failed: user has MD5 secret");
			}
			/* PgBouncer's words for any failed SCRAM exchange */
			client_close(c, SQLSTATE_INVALID_PASSWORD, "SASL authentication failed");
			return STREAM_CLOSED;
		}
		if (rc != 0) {
			client_close(c, SQLSTATE_PROTOCOL_VIOLATION, scram_strerror(rc));
			return STREAM_CLOSED;
		}
		/* SCRAM pass-through: with the verifier PostgreSQL holds, the
		 * recovered ClientKey logs us in to the server. */
		if (c->cred->has_scram) {
			memcpy(c->cred->client_key, ck, SCRAM_KEY_LEN);
			c->cred->has_client_key = true;
		}
		memset(ck, 0, sizeof(ck));
		send_auth(c, PROTO_AUTH_SASL_FINAL, out, outlen);
		if (stream_failed(&c->st))
			return STREAM_CLOSED; /* reset right after its final message */
		client_finish_login(c);
		break;
	}
	default:
		client_close(c, SQLSTATE_PROTOCOL_VIOLATION, "unexpected password packet");
		return STREAM_CLOSED;
	}
	return c->closing ? STREAM_CLOSED : STREAM_DROP;
}

/* Send AuthenticationOk, ParameterStatus, BackendKeyData and
 * ReadyForQuery.  The ParameterStatus messages are <params> (<len> bytes:
 * the pool's, NULL for the console's own): a pooled client gets the
 * client's own values for tracked parameters instead of the server's; a
 * replication client (<own_server>) gets its own server's, all of them. */
static void send_welcome(struct client *c, const uint8_t *params, uint32_t params_len,
		bool own_server)
{
	struct proxy *p = proxy_of(&c->st);
	size_t cap = 1024 + params_len;
	uint8_t *buf;
	struct pkt k;
	int i;

	for (i = 0; i < p->vars.n; i++)
		if (c->vars->v[i])
			cap += c->vars->v[i]->len + NAME_MAX_LEN + 8;
	buf = stream_write_reserve(&c->st, cap);
	if (buf == NULL)
		return;
	pkt_init(&k, buf, cap);
	proto_write_auth(&k, PROTO_AUTH_OK, NULL, 0);
	if (params) {
		struct proto_reader r;

		/* replay the server's ParameterStatus, skipping tracked names */
		proto_reader_init(&r, params, params_len);
		while (proto_reader_left(&r) >= PROTO_HDR_LEN) {
			const uint8_t *m = r.p;
			uint32_t l = proto_peek_u32(m + 1);
			struct proto_reader body;
			const char *name;

			if (l < 4 || proto_get_bytes(&r, 1 + (size_t)l) == NULL)
				break;
			proto_reader_init(&body, m + PROTO_HDR_LEN, l - 4);
			name = proto_get_str(&body);
			if (name != NULL && (own_server || vars_index(&p->vars, name) < 0))
				pkt_bytes(&k, m, 1 + (size_t)l);
		}
	} else {
		proto_write_param_status(&k, "server_version", "15.0 (pgslab " PGSLAB_VERSION ")");
		proto_write_param_status(&k, "server_encoding", "UTF8");
		proto_write_param_status(&k, "integer_datetimes", "on");
	}
	for (i = 0; i < p->vars.n && !own_server; i++) {
		const struct istr *v = c->vars->v[i];

		if (v == NULL && c->admin)
			continue;
		if (v)
			proto_write_param_status(&k, p->vars.names[i], v->s);
	}
	proto_write_backend_key(&k, c->cancel_pid, c->cancel_key);
	proto_write_ready(&k, 'I');
	if (pkt_ok(&k))
		stream_write_commit(&c->st, k.len);
	else
		client_close(c, SQLSTATE_INTERNAL, "welcome message too large");
}

/* Fill parameters the client did not send with the pool's defaults, so that
 * client and server sets compare equal when nothing was asked for. */
static void apply_defaults(struct client *c)
{
	struct proxy *p = proxy_of(&c->st);
	struct varset *d = c->pool ? c->pool->defaults : NULL;
	int i;

	if (d == NULL)
		return;
	for (i = 0; i < p->vars.n; i++) {
		if (c->vars->v[i] == NULL && d->v[i] != NULL) {
			struct varset *vs = vars_set(p, c->vars, i, d->v[i]->s);

			vars_put(p, c->vars);
			c->vars = vs;
		}
	}
}

/* max_db_client_connections and max_user_client_connections (0: no limit),
 * checked once the client has authenticated, so strangers cannot use up a
 * database's or a user's slots; the console's admin users are exempt. */
static bool within_client_limits(struct client *c, const struct db *db)
{
	struct proxy *p = proxy_of(&c->st);
	const struct config_settings *s = &p->cfg->s;
	const struct config_db *e = db->admin ? NULL : config_find_db(p->cfg, db->name);
	const struct config_user *u = c->cred ? config_find_user(p->cfg, c->cred->name) : NULL;
	int maxdb = e && e->max_db_client_connections >= 0 ? e->max_db_client_connections :
							       s->max_db_client_connections;
	int maxu = u && u->max_user_client_connections >= 0 ? u->max_user_client_connections :
								 s->max_user_client_connections;

	if (db->admin && c->admin == 2)
		return true;
	if (maxdb > 0 && db->n_clients >= maxdb) {
		client_close(c, SQLSTATE_TOO_MANY_CONNECTIONS,
				"client connections exceeded (max_db_client_connections)");
		return false;
	}
	if (maxu > 0 && c->cred && c->cred->n_clients >= maxu) {
		client_close(c, SQLSTATE_TOO_MANY_CONNECTIONS,
				"client connections exceeded (max_user_client_connections)");
		return false;
	}
	return true;
}

/* Authenticated: find the pool; welcome now or once the pool knows its
 * server parameters. */
void client_finish_login(struct client *c)
{
	struct proxy *p = proxy_of(&c->st);
	struct db *db = c->login->db;
	struct cred *cred = c->cred;
	char id[200];

	if (db == NULL) {
		db = c->login->db = db_find(p, c->login->dbname, true);
		if (db == NULL) {
			/* said only after authentication, so an unknown name
			 * tells a stranger nothing about which databases exist */
			snprintf(id, sizeof(id), "no such database: %s", c->login->dbname);
			client_close(c, SQLSTATE_INVALID_CATALOG, id);
			return;
		}
	}
	if (db->admin && c->replication) {
		client_close(c, SQLSTATE_FEATURE_NOT_SUPPORTED,
				"replication connections to the admin console are not supported");
		return;
	}
	if (db->admin) {
		/* rights are checked once the user has proven who it is, so the
		 * console says nothing about which names exist */
		const char *u = c->login->user;
		bool adm = c->login->own_user ||
			(c->cred && config_list_contains(p->cfg->s.admin_users.str, u));
		bool stats = c->cred && config_list_contains(p->cfg->s.stats_users.str, u);

		if (!adm && !stats) {
			client_close(c, SQLSTATE_INSUFFICIENT_PRIVILEGE,
					"not allowed to connect to the admin console: user is in neither admin_users nor stats_users");
			return;
		}
		c->admin = adm ? 2 : 1;
		if (!within_client_limits(c, db))
			return;
	} else {
		if (!within_client_limits(c, db))
			return;
		if (db->force_user[0])
			cred = cred_find(p, db->force_user, true);
		if (cred == NULL) {
			client_close(c, SQLSTATE_INVALID_AUTH_SPEC, "no credentials for server login");
			return;
		}
		c->pool = p->client_ops->pool_get(p, db, cred);
		if (c->pool == NULL) {
			client_close(c, SQLSTATE_TOO_MANY_CONNECTIONS, "out of memory for pool");
			return;
		}
	}
	cancel_register(p, c);
	list_del(&c->node);
	c->db = db;
	db->n_clients++;
	if (c->cred)
		c->cred->n_clients++;
	if (c->pool)
		c->pool->st.client_login_count++;
	if (p->cfg->s.log_connections) {
		char tls[96] = "no";

		if (stream_is_tls(&c->st))
			stream_tls_info(&c->st, tls, sizeof(tls));
		client_logid(c, id, sizeof(id));
		slog_info(id, "login attempt: db=%s user=%s tls=%s replication=%s", db->name,
				c->cred ? c->cred->name : "?", tls, client_repl_param(c->replication));
	}
	if (c->replication || (c->pool && c->pool->welcome == NULL)) {
		/* No server has told us its parameters yet: wait for one.  A
		 * replication client waits for a server of its own, opened for
		 * it with its startup parameters (pool.c), and is welcomed with
		 * that server's parameters (client_repl_welcome). */
		c->login->step = LOGIN_WELCOME;
		c->state = CL_WELCOME;
		prelogin_count(p, c, -1);
		c->wait_start_us = proxy_now_us();
		list_append(&c->pool->welcome_wait, &c->node);
		if (c->replication)
			c->pool->n_repl_wait++;
		else
			c->pool->n_welcome++;
		stream_pause_read(&c->st, true);
		p->client_ops->welcome_wait(c);
		return;
	}
	login_free(c);
	c->state = CL_ACTIVE;
	prelogin_count(p, c, -1);
	if (c->pool) {
		list_append(&c->pool->clients, &c->node);
		c->pool->n_clients++;
	} else {
		list_append(&p->login_clients, &c->node); /* console clients live here */
	}
	apply_defaults(c);
	send_welcome(c, c->pool ? c->pool->welcome : NULL, c->pool ? c->pool->welcome_len : 0,
			false);
}

void client_welcome(struct client *c)
{
	struct pool *pool = c->pool;

	list_del(&c->node);
	pool->n_welcome--;
	login_free(c);
	c->state = CL_ACTIVE;
	list_append(&pool->clients, &c->node);
	pool->n_clients++;
	apply_defaults(c);
	send_welcome(c, pool->welcome, pool->welcome_len, false);
	stream_resume(&c->st); /* what the client pipelined after its password */
}

void client_repl_welcome(struct client *c, const uint8_t *params, uint32_t len)
{
	struct pool *pool = c->pool;

	list_del(&c->node);
	pool->n_repl_wait--;
	login_free(c);
	c->state = CL_ACTIVE;
	c->active_us = proxy_now_us();
	list_append(&pool->clients, &c->node);
	pool->n_clients++;
	send_welcome(c, params, len, true);
	stream_resume(&c->st);
}

void client_server_ready(struct client *c)
{
	stream_resume(&c->st);
}

/* ---- stream callbacks ---- */

/* The longest 'p' message <c> may send now.  A clear-text password may be
 * as long as the longest secret we store and longer (it is compared, and
 * fails as a wrong password would, as in PgBouncer), within the bound a
 * startup packet has, so a stranger costs no more memory; a SASL message
 * has SCRAM's own limit. */
static uint32_t password_packet_max(const struct client *c)
{
	if (c->login->step == LOGIN_PASSWORD || c->login->step == LOGIN_MD5)
		return PROTO_STARTUP_MAX;
	return SCRAM_MSG_MAX + 64;
}

/* A login closed by a handler may be held (its report waits for the log,
 * see defer_report): its stream is then alive, so the engine is told to
 * stop reading it rather than that it is gone. */
static enum stream_act login_act(struct client *c, enum stream_act a)
{
	return a == STREAM_CLOSED && !stream_failed(&c->st) ? STREAM_STOP : a;
}

static enum stream_act client_on_header(struct stream *st, uint8_t type, uint32_t len)
{
	struct client *c = client_of(st);
	struct server *s = c->server;

	if (c->state == CL_LOGIN) {
		if (type == 0) {
			if (len > PROTO_STARTUP_MAX) {
				client_close(c, SQLSTATE_PROTOCOL_VIOLATION, "invalid length of startup packet");
				return login_act(c, STREAM_CLOSED);
			}
			return STREAM_WANT;
		}
		if (type != 'p' || c->login == NULL || len > password_packet_max(c)) {
			client_close(c, SQLSTATE_PROTOCOL_VIOLATION,
					type == 'p' ? "password packet too long" :
						      "expected password response");
			return login_act(c, STREAM_CLOSED);
		}
		return STREAM_WANT;
	}
	if (c->state == CL_WELCOME)
		return STREAM_STOP; /* not welcomed yet: client_welcome() resumes */
	if (type == 'X') {
		/* what was pipelined before Terminate still goes to the server,
		 * as it would reach PostgreSQL directly */
		if (s != NULL)
			stream_flush(&s->st);
		client_close(c, NULL, NULL);
		return STREAM_CLOSED;
	}
	if (c->admin) {
		if (len > 4096) {
			client_close(c, SQLSTATE_PROTOCOL_VIOLATION, "admin console query too long");
			return STREAM_CLOSED;
		}
		return STREAM_WANT;
	}
	if (s == NULL || s->state != SV_ACTIVE) {
		if (s == NULL && !proxy_of(st)->client_ops->assign(c))
			return c->closing ? STREAM_CLOSED : STREAM_STOP;
		s = c->server;
		if (s == NULL || s->state != SV_ACTIVE)
			return c->closing ? STREAM_CLOSED : STREAM_STOP;
	}
	if (__builtin_expect(type == 'Q' ? prepwire_msg_maybe(st) :
				    type == 'P' || type == 'B' || type == 'D' || type == 'C', 0) &&
			!c->replication && prepwire_on(c)) {
		enum stream_act a = prepwire_client_header(c, s, type, len);

		if (a != STREAM_FWD)
			return a;
	} else if (type == 'S' && s->pst.ph != NULL) {
		prep_server_sync(&s->pst);
	}
	/* the hot path: note what the server will owe, then stream it */
	return client_note_request(c, s, type, len) ? STREAM_FWD : STREAM_CLOSED;
}

bool client_note_request(struct client *c, struct server *s, uint8_t type, uint32_t len)
{
	if (s->tr.n == 0) {
		c->request_us = c->query_start_us = s->query_start_us = proxy_now_us();
		if (c->txn == 'I')
			c->xact_start_us = c->query_start_us;
	}
	if (type == 0)
		return true;
	if (__builtin_expect(track_req(&s->tr, proxy_of(&c->st)->arena, type) < 0, 0)) {
		client_close(c, SQLSTATE_PROGRAM_LIMIT, "too many pipelined requests");
		return false;
	}
	c->pool->st.bytes_recv += (uint64_t)len + 1;
	return true;
}

static enum stream_act admin_message(struct client *c, uint8_t type, const uint8_t *msg,
		uint32_t len)
{
	char sql[4096];
	size_t n = len - PROTO_HDR_LEN;

	if (type == 'S') {
		send_ready(c, 'I');
		return STREAM_DROP;
	}
	if (type != 'Q') {
		if (type == 'P' || type == 'B' || type == 'E' || type == 'D')
			client_error(c, SQLSTATE_FEATURE_NOT_SUPPORTED,
					"extended query protocol not supported by admin console");
		return STREAM_DROP;
	}
	if (n == 0 || msg[len - 1] != 0 || n > sizeof(sql)) {
		client_close(c, SQLSTATE_PROTOCOL_VIOLATION, "malformed query message");
		return STREAM_CLOSED;
	}
	memcpy(sql, msg + PROTO_HDR_LEN, n);
	c->request_us = proxy_now_us();
	if (!proxy_of(&c->st)->client_ops->console_query(c, sql))
		return c->closing ? STREAM_CLOSED : STREAM_DROP;
	if (c->closing)
		return STREAM_CLOSED;
	send_ready(c, 'I');
	return STREAM_DROP;
}

static enum stream_act client_on_message(struct stream *st, uint8_t type, const uint8_t *msg,
		uint32_t len)
{
	struct client *c = client_of(st);

	if (c->state == CL_LOGIN)
		return login_act(c, type == 0 ? handle_startup(c, msg, len) :
						 handle_password(c, msg, len));
	if (c->admin)
		return admin_message(c, type, msg, len);
	if (c->server != NULL) { /* a prepared-statement message (prepwire.c) */
		struct server *s = c->server;
		enum stream_act a = prepwire_client_message(c, s, type, msg, len);

		if (a == STREAM_FWD && !client_note_request(c, s, type, len))
			return STREAM_CLOSED;
		return a;
	}
	return STREAM_FWD;
}

static void client_on_drained(struct stream *st)
{
	struct client *c = client_of(st);

	if (c->prep_wait) { /* its earlier bytes reached the server: go on */
		c->prep_wait = false;
		stream_resume(st);
	}
}

static void client_on_error(struct stream *st, enum stream_err kind, const char *reason)
{
	struct client *c = client_of(st);

	/* framing errors get an ErrorResponse; a gone socket cannot */
	client_close(c, kind == STREAM_E_PROTO ? SQLSTATE_PROTOCOL_VIOLATION : NULL, reason);
	client_destroy(c);
}

static const struct stream_ops client_ops = {
	.on_header = client_on_header,
	.on_message = client_on_message,
	.on_drained = client_on_drained,
	.on_error = client_on_error,
};
