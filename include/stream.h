/* stream.h -- one socket's buffered, message-aware forwarding engine.
 *
 * Theory.  Bytes read from a socket land in that stream's <in> buffer and are
 * sent from there straight to its <peer> (no copy into the peer).  The
 * buffer holds three regions:
 *
 *	0 <= head <= parse <= tail <= cap
 *	[head, parse)  parsed, forward-ready bytes not yet sent to the peer
 *	[parse, tail)  received, not yet parsed
 *
 * Messages are parsed in place as they arrive: the owner is told of each
 * message header and either streams its body through (STREAM_FWD: the body
 * need never be whole in memory, so a 1 GiB DataRow passes through a 4 KiB
 * buffer), asks for the whole message (STREAM_WANT, then on_message decides
 * to forward or drop it), or stops the stream (STREAM_STOP) until the owner
 * resumes it.  Injected bytes (pgslab's own messages) go to <out>, which is
 * flushed ahead of the peer's forward range, in one writev.
 *
 * Back-pressure: while a stream has forward-ready bytes its peer could not
 * take, it stops reading; its peer waits for EV_WRITE and resumes it once
 * drained.  One persistent libevent event per socket; its interest set
 * changes only on back-pressure, never per message.  A buffer is attached on
 * the first read and returned to its slab size class as soon as it drains,
 * so an idle connection holds none.
 *
 * Failure is deferred (Redis's close-asap rule): a read, write or framing
 * error never calls back into the owner from inside the operation that met
 * it.  The stream is marked failed (stream_fail()): its events stop, parsing
 * and reading stop, writes are discarded, and it joins its context's failed
 * list.  stream_ctx_run_failed(), called by the event loop after each
 * callback returns, then calls on_error() for each failed stream, where the
 * owner closes it.  Owners close through the same path, so a connection is
 * torn down only from the top of the loop, never with a handler of its own
 * (or of its peer) on the stack.
 *
 * Ownership: the owner embeds the stream and frees it with stream_close()
 * from on_error() (or at shutdown).  A callback that decided to close its
 * owner calls stream_fail() and returns STREAM_CLOSED; the engine then
 * touches nothing more of that message.
 */
#ifndef PGSLAB_STREAM_H
#define PGSLAB_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <event2/event.h>
#include <event2/event_struct.h>

struct iovec;
struct slab_arena;
struct stream;
struct tls_conn;
struct tls_ctx;

/* Why a stream failed (see on_error). */
enum stream_err {
	STREAM_E_EOF,      /* the peer closed the connection */
	STREAM_E_IO,       /* a socket error */
	STREAM_E_PROTO,    /* bad framing: invalid length, message too large */
	STREAM_E_NOMEM,    /* no buffer could be had */
	STREAM_E_OWNER,    /* the owner called stream_fail() */
};

enum stream_act {
	STREAM_FWD,    /* forward this message (body streamed) */
	STREAM_WANT,   /* on_header only: call on_message with the whole message */
	STREAM_DROP,   /* on_message only: consume without forwarding */
	STREAM_STOP,   /* leave this message unparsed; owner calls stream_resume() */
	STREAM_CLOSED, /* the owner closed the stream: do not touch it */
	STREAM_MORE,   /* on_header only: ask again once more of the message has arrived */
};

struct stream_ops {
	/* Header of the message at the parse point.  <len> counts the length
	 * word and body (PostgreSQL's length); <type> is 0 in startup mode. */
	enum stream_act (*on_header)(struct stream *s, uint8_t type, uint32_t len);
	/* The whole message (type byte, if any, included) after STREAM_WANT. */
	enum stream_act (*on_message)(struct stream *s, uint8_t type, const uint8_t *msg,
			uint32_t len);
	/* Everything this stream forwarded has reached its peer's socket. */
	void (*on_drained)(struct stream *s);
	/* The stream failed (EOF, socket or framing error, or the owner's own
	 * stream_fail()); called only from stream_ctx_run_failed(), never from
	 * inside another stream operation.  The owner must stream_close() it.
	 * <reason> is a static string. */
	void (*on_error)(struct stream *s, enum stream_err kind, const char *reason);
	/* Optional.  TLS negotiation ended: the handshake completed
	 * (<encrypted>), or the server answered an SSLRequest with 'N'. */
	void (*on_tls)(struct stream *s, bool encrypted);
};

/* How a stream moves bytes: the plain socket or TLS (tls.h).  Both return a
 * byte count, 0 at EOF (recv), -EAGAIN when the socket is not ready (the
 * interest needed is already set), -ECANCELED when the operation failed the
 * stream itself, or -errno.  <fwd_idx> is the index in <iov> of the peer's
 * forward range, or -1. */
struct stream_io {
	ssize_t (*recv)(struct stream *s, void *buf, size_t len);
	ssize_t (*sendv)(struct stream *s, const struct iovec *iov, int cnt, int fwd_idx);
};

struct iobuf {
	struct iobuf *next;      /* out chains only */
	uint32_t cap, head, parse, tail;
	uint8_t data[];
};

#define STREAM_F_STARTUP 0x01u   /* messages have no type byte (startup phase) */
#define STREAM_F_NOREAD 0x02u    /* owner paused reading */
#define STREAM_F_STOPPED 0x04u   /* parsing stopped at a message (STREAM_STOP) */
#define STREAM_F_CONNECTING 0x08u /* non-blocking connect in progress */
#define STREAM_F_DRAIN_CB 0x10u  /* call on_drained once forwarding is flushed */
#define STREAM_F_FAILED 0x20u    /* failed (see stream_fail()) or closed */
#define STREAM_F_HANDSHAKE 0x40u /* TLS handshake in progress: no parsing, no writes */
#define STREAM_F_HS_WRITE 0x80u  /* ... and it waits for the socket to be writable */
#define STREAM_F_SSLRESP 0x100u  /* waiting for the one-byte answer to an SSLRequest */
#define STREAM_F_TLS_RWW 0x200u  /* a TLS read waits for the socket to be writable */
#define STREAM_F_TLS_WWR 0x400u  /* a TLS write waits for the socket to be readable */
#define STREAM_F_TLS_WFWD 0x800u /* a TLS write of the peer's forward range must be
				  * retried before any injected byte */
#define STREAM_F_SNIFF 0x1000u   /* first read: a TLS ClientHello starts direct TLS */
#define STREAM_F_DIRECT 0x2000u  /* direct TLS: the handshake must select ALPN */
#define STREAM_F_TLS_RDRY 0x4000u /* the last TLS read left nothing inside OpenSSL */

#define STREAM_OUT_MAX (64u << 20) /* bytes of injected output a stream may queue */

enum { STREAM_TLS_CLIENT, STREAM_TLS_SERVER };

struct stream_ctx {
	struct event_base *base;
	struct slab_arena *arena;
	uint32_t buf_size;       /* default read buffer (pkt_buf) */
	uint32_t max_packet;     /* max_packet_size */
	uint32_t max_whole;      /* largest message kept whole (STREAM_WANT) */
	uint64_t bytes_in, bytes_out, reads, writes;
	/* TLS by side: [STREAM_TLS_CLIENT] connections accepted from clients,
	 * [STREAM_TLS_SERVER] connections pgslab opened to servers */
	uint64_t tls_handshakes[2], tls_handshake_fail[2];
	uint32_t tls_open[2];    /* handshake completed, not yet closed */
	struct tls_ctx *tls_accept; /* for direct TLS (stream_tls_sniff); owner's */
	struct stream *failed;   /* failed streams awaiting on_error, LIFO */
};

struct stream {
	struct event ev;
	const struct stream_ops *ops;
	const struct stream_io *io; /* plain socket or TLS */
	struct tls_conn *tls;    /* NULL for a plain stream */
	struct stream_ctx *ctx;
	struct stream *peer;     /* where forwarded bytes go; NULL when unlinked */
	struct iobuf *in;        /* NULL while idle */
	struct iobuf *out;       /* injected bytes for this socket (a chain); usually NULL */
	struct iobuf *out_tail;
	struct stream *fail_next; /* on ctx->failed */
	const char *fail_reason; /* static; NULL: strerror(fail_errno) */
	int fail_errno;
	uint32_t out_bytes;      /* queued in the out chain */
	uint8_t fail_kind;       /* enum stream_err */
	uint64_t pkt_remain;     /* body bytes of the current message still to parse */
	uint32_t fwd_cut;        /* bytes stream_cut() took off the message being headed */
	int fd;
	uint16_t flags;
	short events;            /* interest currently registered */
};

/* Set up <s> on connected non-blocking socket <fd> and start reading. */
void stream_init(struct stream *s, struct stream_ctx *ctx, int fd, const struct stream_ops *ops,
		uint16_t flags);
/* Start a non-blocking connect; on_drained is called once it completes, or
 * on_error on failure.  Returns 0 or -errno (immediate failure). */
int stream_connect(struct stream *s, struct stream_ctx *ctx, const struct sockaddr *sa,
		socklen_t salen, const struct stream_ops *ops);
/* Stop events, close the socket and return the buffers.  Unlinks the peer.
 * Also takes <s> off its context's failed list. */
void stream_close(struct stream *s);
/* Mark <s> failed (first call wins; <reason> must be static): no more
 * events, parsing or writes; on_error() follows from
 * stream_ctx_run_failed().  Safe from anywhere, including callbacks. */
void stream_fail(struct stream *s, enum stream_err kind, const char *reason);
static inline bool stream_failed(const struct stream *s)
{
	return s->flags & STREAM_F_FAILED; /* stream_close() sets it too */
}
void stream_ctx_run_failed_slow(struct stream_ctx *ctx);
/* Monotonic microseconds.  Inside a stream event every call returns the
 * time of the first (one clock read per event, not one per figure taken);
 * elsewhere the clock itself.  stream_event_now_us is that event's time:
 * 0 until read, -1 outside an event (timers and accepts read the clock). */
extern __thread int64_t stream_event_now_us;
int64_t stream_now_slow(void);
static inline int64_t stream_now_us(void)
{
	return stream_event_now_us > 0 ? stream_event_now_us : stream_now_slow();
}
/* Deliver on_error() to every failed stream of <ctx>, including those that
 * fail meanwhile.  The event loop calls this after each callback. */
static inline void stream_ctx_run_failed(struct stream_ctx *ctx)
{
	if (ctx->failed)
		stream_ctx_run_failed_slow(ctx);
}

void stream_link(struct stream *a, struct stream *b);
void stream_unlink(struct stream *s);

/* Queue <len> bytes for <s>'s socket ahead of forwarded data and try to send
 * them.  Returns 0, -ENOMEM when no buffer could be had (or STREAM_OUT_MAX
 * would be passed), or -EPIPE when <s> has failed (the bytes are dropped). */
int stream_write(struct stream *s, const void *data, size_t len);
/* Space for building a message directly in <s>'s out buffer: returns a
 * pointer with at least <len> free bytes, or NULL; commit with
 * stream_write_commit(). */
uint8_t *stream_write_reserve(struct stream *s, size_t len);
void stream_write_commit(struct stream *s, size_t len);
/* Commit without sending: for bytes that precede a message the peer is
 * about to forward to <s> in the same pass (its flush, one sendmsg, takes
 * both). */
void stream_write_queue(struct stream *s, size_t len);

/* Resume parsing after STREAM_STOP (and reading after pause). */
void stream_resume(struct stream *s);
void stream_pause_read(struct stream *s, bool pause);
/* Leave startup mode: from now on messages carry a type byte. */
void stream_end_startup(struct stream *s);
/* Try to flush pending output now; returns true when nothing is pending. */
bool stream_flush(struct stream *s);
/* Bytes queued for this socket (out + peer's forward range). */
size_t stream_pending(const struct stream *s);
/* The OS user id of the process at the other end of a Unix socket
 * (SO_PEERCRED); -1 when it is not a Unix socket or the kernel will not say. */
int stream_peer_uid(const struct stream *s, uid_t *uid);
/* Inside on_header: the first <*avail> bytes (type byte included) of the
 * message at the parse point; the owner may rewrite them in place, length
 * unchanged, before it returns STREAM_FWD. */
static inline uint8_t *stream_peek(const struct stream *s, uint32_t *avail)
{
	*avail = s->in->tail - s->in->parse;
	return s->in->data + s->in->parse;
}
/* Inside on_header, before returning STREAM_FWD: drop the first <n> bytes
 * of the message at the parse point (all present: <n> <= stream_peek's
 * avail); the rest of it is forwarded.  The owner has queued what replaces
 * them (stream_write to the peer, which goes out first). */
void stream_cut(struct stream *s, uint32_t n);
/* Does <s> hold received bytes not yet forwarded or parsed? */
bool stream_has_input(const struct stream *s);
/* Is a message of <s> on its way to the peer: parsed bytes not yet sent,
 * or a message whose body has not all arrived? */
static inline bool stream_in_flight(const struct stream *s)
{
	return s->pkt_remain > 0 || (s->in != NULL && s->in->head < s->in->parse);
}

/* ---- TLS (the stream's I/O switches to tls.h) ---- */

/* Bytes received and not yet parsed, the message being handled included:
 * an owner handling an SSLRequest checks that nothing follows it. */
static inline size_t stream_unparsed(const struct stream *s)
{
	return s->in ? s->in->tail - s->in->parse : 0;
}
/* Accept TLS on <s> after an 'S' was sent (and flushed): the handshake runs
 * from the event loop, reading and parsing resume once it completes
 * (on_tls), a failure fails the stream.  0, -EAGAIN if the 'S' is still
 * queued, or -ENOMEM. */
int stream_tls_accept(struct stream *s, struct tls_ctx *ctx);
/* Expect a one-byte answer to the SSLRequest the owner just wrote: 'S'
 * starts a handshake with <ctx> (certificate checked against <host> when
 * <verify_host>), 'N' continues in plain; on_tls says which.  Anything else
 * fails the stream.  0 or -ENOMEM. */
int stream_tls_request(struct stream *s, struct tls_ctx *ctx, const char *host,
		bool verify_host);
/* Watch the first bytes of <s>: a TLS handshake record there starts direct
 * TLS with the context's <tls_accept> (PostgreSQL 17's
 * sslnegotiation=direct); the handshake must then select ALPN
 * "postgresql". */
void stream_tls_sniff(struct stream *s);
/* Is <s> encrypted (handshake complete)? */
bool stream_is_tls(const struct stream *s);
/* The CommonName of the client certificate <s>'s TLS peer presented and
 * that verified against the CA (tls_conn_peer_cn()): 0, -ENOTCONN when <s>
 * is not encrypted, or tls_conn_peer_cn()'s errors. */
int stream_tls_peer_cn(const struct stream *s, char *buf, size_t len);
/* PgBouncer's tls column ("" for plain). */
void stream_tls_info(const struct stream *s, char *buf, size_t len);

#endif
