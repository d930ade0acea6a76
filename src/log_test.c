/* log_test.c -- the logger's test hooks: linked by its unit test, never into pgslab.
 *
 * The Makefile leaves this file out of SRCS, so it is not in libpgslab.a
 * and `nm pgslab | grep log_test` is empty; UNIT_DEPS_t_log names it.
 * No integration test needs a hook (030_log.pl stalls the writer with a
 * FIFO as its logfile), so nothing here has to reach a running pgslab.  The
 * writer's side of a pause (pause_req, read in its loop) stays in log.c.
 */
#include "log_int.h"

#include <stdatomic.h>
#include <time.h>

void log_test_pause_writer(struct logger *lg, bool pause)
{
	if (lg->sync)
		return;
	log_writer_pause(lg, pause);
	if (!pause)
		return;
	while (!atomic_load_explicit(&lg->paused, memory_order_acquire)) {
		struct timespec ts = {0, 100000};

		nanosleep(&ts, NULL);
	}
}
