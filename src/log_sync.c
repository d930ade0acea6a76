/* log_sync.c -- the synchronous logger, the baseline the asynchronous writer is measured against.
 *
 * A logger created with log_config.sync_write (every logger in a
 * -DLOG_SYNC_WRITE build: make bench-log runs one as pgslab-synclog) starts
 * no writer thread, and its ring stays empty (head == done == freed == 0).
 * log_write() formats the record into a buffer as log.c does and calls the
 * writer's own output code in the caller's thread, which then owns the w_*
 * fields; control records are applied the same way at once.  pending is
 * always 0; dropped moves only when no buffer could be had.
 *
 * Not a production path: pgslab never sets sync_write, and log.c reaches
 * this file only through log_sync_ops, which it refers to weakly, so
 * ./pgslab (linked from libpgslab.a) does not contain it.  What production
 * does write synchronously -- FATAL records, and everything before a logger
 * exists -- is log.c's own.
 */
#include "log_int.h"

#include <syslog.h>

/* Write <r> to the outputs now, in the caller's thread; frees <r>. */
static void log_sync_emit(struct logger *lg, struct log_rec *r)
{
	log_writer_output(lg, &lg->rings[0], &r, 1);
	log_rec_free(lg, r);
}

/* Write the drop notice, if drops (out of buffers) are waiting for one. */
static void log_sync_notice(struct logger *lg)
{
	struct log_rec *r;

	if (lg->drop_pending == 0)
		return;
	r = log_drop_notice(lg);
	if (r == NULL)
		return;
	log_sync_emit(lg, r);
}

/* No thread to open syslog: open it here. */
static void log_sync_start(struct logger *lg)
{
	if (lg->w_syslog) {
		lg->w_syslog = false;
		log_writer_syslog(lg, true);
	}
}

static void log_sync_vwrite(struct logger *lg, enum log_level level, const char *prefix,
		const char *fmt, va_list ap)
{
	struct log_rec *r;

	log_sync_notice(lg);
	r = log_format(lg, level, prefix, fmt, ap);
	if (r == NULL) {
		if (level == LL_FATAL) {
			lg->written_direct++;
			log_vwrite_stderr(level, prefix, fmt, ap);
		} else {
			log_count_drop(lg, level);
		}
		return;
	}
	log_sync_emit(lg, r);
}

/* Nothing is queued: apply <r> now (log_poll reports a failure). */
static void log_sync_control(struct logger *lg, struct log_rec *r)
{
	log_writer_control(lg, r);
	log_rec_free(lg, r);
}

static void log_sync_stop(struct logger *lg)
{
	log_sync_notice(lg);
	if (lg->w_syslog)
		closelog(); /* a writer thread closes its own */
}

const struct log_sync_ops log_sync_ops = {
		.start = log_sync_start,
		.vwrite = log_sync_vwrite,
		.housekeep = log_sync_notice,
		.control = log_sync_control,
		.stop = log_sync_stop,
};
