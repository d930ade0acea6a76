/* stream.c -- one socket's buffered, message-aware forwarding engine.
 *
 * See stream.h for the theory.  The rules that keep callbacks safe: errors
 * met inside an operation only mark the stream failed (on_error comes later,
 * from stream_ctx_run_failed at the top of the loop); owners never free a
 * stream's memory before the event-loop iteration ends; and after every
 * callback the engine checks that the stream is neither closed nor failed
 * before touching it again.
 */
#include "stream.h"

#include <errno.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"
#include "slab.h"
#include "tls.h"

static void stream_event(evutil_socket_t fd, short what, void *arg);
static bool stream_process(struct stream *s);
static inline void update_events(struct stream *s);

#define alive(s) (!stream_failed(s))

/* A stream that failed on framing or by its owner's choice can still take
 * a last message (the ErrorResponse that says why); one whose socket broke
 * cannot. */
static inline bool writable(const struct stream *s)
{
	return s->fd >= 0 && (!(s->flags & STREAM_F_FAILED) || s->fail_kind == STREAM_E_PROTO ||
				     s->fail_kind == STREAM_E_OWNER);
}

/* ---- I/O: the plain socket ---- */

/* The plain socket calls the kernel through syscall(): glibc's recv and
 * sendmsg are thread-cancellation points, which once a second thread
 * exists (the log writer) wrap every call in two more (about 35
 * instructions a call, 150 a transaction); pgslab never cancels a thread. */
static inline ssize_t plain_recv(struct stream *s, void *buf, size_t len)
{
	ssize_t n = syscall(SYS_recvfrom, s->fd, buf, len, 0, NULL, NULL);

	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -EAGAIN : -errno;
	return n;
}

static inline ssize_t plain_sendv(struct stream *s, const struct iovec *iov, int cnt,
		int fwd_idx)
{
	struct msghdr mh;
	ssize_t n;

	(void)fwd_idx;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = (struct iovec *)(uintptr_t)iov;
	mh.msg_iovlen = (size_t)cnt;
	n = syscall(SYS_sendmsg, s->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -EAGAIN : -errno;
	return n;
}

static const struct stream_io io_plain = { .recv = plain_recv, .sendv = plain_sendv };

/* ---- I/O: TLS (tls.h) ----
 *
 * Records are decrypted straight into the stream's buffer and encrypted
 * straight from it.  A WANT_WRITE from a read, or a WANT_READ from a write,
 * is remembered in a flag that adds the interest (update_events).  After a
 * write met WANT_*, OpenSSL holds a sealed record of the bytes offered and
 * the next write must offer the same bytes first: the out chain's head only
 * grows, and a retry inside the peer's forward range is marked
 * (STREAM_F_TLS_WFWD) so that it goes before any newly injected byte. */

static ssize_t tlsio_error(struct stream *s, ssize_t rc)
{
	if (rc == -EPROTO) {
		stream_fail(s, STREAM_E_IO, tls_conn_error(s->tls));
		return -ECANCELED;
	}
	return rc;
}

static ssize_t tlsio_recv(struct stream *s, void *buf, size_t len)
{
	size_t got = 0;

	s->flags &= (uint16_t)~(STREAM_F_TLS_RWW | STREAM_F_TLS_RDRY);
	while (got < len) {
		ssize_t n = tls_read(s->tls, (uint8_t *)buf + got, len - got);

		if (n > 0) {
			got += (size_t)n;
			if (tls_pending(s->tls))
				continue;
			/* OpenSSL is empty: another SSL_read would only meet
			 * EAGAIN on the socket (one wasted recv per event) */
			s->flags |= STREAM_F_TLS_RDRY;
			break;
		}
		if (n == TLS_WANT_READ)
			s->flags |= STREAM_F_TLS_RDRY; /* OpenSSL and the socket are empty */
		if (got > 0)
			break; /* any other condition comes back on the next call */
		if (n == TLS_EOF)
			return 0;
		if (n == TLS_WANT_READ)
			return -EAGAIN;
		if (n == TLS_WANT_WRITE) {
			s->flags |= STREAM_F_TLS_RWW;
			update_events(s);
			return -EAGAIN;
		}
		return tlsio_error(s, n);
	}
	return (ssize_t)got;
}

static ssize_t tlsio_sendv(struct stream *s, const struct iovec *iov, int cnt, int fwd_idx)
{
	size_t done = 0;
	int i;

	s->flags &= (uint16_t)~(STREAM_F_TLS_WWR | STREAM_F_TLS_WFWD);
	for (i = 0; i < cnt; i++) {
		const uint8_t *base = iov[i].iov_base;
		size_t off = 0;

		while (off < iov[i].iov_len) {
			ssize_t n = tls_write(s->tls, base + off, iov[i].iov_len - off);

			if (n > 0) {
				off += (size_t)n;
				done += (size_t)n;
				continue;
			}
			if (n == TLS_WANT_READ || n == TLS_WANT_WRITE) {
				if (n == TLS_WANT_READ)
					s->flags |= STREAM_F_TLS_WWR;
				if (i == fwd_idx)
					s->flags |= STREAM_F_TLS_WFWD;
				return done ? (ssize_t)done : -EAGAIN;
			}
			return tlsio_error(s, n);
		}
	}
	return (ssize_t)done;
}

static const struct stream_io io_tls = { .recv = tlsio_recv, .sendv = tlsio_sendv };

/* ---- buffers ---- */

static struct iobuf *iobuf_get(struct stream_ctx *ctx, size_t want)
{
	size_t cap;
	struct iobuf *b;

	b = slab_buf_alloc(ctx->arena, want + sizeof(struct iobuf), &cap);
	if (b == NULL)
		return NULL;
	b->cap = (uint32_t)(cap - sizeof(struct iobuf));
	b->head = b->parse = b->tail = 0;
	b->next = NULL;
	return b;
}

static void iobuf_put(struct stream_ctx *ctx, struct iobuf **bp)
{
	struct iobuf *b = *bp;

	if (b == NULL)
		return;
	slab_buf_free(ctx->arena, b, b->cap + sizeof(struct iobuf));
	*bp = NULL;
}

/* Has <s> parsed bytes its peer has not taken yet? */
static inline bool fwd_pending(const struct stream *s)
{
	return s->in != NULL && s->in->head < s->in->parse;
}

static void out_free_all(struct stream *s)
{
	while (s->out) {
		struct iobuf *b = s->out;

		s->out = b->next;
		iobuf_put(s->ctx, &b);
	}
	s->out_tail = NULL;
	s->out_bytes = 0;
}

size_t stream_pending(const struct stream *s)
{
	size_t n = s->out_bytes;

	if (s->peer && fwd_pending(s->peer))
		n += s->peer->in->parse - s->peer->in->head;
	return n;
}

int stream_peer_uid(const struct stream *s, uid_t *uid)
{
	struct ucred uc;
	socklen_t len = sizeof(uc);

	if (s->fd < 0 || getsockopt(s->fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) != 0 ||
			len != sizeof(uc))
		return -1;
	*uid = uc.uid;
	return 0;
}

bool stream_has_input(const struct stream *s)
{
	return s->in != NULL && s->in->tail > s->in->head;
}

static inline bool read_wanted(const struct stream *s)
{
	bool full = s->in && s->in->tail == s->in->cap && s->in->head == 0;

	return !(s->flags & STREAM_F_NOREAD) && !fwd_pending(s) && !full;
}

#define TLS_WAIT (STREAM_F_HANDSHAKE | STREAM_F_SSLRESP)

static void set_events(struct stream *s, short want)
{
	if (s->events)
		event_del(&s->ev);
	s->events = want;
	if (want) {
		event_assign(&s->ev, s->ctx->base, s->fd, want | EV_PERSIST, stream_event, s);
		event_add(&s->ev, NULL);
	}
}

static void update_events_slow(struct stream *s)
{
	short want = 0;

	if (!alive(s))
		return;
	if (s->flags & STREAM_F_CONNECTING) {
		want = EV_WRITE;
	} else if (s->flags & STREAM_F_HANDSHAKE) {
		want = (s->flags & STREAM_F_HS_WRITE) ? EV_WRITE : EV_READ;
	} else if (s->flags & STREAM_F_SSLRESP) {
		want = (short)(EV_READ | (s->out_bytes ? EV_WRITE : 0));
	} else {
		if (read_wanted(s) || (s->flags & STREAM_F_TLS_WWR))
			want |= EV_READ;
		if (stream_pending(s) || (s->flags & STREAM_F_TLS_RWW))
			want |= EV_WRITE;
	}
	if (want != s->events)
		set_events(s, want);
	/* decrypted bytes inside OpenSSL raise no socket event */
	if (s->tls && (want & EV_READ) && !(s->flags & (TLS_WAIT | STREAM_F_TLS_RDRY)) &&
			read_wanted(s) && tls_pending(s->tls))
		event_active(&s->ev, EV_READ, 1);
}

/* Register the interest <s> has now.  Inline for an established plain
 * stream, where it is a few loads and usually no change. */
static inline void update_events(struct stream *s)
{
	if (__builtin_expect(s->tls == NULL && !(s->flags & (STREAM_F_FAILED | STREAM_F_CONNECTING)),
			    1)) {
		short want = (short)((read_wanted(s) ? EV_READ : 0) |
				     (stream_pending(s) ? EV_WRITE : 0));

		if (want != s->events)
			set_events(s, want);
		return;
	}
	update_events_slow(s);
}

void stream_init(struct stream *s, struct stream_ctx *ctx, int fd, const struct stream_ops *ops,
		uint16_t flags)
{
	s->ops = ops;
	s->io = &io_plain;
	s->tls = NULL;
	s->ctx = ctx;
	s->peer = NULL;
	s->in = s->out = s->out_tail = NULL;
	s->fail_next = NULL;
	s->fail_reason = NULL;
	s->fail_errno = 0;
	s->out_bytes = 0;
	s->fail_kind = 0;
	s->pkt_remain = 0;
	s->fwd_cut = 0;
	s->fd = fd;
	s->flags = flags;
	s->events = 0;
	update_events(s);
}

int stream_connect(struct stream *s, struct stream_ctx *ctx, const struct sockaddr *sa,
		socklen_t salen, const struct stream_ops *ops)
{
	int fd, one = 1;

	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (sa->sa_family != AF_UNIX)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, sa, salen) < 0 && errno != EINPROGRESS) {
		int e = -errno;

		close(fd);
		return e;
	}
	stream_init(s, ctx, fd, ops, STREAM_F_CONNECTING);
	return 0;
}

/* Which side's TLS figures <s> counts in. */
static unsigned tls_side(const struct stream *s)
{
	return tls_conn_is_server(s->tls) ? STREAM_TLS_CLIENT : STREAM_TLS_SERVER;
}

void stream_close(struct stream *s)
{
	if (s->fd < 0)
		return;
	if (s->flags & STREAM_F_FAILED) { /* still on the failed list */
		struct stream **pp;

		for (pp = &s->ctx->failed; *pp; pp = &(*pp)->fail_next) {
			if (*pp == s) {
				*pp = s->fail_next;
				break;
			}
		}
		s->fail_next = NULL;
	}
	stream_unlink(s);
	if (s->events)
		event_del(&s->ev);
	s->events = 0;
	if (s->tls) {
		if (stream_is_tls(s))
			s->ctx->tls_open[tls_side(s)]--;
		/* close_notify only on a session that is fine and ends by choice */
		tls_conn_free(s->tls, stream_is_tls(s) && (s->fail_kind == STREAM_E_OWNER ||
							    s->fail_kind == STREAM_E_PROTO));
		s->tls = NULL;
		s->io = &io_plain;
	}
	close(s->fd);
	s->fd = -1;
	s->flags |= STREAM_F_FAILED; /* one flag test tells failed or closed */
	iobuf_put(s->ctx, &s->in);
	out_free_all(s);
}

void stream_fail(struct stream *s, enum stream_err kind, const char *reason)
{
	if (stream_failed(s))
		return;
	s->flags |= STREAM_F_FAILED;
	s->fail_kind = (uint8_t)kind;
	s->fail_reason = reason;
	if (s->events)
		event_del(&s->ev);
	s->events = 0;
	s->fail_next = s->ctx->failed;
	s->ctx->failed = s;
}

static void stream_fail_errno(struct stream *s, int err)
{
	bool reset = err == EPIPE || err == ECONNRESET;

	if (stream_failed(s))
		return;
	s->fail_errno = err;
	stream_fail(s, reset ? STREAM_E_EOF : STREAM_E_IO, reset ? "connection reset by peer" : NULL);
}

void stream_ctx_run_failed_slow(struct stream_ctx *ctx)
{
	struct stream *s;

	while ((s = ctx->failed) != NULL) {
		const char *why;

		ctx->failed = s->fail_next;
		s->fail_next = NULL;
		if (s->fd < 0)
			continue;
		why = s->fail_reason ? s->fail_reason :
				s->fail_errno ? strerror(s->fail_errno) : "connection failed";
		s->ops->on_error(s, (enum stream_err)s->fail_kind, why);
	}
}

void stream_link(struct stream *a, struct stream *b)
{
	a->peer = b;
	b->peer = a;
}

/* Source <src>'s forward range has all been taken: recycle its buffer. */
static void src_drained(struct stream *src)
{
	struct iobuf *b = src->in;

	if (b->head == b->tail) {
		if (src->flags & STREAM_F_STOPPED)
			b->head = b->parse = b->tail = 0;
		else
			iobuf_put(src->ctx, &src->in);
	}
}

/* Bytes parsed for a peer that is going away are dropped with the link.
 * If the peer's TLS already sealed some of them into a record it could not
 * send yet, that record would go out with nothing to account for it: the
 * peer fails instead. */
static void drop_forward(struct stream *s, struct stream *writer)
{
	if (fwd_pending(s)) {
		if (writer->flags & STREAM_F_TLS_WFWD)
			stream_fail(writer, STREAM_E_IO, "TLS record interrupted by unlink");
		s->in->head = s->in->parse;
		s->flags &= (uint16_t)~STREAM_F_DRAIN_CB;
		src_drained(s);
	}
}

void stream_unlink(struct stream *s)
{
	struct stream *p = s->peer;

	if (p == NULL)
		return;
	s->peer = NULL;
	p->peer = NULL;
	drop_forward(s, p);
	drop_forward(p, s);
	update_events(s);
	update_events(p);
}

void stream_pause_read(struct stream *s, bool pause)
{
	if (pause)
		s->flags |= STREAM_F_NOREAD;
	else
		s->flags &= (uint16_t)~STREAM_F_NOREAD;
	update_events(s);
}

void stream_end_startup(struct stream *s)
{
	s->flags &= (uint16_t)~STREAM_F_STARTUP;
}

#define FLUSH_IOV 16

bool stream_flush(struct stream *s)
{
	struct iovec iov[FLUSH_IOV + 1];
	struct stream *src = s->peer;
	struct iobuf *b = NULL;
	size_t n1 = 0;
	ssize_t n;
	int cnt = 0, fwd_idx = -1;
	bool fwd_only;

	if (!writable(s) || (s->flags & (STREAM_F_CONNECTING | STREAM_F_HANDSHAKE)))
		return false;
	/* a TLS record sealed from the forward range goes first (see io_tls) */
	fwd_only = (s->flags & STREAM_F_TLS_WFWD) && src && fwd_pending(src);
	if (!fwd_only) {
		for (b = s->out; b && cnt < FLUSH_IOV; b = b->next) {
			if (b->tail > b->head) {
				iov[cnt].iov_base = b->data + b->head;
				iov[cnt++].iov_len = b->tail - b->head;
			}
		}
	}
	/* forwarded bytes only once every injected byte ahead of them is in */
	if (b == NULL && src && fwd_pending(src) && !(s->flags & STREAM_F_SSLRESP)) {
		n1 = src->in->parse - src->in->head;
		fwd_idx = cnt;
		iov[cnt].iov_base = src->in->data + src->in->head;
		iov[cnt++].iov_len = n1;
	}
	if (cnt == 0)
		return true;
	/* the plain socket called directly: no indirect call on the hot path */
	n = s->io == &io_plain ? plain_sendv(s, iov, cnt, fwd_idx) :
			s->io->sendv(s, iov, cnt, fwd_idx);
	s->ctx->writes++;
	if (n < 0) {
		if (n == -ECANCELED)
			return false;
		if (n != -EAGAIN) {
			stream_fail_errno(s, (int)-n);
			return false;
		}
		n = 0;
	}
	s->ctx->bytes_out += (uint64_t)n;
	while (!fwd_only && s->out && n > 0) {
		size_t t = s->out->tail - s->out->head;

		if ((size_t)n < t)
			t = (size_t)n;
		s->out->head += (uint32_t)t;
		s->out_bytes -= (uint32_t)t;
		n -= (ssize_t)t;
		if (s->out->head == s->out->tail) {
			b = s->out;
			s->out = b->next;
			if (s->out == NULL)
				s->out_tail = NULL;
			iobuf_put(s->ctx, &b);
		}
	}
	if (n1 && n > 0) {
		src->in->head += (uint32_t)n;
		if (src->in->head == src->in->parse) {
			src_drained(src);
			update_events(src);
			if (src->flags & STREAM_F_DRAIN_CB) {
				src->flags &= (uint16_t)~STREAM_F_DRAIN_CB;
				src->ops->on_drained(src);
			}
		} else {
			update_events(src);
		}
	}
	if (!alive(s))
		return false;
	update_events(s);
	return stream_pending(s) == 0;
}

uint8_t *stream_write_reserve(struct stream *s, size_t len)
{
	struct iobuf *b = s->out_tail;
	size_t dflt = s->ctx->buf_size - sizeof(struct iobuf);

	if (!writable(s) || s->out_bytes + len > STREAM_OUT_MAX)
		return NULL;
	if (b && b->cap - b->tail >= len)
		return b->data + b->tail;
	/* a message never spans buffers: start a new one in the chain */
	b = iobuf_get(s->ctx, len > dflt ? len : dflt);
	if (b == NULL)
		return NULL;
	if (s->out_tail)
		s->out_tail->next = b;
	else
		s->out = b;
	s->out_tail = b;
	return b->data;
}

void stream_write_queue(struct stream *s, size_t len)
{
	s->out_tail->tail += (uint32_t)len;
	s->out_bytes += (uint32_t)len;
}

void stream_write_commit(struct stream *s, size_t len)
{
	stream_write_queue(s, len);
	stream_flush(s);
}

int stream_write(struct stream *s, const void *data, size_t len)
{
	uint8_t *p;

	if (!writable(s))
		return -EPIPE;
	p = stream_write_reserve(s, len);
	if (p == NULL)
		return -ENOMEM;
	memcpy(p, data, len);
	stream_write_commit(s, len);
	return 0;
}

/* Make room for a whole message of <total> bytes at the parse point. */
static bool make_room(struct stream *s, uint64_t total)
{
	struct iobuf *b = s->in, *nb;

	if (total > s->ctx->max_whole) {
		stream_fail(s, STREAM_E_PROTO, "message too large to process");
		return false;
	}
	if (b->cap - b->parse >= total)
		return true;
	if (b->head == b->parse && b->head > 0) {
		memmove(b->data, b->data + b->head, b->tail - b->head);
		b->tail -= b->head;
		b->parse = b->head = 0;
		if (b->cap >= total)
			return true;
	}
	nb = iobuf_get(s->ctx, (b->parse - b->head) + total);
	if (nb == NULL) {
		stream_fail(s, STREAM_E_NOMEM, "out of memory for message buffer");
		return false;
	}
	memcpy(nb->data, b->data + b->head, b->tail - b->head);
	nb->parse = b->parse - b->head;
	nb->tail = b->tail - b->head;
	iobuf_put(s->ctx, &s->in);
	s->in = nb;
	return true;
}

/* Parse what has arrived; forward, drop or stop.  Returns false once the
 * stream has been closed by a callback. */
static bool stream_process(struct stream *s)
{
	struct iobuf *b;

	while (alive(s) && !(s->flags & (STREAM_F_STOPPED | TLS_WAIT)) && (b = s->in) &&
			b->parse < b->tail) {
		uint32_t avail = b->tail - b->parse, hdr, len;
		uint8_t type;
		uint64_t total;
		enum stream_act act;

		if (s->pkt_remain) {
			uint32_t take = s->pkt_remain < avail ? (uint32_t)s->pkt_remain : avail;

			b->parse += take;
			s->pkt_remain -= take;
			if (s->peer == NULL)
				b->head = b->parse; /* forwarded to nobody: gone now, never
						     * to a peer linked later */
			continue;
		}
		hdr = (s->flags & STREAM_F_STARTUP) ? 4 : PROTO_HDR_LEN;
		if (avail < hdr)
			break;
		type = hdr == 4 ? 0 : b->data[b->parse];
		len = proto_peek_u32(b->data + b->parse + hdr - 4);
		total = (uint64_t)len + hdr - 4;
		if (len < 4 || len > s->ctx->max_packet || (hdr == 4 && len < 8)) {
			stream_fail(s, STREAM_E_PROTO, "invalid message length");
			return false;
		}
		act = s->ops->on_header(s, type, len);
		if (!alive(s))
			return false;
		if (act == STREAM_MORE) {
			if (avail < total && avail < b->cap)
				break; /* on_header again after the next read */
			stream_fail(s, STREAM_E_PROTO, "message header fields too long");
			return false;
		}
		if (act == STREAM_WANT) {
			if (avail < total) {
				if (!make_room(s, total))
					return false;
				break;
			}
			act = s->ops->on_message(s, type, b->data + b->parse, (uint32_t)total);
			if (!alive(s))
				return false;
			b = s->in;
		}
		switch (act) {
		case STREAM_FWD:
			s->pkt_remain = total - s->fwd_cut; /* see stream_cut() */
			s->fwd_cut = 0;
			break;
		case STREAM_DROP:
			if (avail >= total) {
				memmove(b->data + b->parse, b->data + b->parse + total,
						avail - total);
				b->tail -= (uint32_t)total;
			}
			break;
		case STREAM_STOP:
			s->flags |= STREAM_F_STOPPED;
			break;
		default:
			return alive(s);
		}
	}
	if (!alive(s))
		return false;
	b = s->in;
	if (b && fwd_pending(s)) {
		if (s->peer) {
			stream_flush(s->peer);
			if (!alive(s))
				return false;
		} else {
			/* nobody to forward to: the owner chose to discard */
			b->head = b->parse;
			src_drained(s);
			if (s->flags & STREAM_F_DRAIN_CB) {
				s->flags &= (uint16_t)~STREAM_F_DRAIN_CB;
				s->ops->on_drained(s);
				if (!alive(s))
					return false;
			}
		}
	} else if (b && b->head == b->tail) {
		src_drained(s);
	}
	update_events(s);
	return true;
}

void stream_cut(struct stream *s, uint32_t n)
{
	struct iobuf *b = s->in;

	memmove(b->data + b->parse, b->data + b->parse + n, b->tail - b->parse - n);
	b->tail -= n;
	s->fwd_cut = n;
}

void stream_resume(struct stream *s)
{
	if (!alive(s))
		return;
	s->flags &= (uint16_t)~(STREAM_F_STOPPED | STREAM_F_NOREAD);
	stream_process(s);
}

/* Inlined into its callers: stream_event's hot path is one of them. */
static inline __attribute__((always_inline)) void stream_read(struct stream *s)
{
	struct iobuf *b = s->in;
	ssize_t n;

	if (b == NULL) {
		b = s->in = iobuf_get(s->ctx, s->ctx->buf_size - sizeof(struct iobuf));
		if (b == NULL) {
			stream_fail(s, STREAM_E_NOMEM, "out of memory for I/O buffer");
			return;
		}
	} else if (b->tail == b->cap && b->head > 0) {
		memmove(b->data, b->data + b->head, b->tail - b->head);
		b->parse -= b->head;
		b->tail -= b->head;
		b->head = 0;
	}
	if (b->tail == b->cap) {
		update_events(s);
		return;
	}
	n = s->io == &io_plain ? plain_recv(s, b->data + b->tail, b->cap - b->tail) :
			s->io->recv(s, b->data + b->tail, b->cap - b->tail);
	s->ctx->reads++;
	if (n <= 0) {
		if (n == -EAGAIN || n == -ECANCELED)
			return;
		if (b->head == b->tail)
			iobuf_put(s->ctx, &s->in);
		if (n == 0)
			stream_fail(s, STREAM_E_EOF, "closed connection");
		else
			stream_fail_errno(s, (int)-n);
		return;
	}
	s->ctx->bytes_in += (uint64_t)n;
	b->tail += (uint32_t)n;
	stream_process(s);
}

/* ---- TLS negotiation ---- */

bool stream_is_tls(const struct stream *s)
{
	return s->tls != NULL && !(s->flags & TLS_WAIT);
}

void stream_tls_info(const struct stream *s, char *buf, size_t len)
{
	if (stream_is_tls(s))
		tls_conn_info(s->tls, buf, len);
	else if (len)
		buf[0] = 0;
}

int stream_tls_peer_cn(const struct stream *s, char *buf, size_t len)
{
	if (!stream_is_tls(s)) {
		if (len)
			buf[0] = 0;
		return -ENOTCONN;
	}
	return tls_conn_peer_cn(s->tls, buf, len);
}

/* Drive the handshake one step; on completion resume the stream. */
static void stream_handshake(struct stream *s)
{
	int rc = tls_handshake(s->tls);

	if (rc == TLS_WANT_READ || rc == TLS_WANT_WRITE) {
		if (rc == TLS_WANT_WRITE)
			s->flags |= STREAM_F_HS_WRITE;
		else
			s->flags &= (uint16_t)~STREAM_F_HS_WRITE;
		update_events(s);
		return;
	}
	if (rc < 0) {
		s->ctx->tls_handshake_fail[tls_side(s)]++;
		stream_fail(s, STREAM_E_IO, tls_conn_error(s->tls));
		return;
	}
	s->flags &= (uint16_t)~(STREAM_F_HANDSHAKE | STREAM_F_HS_WRITE);
	s->ctx->tls_handshakes[tls_side(s)]++;
	s->ctx->tls_open[tls_side(s)]++;
	if ((s->flags & STREAM_F_DIRECT) && !tls_conn_alpn_postgresql(s->tls)) {
		stream_fail(s, STREAM_E_IO, "direct TLS connection without ALPN \"postgresql\"");
		return;
	}
	update_events(s);
	if (s->ops->on_tls)
		s->ops->on_tls(s, true);
	/* a client's first message may already sit decrypted inside OpenSSL */
	if (alive(s) && read_wanted(s) && tls_pending(s->tls))
		stream_read(s);
}

static int start_handshake(struct stream *s, struct tls_ctx *ctx, uint16_t extra)
{
	if (s->out_bytes)
		return -EAGAIN; /* the 'S' must be on the wire before the handshake */
	s->tls = tls_conn_new(ctx, s->fd, NULL, NULL);
	if (s->tls == NULL)
		return -ENOMEM;
	s->io = &io_tls;
	s->flags |= (uint16_t)(STREAM_F_HANDSHAKE | extra);
	s->flags &= (uint16_t)~STREAM_F_HS_WRITE;
	update_events(s);
	return 0;
}

int stream_tls_accept(struct stream *s, struct tls_ctx *ctx)
{
	return start_handshake(s, ctx, 0);
}

int stream_tls_request(struct stream *s, struct tls_ctx *ctx, const char *host,
		bool verify_host)
{
	s->tls = tls_conn_new(ctx, s->fd, verify_host ? host : NULL, host);
	if (s->tls == NULL)
		return -ENOMEM;
	s->flags |= STREAM_F_SSLRESP;
	update_events(s);
	return 0;
}

/* The server's one-byte answer to our SSLRequest; nothing more is read in
 * plain (bytes after an 'S' are TLS or garbage: CVE-2021-23214). */
static void read_sslresp(struct stream *s)
{
	uint8_t c;
	ssize_t n = recv(s->fd, &c, 1, 0);

	if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			stream_fail_errno(s, errno);
		return;
	}
	s->ctx->reads++;
	if (n == 0) {
		stream_fail(s, STREAM_E_EOF, "server closed the connection after SSLRequest");
		return;
	}
	s->flags &= (uint16_t)~STREAM_F_SSLRESP;
	if (c == 'S') {
		s->io = &io_tls;
		s->flags |= STREAM_F_HANDSHAKE;
		stream_handshake(s);
		return;
	}
	tls_conn_free(s->tls, false);
	s->tls = NULL;
	if (c != 'N') {
		stream_fail(s, STREAM_E_IO, "server sent an invalid answer to SSLRequest");
		return;
	}
	update_events(s);
	if (s->ops->on_tls)
		s->ops->on_tls(s, false);
}

void stream_tls_sniff(struct stream *s)
{
	if (s->ctx->tls_accept)
		s->flags |= STREAM_F_SNIFF;
}

/* The first readable bytes of a client: a TLS handshake record (0x16)
 * where a startup packet's length would be means direct TLS. */
static void sniff(struct stream *s)
{
	uint8_t c;
	ssize_t n = recv(s->fd, &c, 1, MSG_PEEK);

	s->flags &= (uint16_t)~STREAM_F_SNIFF;
	if (n == 1 && c == 0x16 && s->ctx->tls_accept) {
		if (start_handshake(s, s->ctx->tls_accept, STREAM_F_DIRECT) < 0)
			stream_fail(s, STREAM_E_NOMEM, "out of memory for TLS");
		else
			stream_handshake(s);
		return;
	}
	stream_read(s);
}

__thread int64_t stream_event_now_us = -1;

int64_t stream_now_slow(void)
{
	struct timespec ts;
	int64_t t;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	t = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
	if (stream_event_now_us == 0)
		stream_event_now_us = t;
	return t;
}

static void stream_event(evutil_socket_t fd, short what, void *arg)
{
	struct stream *s = arg;
	struct stream_ctx *ctx = s->ctx;

	(void)fd;
	stream_event_now_us = 0;
	if (!(s->flags & (STREAM_F_CONNECTING | TLS_WAIT | STREAM_F_TLS_RWW | STREAM_F_TLS_WWR |
			STREAM_F_SNIFF))) { /* the hot path */
		if (what & EV_WRITE)
			stream_flush(s);
		if ((what & EV_READ) && alive(s) && read_wanted(s))
			stream_read(s);
	} else if (s->flags & STREAM_F_CONNECTING) {
		int err = 0;
		socklen_t l = sizeof(err);

		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
			err = errno;
		if (err) {
			stream_fail_errno(s, err);
		} else {
			s->flags &= (uint16_t)~STREAM_F_CONNECTING;
			update_events(s);
			s->ops->on_drained(s);
		}
	} else if (s->flags & STREAM_F_HANDSHAKE) {
		stream_handshake(s);
	} else if (s->flags & STREAM_F_SSLRESP) {
		if (what & EV_WRITE)
			stream_flush(s);
		if ((what & EV_READ) && alive(s))
			read_sslresp(s);
	} else {
		if ((what & EV_WRITE) && (s->flags & STREAM_F_TLS_RWW) && read_wanted(s))
			stream_read(s);
		if ((what & EV_WRITE) && alive(s))
			stream_flush(s);
		if ((what & EV_READ) && alive(s) && (s->flags & STREAM_F_TLS_WWR))
			stream_flush(s);
		if ((what & EV_READ) && alive(s) && (s->flags & STREAM_F_SNIFF))
			sniff(s);
		else if ((what & EV_READ) && alive(s) && read_wanted(s))
			stream_read(s);
	}
	stream_ctx_run_failed(ctx);
	stream_event_now_us = -1;
}
