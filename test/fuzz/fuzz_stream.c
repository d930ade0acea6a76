/* fuzz_stream.c -- stream.c's message framing and forwarding, fed by a fake client and a fake server.
 *
 * Two socketpairs in-process: the fake client's bytes go into stream C
 * (startup mode first, as a client's connection starts), the fake server's
 * into stream S; C and S are linked, so each forwards to the other, and
 * what they forward is read back at the far ends.  The owners behave like
 * client.c and server.c: C asks for the startup packet whole and drops it
 * (an SSLRequest keeps it in startup mode), notes every request in a
 * protocol tracker, takes 'Q' whole before forwarding it, drops 'p' and
 * closes on 'X'; S takes 'Z' and 'S' whole and notes every reply.
 *
 * Input: 4 header bytes -- buffer size, largest whole message, max packet
 * size (selectors), and where the client's bytes end and the server's begin
 * -- then the bytes.  A reference framer computes what each direction must
 * forward.  What arrives must always be a prefix of that; when the source
 * ended by EOF with its peer still linked and no choice left to read timing
 * (a kept-whole message above the limit may or may not fit the buffer), it
 * must be all of it.  Every buffer goes back to the arena (SLAB_DEBUG
 * checks), and the tracker keeps its invariants.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "fuzz.h"
#include "proto.h"
#include "slab.h"
#include "stream.h"
#include "track.h"

#define OUT_MAX 65536

struct app {
	struct event ev;
	int fd;
	bool eof;
	size_t len;
	uint8_t buf[OUT_MAX];
};

struct side {
	struct stream st;
	bool client;
	bool closed;
	enum stream_err kind;
	bool peer_linked_at_end; /* its peer was still there when it failed */
	bool flushed;		 /* its forward range was empty when it closed */
};

static struct event_base *base;
static struct stream_ctx ctx;
static struct side C, S;
static struct app app_c, app_s; /* far ends: the client's and the server's */
static struct track tr;

static struct side *side_of(struct stream *s)
{
	return s == &C.st ? &C : &S;
}

static enum stream_act on_header(struct stream *s, uint8_t type, uint32_t len)
{
	struct side *sd = side_of(s);

	if (sd->client) {
		if (s->flags & STREAM_F_STARTUP)
			return STREAM_WANT;
		if (type == 'X') {
			stream_fail(s, STREAM_E_OWNER, "terminate");
			return STREAM_CLOSED;
		}
		if (track_req(&tr, ctx.arena, type) < 0) {
			stream_fail(s, STREAM_E_OWNER, "pipeline too deep");
			return STREAM_CLOSED;
		}
		return (type == 'Q' || type == 'p') ? STREAM_WANT : STREAM_FWD;
	}
	if (type == 'Z' || type == 'S')
		return STREAM_WANT;
	track_reply(&tr, type, 0);
	return STREAM_FWD;
}

static enum stream_act on_message(struct stream *s, uint8_t type, const uint8_t *msg,
		uint32_t len)
{
	struct side *sd = side_of(s);

	FUZZ_ASSERT(len >= 4);
	if (sd->client && (s->flags & STREAM_F_STARTUP)) {
		struct proto_startup st;
		const char *why;

		FUZZ_ASSERT(type == 0 && proto_peek_u32(msg) == len);
		if (proto_parse_startup(msg, len, &st, &why) == 0 &&
				(st.code == PROTO_SSL_CODE || st.code == PROTO_GSSENC_CODE))
			return STREAM_DROP;
		stream_end_startup(s);
		return STREAM_DROP;
	}
	FUZZ_ASSERT(msg[0] == type && proto_peek_u32(msg + 1) == len - 1);
	if (sd->client)
		return type == 'p' ? STREAM_DROP : STREAM_FWD;
	if (type == 'Z')
		track_reply(&tr, 'Z', len == PROTO_HDR_LEN + 1 ? msg[PROTO_HDR_LEN] : 'E');
	return STREAM_FWD;
}

static void on_drained(struct stream *s)
{
}

static void on_error(struct stream *s, enum stream_err kind, const char *reason)
{
	struct side *sd = side_of(s);

	FUZZ_ASSERT(reason != NULL);
	sd->kind = kind;
	sd->peer_linked_at_end = s->peer != NULL;
	if (s->peer)
		stream_flush(s->peer); /* what it parsed goes out before it closes */
	sd->flushed = !(s->in && s->in->head < s->in->parse);
	stream_close(s);
	sd->closed = true;
}

static const struct stream_ops ops = {
	.on_header = on_header,
	.on_message = on_message,
	.on_drained = on_drained,
	.on_error = on_error,
};

static void app_read(evutil_socket_t fd, short what, void *arg)
{
	struct app *a = arg;
	uint8_t tmp[4096];
	ssize_t n = read(fd, tmp, sizeof(tmp));

	if (n > 0) {
		FUZZ_ASSERT(a->len + (size_t)n <= OUT_MAX);
		memcpy(a->buf + a->len, tmp, (size_t)n);
		a->len += (size_t)n;
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	a->eof = true;
	event_del(&a->ev);
}

/* What a direction must forward, by a framer of our own.  Returns the
 * expected length; *<complete> says whether the stream, reaching EOF, must
 * have forwarded exactly that (false once the outcome depends on read
 * timing or the owner closed). */
static size_t model(const uint8_t *in, size_t len, bool client, uint8_t *out, bool *complete)
{
	bool startup = client;
	size_t pos = 0, n = 0;

	*complete = true;
	for (;;) {
		size_t hdr = startup ? 4 : 5, total;
		uint8_t type;
		uint32_t l;
		bool want;

		if (len - pos < hdr)
			return n;
		type = startup ? 0 : in[pos];
		l = proto_peek_u32(in + pos + hdr - 4);
		if (l < 4 || l > ctx.max_packet || (startup && l < 8)) {
			*complete = false; /* framing error: the stream fails */
			return n;
		}
		total = (size_t)l + hdr - 4;
		if (client && !startup && type == 'X') {
			*complete = false;
			return n;
		}
		want = startup || (client ? (type == 'Q' || type == 'p') : (type == 'Z' || type == 'S'));
		if (want) {
			if (len - pos < total)
				return n; /* EOF while waiting for the rest */
			/* over the limit, the stream fails -- unless the whole
			 * message came in one read (make_room() is asked only for
			 * what has not arrived): go on as if it were taken, what
			 * arrives is a prefix either way */
			if (total > ctx.max_whole)
				*complete = false;
			if (startup) {
				uint32_t code = proto_peek_u32(in + pos + 4);

				if (!(l == 8 && (code == PROTO_SSL_CODE || code == PROTO_GSSENC_CODE)))
					startup = false;
			} else if (type != 'p' || !client) {
				memcpy(out + n, in + pos, total);
				n += total;
			}
			pos += total;
			continue;
		}
		if (len - pos < total) {
			memcpy(out + n, in + pos, len - pos);
			return n + (len - pos);
		}
		memcpy(out + n, in + pos, total);
		n += total;
		pos += total;
	}
}

static void check(const struct app *a, const uint8_t *in, size_t len, const struct side *src,
		bool client)
{
	static uint8_t want[OUT_MAX];
	bool complete;
	size_t n = model(in, len, client, want, &complete);

	FUZZ_ASSERT(a->len <= n);
	FUZZ_ASSERT(memcmp(a->buf, want, a->len) == 0);
	if (complete && src->kind == STREAM_E_EOF && src->peer_linked_at_end && src->flushed)
		FUZZ_ASSERT(a->len == n);
}

static void put(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		FUZZ_ASSERT(w > 0); /* inputs are far below a socket buffer */
		p += w;
		n -= (size_t)w;
	}
	shutdown(fd, SHUT_WR);
}

static void setup(void)
{
	base = event_base_new();
	ctx.arena = slab_arena_create(0);
	if (base == NULL || ctx.arena == NULL)
		abort();
	ctx.base = base;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint32_t bufs[4] = { 256, 512, 1024, 4096 };
	static const uint32_t wholes[4] = { 64, 300, 2048, 65536 };
	static const uint32_t packets[4] = { 100, 1000, 0x7fffffffu, 1u << 20 };
	int cl[2], sv[2];
	size_t split;
	const uint8_t *cin, *sin;
	size_t clen, slen;

	if (base == NULL)
		setup();
	if (size < 4 || size > 16384)
		return 0;
	ctx.buf_size = bufs[data[0] & 3];
	ctx.max_whole = wholes[data[1] & 3];
	ctx.max_packet = packets[data[2] & 3];
	split = (size_t)data[3] * (size - 4) / 255;
	cin = data + 4;
	clen = split;
	sin = data + 4 + split;
	slen = size - 4 - split;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, cl) != 0 ||
			socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
		abort();
	memset(&C, 0, sizeof(C));
	memset(&S, 0, sizeof(S));
	C.client = true;
	track_init(&tr);
	stream_init(&C.st, &ctx, cl[1], &ops, STREAM_F_STARTUP);
	stream_init(&S.st, &ctx, sv[1], &ops, 0);
	stream_link(&C.st, &S.st);
	app_c.fd = cl[0];
	app_c.eof = false;
	app_c.len = 0;
	app_s.fd = sv[0];
	app_s.eof = false;
	app_s.len = 0;
	event_assign(&app_c.ev, base, cl[0], EV_READ | EV_PERSIST, app_read, &app_c);
	event_assign(&app_s.ev, base, sv[0], EV_READ | EV_PERSIST, app_read, &app_s);
	event_add(&app_c.ev, NULL);
	event_add(&app_s.ev, NULL);
	put(cl[0], cin, clen);
	put(sv[0], sin, slen);

	/* until both streams are closed and both far ends saw EOF; a stall
	 * is a hang (libFuzzer's -timeout reports it) */
	event_base_dispatch(base);
	stream_ctx_run_failed(&ctx);
	FUZZ_ASSERT(C.closed && S.closed && app_c.eof && app_s.eof);
	FUZZ_ASSERT(tr.n_ready <= tr.n);

	check(&app_s, cin, clen, &C, true);  /* client -> server */
	check(&app_c, sin, slen, &S, false); /* server -> client */

	track_reset(&tr, ctx.arena);
	close(cl[0]);
	close(sv[0]);
	return 0;
}
