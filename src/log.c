/* log.c -- asynchronous logger: slab-buffered records, SPSC ring, writev writer thread.
 *
 * Theory.
 *
 * Ring (one per producer): slot[] holds 2^k record pointers; three free-
 * running uint32 cursors, compared modulo 2^32:
 *
 *	freed <= done <= head,   head - freed <= cap
 *
 *	[freed, done)  written; buffers waiting for the producer to free them
 *	               (the completion ring: the same slots, no second array)
 *	[done, head)   queued; read by the writer until it advances done
 *
 * head is stored only by the producer (release) and done only by the writer
 * (release); freed is producer-private.  The producer frees [freed, done)
 * (a few per call, see LOG_RECLAIM_STEP) before it looks for room, so a slot
 * is reused only after its buffer is back in the cache, and the writer never
 * touches the slab arena.  The ring is full for the producer when
 * head - freed == cap; that implies done == freed after a reclaim, i.e. the
 * writer really is cap records behind.  Ownership of a
 * record: producer until pushed, writer while in [done, head), producer again
 * once done passes it.
 *
 * Wake-up: the writer reads wake_seq, sets `sleeping`, fences and re-checks
 * every head before futex-waiting on wake_seq; the producer stores head,
 * fences, and wakes only when it sees `sleeping` (Dekker: one of the two sees
 * the other's store, so no wake-up is lost, and pushing to a busy writer costs
 * no syscall).  log_flush() waits on `done` the same way, with `flush_wait`.
 *
 * Control records (reopen, reconfigure) travel in the ring like text, so they
 * take effect exactly between the records logged before and after them.
 *
 * Counters: records == written + dropped + pending, where written counts
 * records the writer finished (or FATAL records the producer wrote itself).
 *
 * Synchronous mode (log_config.sync_write, or -DLOG_SYNC_WRITE for the
 * benchmark baseline) is log_sync.c's: lg->sync points at its table and the
 * producer calls it where it would start the thread, queue a record or a
 * control record, and join.  No production path asks for it (pgslab never
 * sets sync_write), so log.c refers to the table weakly: a weak undefined
 * symbol does not pull log_sync.o out of libpgslab.a, ./pgslab has no
 * synchronous path, and log_create() refuses sync_write where the table is
 * missing.  Only the unit test (which links log_sync.o) and the
 * -DLOG_SYNC_WRITE build (whose reference is strong) have it.  log_sync.c
 * calls log.c by name (log_int.h); log.c reaches log_sync.c only through
 * the table (as a lower layer reaches an upper one through the ops tables
 * main.c fills), so the call graph between the two files has no cycle.
 *
 * Test hooks live in log_test.c, which the Makefile keeps out of
 * libpgslab.a.  What stays here for them is the writer's side of a pause:
 * pause_req is read once per writer loop and never set in production.
 */
#include "log_int.h"
#include "slab.h"
#include "sysalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define LOG_IOV_MAX 256	   /* records per writev */
#define LOG_PREFIX_MAX 160 /* timestamp, zone, pid, level tag */
#define LOG_USER_PREFIX_MAX 1024
#define LOG_FATAL_WAIT_MS 1000
#define LOG_FILE_MODE 0640
/* Written buffers freed per log call and per log_poll(): freeing at about
 * the allocation rate, instead of a whole writev batch at once, keeps slabs
 * from going wholly empty (and back to the buddy) only to be regrown. */
#define LOG_RECLAIM_STEP 2u
#define LOG_RECLAIM_POLL 32u
#define LOG_RECLAIM_ALL UINT32_MAX

#ifdef LOG_SYNC_WRITE
#define LOG_SYNC_FORCED true /* and log_int.h's strong reference links log_sync.o */
#else
#define LOG_SYNC_FORCED false
/* Weak: resolves to NULL unless log_sync.o is linked (see the theory). */
extern const struct log_sync_ops log_sync_ops __attribute__((weak));
#endif

#define LOG_SMALL_ROOM (LOG_RECORD_SIZE - sizeof(struct log_rec))

static const char *const log_tags[] = {
		[LL_FATAL] = "FATAL",
		[LL_ERROR] = "ERROR",
		[LL_WARNING] = "WARNING",
		[LL_STATS] = "LOG",
		[LL_INFO] = "LOG",
		[LL_DEBUG] = "DEBUG",
		[LL_NOISE] = "NOISE",
};

static const int log_syslog_prio[] = {
		[LL_FATAL] = LOG_CRIT,
		[LL_ERROR] = LOG_ERR,
		[LL_WARNING] = LOG_WARNING,
		[LL_STATS] = LOG_INFO,
		[LL_INFO] = LOG_INFO,
		[LL_DEBUG] = LOG_DEBUG,
		[LL_NOISE] = LOG_DEBUG,
};

static const struct {
	const char *name;
	int code;
} log_facilities[] = {
		{"auth", LOG_AUTH},
		{"authpriv", LOG_AUTHPRIV},
		{"cron", LOG_CRON},
		{"daemon", LOG_DAEMON},
		{"ftp", LOG_FTP},
		{"lpr", LOG_LPR},
		{"mail", LOG_MAIL},
		{"news", LOG_NEWS},
		{"syslog", LOG_SYSLOG},
		{"user", LOG_USER},
		{"uucp", LOG_UUCP},
		{"local0", LOG_LOCAL0},
		{"local1", LOG_LOCAL1},
		{"local2", LOG_LOCAL2},
		{"local3", LOG_LOCAL3},
		{"local4", LOG_LOCAL4},
		{"local5", LOG_LOCAL5},
		{"local6", LOG_LOCAL6},
		{"local7", LOG_LOCAL7},
};

static __thread struct logger *log_current;

/* ---- small helpers ---- */

static void log_futex_wait(_Atomic uint32_t *addr, uint32_t val, const struct timespec *rel)
{
	syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, val, rel, NULL, 0);
}

static void log_futex_wake(_Atomic uint32_t *addr, int n)
{
	syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

static int64_t log_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void log_errf(char *err, size_t errlen, const char *fmt, ...)
		__attribute__((format(printf, 3, 4)));
static void log_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int log_facility_code(const char *name)
{
	size_t i;

	if (name == NULL || name[0] == '\0')
		return LOG_DAEMON;
	for (i = 0; i < sizeof(log_facilities) / sizeof(log_facilities[0]); i++)
		if (strcasecmp(name, log_facilities[i].name) == 0)
			return log_facilities[i].code;
	return -1;
}

static bool log_level_valid(enum log_level level)
{
	return (unsigned)level <= LL_NOISE;
}

const char *log_level_tag(enum log_level level)
{
	return log_level_valid(level) ? log_tags[level] : "LOG";
}

static int log_open_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, LOG_FILE_MODE);

	return fd < 0 ? -errno : fd;
}

/* Write all of <buf> to <fd>, retrying on EINTR; 0 or -errno. */
static int log_write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* ---- timestamp and line prefix ---- */

static void log_clock_init(struct log_clock *ck)
{
	ck->sec = (time_t)-1;
	ck->pid = (int)getpid();
	ck->date_len = ck->tail_len = 0;
}

/* Write "<date>.<ms> <zone> [<pid>] <TAG> " into <out> (LOG_PREFIX_MAX
 * bytes); returns its length and stores where <TAG> starts in *<tag_off>. */
static size_t log_clock_prefix(
		struct log_clock *ck, enum log_level level, char *out, size_t *tag_off)
{
	const char *tag = log_level_tag(level);
	size_t tlen = strlen(tag);
	struct timespec ts;
	unsigned ms;
	char *p = out;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (ts.tv_sec != ck->sec) {
		struct tm tm;
		char zone[48];
		int n;

		localtime_r(&ts.tv_sec, &tm);
		ck->date_len = strftime(ck->date, sizeof(ck->date), "%Y-%m-%d %H:%M:%S", &tm);
		if (strftime(zone, sizeof(zone), "%Z", &tm) == 0)
			strcpy(zone, "UTC");
		n = snprintf(ck->tail, sizeof(ck->tail), " %s [%d] ", zone, ck->pid);
		ck->tail_len = n < 0			       ? 0
			       : (size_t)n >= sizeof(ck->tail) ? sizeof(ck->tail) - 1
							       : (size_t)n;
		ck->sec = ts.tv_sec;
	}
	ms = (unsigned)(ts.tv_nsec / 1000000);
	memcpy(p, ck->date, ck->date_len);
	p += ck->date_len;
	*p++ = '.';
	*p++ = (char)('0' + ms / 100);
	*p++ = (char)('0' + ms / 10 % 10);
	*p++ = (char)('0' + ms % 10);
	memcpy(p, ck->tail, ck->tail_len);
	p += ck->tail_len;
	*tag_off = (size_t)(p - out);
	memcpy(p, tag, tlen);
	p += tlen;
	*p++ = ' ';
	return (size_t)(p - out);
}

/* ---- one line per record, whatever was logged ----
 *
 * Names, parameters and server messages that reach a log line came off the
 * wire; a newline in one would forge a line of its own.  Every control byte
 * (and DEL) in a record's text is written as \xNN, so a record is always
 * exactly one line. */

static inline bool log_special(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

static size_t log_count_special(const char *s, size_t len)
{
	size_t i, n = 0;

	for (i = 0; i < len; i++)
		n += log_special((unsigned char)s[i]);
	return n;
}

/* Copy <len> bytes of <src> to <dst> (room for <cap>), escaping; returns
 * the bytes written (whole escapes only). */
static size_t log_escape(char *dst, size_t cap, const char *src, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)src[i];

		if (!log_special(c)) {
			if (o + 1 > cap)
				break;
			dst[o++] = (char)c;
		} else {
			if (o + 4 > cap)
				break;
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		}
	}
	return o;
}

/* Synchronous fallback when no logger exists (early startup): one write(2). */
void log_vwrite_stderr(enum log_level level, const char *prefix, const char *fmt, va_list ap)
{
	char buf[4096], msg[4096];
	struct log_clock ck;
	size_t off, tag_off, room, esc;
	int n;

	log_clock_init(&ck);
	off = log_clock_prefix(&ck, level, buf, &tag_off);
	if (prefix != NULL) {
		n = snprintf(buf + off, 1024, "%s ", prefix);
		off += n < 0 ? 0 : (size_t)n >= 1024 ? 1023 : (size_t)n;
	}
	room = sizeof(buf) - off - 1; /* keep a byte for '\n' */
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(msg))
		n = (int)sizeof(msg) - 1;
	esc = log_escape(buf + off, room, msg, (size_t)n);
	if (esc < (size_t)n + 3 * log_count_special(msg, (size_t)n) && esc >= 3)
		memcpy(buf + off + esc - 3, "...", 3);
	off += esc;
	buf[off++] = '\n';
	(void)log_write_all(STDERR_FILENO, buf, off);
}

/* ---- record buffers (producer only) ---- */

static struct log_rec *log_rec_alloc(struct logger *lg, size_t total)
{
	struct log_rec *r;
	size_t cap = 0;

	if (total <= LOG_RECORD_SIZE && lg->nmag > 0) {
		r = lg->mag[--lg->nmag];
		lg->mag_hits++;
	} else if (total <= LOG_RECORD_SIZE)
		r = slab_alloc(lg->cache);
	else
		r = slab_buf_alloc(lg->arena, total, &cap);
	if (r == NULL)
		return NULL;
	lg->buf_allocs++;
	r->cap = (uint32_t)cap;
	r->len = 0;
	r->msg_off = 0;
	r->level = 0;
	r->arg = 0;
	r->kind = LOG_REC_TEXT;
	return r;
}

void log_rec_free(struct logger *lg, struct log_rec *r)
{
	if (r->cap == 0 && lg->nmag < LOG_MAG_SIZE)
		lg->mag[lg->nmag++] = r;
	else if (r->cap == 0)
		slab_free(lg->cache, r);
	else
		slab_buf_free(lg->arena, r, r->cap);
}

/* Escape record <r>'s text after its clock prefix (<from>); returns the
 * record to use (maybe a new, larger one), NULL when none could be had. */
static struct log_rec *log_escape_rec(struct logger *lg, struct log_rec *r, size_t from)
{
	size_t body = r->len - 1 - from, extra = log_count_special(r->text + from, body), total;
	struct log_rec *n;

	if (extra == 0)
		return r;
	total = sizeof(struct log_rec) + r->len + 3 * extra + 1;
	if (total > LOG_RECORD_MAX)
		total = LOG_RECORD_MAX;
	n = log_rec_alloc(lg, total);
	if (n == NULL) {
		log_rec_free(lg, r);
		return NULL;
	}
	memcpy(n->text, r->text, from);
	n->len = (uint32_t)(from + log_escape(n->text + from,
						  total - sizeof(struct log_rec) - from - 1,
						  r->text + from, body));
	n->text[n->len++] = '\n';
	n->level = r->level;
	n->msg_off = r->msg_off;
	n->kind = r->kind;
	log_rec_free(lg, r);
	return n;
}

/* Format one TEXT record; NULL when no buffer could be had. */
struct log_rec *log_format(struct logger *lg, enum log_level level, const char *prefix,
		const char *fmt, va_list ap)
{
	char head[LOG_PREFIX_MAX];
	size_t hlen, tag_off, plen = 0, off, room, need;
	struct log_rec *r;
	bool truncated = false;
	va_list aq;
	int n;

	hlen = log_clock_prefix(&lg->clock, level, head, &tag_off);
	if (prefix != NULL) {
		plen = strnlen(prefix, LOG_USER_PREFIX_MAX);
		off = hlen + plen + 1;
	} else {
		off = hlen;
	}

	r = log_rec_alloc(lg, LOG_RECORD_SIZE);
	if (r == NULL)
		return NULL;
	room = LOG_SMALL_ROOM;
	va_copy(aq, ap);
	if (off < room)
		n = vsnprintf(r->text + off, room - off, fmt, aq);
	else
		n = vsnprintf(NULL, 0, fmt, aq);
	va_end(aq);
	if (n < 0)
		n = 0;		    /* bad format: an empty message rather than nothing */
	need = off + (size_t)n + 1; /* text with its '\n' */
	if (need > room) {
		/* Too long for the record cache: take a size-class buffer. */
		size_t total = sizeof(struct log_rec) + need + 1; /* + vsnprintf's NUL */

		log_rec_free(lg, r);
		if (total > LOG_RECORD_MAX) {
			total = LOG_RECORD_MAX;
			truncated = true;
		}
		r = log_rec_alloc(lg, total);
		if (r == NULL)
			return NULL;
		room = total - sizeof(struct log_rec);
		n = vsnprintf(r->text + off, room - off, fmt, ap);
		if (n < 0)
			n = 0;
	}
	memcpy(r->text, head, hlen);
	if (prefix != NULL) {
		memcpy(r->text + hlen, prefix, plen);
		r->text[hlen + plen] = ' ';
	}
	if (truncated) {
		r->len = (uint32_t)room;
		memcpy(r->text + room - 4, "...\n", 4);
	} else {
		r->len = (uint32_t)(off + (size_t)n + 1);
		r->text[r->len - 1] = '\n';
	}
	r->level = (uint8_t)level;
	r->msg_off = (uint16_t)tag_off;
	r->kind = LOG_REC_TEXT;
	return log_escape_rec(lg, r, hlen);
}

static struct log_rec *log_formatf(struct logger *lg, enum log_level level, const char *fmt, ...)
		__attribute__((format(printf, 3, 4)));
static struct log_rec *log_formatf(struct logger *lg, enum log_level level, const char *fmt, ...)
{
	struct log_rec *r;
	va_list ap;

	va_start(ap, fmt);
	r = log_format(lg, level, NULL, fmt, ap);
	va_end(ap);
	return r;
}

/* ---- ring (producer side) ---- */

static void log_wake_writer(struct logger *lg, bool always)
{
	if (!always) {
		atomic_thread_fence(memory_order_seq_cst);
		if (!atomic_load_explicit(&lg->sleeping, memory_order_relaxed))
			return;
		if (!atomic_exchange_explicit(&lg->sleeping, 0, memory_order_seq_cst))
			return;
	}
	atomic_fetch_add_explicit(&lg->wake_seq, 1, memory_order_seq_cst);
	log_futex_wake(&lg->wake_seq, 1);
}

/* Give the buffers of up to <budget> written records back to the cache. */
static void log_ring_reclaim(struct logger *lg, struct log_ring *rg, uint32_t budget)
{
	uint32_t d = atomic_load_explicit(&rg->done, memory_order_acquire);

	if (d - rg->freed > budget)
		d = rg->freed + budget;
	while (rg->freed != d) {
		log_rec_free(lg, rg->slot[rg->freed & rg->mask]);
		rg->freed++;
	}
}

static bool log_ring_full(const struct log_ring *rg)
{
	uint32_t h = atomic_load_explicit(&rg->head, memory_order_relaxed);

	return h - rg->freed > rg->mask;
}

/* Caller checked !log_ring_full(). */
static void log_ring_push(struct logger *lg, struct log_ring *rg, struct log_rec *r)
{
	uint32_t h = atomic_load_explicit(&rg->head, memory_order_relaxed);
	uint32_t queued;

	rg->slot[h & rg->mask] = r;
	atomic_store_explicit(&rg->head, h + 1, memory_order_release);
	queued = h + 1 - atomic_load_explicit(&rg->done, memory_order_relaxed);
	if (queued > lg->high_water)
		lg->high_water = queued;
	log_wake_writer(lg, false);
}

void log_count_drop(struct logger *lg, enum log_level level)
{
	lg->dropped++;
	lg->drop_pending++;
	if (level <= LL_WARNING) {
		lg->dropped_important++;
		lg->drop_pending_important++;
	}
}

/* The "N log lines dropped" record for the drops counted so far, which it
 * then clears; NULL when no buffer could be had (the drops stay counted). */
struct log_rec *log_drop_notice(struct logger *lg)
{
	struct log_rec *r = log_formatf(lg, LL_WARNING,
			"%llu log lines dropped (%llu of them WARNING or ERROR)",
			(unsigned long long)lg->drop_pending,
			(unsigned long long)lg->drop_pending_important);

	if (r) {
		lg->records++;
		lg->drop_pending = lg->drop_pending_important = 0;
	}
	return r;
}

/* Reclaim up to <budget>, then push a waiting control record and drop
 * notice if there is room.  Everything the producer does before looking for
 * room. */
static void log_housekeep(struct logger *lg, struct log_ring *rg, uint32_t budget)
{
	struct log_rec *r;

	if (lg->sync) {
		lg->sync->housekeep(lg);
		return;
	}
	log_ring_reclaim(lg, rg, budget);
	if (lg->pending_ctl != NULL) {
		if (log_ring_full(rg))
			return;
		log_ring_push(lg, rg, lg->pending_ctl);
		lg->pending_ctl = NULL;
	}
	if (lg->drop_pending == 0 || log_ring_full(rg))
		return;
	r = log_drop_notice(lg);
	if (r == NULL)
		return;
	log_ring_push(lg, rg, r);
}

/* Wait until every ring's done reaches the head it has now. */
static int log_wait_written(struct logger *lg, int timeout_ms)
{
	int64_t deadline = timeout_ms < 0 ? INT64_MAX : log_now_ms() + timeout_ms;
	int ret = 0;
	unsigned i;

	atomic_store_explicit(&lg->flush_wait, 1, memory_order_seq_cst);
	atomic_thread_fence(memory_order_seq_cst);
	for (i = 0; i < lg->nrings && ret == 0; i++) {
		struct log_ring *rg = &lg->rings[i];
		uint32_t target = atomic_load_explicit(&rg->head, memory_order_relaxed);

		for (;;) {
			uint32_t d = atomic_load_explicit(&rg->done, memory_order_acquire);
			int64_t left = deadline - log_now_ms();
			struct timespec rel;

			if ((int32_t)(d - target) >= 0)
				break;
			if (left <= 0) {
				ret = -ETIMEDOUT;
				break;
			}
			if (left > 100)
				left = 100;
			rel.tv_sec = 0;
			rel.tv_nsec = (long)left * 1000000;
			log_futex_wait(&rg->done, d, &rel);
		}
	}
	atomic_store_explicit(&lg->flush_wait, 0, memory_order_relaxed);
	return ret;
}

int log_flush(struct logger *lg, int timeout_ms)
{
	int ret;
	unsigned i;

	if (lg == NULL)
		return 0;
	log_housekeep(lg, &lg->rings[0], LOG_RECLAIM_ALL);
	ret = log_wait_written(lg, timeout_ms);
	for (i = 0; i < lg->nrings; i++)
		log_ring_reclaim(lg, &lg->rings[i], LOG_RECLAIM_ALL);
	/* A drop notice that only now found room goes out too. */
	if (ret == 0 && (lg->drop_pending || lg->pending_ctl)) {
		log_housekeep(lg, &lg->rings[0], LOG_RECLAIM_ALL);
		ret = log_wait_written(lg, timeout_ms);
		log_ring_reclaim(lg, &lg->rings[0], LOG_RECLAIM_ALL);
	}
	return ret;
}

/* ---- FATAL: out before the caller exits ---- */

/* The writer did not answer in time: write <r> ourselves. */
static void log_write_direct(struct logger *lg, const struct log_rec *r)
{
	bool done = false;

	if (lg->logfile != NULL) {
		int fd = log_open_file(lg->logfile);

		if (fd >= 0) {
			done = log_write_all(fd, r->text, r->len) == 0;
			close(fd);
		}
	}
	if (lg->to_stderr || !done)
		(void)log_write_all(STDERR_FILENO, r->text, r->len);
}

static void log_write_fatal(struct logger *lg, const char *prefix, const char *fmt, va_list ap)
{
	struct log_ring *rg = &lg->rings[0];
	struct log_rec *r;
	va_list aq;

	va_copy(aq, ap);
	r = log_format(lg, LL_FATAL, prefix, fmt, aq);
	va_end(aq);
	if (r == NULL) {
		lg->written_direct++;
		log_vwrite_stderr(LL_FATAL, prefix, fmt, ap);
		return;
	}
	if (log_flush(lg, LOG_FATAL_WAIT_MS) == 0 && !log_ring_full(rg)) {
		log_ring_push(lg, rg, r);
		if (log_wait_written(lg, LOG_FATAL_WAIT_MS) == 0) {
			log_ring_reclaim(lg, rg, LOG_RECLAIM_ALL);
			return;
		}
		/* Stuck writer: the record stays queued and may appear twice. */
		log_write_direct(lg, r);
		return;
	}
	lg->written_direct++;
	log_write_direct(lg, r);
	log_rec_free(lg, r);
}

/* ---- public producer API ---- */

bool log_enabled(const struct logger *lg, enum log_level level)
{
	int verbose = lg != NULL ? lg->verbose : 0;

	return log_level_valid(level) && (int)level <= (int)LL_INFO + verbose;
}

void log_set_verbose(struct logger *lg, int verbose)
{
	if (lg != NULL)
		lg->verbose = verbose < 0 ? 0 : verbose;
}

bool log_synchronous(const struct logger *lg)
{
	return lg == NULL || lg->sync != NULL;
}

void log_vwrite(struct logger *lg, enum log_level level, const char *prefix, const char *fmt,
		va_list ap)
{
	struct log_ring *rg;
	struct log_rec *r;

	if (!log_enabled(lg, level))
		return;
	if (lg == NULL) {
		log_vwrite_stderr(level, prefix, fmt, ap);
		return;
	}
	lg->records++;
	if (lg->sync) {
		lg->sync->vwrite(lg, level, prefix, fmt, ap);
		return;
	}
	if (level == LL_FATAL) {
		log_write_fatal(lg, prefix, fmt, ap);
		return;
	}
	rg = &lg->rings[0];
	log_housekeep(lg, rg, LOG_RECLAIM_STEP);
	if (log_ring_full(rg)) {
		log_count_drop(lg, level);
		return;
	}
	r = log_format(lg, level, prefix, fmt, ap);
	if (r == NULL) {
		log_count_drop(lg, level);
		return;
	}
	log_ring_push(lg, rg, r);
}

void log_write(struct logger *lg, enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(lg, level, NULL, fmt, ap);
	va_end(ap);
}

void log_write_prefix(
		struct logger *lg, enum log_level level, const char *prefix, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(lg, level, prefix, fmt, ap);
	va_end(ap);
}

void log_poll(struct logger *lg)
{
	int e;

	if (lg == NULL)
		return;
	/* the usual case, once per event-loop iteration: nothing to do */
	if (!lg->sync && lg->pending_ctl == NULL && lg->drop_pending == 0 &&
			atomic_load_explicit(&lg->rings[0].done, memory_order_relaxed) ==
					lg->rings[0].freed &&
			atomic_load_explicit(&lg->err_reopen, memory_order_relaxed) == 0 &&
			atomic_load_explicit(&lg->err_write, memory_order_relaxed) == 0)
		return;
	log_housekeep(lg, &lg->rings[0], LOG_RECLAIM_POLL);
	e = atomic_exchange_explicit(&lg->err_reopen, 0, memory_order_relaxed);
	if (e != 0)
		log_write(lg, LL_ERROR, "could not reopen logfile \"%s\": %s",
				lg->logfile ? lg->logfile : "", strerror(e));
	e = atomic_exchange_explicit(&lg->err_write, 0, memory_order_relaxed);
	if (e != 0)
		log_write(lg, LL_ERROR, "writing the log failed: %s", strerror(e));
}

/* Queue control record <r>, or keep it until there is room. */
static void log_queue_ctl(struct logger *lg, struct log_rec *r)
{
	struct log_ring *rg = &lg->rings[0];

	if (lg->sync) {
		lg->sync->control(lg, r);
		return;
	}
	if (lg->pending_ctl != NULL) {
		/* A later request replaces one that never got queued. */
		log_rec_free(lg, lg->pending_ctl);
		lg->pending_ctl = NULL;
	}
	lg->pending_ctl = r;
	log_housekeep(lg, rg, LOG_RECLAIM_STEP);
}

int log_reopen(struct logger *lg)
{
	struct log_rec *r;

	if (lg == NULL)
		return -EINVAL;
	if (lg->pending_ctl != NULL)
		return 0; /* a waiting reopen or reconfigure reopens anyway */
	r = log_rec_alloc(lg, sizeof(struct log_rec));
	if (r == NULL)
		return -ENOMEM;
	r->kind = LOG_REC_REOPEN;
	log_queue_ctl(lg, r);
	return 0;
}

int log_reconfigure(struct logger *lg, const struct log_config *cfg)
{
	const char *path = cfg->logfile != NULL ? cfg->logfile : "";
	const char *ident = cfg->syslog_ident != NULL ? cfg->syslog_ident : "pgslab";
	size_t plen = strlen(path), ilen = strlen(ident);
	char *copy = NULL;
	struct log_rec *r;
	int fac;

	if (lg == NULL)
		return -EINVAL;
	fac = log_facility_code(cfg->syslog_facility);
	if (fac < 0)
		return -EINVAL;
	if (plen + ilen + 2 > LOG_RECORD_MAX - sizeof(struct log_rec))
		return -ENAMETOOLONG;
	if (plen > 0) {
		copy = sys_strdup(path);
		if (copy == NULL)
			return -ENOMEM;
	}
	r = log_rec_alloc(lg, sizeof(struct log_rec) + plen + ilen + 2);
	if (r == NULL) {
		sys_free(copy);
		return -ENOMEM;
	}
	r->kind = LOG_REC_CONFIG;
	memcpy(r->text, path, plen + 1);
	memcpy(r->text + plen + 1, ident, ilen + 1);
	r->len = (uint32_t)(plen + ilen + 2);
	r->arg = ((uint32_t)fac & LOG_CF_FACMASK) | (cfg->to_stderr ? LOG_CF_STDERR : 0) |
		 (cfg->syslog ? LOG_CF_SYSLOG : 0);
	sys_free(lg->logfile);
	lg->logfile = copy;
	lg->to_stderr = cfg->to_stderr;
	log_set_verbose(lg, cfg->verbose);
	log_queue_ctl(lg, r);
	return 0;
}

void log_stats_get(struct logger *lg, struct log_stats *st)
{
	struct slab_stats ss;
	unsigned i;

	memset(st, 0, sizeof(*st));
	if (lg == NULL)
		return;
	st->records = lg->records;
	st->dropped = lg->dropped;
	st->dropped_important = lg->dropped_important;
	st->queue_high_water = lg->high_water;
	st->buffer_allocs = lg->buf_allocs;
	st->written = lg->written_direct;
	for (i = 0; i < lg->nrings; i++) {
		struct log_ring *rg = &lg->rings[i];
		uint32_t d = atomic_load_explicit(&rg->done, memory_order_acquire);
		uint32_t h = atomic_load_explicit(&rg->head, memory_order_relaxed);

		/* done first: written and pending may overlap by a record, never miss one */
		st->written += atomic_load_explicit(&rg->written, memory_order_relaxed);
		st->bytes += atomic_load_explicit(&rg->bytes, memory_order_relaxed);
		for (; d != h; d++)
			if (rg->slot[d & rg->mask]->kind == LOG_REC_TEXT)
				st->pending++;
	}
	st->writes = atomic_load_explicit(&lg->writes, memory_order_relaxed);
	st->write_errors = atomic_load_explicit(&lg->write_errors, memory_order_relaxed);
	slab_cache_stats(lg->cache, &ss);
	st->buffer_reuses = lg->mag_hits + ss.hits;
}

/* The writer's half of log_test_pause_writer() (log_test.c); log_destroy
 * also resumes a paused writer. */
void log_writer_pause(struct logger *lg, bool pause)
{
	atomic_store_explicit(&lg->pause_req, pause ? 1 : 0, memory_order_seq_cst);
	log_wake_writer(lg, true);
}

void log_set_thread(struct logger *lg)
{
	log_current = lg;
}

struct logger *log_thread(void)
{
	return log_current;
}

/* ---- writer thread ---- */

static void log_writer_note_error(struct logger *lg, int err)
{
	atomic_fetch_add_explicit(&lg->write_errors, 1, memory_order_relaxed);
	if (!lg->w_failing) {
		lg->w_failing = true;
		atomic_store_explicit(&lg->err_write, err, memory_order_relaxed);
	}
}

/* writev everything in iov[0..n) to <fd>; consumes <iov>.  0 or -errno. */
static int log_writev_all(struct logger *lg, int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t w = writev(fd, iov, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				/* a non-blocking pipe as stderr: wait a little, then give up */
				struct pollfd pfd = {.fd = fd, .events = POLLOUT};

				if (poll(&pfd, 1, 1000) > 0)
					continue;
				errno = EAGAIN;
			}
			return -errno;
		}
		atomic_fetch_add_explicit(&lg->writes, 1, memory_order_relaxed);
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

static void log_writer_to_fd(struct logger *lg, int fd, struct log_rec **batch, int n)
{
	struct iovec iov[LOG_IOV_MAX];
	int i, ret;

	for (i = 0; i < n; i++) {
		iov[i].iov_base = batch[i]->text;
		iov[i].iov_len = batch[i]->len;
	}
	ret = log_writev_all(lg, fd, iov, n);
	if (ret < 0)
		log_writer_note_error(lg, -ret);
	else
		lg->w_failing = false;
}

void log_writer_output(struct logger *lg, struct log_ring *rg, struct log_rec **batch, int n)
{
	uint64_t bytes = 0;
	int i;

	if (lg->w_fd >= 0)
		log_writer_to_fd(lg, lg->w_fd, batch, n);
	if (lg->w_stderr)
		log_writer_to_fd(lg, STDERR_FILENO, batch, n);
	for (i = 0; i < n; i++) {
		const struct log_rec *r = batch[i];

		bytes += r->len;
		if (lg->w_syslog)
			syslog(log_syslog_prio[r->level], "%.*s", (int)(r->len - r->msg_off - 1),
					r->text + r->msg_off);
	}
	atomic_store_explicit(&rg->written,
			atomic_load_explicit(&rg->written, memory_order_relaxed) + (uint64_t)n,
			memory_order_relaxed);
	atomic_store_explicit(&rg->bytes,
			atomic_load_explicit(&rg->bytes, memory_order_relaxed) + bytes,
			memory_order_relaxed);
}

void log_writer_syslog(struct logger *lg, bool on)
{
	if (lg->w_syslog)
		closelog();
	lg->w_syslog = on;
	if (on)
		openlog(lg->w_ident, LOG_PID | LOG_NDELAY, lg->w_facility);
}

void log_writer_control(struct logger *lg, const struct log_rec *r)
{
	if (r->kind == LOG_REC_CONFIG) {
		const char *path = r->text;
		const char *ident = r->text + strlen(path) + 1;
		char *p = path[0] ? sys_strdup(path) : NULL;
		char *id = sys_strdup(ident);

		if ((path[0] && p == NULL) || id == NULL) {
			sys_free(p);
			sys_free(id);
			atomic_store_explicit(&lg->err_reopen, ENOMEM, memory_order_relaxed);
			return;
		}
		if (lg->w_syslog)
			closelog(); /* before its ident string goes */
		lg->w_syslog = false;
		sys_free(lg->w_ident);
		lg->w_ident = id;
		lg->w_facility = (int)(r->arg & LOG_CF_FACMASK);
		log_writer_syslog(lg, (r->arg & LOG_CF_SYSLOG) != 0);
		lg->w_stderr = (r->arg & LOG_CF_STDERR) != 0;
		sys_free(lg->w_logfile);
		lg->w_logfile = p;
	}
	if (lg->w_logfile != NULL) {
		int fd = log_open_file(lg->w_logfile);

		if (fd < 0) {
			atomic_store_explicit(&lg->err_reopen, -fd, memory_order_relaxed);
			return;
		}
		if (lg->w_fd >= 0)
			close(lg->w_fd);
		lg->w_fd = fd;
	} else if (lg->w_fd >= 0) {
		close(lg->w_fd);
		lg->w_fd = -1;
	}
}

/* Write everything queued in <rg>; true if anything was there. */
static bool log_writer_drain_ring(struct logger *lg, struct log_ring *rg)
{
	struct log_rec *batch[LOG_IOV_MAX];
	uint32_t d = atomic_load_explicit(&rg->done, memory_order_relaxed);
	uint32_t h = atomic_load_explicit(&rg->head, memory_order_acquire);

	if (d == h)
		return false;
	while (d != h) {
		int n = 0;

		while (d != h && n < LOG_IOV_MAX) {
			struct log_rec *r = rg->slot[d & rg->mask];

			if (r->kind != LOG_REC_TEXT) {
				if (n > 0)
					break; /* write what came before it first */
				log_writer_control(lg, r);
				d++;
				break;
			}
			batch[n++] = r;
			d++;
		}
		if (n > 0)
			log_writer_output(lg, rg, batch, n);
		atomic_store_explicit(&rg->done, d, memory_order_release);
		atomic_thread_fence(memory_order_seq_cst);
		if (atomic_load_explicit(&lg->flush_wait, memory_order_relaxed))
			log_futex_wake(&rg->done, INT_MAX);
		if (d == h)
			h = atomic_load_explicit(&rg->head, memory_order_acquire);
	}
	return true;
}

static bool log_writer_drain(struct logger *lg)
{
	bool any = false;
	unsigned i;

	for (i = 0; i < lg->nrings; i++)
		any |= log_writer_drain_ring(lg, &lg->rings[i]);
	return any;
}

static bool log_writer_has_work(struct logger *lg)
{
	unsigned i;

	for (i = 0; i < lg->nrings; i++) {
		struct log_ring *rg = &lg->rings[i];

		if (atomic_load_explicit(&rg->head, memory_order_acquire) !=
				atomic_load_explicit(&rg->done, memory_order_relaxed))
			return true;
	}
	return false;
}

static void *log_writer_main(void *arg)
{
	struct logger *lg = arg;

	if (lg->w_syslog) {
		lg->w_syslog = false;
		log_writer_syslog(lg, true);
	}
	for (;;) {
		uint32_t seq;

		if (atomic_load_explicit(&lg->pause_req, memory_order_acquire) &&
				!atomic_load_explicit(&lg->stop, memory_order_acquire)) {
			seq = atomic_load_explicit(&lg->wake_seq, memory_order_acquire);
			atomic_store_explicit(&lg->paused, 1, memory_order_release);
			if (atomic_load_explicit(&lg->pause_req, memory_order_seq_cst) &&
					!atomic_load_explicit(&lg->stop, memory_order_seq_cst))
				log_futex_wait(&lg->wake_seq, seq, NULL);
			continue;
		}
		if (atomic_load_explicit(&lg->paused, memory_order_relaxed))
			atomic_store_explicit(&lg->paused, 0, memory_order_release);

		if (log_writer_drain(lg))
			continue;
		if (atomic_load_explicit(&lg->stop, memory_order_acquire)) {
			/* pushes made before stop are visible now */
			if (!log_writer_drain(lg))
				break;
			continue;
		}
		seq = atomic_load_explicit(&lg->wake_seq, memory_order_acquire);
		atomic_store_explicit(&lg->sleeping, 1, memory_order_seq_cst);
		atomic_thread_fence(memory_order_seq_cst);
		if (!log_writer_has_work(lg) &&
				!atomic_load_explicit(&lg->stop, memory_order_seq_cst) &&
				!atomic_load_explicit(&lg->pause_req, memory_order_seq_cst))
			log_futex_wait(&lg->wake_seq, seq, NULL);
		atomic_store_explicit(&lg->sleeping, 0, memory_order_relaxed);
	}
	if (lg->w_syslog)
		closelog();
	lg->w_syslog = false;
	return NULL;
}

/* ---- create / destroy ---- */

struct logger *log_create(
		struct slab_arena *arena, const struct log_config *cfg, char *err, size_t errlen)
{
	const struct log_sync_ops *sync = NULL;
	struct logger *lg;
	size_t qlen;
	sigset_t all, old;
	int fac, ret;

	if (arena == NULL || cfg == NULL) {
		log_errf(err, errlen, "log_create: no arena or config");
		return NULL;
	}
	fac = log_facility_code(cfg->syslog_facility);
	if (fac < 0) {
		log_errf(err, errlen, "unknown syslog_facility \"%s\"", cfg->syslog_facility);
		return NULL;
	}
	if (cfg->sync_write || LOG_SYNC_FORCED) {
		sync = &log_sync_ops;
		if (sync == NULL) {
			log_errf(err, errlen, "sync_write, but no log_sync.o linked");
			return NULL;
		}
	}
	lg = sys_calloc(1, sizeof(*lg));
	if (lg == NULL) {
		log_errf(err, errlen, "out of memory");
		return NULL;
	}
	lg->w_fd = -1;
	lg->arena = arena;
	lg->verbose = cfg->verbose < 0 ? 0 : cfg->verbose;
	lg->sync = sync;
	lg->to_stderr = cfg->to_stderr;
	lg->w_stderr = cfg->to_stderr;
	lg->w_syslog = cfg->syslog;
	lg->w_facility = fac;
	tzset();
	log_clock_init(&lg->clock);

	qlen = cfg->queue_len ? cfg->queue_len : LOG_QUEUE_DEFAULT;
	if (qlen < LOG_QUEUE_MIN)
		qlen = LOG_QUEUE_MIN;
	if (qlen > LOG_QUEUE_MAX)
		qlen = LOG_QUEUE_MAX;
	while (qlen & (qlen - 1))
		qlen += qlen & -qlen; /* round up to a power of two */

	lg->rings = sys_calloc(1, sizeof(struct log_ring));
	if (lg->rings == NULL)
		goto nomem;
	lg->nrings = 1;
	lg->rings[0].mask = (uint32_t)qlen - 1;
	lg->rings[0].slot = sys_calloc(qlen, sizeof(struct log_rec *));
	if (lg->rings[0].slot == NULL)
		goto nomem;
	lg->cache = slab_cache_create(arena, "log-record", LOG_RECORD_SIZE, 0, NULL, NULL, NULL);
	if (lg->cache == NULL) {
		log_errf(err, errlen, "cannot create the log-record slab cache");
		goto fail;
	}
	lg->w_ident = sys_strdup(cfg->syslog_ident ? cfg->syslog_ident : "pgslab");
	if (lg->w_ident == NULL)
		goto nomem;
	if (cfg->logfile != NULL && cfg->logfile[0] != '\0') {
		lg->logfile = sys_strdup(cfg->logfile);
		lg->w_logfile = sys_strdup(cfg->logfile);
		if (lg->logfile == NULL || lg->w_logfile == NULL)
			goto nomem;
		ret = log_open_file(lg->logfile);
		if (ret < 0) {
			log_errf(err, errlen, "cannot open logfile \"%s\": %s", lg->logfile,
					strerror(-ret));
			goto fail;
		}
		lg->w_fd = ret;
	}

	if (lg->sync) {
		lg->sync->start(lg);
		return lg;
	}
	/* The writer takes no signals: they belong to the event loop. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = pthread_create(&lg->thread, NULL, log_writer_main, lg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret != 0) {
		log_errf(err, errlen, "cannot start the log writer thread: %s", strerror(ret));
		goto fail;
	}
	lg->thread_started = true;
	pthread_setname_np(lg->thread, "pgslab-log");
	return lg;

nomem:
	log_errf(err, errlen, "out of memory");
fail:
	lg->w_syslog = false; /* never opened: the thread did not run */
	log_destroy(lg);
	return NULL;
}

void log_destroy(struct logger *lg)
{
	unsigned i;

	if (lg == NULL)
		return;
	if (lg->thread_started) {
		if (atomic_load_explicit(&lg->pause_req, memory_order_relaxed))
			log_writer_pause(lg, false);
		/* Room for a pending drop notice or control record, then stop. */
		if (lg->drop_pending || lg->pending_ctl)
			(void)log_flush(lg, -1);
		atomic_store_explicit(&lg->stop, 1, memory_order_seq_cst);
		log_wake_writer(lg, true);
		pthread_join(lg->thread, NULL);
		lg->thread_started = false;
	}
	for (i = 0; lg->rings != NULL && i < lg->nrings; i++) {
		struct log_ring *rg = &lg->rings[i];
		uint32_t h = atomic_load_explicit(&rg->head, memory_order_relaxed);

		if (rg->slot == NULL)
			continue;
		for (; rg->freed != h; rg->freed++)
			log_rec_free(lg, rg->slot[rg->freed & rg->mask]);
		sys_free(rg->slot);
	}
	if (lg->pending_ctl != NULL)
		log_rec_free(lg, lg->pending_ctl);
	while (lg->nmag > 0)
		slab_free(lg->cache, lg->mag[--lg->nmag]);
	if (lg->sync)
		lg->sync->stop(lg);
	if (lg->w_fd >= 0)
		close(lg->w_fd);
	if (lg->cache != NULL)
		slab_cache_destroy(lg->cache);
	if (log_current == lg)
		log_current = NULL;
	sys_free(lg->rings);
	sys_free(lg->logfile);
	sys_free(lg->w_logfile);
	sys_free(lg->w_ident);
	sys_free(lg);
}
