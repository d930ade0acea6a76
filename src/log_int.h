/* log_int.h -- private to the logger (log.c, log_sync.c, log_test.c).
 *
 * The record, ring and logger structs, the table through which log.c hands
 * a synchronous logger to log_sync.c, and the pieces of log.c the other two
 * files call.  Nothing outside those three files and the logger's unit test
 * includes it; the theory is at the top of log.c.
 */
#ifndef PGSLAB_LOG_INT_H
#define PGSLAB_LOG_INT_H

#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define LOG_CACHELINE 64
/* Free record buffers the producer keeps in front of the slab cache (a
 * Bonwick magazine): the working set of a busy loop swings by a writev batch
 * every iteration, and the slab layer keeps only one empty slab per cache,
 * so without it every swing would release and regrow slabs. */
#define LOG_MAG_SIZE 64

enum log_rec_kind {
	LOG_REC_TEXT,	/* a line in text[] */
	LOG_REC_REOPEN, /* reopen the logfile */
	LOG_REC_CONFIG, /* text[] = "logfile\0ident\0", arg = facility | LOG_CF_* */
};

#define LOG_CF_STDERR (1u << 16)
#define LOG_CF_SYSLOG (1u << 17)
#define LOG_CF_FACMASK 0xffffu

struct log_rec {
	uint32_t len;	  /* bytes in text[]; a TEXT line ends in '\n' */
	uint32_t cap;	  /* 0: from the record cache, else the slab_buf_alloc capacity */
	uint16_t msg_off; /* TEXT: where "LEVEL message" starts (what syslog gets) */
	uint8_t level;
	uint8_t kind;
	uint32_t arg;
	char text[];
};

struct log_ring {
	/* producer's line */
	_Atomic uint32_t head;
	uint32_t freed;
	uint32_t mask;
	struct log_rec **slot;
	char pad1[LOG_CACHELINE];
	/* writer's line */
	_Atomic uint32_t done;
	_Atomic uint64_t written;
	_Atomic uint64_t bytes;
	char pad2[LOG_CACHELINE];
};

/* Per-second cache of the timestamp text. */
struct log_clock {
	time_t sec;
	int pid;
	size_t date_len, tail_len;
	char date[32]; /* "2026-11-25 10:11:12" */
	char tail[80]; /* " UTC [4242] " */
};

struct log_sync_ops;

struct logger {
	/* ---- producer only ---- */
	struct slab_arena *arena;
	struct slab_cache *cache;
	struct log_ring *rings;
	unsigned nrings;
	int verbose;
	const struct log_sync_ops *sync; /* NULL: ring and writer; else write in the caller */
	struct log_clock clock;
	char *logfile; /* for the FATAL fallback and error messages */
	bool to_stderr;
	struct log_rec *pending_ctl; /* control record waiting for room */
	uint64_t records, dropped, dropped_important, written_direct;
	uint64_t drop_pending, drop_pending_important;
	uint64_t high_water, buf_allocs, mag_hits;
	unsigned nmag;
	struct log_rec *mag[LOG_MAG_SIZE]; /* free "log-record" buffers, LIFO */

	char pad1[LOG_CACHELINE];
	/* ---- shared ---- */
	_Atomic uint32_t wake_seq; /* futex word the writer sleeps on */
	_Atomic int sleeping;
	_Atomic int flush_wait;
	_Atomic int stop;
	_Atomic int pause_req; /* set only by log_test_pause_writer() (log_test.c) */
	_Atomic int paused;
	_Atomic int err_reopen; /* errno of the last failed reopen, for log_poll */
	_Atomic int err_write;	/* errno of the first failed write of a streak */
	_Atomic uint64_t writes, write_errors;

	char pad2[LOG_CACHELINE];
	/* ---- writer only (the producer sets them up before the thread starts;
	 * a synchronous logger's producer owns them) ---- */
	pthread_t thread;
	bool thread_started;
	int w_fd;
	char *w_logfile;
	bool w_stderr;
	bool w_syslog;
	char *w_ident;
	int w_facility;
	bool w_failing;
};

/* ---- the synchronous logger (log_sync.c) ----
 *
 * What a logger with <sync> set does instead of using the ring: log.c calls
 * these at the points where an asynchronous logger would start its thread,
 * queue a record, push a control record or a drop notice, and join the
 * thread.  log.c refers to log_sync_ops weakly (see there), so only the
 * programs that link log_sync.o have it. */
struct log_sync_ops {
	void (*start)(struct logger *lg); /* log_create, instead of the thread */
	void (*vwrite)(struct logger *lg, enum log_level level, const char *prefix, const char *fmt,
			va_list ap) __attribute__((format(printf, 4, 0)));
	void (*housekeep)(struct logger *lg); /* the drop notice, if drops wait for one */
	void (*control)(struct logger *lg, struct log_rec *r); /* apply and free <r> now */
	void (*stop)(struct logger *lg); /* log_destroy, instead of the join */
};

extern const struct log_sync_ops log_sync_ops;

/* ---- log.c, for log_sync.c and log_test.c ---- */

/* Format one TEXT record into a buffer from the record cache (or a larger
 * size class); NULL when no buffer could be had. */
struct log_rec *log_format(struct logger *lg, enum log_level level, const char *prefix,
		const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));
/* The "N log lines dropped" record, clearing the drops it reports; or NULL. */
struct log_rec *log_drop_notice(struct logger *lg);
void log_rec_free(struct logger *lg, struct log_rec *r);
void log_count_drop(struct logger *lg, enum log_level level);
/* The no-logger fallback: format and write(2) to stderr at once. */
void log_vwrite_stderr(enum log_level level, const char *prefix, const char *fmt, va_list ap)
		__attribute__((format(printf, 3, 0)));
/* The writer's output code: batch[0..n) to every output, counted in <rg>. */
void log_writer_output(struct logger *lg, struct log_ring *rg, struct log_rec **batch, int n);
/* Apply a REOPEN or CONFIG record to the writer's outputs. */
void log_writer_control(struct logger *lg, const struct log_rec *r);
/* Close syslog if open, then open it (with w_ident, w_facility) if <on>. */
void log_writer_syslog(struct logger *lg, bool on);
/* Ask the writer thread to park after its current batch (<pause>) or to go
 * on; it sets `paused` once parked. */
void log_writer_pause(struct logger *lg, bool pause);

/* ---- log_test.c: linked by the unit test only, never into pgslab ---- */

/* Stop (true) or resume (false) the writer.  Pausing returns once the
 * writer has finished its current batch.  A no-op for a synchronous logger. */
void log_test_pause_writer(struct logger *lg, bool pause);

#endif
