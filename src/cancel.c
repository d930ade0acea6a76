/* cancel.c -- cancel keys minted by pgslab, and forwarding of CancelRequests.
 *
 * Every logged-in client gets a random (pid, key) pair of its own; the pair
 * maps to the client through an open hash table (chained through
 * client->hnext, buckets from slab memory, doubled at load factor 1), so a
 * cancel is found in O(1) rather than PgBouncer's scan of every client.  A
 * cancel for a client that is running a query on a server goes to that
 * server, with the server's own key, over a fresh connection; any other
 * cancel is dropped, as PostgreSQL does for unknown keys.  The pid names
 * the owning worker (cancel.h).
 *
 * A flood costs PostgreSQL little: an unknown key, or a client with nothing
 * running, opens no connection at all; at most one forward per backend is in
 * flight (repeats while it connects are dropped: the one on its way cancels
 * the same query), and at most CANCEL_MAX_INFLIGHT in all, so a flood of
 * valid keys cannot make PostgreSQL fork backends without bound.
 */
#include "cancel.h"

#include "client.h"
#include "db.h"
#include "proxy.h"

#include <string.h>

#include "log.h"
#include "proto.h"
#include "server.h"
#include "slab.h"
#include "track.h"

static inline uint32_t key_hash(uint32_t pid, uint32_t key)
{
	uint64_t x = ((uint64_t)pid << 32 | key) * 0x9e3779b97f4a7c15ull;

	return (uint32_t)(x >> 32);
}

static struct client *lookup(struct proxy *p, uint32_t pid, uint32_t key)
{
	struct client *c;

	if (p->keytab == NULL)
		return NULL;
	for (c = p->keytab[key_hash(pid, key) & (p->keytab_size - 1)]; c; c = c->hnext)
		if (c->cancel_pid == pid && c->cancel_key == key)
			return c;
	return NULL;
}

static bool grow(struct proxy *p)
{
	uint32_t n = p->keytab_size ? p->keytab_size * 2 : 256, i;
	size_t cap;
	struct client **t = slab_buf_alloc(p->arena, n * sizeof(*t), &cap);

	if (t == NULL)
		return false;
	memset(t, 0, n * sizeof(*t));
	for (i = 0; i < p->keytab_size; i++) {
		struct client *c = p->keytab[i], *next;

		for (; c; c = next) {
			uint32_t b = key_hash(c->cancel_pid, c->cancel_key) & (n - 1);

			next = c->hnext;
			c->hnext = t[b];
			t[b] = c;
		}
	}
	if (p->keytab)
		slab_buf_free(p->arena, p->keytab, p->keytab_cap);
	p->keytab = t;
	p->keytab_cap = cap;
	p->keytab_size = n;
	return true;
}

void cancel_register(struct proxy *p, struct client *c)
{
	uint32_t b;

	if (p->n_keyed >= p->keytab_size && !grow(p) && p->keytab == NULL)
		return;
	do {
		c->cancel_pid = cancel_pid_make(proxy_random(p), p->worker);
		c->cancel_key = proxy_random(p);
		if (p->cfg->s.peer_id > 0) {
			c->cancel_pid = cancel_pid_set_peer(c->cancel_pid, (unsigned)p->cfg->s.peer_id);
			c->cancel_key |= CANCEL_TTL_MASK;
		}
	} while (c->cancel_pid == 0 || lookup(p, c->cancel_pid, c->cancel_key));
	b = key_hash(c->cancel_pid, c->cancel_key) & (p->keytab_size - 1);
	c->hnext = p->keytab[b];
	p->keytab[b] = c;
	p->n_keyed++;
}

void cancel_unregister(struct proxy *p, struct client *c)
{
	struct client **pp;

	if (c->cancel_pid == 0 || p->keytab == NULL)
		return;
	for (pp = &p->keytab[key_hash(c->cancel_pid, c->cancel_key) & (p->keytab_size - 1)]; *pp;
			pp = &(*pp)->hnext) {
		if (*pp == c) {
			*pp = c->hnext;
			p->n_keyed--;
			break;
		}
	}
	c->cancel_pid = 0;
	c->hnext = NULL;
}

/* ---- the forwarding connection ---- */

static inline struct cancel_req *req_of(struct stream *s)
{
	return (struct cancel_req *)(void *)((char *)s - offsetof(struct cancel_req, st));
}

static void req_close(struct cancel_req *r)
{
	struct proxy *p = proxy_of(&r->st);

	p->n_cancels--;
	dns_cancel(&r->dns);
	stream_close(&r->st);
	list_del(&r->node);
	list_append(&p->dead_cancels, &r->node);
}

static enum stream_act req_on_header(struct stream *s, uint8_t type, uint32_t len)
{
	(void)type;
	(void)len;
	req_close(req_of(s));
	return STREAM_CLOSED;
}

static enum stream_act req_on_message(struct stream *s, uint8_t type, const uint8_t *m,
		uint32_t len)
{
	(void)s;
	(void)type;
	(void)m;
	(void)len;
	return STREAM_DROP;
}

/* Connected: send the server's own key, then wait for the server to hang
 * up (it has signalled the backend by then), so the request counts as in
 * flight until PostgreSQL is done with it; a hung server meets
 * cancel_wait_timeout (cancel_expire). */
static void req_on_drained(struct stream *s)
{
	struct cancel_req *r = req_of(s);
	uint8_t buf[16];
	struct pkt k;

	pkt_init(&k, buf, sizeof(buf));
	proto_write_cancel(&k, r->pid, r->key);
	if (stream_write(s, buf, k.len) < 0)
		req_close(r);
}

static void req_on_error(struct stream *s, enum stream_err kind, const char *reason)
{
	if (kind != STREAM_E_EOF)
		log_warning("cancel request forwarding failed: %s", reason);
	req_close(req_of(s));
}

static const struct stream_ops req_ops = {
	.on_header = req_on_header,
	.on_message = req_on_message,
	.on_drained = req_on_drained,
	.on_error = req_on_error,
};

/* Is a cancel for backend (<pid>, <key>) on its way?  The list holds at
 * most CANCEL_MAX_INFLIGHT requests. */
static bool inflight(struct proxy *p, uint32_t pid, uint32_t key)
{
	struct list *it;

	list_for_each(it, &p->cancels) {
		struct cancel_req *r = list_entry(it, struct cancel_req, node);

		if (r->pid == pid && r->key == key)
			return true;
	}
	return false;
}

/* A forwarding request for (<pid>, <key>), listed (not yet connected), or
 * NULL when too many are in flight or memory is short. */
static struct cancel_req *req_new(struct proxy *p, uint32_t pid, uint32_t key)
{
	struct cancel_req *r;

	if (p->n_cancels >= CANCEL_MAX_INFLIGHT || inflight(p, pid, key)) {
		p->cancels_dropped++;
		return NULL;
	}
	r = slab_alloc(p->cancel_cache);
	if (r == NULL)
		return NULL;
	memset(r, 0, sizeof(*r));
	r->st.ctx = &p->sctx; /* no socket yet: req_close() works on the context alone */
	r->st.fd = -1;
	r->start_us = proxy_now_us();
	r->pid = pid;
	r->key = key;
	list_append(&p->cancels, &r->node);
	p->n_cancels++;
	p->cancels_forwarded++;
	return r;
}

static void req_connect(struct cancel_req *r, const struct sockaddr *sa, socklen_t len)
{
	if (stream_connect(&r->st, r->st.ctx, sa, len, &req_ops) < 0) {
		log_warning("cancel request forwarding failed: cannot connect");
		req_close(r);
	}
}

static void req_dns_done(struct dns_wait *w, const struct sockaddr *sa, socklen_t len)
{
	struct cancel_req *r = (struct cancel_req *)(void *)((char *)w -
			offsetof(struct cancel_req, dns));
	struct proxy *p = proxy_of(&r->st);

	if (sa == NULL) {
		log_warning("cancel request forwarding failed: peer DNS lookup failed");
		req_close(r);
	} else {
		req_connect(r, sa, len);
	}
	proxy_settle(p);
}

int cancel_peer_count(struct proxy *p, unsigned peer)
{
	struct list *it;
	int n = 0;

	list_for_each(it, &p->cancels)
		if (list_entry(it, struct cancel_req, node)->peer == peer)
			n++;
	return n;
}

/* A request whose key another peer issued goes to that peer, one hop
 * fewer left (PgBouncer's count in the key's low bits). */
static void forward_to_peer(struct proxy *p, unsigned peer, uint32_t pid, uint32_t key)
{
	const struct config_peer *pe = config_find_peer(p->cfg, (int)peer);
	struct sockaddr_storage ss;
	socklen_t sl = 0;
	struct cancel_req *r;
	int rc, limit;

	if ((key & CANCEL_TTL_MASK) == 0) {
		log_warning("failed to forward cancel request because its TTL was exhausted");
		p->cancels_dropped++;
		return;
	}
	if (pe == NULL) {
		log_warning("could not find peer %u to forward a cancel request to", peer);
		p->cancels_dropped++;
		return;
	}
	limit = pe->pool_size >= 0 ? pe->pool_size : p->cfg->s.default_pool_size;
	if (limit > 0 && cancel_peer_count(p, peer) >= limit) {
		p->cancels_dropped++;
		return;
	}
	r = req_new(p, pid, key - 1);
	if (r == NULL)
		return;
	r->peer = peer;
	log_debug("forwarding cancellation request to peer %u", peer);
	r->dns.done = req_dns_done;
	rc = dns_resolve(p->dns, pe->host, pe->port, &r->dns, &ss, &sl);
	if (rc == 0)
		req_connect(r, (const struct sockaddr *)&ss, sl);
	else if (rc < 0) {
		log_warning("cancel request forwarding failed: peer %u's host \"%s\" does not resolve",
				peer, pe->host);
		req_close(r);
	}
}

void cancel_forward(struct proxy *p, uint32_t pid, uint32_t key)
{
	struct client *c;
	struct server *s;
	struct cancel_req *r;

	if (p->cfg->s.peer_id > 0) {
		unsigned peer = cancel_pid_peer(pid);

		if (peer != (unsigned)p->cfg->s.peer_id) {
			forward_to_peer(p, peer, pid, key);
			return;
		}
		key |= CANCEL_TTL_MASK; /* our keys are stored as issued */
	}
	if (cancel_pid_worker(pid) != p->worker)
		return; /* another worker's client: none today */
	c = lookup(p, pid, key);

	if (c == NULL || (s = c->server) == NULL || s->state != SV_ACTIVE || !track_busy(&s->tr))
		return; /* nothing running: nothing to cancel */
	r = req_new(p, s->backend_pid, s->backend_key);
	if (r != NULL)
		req_connect(r, (const struct sockaddr *)&s->addr, s->addrlen);
}

void cancel_expire(struct proxy *p, int64_t now, int64_t timeout_us)
{
	struct list *it, *tmp;

	if (timeout_us <= 0)
		return;
	list_for_each_safe(it, tmp, &p->cancels) {
		struct cancel_req *r = list_entry(it, struct cancel_req, node);

		if (now - r->start_us > timeout_us) {
			log_warning("cancel request forwarding failed: no connection after %lld ms",
					(long long)(timeout_us / 1000));
			req_close(r);
		}
	}
}

void cancel_destroy(struct proxy *p)
{
	if (p->keytab)
		slab_buf_free(p->arena, p->keytab, p->keytab_cap);
	p->keytab = NULL;
	p->keytab_size = p->n_keyed = 0;
}
