/* prepwire.c -- prepared statements on the wire: the client and server hooks.
 *
 * prep.c decides (registry, client names, server sets); this file applies
 * its plans to linked client/server pairs in transaction and statement
 * mode: it asks for the whole message of a named Parse, Bind, Describe or
 * Close (unnamed ones stream through untouched), writes the plan's messages
 * into the server's output and queues one tracker request per message, so
 * track.c still accounts for every byte the backend owes.  Answers to
 * injected messages are swallowed; the stand-in Close for a Parse the
 * backend already holds has its CloseComplete relabelled ParseComplete.
 *
 * Ordering: injected bytes leave ahead of forwarded ones (stream.h), so a
 * plan is written only once every earlier byte of the client has reached
 * the server's socket; otherwise the message waits (STREAM_STOP) and the
 * client resumes when its forwarding drains.  A plan that depends on an
 * answer owed from before the last Sync waits for that ReadyForQuery.
 *
 * SQL: PREPARE and EXECUTE are refused in these modes (a query of
 * pgslab's whose error the backend sends); DEALLOCATE of one of the
 * client's protocol-level names, alone in its Query, runs as
 * PREP_SQL_DEALLOC_TEXT, whose PREPARE tag is dropped, so the client sees
 * PostgreSQL's own answer; the name goes when the DEALLOCATE tag does.
 */
#include "prepwire.h"
#include "pool.h"
#include "proxy.h"

#include <errno.h>
#include <string.h>

#include "client.h"
#include "log.h"
#include "server.h"
#include "vars.h"

#define REFUSE_SQL \
	"DO $pgslab$BEGIN RAISE EXCEPTION USING ERRCODE = 'feature_not_supported', " \
	"MESSAGE = 'SQL-level PREPARE, EXECUTE and DEALLOCATE are not supported in " \
	"transaction pooling mode', HINT = 'Use protocol-level prepared statements " \
	"(max_prepared_statements), or session pooling.'; END$pgslab$"

static enum stream_act bind_stream(struct client *c, struct server *s, const uint8_t *body,
		uint32_t len, uint32_t e1, uint32_t e2);
static enum stream_act plan_failed(struct client *c, struct server *s, int rc,
		const char *name);

static inline struct server *server_of_track(struct track *t)
{
	return (struct server *)(void *)((char *)t - offsetof(struct server, tr));
}

static int max_stmts(const struct proxy *p, const struct prep_server *ps)
{
	int m = p->cfg->s.max_prepared_statements;

	(void)ps;
	return m > 0 ? m : 1; /* 0 only if SET between the check and the plan */
}

/* The backend reads string literals with standard_conforming_strings off:
 * the same text then means something else, so it is another statement.
 * Asked for every named Bind: the variable's index is remembered (checked
 * with one strcmp, not looked up with a strcasecmp per tracked name) and
 * the value compared by hand ("off", any case). */
static uint8_t scs_off(struct proxy *p, const struct server *s)
{
	static const char scs[] = "standard_conforming_strings";
	static __thread int idx = -1;
	const struct vartab *t = &p->vars;
	const struct istr *v;

	if (idx < 0 || idx >= t->n || strcmp(t->names[idx], scs) != 0)
		idx = vars_index(t, scs);
	v = idx >= 0 && s->vars ? s->vars->v[idx] : NULL;
	return v != NULL && (v->s[0] | 0x20) == 'o' && (v->s[1] | 0x20) == 'f' &&
			(v->s[2] | 0x20) == 'f' && v->s[3] == 0;
}

/* max_prepared_statements = 0 turns the rewriting off at once, for every
 * client (as PgBouncer: names go to the backend as they come, so one
 * prepared before fails there); the maps stay, for a later SET back. */
bool prepwire_on(const struct client *c)
{
	const struct proxy *p = proxy_of(&c->st);

	return c->pool->mode != POOL_MODE_SESSION && p->cfg->s.max_prepared_statements > 0;
}

static bool server_on(const struct server *s)
{
	const struct proxy *p = s->pool->proxy;

	return s->pool->mode != POOL_MODE_SESSION &&
			(p->cfg->s.max_prepared_statements > 0 || s->pst.n > 0);
}

void prepwire_settle(struct track *t, bool answered)
{
	struct server *s = server_of_track(t);

	prep_server_settle(s->pool->proxy->prep, &s->pst, answered);
	if (s->pst.flags & PREP_SV_LOST)
		s->close_needed = true;
}

/* ---- client side ---- */

/* Does the name field starting at <p> (<n> bytes available) end there
 * empty (1), named (0), or is it not all here (-1)?  <*end> is past its NUL. */
static int name_state(const uint8_t *p, uint32_t n, uint32_t *end)
{
	const uint8_t *z = memchr(p, 0, n);

	if (z == NULL)
		return -1;
	*end = (uint32_t)(z - p) + 1;
	return z == p;
}

enum stream_act prepwire_client_header(struct client *c, struct server *s, uint8_t type,
		uint32_t len)
{
	struct proxy *p = proxy_of(&c->st);
	uint32_t avail, e1, e2;
	const uint8_t *m;
	int st = -1;

	if (s->tr.flags & (TRACK_F_SKIP | TRACK_F_DESYNC | TRACK_F_COPY_IN))
		return STREAM_FWD;
	m = stream_peek(&c->st, &avail);
	if (avail > len + 1)
		avail = len + 1;
	m += PROTO_HDR_LEN;
	avail -= PROTO_HDR_LEN;
	switch (type) {
	case 'Q': {
		enum prep_sql k;

		k = prep_sql_classify(m, avail); /* the client tested the first byte */

		if (k == PREP_SQL_OTHER)
			return STREAM_FWD;
		if (k == PREP_SQL_UNSURE && len > p->sctx.max_whole)
			return STREAM_FWD; /* a huge text split early: see README */
		return STREAM_WANT;
	}
	case 'P':
		st = name_state(m, avail, &e1);
		break;
	case 'B':
		st = name_state(m, avail, &e1);
		if (st >= 0)
			st = name_state(m + e1, avail - e1, &e2);
		break;
	case 'D':
	case 'C':
		if (avail < 1)
			break;
		if (m[0] != 'S')
			return STREAM_FWD;
		st = name_state(m + 1, avail - 1, &e1);
		break;
	default:
		return STREAM_FWD;
	}
	if (st == 1)
		return STREAM_FWD; /* the unnamed statement: untouched */
	if (type == 'B' && len > p->sctx.max_whole) {
		/* too large to hold: its names must be read from the bytes at hand */
		if (st < 0)
			return STREAM_MORE;
		return bind_stream(c, s, m, len, e1, e2);
	}
	if (len > p->sctx.max_whole) {
		proxy_of(&c->st)->prepwire_ops->client_close(c, SQLSTATE_PROGRAM_LIMIT,
				"named Parse message larger than 1 MiB");
		return STREAM_CLOSED;
	}
	return STREAM_WANT;
}

/* Every byte the client sent before this message has reached the server's
 * socket; else the client waits for its forwarding to drain. */
static bool in_order(struct client *c, struct server *s)
{
	if (!stream_in_flight(&c->st))
		return true;
	stream_flush(&s->st);
	if (!stream_in_flight(&c->st))
		return true;
	c->prep_wait = true;
	c->st.flags |= STREAM_F_DRAIN_CB;
	return false;
}

static size_t op_len(const struct prep_op *o, uint8_t type, const char *portal, uint32_t rest_len)
{
	const struct prep_pend *pd;
	size_t n = 0;
	uint32_t i;

	switch (o->kind) {
	case PREP_OP_CLOSE_EVICT:
		for (i = 0, pd = o->pend; i < o->count; i++, pd = pd->next)
			n += prep_close_len(pd->stmt);
		return n;
	case PREP_OP_PARSE_INJECT:
	case PREP_OP_PARSE:
		return prep_parse_len(o->stmt);
	case PREP_OP_REWRITE:
		return prep_rewrite_len(type, portal, o->stmt, rest_len);
	default: /* PARSE_HAVE, CLOSE_NONE: a Close of PGSLAB_0 */
		return prep_close_len(NULL);
	}
}

static size_t op_write(const struct prep_op *o, uint8_t type, const char *portal,
		const uint8_t *rest, uint32_t rest_len, uint8_t *buf)
{
	const struct prep_pend *pd;
	size_t n = 0;
	uint32_t i;

	switch (o->kind) {
	case PREP_OP_CLOSE_EVICT:
		for (i = 0, pd = o->pend; i < o->count; i++, pd = pd->next)
			n += prep_write_close(pd->stmt, buf + n);
		return n;
	case PREP_OP_PARSE_INJECT:
	case PREP_OP_PARSE:
		return prep_write_parse(o->stmt, buf);
	case PREP_OP_REWRITE:
		return prep_write_rewrite(type, portal, o->stmt, rest, rest_len, buf);
	default:
		return prep_write_close(NULL, buf);
	}
}

/* The plan could not be sent: the maps and the backend now disagree. */
static enum stream_act lost(struct server *s, const char *why)
{
	proxy_of(&s->st)->prepwire_ops->server_close(s, why); /* and its client */
	return STREAM_CLOSED;
}

/* Send plan <pl> in place of the client's message.  <rest> NULL (a Bind
 * too large to hold, from on_header): only the head of the rewritten Bind
 * is written; the caller forwards the client's own rest after it and
 * tracks the Bind (STREAM_FWD). */
static enum stream_act send_plan(struct client *c, struct server *s, const struct prep_plan *pl,
		uint8_t type, const char *portal, const uint8_t *rest, uint32_t rest_len)
{
	struct proxy *p = proxy_of(&c->st);
	bool streamed = type == 'B' && rest == NULL;
	size_t total = 0, off = 0;
	uint8_t *buf;
	uint32_t j;
	unsigned i;

	for (i = 0; i < pl->n; i++)
		total += op_len(&pl->op[i], type, portal, rest_len);
	if (streamed)
		total -= rest_len;
	buf = stream_write_reserve(&s->st, total);
	if (buf == NULL)
		return lost(s, "out of memory for a prepared-statement message");
	p->prepwire_ops->note_request(c, s, 0, 0);
	for (i = 0; i < pl->n; i++) {
		const struct prep_op *o = &pl->op[i];

		off += op_write(o, type, portal, rest, rest_len, buf + off);
		if (o->kind == PREP_OP_PARSE_INJECT || o->kind == PREP_OP_PARSE)
			c->pool->st.server_parse_count++;
		if (streamed && o->kind == PREP_OP_REWRITE) {
			off -= rest_len; /* the client's bytes follow */
			break;
		}
		for (j = 0; j < o->count; j++)
			if (track_req(&s->tr, p->arena, o->track ? o->track : type) < 0)
				return lost(s, "too many pipelined requests");
	}
	if (streamed) {
		stream_write_commit(&s->st, off);
	} else {
		/* a Sync or Flush always follows a named Parse/Bind/Describe/
		 * Close before the client waits; forwarding it flushes these too,
		 * in the same sendmsg */
		stream_write_queue(&s->st, off);
	}
	if (stream_failed(&c->st))
		return STREAM_CLOSED;
	return streamed ? STREAM_FWD : STREAM_DROP;
}

/* A named Bind too large to hold whole (over 1 MiB of parameters): its
 * head is rewritten here, from the bytes at hand, and the rest streams. */
static enum stream_act bind_stream(struct client *c, struct server *s, const uint8_t *body,
		uint32_t len, uint32_t e1, uint32_t e2)
{
	struct proxy *p = proxy_of(&c->st);
	const char *portal = (const char *)body, *name = (const char *)body + e1;
	struct prep_plan pl;
	enum stream_act a;
	int rc;

	if (!in_order(c, s))
		return STREAM_STOP;
	rc = prep_plan_use(p->prep, &c->pst, &s->pst, max_stmts(p, &s->pst), name,
			scs_off(p, s), &pl);
	if (rc < 0)
		return plan_failed(c, s, rc, name);
	c->pool->st.bind_count++;
	a = send_plan(c, s, &pl, 'B', portal, NULL, len - 4 - e1 - e2);
	if (a == STREAM_FWD)
		stream_cut(&c->st, PROTO_HDR_LEN + e1 + e2);
	return a;
}

/* A client's statement name for the log: at most the 63 bytes PostgreSQL
 * keeps, anything unprintable as '?'. */
static void log_name(const char *name, char out[PREP_NAME_MAX + 1])
{
	size_t i;

	for (i = 0; i < PREP_NAME_MAX && name[i]; i++)
		out[i] = (uint8_t)name[i] < 0x20 || (uint8_t)name[i] == 0x7f ? '?' : name[i];
	out[i] = 0;
}

/* Log <what> about statement <name> of <c>, with the client's prefix. */
static void log_stmt(struct client *c, const char *what, const char *name)
{
	const struct prepwire_ops *ops = proxy_of(&c->st)->prepwire_ops;
	char id[200], nm[PREP_NAME_MAX + 1];

	ops->client_logid(c, id, sizeof(id));
	log_name(name, nm);
	slog_warning(id, "prepared statement '%s' %s", nm, what);
}

static enum stream_act plan_failed(struct client *c, struct server *s, int rc, const char *name)
{
	const struct prepwire_ops *ops = proxy_of(&c->st)->prepwire_ops;

	if (rc == -EAGAIN) {
		/* wait for the answers owed from before the last Sync */
		c->prep_wait = true;
		s->st.flags |= STREAM_F_DRAIN_CB;
		return STREAM_STOP;
	}
	if (rc == -ENOENT) {
		/* a Bind or Describe of a name the client never prepared (or
		 * dropped with DEALLOCATE ALL / DISCARD ALL): PgBouncer's answer,
		 * never the name passed on to whatever the backend holds */
		log_stmt(c, "not found", name);
		ops->client_close(c, SQLSTATE_PROTOCOL_VIOLATION, "prepared statement did not exist");
		return STREAM_CLOSED;
	}
	ops->client_close(c, rc == -E2BIG ? SQLSTATE_PROGRAM_LIMIT : SQLSTATE_INTERNAL,
			rc == -E2BIG ? "prepared statement too large" :
				       "out of memory for prepared statements");
	return STREAM_CLOSED;
}

/* Send Query <sql> (<size> bytes with its NUL, under 64 KiB) in place of
 * the client's. */
static enum stream_act send_sql(struct client *c, struct server *s, const char *sql, size_t size)
{
	struct proxy *p = proxy_of(&c->st);
	size_t n = size + PROTO_HDR_LEN;
	uint8_t *buf = stream_write_reserve(&s->st, n);

	if (buf == NULL)
		return lost(s, "out of memory for a query of pgslab's");
	buf[0] = 'Q';
	buf[1] = 0;
	buf[2] = 0;
	buf[3] = (uint8_t)((n - 1) >> 8);
	buf[4] = (uint8_t)(n - 1);
	memcpy(buf + PROTO_HDR_LEN, sql, size);
	p->prepwire_ops->note_request(c, s, 0, 0);
	if (track_req(&s->tr, p->arena, 'Q') < 0)
		return lost(s, "too many pipelined requests");
	stream_write_commit(&s->st, n);
	return stream_failed(&c->st) ? STREAM_CLOSED : STREAM_DROP;
}

static enum stream_act refuse_sql(struct client *c, struct server *s)
{
	return send_sql(c, s, REFUSE_SQL, sizeof(REFUSE_SQL));
}

/* SQL DEALLOCATE <name> (prep_sql_dealloc_name) on <s>, whose earlier
 * bytes have all reached it.  The client's own name: PREP_SQL_DEALLOC_TEXT
 * in its place (the backend says DEALLOCATE, the name goes once it has).
 * A name it does not have: the text as it came, for PostgreSQL's own 26000
 * (or in a failed transaction its 25P02, and the name stays), but never
 * one of pgslab's PGSLAB_ names. */
static enum stream_act sql_dealloc(struct client *c, struct server *s, const char *name)
{
	struct proxy *p = proxy_of(&c->st);
	int rc;

	if (s->tr.n > 0)
		return plan_failed(c, s, -EAGAIN, name); /* its state after what is in flight */
	if (strncmp(name, PREP_NAME_PREFIX, sizeof(PREP_NAME_PREFIX) - 1) == 0)
		return refuse_sql(c, s);
	if (s->tr.txn == 'E')
		return STREAM_FWD;
	rc = prep_sql_dealloc(p->prep, &c->pst, &s->pst, name);
	if (rc < 0)
		return plan_failed(c, s, rc, name);
	if (rc == 0)
		return STREAM_FWD;
	return send_sql(c, s, PREP_SQL_DEALLOC_TEXT, sizeof(PREP_SQL_DEALLOC_TEXT));
}

enum stream_act prepwire_client_message(struct client *c, struct server *s, uint8_t type,
		const uint8_t *msg, uint32_t len)
{
	struct proxy *p = proxy_of(&c->st);
	const uint8_t *body = msg + PROTO_HDR_LEN, *key, *rest;
	uint32_t blen = len - PROTO_HDR_LEN, key_len, rest_len;
	const char *name, *portal = "";
	struct prep_plan pl;
	int rc;

	if (s->tr.flags & (TRACK_F_SKIP | TRACK_F_DESYNC | TRACK_F_COPY_IN))
		return STREAM_FWD;
	switch (type) {
	case 'Q':
		switch (prep_sql_classify(body, blen)) {
		case PREP_SQL_RESET:
			/* DEALLOCATE ALL / DISCARD ALL: the client's names and the
			 * backend's statements go; the tag confirms it (server side) */
			prep_client_clear(p->prep, &c->pst);
			prep_server_forget_all(p->prep, &s->pst);
			s->pst.flags |= PREP_SV_RESETTING;
			return STREAM_FWD;
		case PREP_SQL_PREPARE: {
			char nm[PREP_NAME_MAX + 1];

			if (!in_order(c, s))
				return STREAM_STOP;
			if (prep_sql_dealloc_name(body, blen, nm))
				return sql_dealloc(c, s, nm);
			return refuse_sql(c, s);
		}
		default:
			return STREAM_FWD;
		}
	case 'P':
		if (!prep_parse_body(body, blen, &name, &key, &key_len))
			goto bad;
		if (name[0] == 0)
			return STREAM_FWD;
		if (!in_order(c, s))
			return STREAM_STOP;
		rc = prep_plan_parse(p->prep, &c->pst, &s->pst, max_stmts(p, &s->pst), name, key,
				key_len, scs_off(p, s), s->tr.n == 0 && s->tr.txn != 'E', &pl);
		if (rc < 0)
			return plan_failed(c, s, rc, name);
		if (pl.dup) /* the backend answers 42P05; PgBouncer's words in the log */
			log_stmt(c, "was already prepared", name);
		c->pool->st.client_parse_count++;
		return send_plan(c, s, &pl, type, "", NULL, 0);
	case 'B':
		if (!prep_bind_body(body, blen, &portal, &name, &rest, &rest_len))
			goto bad;
		break;
	case 'D':
	case 'C':
		if (blen < 2 || body[0] != 'S' || body[blen - 1] != 0)
			goto bad_or_pass;
		name = (const char *)body + 1;
		rest = NULL;
		rest_len = 0;
		break;
	default:
		return STREAM_FWD;
	}
	if (name[0] == 0)
		return STREAM_FWD;
	if (!in_order(c, s))
		return STREAM_STOP;
	if (type == 'C')
		rc = prep_plan_close(p->prep, &c->pst, &s->pst, name, &pl);
	else
		rc = prep_plan_use(p->prep, &c->pst, &s->pst, max_stmts(p, &s->pst), name,
			scs_off(p, s), &pl);
	if (rc < 0)
		return plan_failed(c, s, rc, name);
	if (type == 'B')
		c->pool->st.bind_count++;
	return send_plan(c, s, &pl, type, portal, rest, rest_len);
bad_or_pass:
	if (blen >= 1 && body[0] != 'S')
		return STREAM_FWD;
bad:
	proxy_of(&c->st)->prepwire_ops->client_close(c, SQLSTATE_PROTOCOL_VIOLATION, "malformed extended-protocol message");
	return STREAM_CLOSED;
}

/* ---- server side ---- */

/* A CommandComplete's tag: DROP for the PREPARE tag of pgslab's own SQL
 * DEALLOCATE text, else FWD. */
static enum stream_act on_tag(struct server *s, const uint8_t *tag, uint32_t len)
{
	struct proxy *p = s->pool->proxy;

	switch (prep_tag_classify(tag, len)) {
	case PREP_SQL_RESET:
		prep_server_forget_all(p->prep, &s->pst);
		if (s->state == SV_RESET) {
			/* our own server_reset_query */
		} else if (s->pst.flags & PREP_SV_RESETTING) {
			s->pst.flags &= (uint8_t)~PREP_SV_RESETTING;
		} else {
			/* not seen coming (inside a longer text): its client's names
			 * go too, and the backend is not trusted again */
			if (s->client && s->state == SV_ACTIVE)
				prep_client_clear(p->prep, &s->client->pst);
			s->close_needed = true;
		}
		break;
	case PREP_SQL_PREPARE:
		if (prep_server_sql_pending(&s->pst) && !s->pst.ph->held) {
			s->pst.ph->held = true; /* PREP_SQL_DEALLOC_TEXT's first half */
			return STREAM_DROP;
		}
		/* an SQL-level statement we do not track: keep it off other clients */
		s->close_needed = true;
		break;
	case PREP_SQL_DEALLOC:
		prep_server_sql_end(p->prep, &s->pst, true);
		break;
	default:
		break;
	}
	return STREAM_FWD;
}

bool prepwire_server_header(struct server *s, uint8_t type, uint32_t len)
{
	uint32_t avail;
	uint8_t *m;

	if (type == 'C') {
		if (prep_server_sql_pending(&s->pst))
			return true; /* the tags of an SQL DEALLOCATE: one may be dropped */
		if (!server_on(s))
			return false;
		if (!prepwire_msg_maybe(&s->st))
			return false; /* the hot path: SELECT 1, INSERT 0 1, ... */
		m = stream_peek(&s->st, &avail);
		if (avail >= len + 1) {
			on_tag(s, m + PROTO_HDR_LEN, len - 4);
			return false;
		}
		return len <= 256;
	}
	switch (track_head(&s->tr)) {
	case 'p':
	case 'x':
		return true; /* swallowed whole: prepwire_server_message */
	case 'k':
		if (type == '3') {
			m = stream_peek(&s->st, &avail);
			m[0] = '1'; /* the client's Parse is answered */
		}
		return false;
	default:
		return false;
	}
}

enum stream_act prepwire_server_message(struct server *s, uint8_t type, const uint8_t *msg,
		uint32_t len)
{
	if (type == 'C') {
		enum stream_act a = on_tag(s, msg + PROTO_HDR_LEN, len - PROTO_HDR_LEN);

		track_reply(&s->tr, type, 0);
		return a;
	}
	track_reply(&s->tr, type, 0);
	return STREAM_DROP;
}

/* An SQL DEALLOCATE's Query ended without its DEALLOCATE tag (it failed). */
static __attribute__((noinline)) void sql_unseen(struct server *s)
{
	prep_server_sql_end(s->pool->proxy->prep, &s->pst, false);
	if (s->pst.flags & PREP_SV_LOST)
		s->close_needed = true;
}

void prepwire_ready(struct server *s)
{
	struct client *c = s->client;

	if (s->tr.n == 0 && (s->pst.flags & PREP_SV_RESETTING)) {
		s->pst.flags &= (uint8_t)~PREP_SV_RESETTING; /* it failed */
		s->close_needed = true;
	}
	if (c && c->prep_wait)
		s->st.flags |= STREAM_F_DRAIN_CB;
	if (__builtin_expect(prep_server_sql_pending(&s->pst), 0))
		sql_unseen(s); /* last: a tail call, so the usual path needs no frame */
}
