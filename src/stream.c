/* stream.c -- one socket's buffered, message-aware forwarding engine.
 *
 * See stream.h for the theory.  The rule that keeps callbacks safe: owners
 * never free a stream's memory inside a callback, they only stream_close()
 * it (fd becomes -1) and free it after the event-loop iteration; so after
 * every callback the engine checks fd >= 0 before touching the stream again.
 */
#include "stream.h"

#include <errno.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "proto.h"
#include "slab.h"

static void stream_event(evutil_socket_t fd, short what, void *arg);
static bool stream_process(struct stream *s);

#define alive(s) ((s)->fd >= 0)

static struct iobuf *iobuf_get(struct stream_ctx *ctx, size_t want)
{
	size_t cap;
	struct iobuf *b;

	b = slab_buf_alloc(ctx->arena, want + sizeof(struct iobuf), &cap);
	if (b == NULL)
		return NULL;
	b->cap = (uint32_t)(cap - sizeof(struct iobuf));
	b->head = b->parse = b->tail = 0;
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

size_t stream_pending(const struct stream *s)
{
	size_t n = 0;

	if (s->out)
		n += s->out->tail - s->out->head;
	if (s->peer && fwd_pending(s->peer))
		n += s->peer->in->parse - s->peer->in->head;
	return n;
}

bool stream_has_input(const struct stream *s)
{
	return s->in != NULL && s->in->tail > s->in->head;
}

static void update_events(struct stream *s)
{
	short want = 0;

	if (!alive(s))
		return;
	if (s->flags & STREAM_F_CONNECTING) {
		want = EV_WRITE;
	} else {
		bool full = s->in && s->in->tail == s->in->cap && s->in->head == 0;

		if (!(s->flags & STREAM_F_NOREAD) && !fwd_pending(s) && !full)
			want |= EV_READ;
		if (stream_pending(s))
			want |= EV_WRITE;
	}
	if (want == s->events)
		return;
	if (s->events)
		event_del(&s->ev);
	s->events = want;
	if (want) {
		event_assign(&s->ev, s->ctx->base, s->fd, want | EV_PERSIST, stream_event, s);
		event_add(&s->ev, NULL);
	}
}

void stream_init(struct stream *s, struct stream_ctx *ctx, int fd, const struct stream_ops *ops,
		uint16_t flags)
{
	s->ops = ops;
	s->ctx = ctx;
	s->peer = NULL;
	s->in = s->out = NULL;
	s->pkt_remain = 0;
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

void stream_close(struct stream *s)
{
	if (!alive(s))
		return;
	stream_unlink(s);
	if (s->events)
		event_del(&s->ev);
	s->events = 0;
	close(s->fd);
	s->fd = -1;
	iobuf_put(s->ctx, &s->in);
	iobuf_put(s->ctx, &s->out);
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

/* Bytes parsed for a peer that is going away are dropped with the link. */
static void drop_forward(struct stream *s)
{
	if (fwd_pending(s)) {
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
	drop_forward(s);
	drop_forward(p);
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

bool stream_flush(struct stream *s)
{
	struct iovec iov[2];
	struct msghdr mh;
	struct stream *src = s->peer;
	size_t n0 = 0, n1 = 0;
	ssize_t n;
	int cnt = 0;

	if (!alive(s) || (s->flags & STREAM_F_CONNECTING))
		return false;
	if (s->out && s->out->tail > s->out->head) {
		n0 = s->out->tail - s->out->head;
		iov[cnt].iov_base = s->out->data + s->out->head;
		iov[cnt++].iov_len = n0;
	}
	if (src && fwd_pending(src)) {
		n1 = src->in->parse - src->in->head;
		iov[cnt].iov_base = src->in->data + src->in->head;
		iov[cnt++].iov_len = n1;
	}
	if (cnt == 0)
		return true;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = iov;
	mh.msg_iovlen = (size_t)cnt;
	n = sendmsg(s->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	s->ctx->writes++;
	if (n < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			s->ops->on_error(s, errno == EPIPE || errno == ECONNRESET ?
					"connection reset by peer" : strerror(errno));
			return false;
		}
		n = 0;
	}
	s->ctx->bytes_out += (uint64_t)n;
	if (n0) {
		size_t t = (size_t)n < n0 ? (size_t)n : n0;

		s->out->head += (uint32_t)t;
		n -= (ssize_t)t;
		if (s->out->head == s->out->tail)
			iobuf_put(s->ctx, &s->out);
	}
	if (n1) {
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
	struct iobuf *b = s->out;

	if (b == NULL) {
		size_t dflt = s->ctx->buf_size - sizeof(struct iobuf);

		b = s->out = iobuf_get(s->ctx, len > dflt ? len : dflt);
		if (b == NULL)
			return NULL;
	}
	if (b->cap - b->tail < len) {
		struct iobuf *nb;

		if (b->head > 0) {
			memmove(b->data, b->data + b->head, b->tail - b->head);
			b->tail -= b->head;
			b->head = 0;
		}
		if (b->cap - b->tail < len) {
			nb = iobuf_get(s->ctx, b->tail + len);
			if (nb == NULL)
				return NULL;
			memcpy(nb->data, b->data, b->tail);
			nb->tail = b->tail;
			iobuf_put(s->ctx, &s->out);
			s->out = b = nb;
		}
	}
	return b->data + b->tail;
}

void stream_write_commit(struct stream *s, size_t len)
{
	s->out->tail += (uint32_t)len;
	stream_flush(s);
}

int stream_write(struct stream *s, const void *data, size_t len)
{
	uint8_t *p = stream_write_reserve(s, len);

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
		s->ops->on_error(s, "message too large to process");
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
		s->ops->on_error(s, "out of memory for message buffer");
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

	while (alive(s) && !(s->flags & STREAM_F_STOPPED) && (b = s->in) && b->parse < b->tail) {
		uint32_t avail = b->tail - b->parse, hdr, len;
		uint8_t type;
		uint64_t total;
		enum stream_act act;

		if (s->pkt_remain) {
			uint32_t take = s->pkt_remain < avail ? (uint32_t)s->pkt_remain : avail;

			b->parse += take;
			s->pkt_remain -= take;
			continue;
		}
		hdr = (s->flags & STREAM_F_STARTUP) ? 4 : PROTO_HDR_LEN;
		if (avail < hdr)
			break;
		type = hdr == 4 ? 0 : b->data[b->parse];
		len = proto_peek_u32(b->data + b->parse + hdr - 4);
		total = (uint64_t)len + hdr - 4;
		if (len < 4 || len > s->ctx->max_packet || (hdr == 4 && len < 8)) {
			s->ops->on_error(s, "invalid message length");
			return false;
		}
		act = s->ops->on_header(s, type, len);
		if (!alive(s))
			return false;
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
			s->pkt_remain = total;
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

void stream_resume(struct stream *s)
{
	if (!alive(s))
		return;
	s->flags &= (uint16_t)~(STREAM_F_STOPPED | STREAM_F_NOREAD);
	stream_process(s);
}

static void stream_read(struct stream *s)
{
	struct iobuf *b = s->in;
	ssize_t n;

	if (b == NULL) {
		b = s->in = iobuf_get(s->ctx, s->ctx->buf_size - sizeof(struct iobuf));
		if (b == NULL) {
			s->ops->on_error(s, "out of memory for I/O buffer");
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
	n = recv(s->fd, b->data + b->tail, b->cap - b->tail, 0);
	s->ctx->reads++;
	if (n <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return;
		if (b->head == b->tail)
			iobuf_put(s->ctx, &s->in);
		s->ops->on_error(s, n == 0 ? "closed connection" : strerror(errno));
		return;
	}
	s->ctx->bytes_in += (uint64_t)n;
	b->tail += (uint32_t)n;
	stream_process(s);
}

static void stream_event(evutil_socket_t fd, short what, void *arg)
{
	struct stream *s = arg;

	(void)fd;
	if (s->flags & STREAM_F_CONNECTING) {
		int err = 0;
		socklen_t l = sizeof(err);

		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
			err = errno;
		if (err) {
			s->ops->on_error(s, strerror(err));
			return;
		}
		s->flags &= (uint16_t)~STREAM_F_CONNECTING;
		update_events(s);
		s->ops->on_drained(s);
		return;
	}
	if (what & EV_WRITE) {
		stream_flush(s);
		if (!alive(s))
			return;
	}
	if (what & EV_READ)
		stream_read(s);
}
