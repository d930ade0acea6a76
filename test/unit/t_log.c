/* t_log.c -- unit tests for the logger: the asynchronous one (log.c), the synchronous baseline
 * (log_sync.c), paused through the test hook (log_test.c). */
#include "../../src/log_int.h" /* log_test_pause_writer() */
#include "log.h"
#include "slab.h"
#include "sysalloc.h"
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/t_log.XXXXXX";
static struct slab_arena *arena;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static const char *tpath(const char *name)
{
	static char buf[4][256];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", tmpdir, name);
	return buf[i];
}

/* Whole file, NUL-terminated; "" when missing.  Caller frees. */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	if (f == NULL)
		return strdup("");
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	if (fread(buf, 1, (size_t)n, f) != (size_t)n)
		n = 0;
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static int count_str(const char *hay, const char *needle)
{
	int n = 0;
	size_t len = strlen(needle);

	while ((hay = strstr(hay, needle)) != NULL) {
		n++;
		hay += len;
	}
	return n;
}

static bool file_has(const char *path, const char *needle)
{
	char *b = slurp(path);
	bool r = strstr(b, needle) != NULL;

	free(b);
	return r;
}

static void show_cache(const struct slab_stats *st, void *arg)
{
	(void)arg;
	if (strcmp(st->name, "log-record") == 0)
		diag("log-record cache: %u objs/slab, allocs %llu hits %llu misses %llu grows %llu "
		     "reaps %llu",
				st->objs_per_slab, (unsigned long long)st->allocs,
				(unsigned long long)st->hits, (unsigned long long)st->misses,
				(unsigned long long)st->grows, (unsigned long long)st->reaps);
}

static struct logger *mklog(const char *file, size_t qlen, int verbose)
{
	struct log_config cfg = {
			.logfile = file ? tpath(file) : NULL,
			.queue_len = qlen,
			.verbose = verbose,
	};
	char err[256] = "";
	struct logger *lg = log_create(arena, &cfg, err, sizeof(err));

	if (lg == NULL)
		diag("log_create: %s", err);
	return lg;
}

/* Redirect fd 2 to <path> (restore with the returned fd). */
static int stderr_to(const char *path)
{
	int saved = dup(STDERR_FILENO);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	fflush(stderr);
	dup2(fd, STDERR_FILENO);
	close(fd);
	return saved;
}

static void stderr_restore(int saved)
{
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
}

static void test_create_errors(void)
{
	struct log_config cfg = {.syslog_facility = "bogus"};
	char err[256] = "";
	struct logger *lg;

	lg = log_create(arena, &cfg, err, sizeof(err));
	ok(lg == NULL && strstr(err, "syslog_facility") != NULL, "unknown facility refused: %s",
			err);
	cfg.syslog_facility = "LOCAL3";
	cfg.logfile = "/nonexistent-dir/x/pgslab.log";
	err[0] = '\0';
	lg = log_create(arena, &cfg, err, sizeof(err));
	ok(lg == NULL && strstr(err, "cannot open logfile") != NULL,
			"unopenable logfile refused after partial setup: %s", err);
	log_destroy(NULL);
	cfg.logfile = NULL;
	lg = log_create(arena, &cfg, err, sizeof(err));
	ok(lg != NULL, "facility names are case-insensitive, no outputs is fine");
	log_destroy(lg);
}

/* 200,000 numbered records with the writer running. */
static void test_sequence(void)
{
	enum { N = 200000, WARM = 20000 };
	struct logger *lg = mklog("seq.log", 1024, 0);
	struct log_stats st;
	uint64_t calls0 = 0, calls1 = 0, notices = 0, missing = 0, lines = 0;
	bool order_ok = true, notice_early = false;
	long expect = 0;
	char *buf, *line, *save = NULL;
	struct timespec work = {0, 20000};
	double t0 = now_ms();
	int i;

	if (!ok(lg != NULL, "sequence logger created"))
		return;
	for (i = 0; i < N; i++) {
		if (i == WARM)
			calls0 = sysalloc_calls();
		log_write(lg, LL_INFO, "C-0x%x: db/user@127.0.0.1:5432 seq %d", i & 0xff, i);
		if (i % 64 == 0) {
			/* One event-loop iteration: housekeeping, then other work,
			 * except in every fourth block of 4096, a burst. */
			log_poll(lg);
			if (i / 4096 % 4 != 3)
				nanosleep(&work, NULL);
		}
	}
	calls1 = sysalloc_calls();
	is_int(log_flush(lg, 5000), 0, "flush after 200k records");
	log_stats_get(lg, &st);
	slab_arena_foreach(arena, show_cache, NULL);
	log_destroy(lg);
	diag("200k records: %.0f ms, %llu writev, %llu dropped, high water %llu, "
	     "buffers %llu allocs %llu reuses",
			now_ms() - t0, (unsigned long long)st.writes,
			(unsigned long long)st.dropped, (unsigned long long)st.queue_high_water,
			(unsigned long long)st.buffer_allocs, (unsigned long long)st.buffer_reuses);

	buf = slurp(tpath("seq.log"));
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		const char *p;
		long v;

		lines++;
		if ((p = strstr(line, " WARNING ")) != NULL &&
				strstr(p, " log lines dropped (") != NULL) {
			notices += strtoull(p + 9, NULL, 10);
			continue;
		}
		p = strstr(line, " LOG C-0x");
		if (p == NULL || (p = strstr(p, " seq ")) == NULL) {
			order_ok = false;
			continue;
		}
		v = strtol(p + 5, NULL, 10);
		if (v < expect)
			order_ok = false; /* duplicate or out of order */
		missing += (uint64_t)(v - expect);
		expect = v + 1;
		if (notices > missing)
			notice_early = true; /* reported drops that had not happened */
	}
	missing += (uint64_t)(N - expect);
	free(buf);
	ok(order_ok, "every record in order, none duplicated");
	is_int(missing, st.dropped, "gaps in the sequence == dropped counter");
	is_int(notices, st.dropped, "'N log lines dropped' lines add up to the dropped counter");
	ok(!notice_early, "no drop notice before the drops it reports");
	is_int(lines, st.written, "lines in the file == written");
	ok(st.records == st.written + st.dropped && st.pending == 0,
			"records (%llu) == written (%llu) + dropped (%llu), pending 0",
			(unsigned long long)st.records, (unsigned long long)st.written,
			(unsigned long long)st.dropped);
	ok(st.buffer_allocs > 0 && (double)st.buffer_reuses / st.buffer_allocs > 0.9,
			"buffer reuse rate %.4f > 0.9",
			st.buffer_allocs ? (double)st.buffer_reuses / st.buffer_allocs : 0.0);
	ok(st.writes < st.written, "writev batches records (%llu writes for %llu records)",
			(unsigned long long)st.writes, (unsigned long long)st.written);
	is_int(calls1 - calls0, 0, "no system allocator calls in steady state");
	ok(st.queue_high_water <= 1024, "queue high water %llu within queue_len",
			(unsigned long long)st.queue_high_water);
}

/* Writer paused: the producer must not block; drops counted and reported. */
static void test_full_queue(void)
{
	enum { Q = 64, EXTRA = 100 };
	struct logger *lg = mklog("full.log", Q, 0);
	struct log_stats st;
	char *buf, *p, want[64];
	bool seq_ok = true;
	double t0, dt;
	int i;

	if (!ok(lg != NULL, "full-queue logger created"))
		return;
	log_test_pause_writer(lg, true);
	t0 = now_ms();
	for (i = 0; i < Q + EXTRA; i++) {
		if (i >= Q && i % 10 == 0)
			log_write(lg, LL_WARNING, "rec %d", i);
		else
			log_write(lg, LL_INFO, "rec %d", i);
	}
	dt = now_ms() - t0;
	ok(dt < 500, "producer did not block on a paused writer (%.2f ms for %d records)", dt,
			Q + EXTRA);
	log_stats_get(lg, &st);
	is_int(st.dropped, EXTRA, "records beyond queue_len dropped");
	is_int(st.dropped_important, EXTRA / 10, "dropped WARNINGs counted separately");
	is_int(st.pending, Q, "queue_len records pending");
	ok(!file_has(tpath("full.log"), "rec "), "nothing written while paused");

	log_test_pause_writer(lg, false);
	is_int(log_flush(lg, 5000), 0, "flush after resume");
	log_write(lg, LL_INFO, "after");
	is_int(log_flush(lg, 5000), 0, "flush again");
	log_stats_get(lg, &st);
	is_int(st.written, Q + 2, "queued records, the notice and the next record written");
	ok(st.writes <= 3, "queued records went out in one writev (%llu writes)",
			(unsigned long long)st.writes);
	log_destroy(lg);

	buf = slurp(tpath("full.log"));
	p = buf;
	for (i = 0; i < Q && seq_ok; i++) {
		snprintf(want, sizeof(want), " LOG rec %d\n", i);
		p = strstr(p, want);
		seq_ok = p != NULL;
	}
	ok(seq_ok, "the %d queued records are in the file, in order", Q);
	p = p ? strstr(p, " WARNING 100 log lines dropped (10 of them WARNING or ERROR)\n") : NULL;
	ok(p != NULL, "drop notice follows them");
	ok(p && strstr(p, " LOG after\n") != NULL, "the next record follows the notice");
	is_int(count_str(buf, "\n"), Q + 2, "nothing else in the file");
	free(buf);
}

static void test_fatal(void)
{
	struct logger *lg = mklog("fatal.log", 256, 0);
	char *buf, *a, *f;
	int i;

	if (!ok(lg != NULL, "fatal logger created"))
		return;
	for (i = 0; i < 50; i++)
		log_write(lg, LL_INFO, "before fatal %d", i);
	log_write(lg, LL_FATAL, "fatal now %d", 42);
	buf = slurp(tpath("fatal.log"));
	a = strstr(buf, " LOG before fatal 49\n");
	f = strstr(buf, " FATAL fatal now 42\n");
	ok(f != NULL, "FATAL record in the file when log_write returns");
	ok(a != NULL && f != NULL && a < f, "after everything logged before it");
	free(buf);
	log_destroy(lg);
}

static void test_reopen(void)
{
	struct logger *lg = mklog("r.log", 256, 0);
	char *oldf, *newf;
	int i;

	if (!ok(lg != NULL, "reopen logger created"))
		return;
	for (i = 0; i < 100; i++)
		log_write(lg, LL_INFO, "part1 %d", i);
	rename(tpath("r.log"), tpath("r.log.1"));
	is_int(log_reopen(lg), 0, "log_reopen");
	for (i = 0; i < 100; i++)
		log_write(lg, LL_INFO, "part2 %d", i);
	log_destroy(lg);
	oldf = slurp(tpath("r.log.1"));
	newf = slurp(tpath("r.log"));
	ok(count_str(oldf, " part1 ") == 100 && count_str(oldf, " part2 ") == 0,
			"renamed file has exactly the first part");
	ok(count_str(newf, " part2 ") == 100 && count_str(newf, " part1 ") == 0,
			"new file has exactly the second part");
	free(oldf);
	free(newf);
}

static void test_reconfigure(void)
{
	struct logger *lg = mklog("c1.log", 64, 0);
	struct log_config cfg = {.logfile = tpath("c2.log"), .syslog_facility = "nope"};

	if (!ok(lg != NULL, "reconfigure logger created"))
		return;
	log_write(lg, LL_INFO, "to c1");
	is_int(log_reconfigure(lg, &cfg), -EINVAL, "reconfigure with a bad facility refused");
	cfg.syslog_facility = "user";
	cfg.verbose = 1;
	is_int(log_reconfigure(lg, &cfg), 0, "reconfigure to another file");
	log_write(lg, LL_DEBUG, "to c2");
	cfg.logfile = "/nonexistent-dir/x/c3.log";
	is_int(log_reconfigure(lg, &cfg), 0, "reconfigure to an unopenable file is queued");
	log_flush(lg, 5000);
	log_poll(lg); /* picks up the writer's failure */
	log_write(lg, LL_INFO, "still c2");
	log_destroy(lg);
	ok(file_has(tpath("c2.log"),
			   "ERROR could not reopen logfile \"/nonexistent-dir/x/c3.log\"") &&
					file_has(tpath("c2.log"), "LOG still c2\n"),
			"a failed reopen is reported and the old file stays in use");
	ok(file_has(tpath("c1.log"), "LOG to c1\n") && !file_has(tpath("c1.log"), "to c2"),
			"records before go to the old file");
	ok(file_has(tpath("c2.log"), "DEBUG to c2\n") && !file_has(tpath("c2.log"), "to c1"),
			"records after go to the new file, with the new verbosity");
}

static void test_verbose_and_format(void)
{
	struct logger *lg = mklog("v.log", 256, 0);
	char *buf, *line, *save = NULL, re_src[512];
	int counter = 0, matched = 0, tested = 0;
	regex_t re;

	if (!ok(lg != NULL, "verbose logger created"))
		return;
	ok(!log_enabled(lg, LL_DEBUG) && log_enabled(lg, LL_INFO) && log_enabled(lg, LL_STATS),
			"verbose 0: INFO and STATS on, DEBUG off");
	log_set_thread(lg);
	ok(log_thread() == lg, "thread logger set");
	log_debug("dbg-a %d", counter++);
	log_noise("noise-a");
	log_info("fmt-info %d", 1);
	log_stats("fmt-stats");
	log_warning("fmt-warn");
	log_error("fmt-err");
	slog_info("C-0x1a2b: db/user@127.0.0.1:5432", "closing %s", "now");
	slog_debug("C-0x1a2b: db/user@127.0.0.1:5432", "dbg-prefixed-a");
	is_int(counter, 0, "disabled log_debug does not evaluate its arguments");
	log_set_verbose(lg, 2);
	log_debug("dbg-b");
	log_noise("noise-b");
	slog_debug("C-0x1a2b: db/user@127.0.0.1:5432", "dbg-prefixed-b");
	log_flush(lg, 5000);
	log_destroy(lg);
	ok(log_thread() == NULL, "destroying the thread's logger clears it");

	buf = slurp(tpath("v.log"));
	ok(!strstr(buf, "dbg-a") && !strstr(buf, "noise-a") && !strstr(buf, "dbg-prefixed-a"),
			"debug and noise lines absent at verbose=0");
	ok(strstr(buf, " DEBUG dbg-b\n") && strstr(buf, " NOISE noise-b\n") &&
					strstr(buf, " DEBUG C-0x1a2b: db/user@127.0.0.1:5432 "
						    "dbg-prefixed-b\n"),
			"debug and noise lines present at verbose=2");
	snprintf(re_src, sizeof(re_src),
			"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3} UTC "
			"\\[%d\\] (LOG fmt-info 1|LOG fmt-stats|WARNING fmt-warn|ERROR fmt-err|"
			"LOG C-0x1a2b: db/user@127\\.0\\.0\\.1:5432 closing now)$",
			(int)getpid());
	regcomp(&re, re_src, REG_EXTENDED | REG_NOSUB);
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strstr(line, "fmt-") || strstr(line, "closing")) {
			tested++;
			if (regexec(&re, line, 0, NULL, 0) == 0)
				matched++;
			else
				diag("no match: %s", line);
		}
	}
	regfree(&re);
	ok(tested == 5 && matched == 5,
			"line format: timestamp.ms zone [pid] LEVEL message (%d/%d)", matched,
			tested);
	free(buf);
}

static void test_long_records(void)
{
	struct logger *lg = mklog("long.log", 64, 0);
	size_t big = 100000, mid = 3000;
	char *msg = malloc(big + 1), *buf, *p;
	size_t linelen = 0;

	if (!ok(lg != NULL, "long-record logger created")) {
		free(msg);
		return;
	}
	memset(msg, 'x', big);
	msg[mid] = '\0';
	log_write(lg, LL_INFO, "mid:%s:end", msg);
	msg[mid] = 'x';
	msg[big] = '\0';
	log_write(lg, LL_INFO, "big:%s:end", msg);
	log_destroy(lg);
	buf = slurp(tpath("long.log"));
	p = strstr(buf, "mid:");
	ok(p && strncmp(p + 4 + mid, ":end\n", 5) == 0 && strspn(p + 4, "x") == mid,
			"3000-byte message written whole");
	p = strstr(buf, "big:");
	if (p) {
		char *start = p;

		while (start > buf && start[-1] != '\n')
			start--;
		linelen = (size_t)(strchr(p, '\n') - start) + 1;
	}
	ok(p && linelen <= LOG_RECORD_MAX && linelen > LOG_RECORD_MAX - 64 &&
					strncmp(strchr(p, '\n') - 3, "...", 3) == 0,
			"100 kB message truncated to %zu bytes, ending in ...", linelen);
	free(buf);
	free(msg);
}

static void test_stderr(void)
{
	struct log_config cfg = {.to_stderr = true, .queue_len = 32};
	struct logger *lg;
	char err[128];
	char *buf;
	int saved;

	log_set_thread(NULL);
	saved = stderr_to(tpath("stderr1"));
	log_error("early %d", 7);
	log_debug("early debug");
	stderr_restore(saved);
	buf = slurp(tpath("stderr1"));
	ok(strstr(buf, " ERROR early 7\n") != NULL && !strstr(buf, "early debug"),
			"no logger: synchronous stderr fallback");
	free(buf);

	saved = stderr_to(tpath("stderr2"));
	lg = log_create(arena, &cfg, err, sizeof(err));
	log_write(lg, LL_WARNING, "to stderr");
	log_flush(lg, 5000);
	log_destroy(lg);
	stderr_restore(saved);
	ok(file_has(tpath("stderr2"), " WARNING to stderr\n"), "to_stderr output");
}

/* Threads of this process, from /proc/self/status; -1 if unknown. */
static int count_threads(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	int n = -1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	fclose(f);
	return n;
}

/* sync_write: every record is in the file when log_write returns, nothing
 * is queued or dropped, no thread runs, and the API behaves the same. */
static void test_sync(void)
{
	enum { N = 2000 };
	struct log_config cfg = {.queue_len = 16, .sync_write = true};
	struct logger *lg, *alg;
	char path[256];
	struct log_stats st;
	struct stat sb;
	uint64_t calls0, calls1;
	bool each_ok = true, order_ok = true;
	char err[256] = "", *buf, *p, want[64];
	int threads0, i;

	snprintf(path, sizeof(path), "%s", tpath("sync.log"));
	cfg.logfile = path;
	threads0 = count_threads();
	lg = log_create(arena, &cfg, err, sizeof(err));
	if (!ok(lg != NULL, "sync logger created: %s", err))
		return;
	ok(log_synchronous(lg), "sync_write logger reports synchronous");
	is_int(count_threads(), threads0, "no writer thread started");
	alg = mklog(NULL, 16, 0);
	ok(alg != NULL && !log_synchronous(alg) && count_threads() == threads0 + 1,
			"a default logger is asynchronous, with a thread");
	log_destroy(alg);

	log_test_pause_writer(lg, true); /* no writer: must not wait or hold records */
	calls0 = sysalloc_calls();
	for (i = 0; i < N; i++) {
		log_write(lg, LL_INFO, "sync seq %d", i);
		if (i % 250 == 0 || i == N - 1) {
			snprintf(want, sizeof(want), " LOG sync seq %d\n", i);
			if (!file_has(cfg.logfile, want))
				each_ok = false;
		}
	}
	calls1 = sysalloc_calls();
	ok(each_ok, "each record is in the file when log_write returns (paused writer ignored)");
	is_int(calls1 - calls0, 0, "no system allocator calls while writing");
	log_stats_get(lg, &st);
	ok(st.records == N && st.written == N && st.dropped == 0 && st.pending == 0,
			"%d records with queue_len 16: all written, none dropped or pending "
			"(%llu/%llu/%llu)",
			N, (unsigned long long)st.written, (unsigned long long)st.dropped,
			(unsigned long long)st.pending);
	ok(st.writes == N && st.queue_high_water == 0,
			"one write per record, nothing queued (%llu writes)",
			(unsigned long long)st.writes);
	ok(stat(cfg.logfile, &sb) == 0 && (uint64_t)sb.st_size == st.bytes,
			"bytes counter == file size (%llu)", (unsigned long long)st.bytes);
	ok(st.buffer_allocs == N && st.buffer_reuses >= N - 1, "buffers reused (%llu of %llu)",
			(unsigned long long)st.buffer_reuses, (unsigned long long)st.buffer_allocs);

	buf = slurp(cfg.logfile);
	p = buf;
	for (i = 0; i < N && order_ok; i++) {
		snprintf(want, sizeof(want), " LOG sync seq %d\n", i);
		p = strstr(p, want);
		order_ok = p != NULL;
	}
	ok(order_ok && count_str(buf, "\n") == N, "all %d records, in order, nothing else", N);
	free(buf);

	rename(tpath("sync.log"), tpath("sync.log.1"));
	is_int(log_reopen(lg), 0, "sync log_reopen");
	log_write(lg, LL_INFO, "after reopen");
	ok(file_has(tpath("sync.log"), " LOG after reopen\n") &&
					!file_has(tpath("sync.log.1"), "after reopen"),
			"reopen takes effect at once: new record in the new file only");
	log_write(lg, LL_FATAL, "sync fatal");
	ok(file_has(tpath("sync.log"), " FATAL sync fatal\n"), "FATAL written");
	is_int(log_flush(lg, 0), 0, "flush has nothing to wait for");
	log_destroy(lg);
}

static void cleanup(void)
{
	static const char *const files[] = {"seq.log", "full.log", "fatal.log", "r.log", "r.log.1",
			"c1.log", "c2.log", "v.log", "long.log", "stderr1", "stderr2", "sync.log",
			"sync.log.1"};
	size_t i;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		unlink(tpath(files[i]));
	rmdir(tmpdir);
}

int main(void)
{
	double t0 = now_ms();

	setenv("TZ", "UTC", 1);
	tzset();
	plan(72);
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	arena = slab_arena_create(0);
	ok(arena != NULL, "arena");
	test_create_errors();
	test_sequence();
	test_full_queue();
	test_fatal();
	test_reopen();
	test_reconfigure();
	test_verbose_and_format();
	test_long_records();
	test_stderr();
	test_sync();
	slab_arena_destroy(arena);
	cleanup();
	diag("total %.0f ms", now_ms() - t0);
	return tap_exit_status();
}
