/* log.h -- asynchronous logging: records formatted into slab buffers, written by a thread.
 *
 * The event loop (the producer) formats each record into a buffer from a
 * slab cache and pushes the pointer onto a bounded single-producer/single-
 * consumer ring; a writer thread gathers many records into one writev() per
 * output (logfile, stderr) and hands each to syslog.  The producer never waits
 * on log I/O: when the ring is full a record is dropped and counted, and a
 * WARNING "N log lines dropped" record goes out as soon as there is room.
 * FATAL records are the exception: log_write() returns only once they are
 * written, because the caller is about to exit.
 *
 * Line format, as PgBouncer's:
 *   2026-11-25 10:11:12.345 UTC [4242] LOG C-0x1a2b: db/user@10.0.0.1:5432 message
 * i.e. "<local time with ms> <zone> [<pid>] <LEVEL> <message>\n", where LEVEL
 * is LOG for INFO and STATS, else WARNING, ERROR, FATAL, DEBUG or NOISE.  The
 * connection prefix is part of the message: see log_write_prefix()/slog_*().
 *
 * Threads: every function taking a struct logger must be called from the one
 * thread that created it (the producer).  The slab arena is single-threaded,
 * so the writer thread never frees a buffer: it only advances a "done"
 * cursor, and the producer returns written buffers to the cache on its next
 * log call or in log_poll().  A multi-worker build will give each worker its
 * own producer ring (and arena); the writer already loops over an array of
 * rings, so that is an addition, not a redesign.
 *
 * Synchronous mode (log_config.sync_write, or every logger when built with
 * -DLOG_SYNC_WRITE): no ring and no thread; log_write() formats the record
 * and writes it to the outputs before it returns, as a plain logger would.
 * Same API and line format; it exists as the baseline the asynchronous
 * writer is measured against (make bench-log), and never drops a record.
 * It lives in log_sync.c, which only programs that ask for it link (the
 * unit test, the -DLOG_SYNC_WRITE build); pgslab does not.
 *
 * Levels are named LL_* because <syslog.h> owns LOG_*.
 */
#ifndef PGSLAB_LOG_H
#define PGSLAB_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct slab_arena;
struct logger; /* opaque */

enum log_level {
	LL_FATAL, /* written synchronously; the caller exits next */
	LL_ERROR,
	LL_WARNING,
	LL_STATS, /* periodic stats lines, shown as LOG */
	LL_INFO,  /* shown as LOG */
	LL_DEBUG, /* verbose >= 1 */
	LL_NOISE, /* verbose >= 2 */
};

#define LOG_QUEUE_DEFAULT 4096u /* ring entries when log_config.queue_len is 0 */
#define LOG_QUEUE_MIN 16u
#define LOG_QUEUE_MAX (1u << 20)
#define LOG_RECORD_SIZE 512u  /* object size of the "log-record" cache, header included */
#define LOG_RECORD_MAX 65536u /* longer records are truncated and end in "..." */

struct log_config {
	const char *logfile;	     /* opened in append mode; NULL or "" for none */
	bool to_stderr;		     /* also write to stderr (not daemonized) */
	bool syslog;		     /* also send to syslog (process-wide: one logger only) */
	const char *syslog_ident;    /* NULL: "pgslab" */
	const char *syslog_facility; /* daemon, user, local0..local7, ...; NULL: "daemon" */
	int verbose;		     /* 0: up to INFO, 1: DEBUG, 2: NOISE */
	size_t queue_len;	     /* ring entries, rounded up to a power of two; 0: default */
	bool sync_write;	     /* write in the caller, no writer thread (a baseline);
				      * forced on by -DLOG_SYNC_WRITE; needs log_sync.o */
};

struct log_stats {
	uint64_t records; /* records accepted by the level filter, drop notices included */
	uint64_t written; /* records the writer has passed to the outputs */
	uint64_t dropped; /* records dropped because the ring was full (all levels) */
	uint64_t dropped_important; /* ... of which WARNING or ERROR */
	uint64_t pending;	    /* records queued, not yet written */
	uint64_t bytes;		    /* bytes of log text written (once, however many outputs) */
	uint64_t queue_high_water;  /* most records queued at once (0 when synchronous) */
	uint64_t writes;	    /* writev() calls */
	uint64_t write_errors;	    /* failed writev() calls (the batch is lost for that output) */
	uint64_t buffer_allocs;	    /* record buffers taken */
	uint64_t buffer_reuses;	    /* ... of which came from the cache without growing it */
};

/* Open the outputs and start the writer thread.  <arena> (borrowed, must
 * outlive the logger) supplies the record buffers; only the calling thread
 * may use it while the logger lives.  On failure returns NULL with a reason
 * in <err> (also for sync_write in a program without log_sync.o). */
struct logger *log_create(
		struct slab_arena *arena, const struct log_config *cfg, char *err, size_t errlen);
/* Write everything still queued (and a pending drop notice), stop and join the
 * writer, close the outputs, return all buffers.  NULL is fine. */
void log_destroy(struct logger *lg);

/* SIGHUP: the writer closes and reopens the logfile by name after writing the
 * records logged before this call, so after `mv pgslab.log pgslab.log.1` the
 * following records land in a new pgslab.log.  Never blocks: when the ring is
 * full the request waits in the logger and goes first once there is room.
 * Returns 0, or -ENOMEM when no buffer could be had. */
int log_reopen(struct logger *lg);
/* Like log_reopen(), but switch to a new configuration (queue_len is
 * ignored).  Returns -EINVAL, with the logger unchanged, for an unknown
 * facility.  A logfile that cannot be opened leaves the old one in use and
 * is reported as an ERROR record. */
int log_reconfigure(struct logger *lg, const struct log_config *cfg);

void log_set_verbose(struct logger *lg, int verbose);
/* True when <lg> writes in the caller (sync_write or -DLOG_SYNC_WRITE). */
bool log_synchronous(const struct logger *lg);
/* Would a record of <level> be written?  <lg> NULL means the stderr fallback
 * (verbose 0). */
bool log_enabled(const struct logger *lg, enum log_level level);

/* Format and queue one record; never blocks except for LL_FATAL (which waits,
 * up to a second, for the writer and then writes directly).  <lg> NULL
 * writes synchronously to stderr (early startup). */
void log_write(struct logger *lg, enum log_level level, const char *fmt, ...)
		__attribute__((format(printf, 3, 4)));
/* The same, with "<prefix> " before the message (e.g. "C-0x1a2b: db/user@addr:port"). */
void log_write_prefix(struct logger *lg, enum log_level level, const char *prefix, const char *fmt,
		...) __attribute__((format(printf, 4, 5)));
void log_vwrite(struct logger *lg, enum log_level level, const char *prefix, const char *fmt,
		va_list ap) __attribute__((format(printf, 4, 0)));

/* Producer housekeeping, once per event-loop iteration: return written
 * buffers to the cache, emit a pending drop notice, report writer errors. */
void log_poll(struct logger *lg);
/* Wait until everything queued so far is written (shutdown, tests).  Returns
 * 0, or -ETIMEDOUT after <timeout_ms> (negative: wait forever). */
int log_flush(struct logger *lg, int timeout_ms);

void log_stats_get(struct logger *lg, struct log_stats *st);

/* "LOG", "WARNING", ... as printed in a line. */
const char *log_level_tag(enum log_level level);

/* ---- per-thread current logger, for the log_*() macros ---- */

/* The logger the calling thread's log_*() macros use; NULL (the default)
 * writes synchronously to stderr. */
void log_set_thread(struct logger *lg);
struct logger *log_thread(void);

#define log_fatal(...) log_write(log_thread(), LL_FATAL, __VA_ARGS__)
#define log_error(...) log_write(log_thread(), LL_ERROR, __VA_ARGS__)
#define log_warning(...) log_write(log_thread(), LL_WARNING, __VA_ARGS__)
#define log_stats(...) log_write(log_thread(), LL_STATS, __VA_ARGS__)
#define log_info(...) log_write(log_thread(), LL_INFO, __VA_ARGS__)
/* Debug levels skip evaluating their arguments when disabled. */
#define log_debug(...) log_write_if_(LL_DEBUG, NULL, __VA_ARGS__)
#define log_noise(...) log_write_if_(LL_NOISE, NULL, __VA_ARGS__)

/* With a connection prefix, as PgBouncer's slog_*(): slog_info(c->logid, "closing"). */
#define slog_fatal(prefix, ...) log_write_prefix(log_thread(), LL_FATAL, prefix, __VA_ARGS__)
#define slog_error(prefix, ...) log_write_prefix(log_thread(), LL_ERROR, prefix, __VA_ARGS__)
#define slog_warning(prefix, ...) log_write_prefix(log_thread(), LL_WARNING, prefix, __VA_ARGS__)
#define slog_info(prefix, ...) log_write_prefix(log_thread(), LL_INFO, prefix, __VA_ARGS__)
#define slog_debug(prefix, ...) log_write_if_(LL_DEBUG, prefix, __VA_ARGS__)
#define slog_noise(prefix, ...) log_write_if_(LL_NOISE, prefix, __VA_ARGS__)

#define log_write_if_(level, prefix, ...)                                                          \
	do {                                                                                       \
		struct logger *log_lg_ = log_thread();                                             \
		if (log_enabled(log_lg_, level))                                                   \
			log_write_prefix(log_lg_, level, prefix, __VA_ARGS__);                     \
	} while (0)

#endif
