/* main.c -- command line, daemonizing, start-up and shutdown of pgslab, and
 * the wiring: the tables through which the lower layers call the upper
 * ones (see README's layering section; 093_layers.pl checks the rest of
 * the call graph has no cycle). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin.h"
#include "authq.h"
#include "client.h"
#include "config.h"
#include "control.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "prepwire.h"
#include "proxy.h"
#include "server.h"
#include "sdnotify.h"
#include "slab.h"
#include "sysalloc.h"

/* ---- wiring ---- */

static const struct client_ops client_ops = {
	.pool_get = pool_get,
	.welcome_wait = pool_welcome_wait,
	.assign = pool_assign,
	.left = pool_client_left,
	.gone = pool_client_gone,
	.lookup_user = authq_user_for,
	.lookup_start = authq_start,
	.lookup_cancel = authq_cancel,
	.console_query = admin_query,
};

static void server_gone(struct server *s)
{
	pool_server_gone(s);
	authq_server_gone(s);
}

static const struct server_ops server_ops = {
	.release = pool_release,
	.idle = pool_server_idle,
	.prepare = pool_prepare,
	.gone = server_gone,
	.fail_waiting = pool_fail_waiting,
	.lookups_failed = authq_pool_failed,
	.welcome_all = pool_welcome_all,
	.lookup_message = authq_server_message,
};

static const struct prepwire_ops prepwire_ops = {
	.client_close = client_close,
	.server_close = server_close,
	.client_logid = client_logid,
	.note_request = client_note_request,
};

static const struct pool_ops pool_ops = {
	.lookup_run = authq_run,
	.lookups_failed = authq_pool_failed,
	.lookups_expire = authq_expire,
};

static void console_stop(struct proxy *p)
{
	metrics_stop(p);
	control_destroy(p);
}

static const struct console_ops console_ops = {
	.pause = control_pause,
	.resume = control_resume,
	.stop = console_stop,
};

static const struct proxy_wiring wiring = {
	.client = &client_ops,
	.server = &server_ops,
	.prepwire = &prepwire_ops,
	.pool = &pool_ops,
	.console = &console_ops,
};

static void usage(FILE *f)
{
	fprintf(f, "pgslab " PGSLAB_VERSION " -- a PostgreSQL connection pooler\n\n"
		   "usage: pgslab [OPTION]... config.ini\n"
		   "  -d, --daemon     run in the background (needs logfile and pidfile)\n"
		   "  -q, --quiet      do not log to stderr\n"
		   "  -v, --verbose    more logging (repeat for more)\n"
		   "  -V, --version    print the version and exit\n"
		   "  -h, --help       print this help and exit\n");
}

static int daemonize(void)
{
	pid_t pid = fork();
	int fd;

	if (pid < 0)
		return -errno;
	if (pid > 0)
		_exit(0);
	if (setsid() < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0)
		_exit(0);
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	return 0;
}

/* Create and lock the pidfile; the lock (held while we run) tells a second
 * instance that this one is alive.  -EEXIST when another holds it. */
static int write_pidfile(const char *path)
{
	char buf[32];
	int fd, n;

	if (path[0] == 0)
		return 0;
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		close(fd);
		return errno == EWOULDBLOCK ? -EEXIST : -errno;
	}
	n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) < 0 || write(fd, buf, (size_t)n) != n) {
		close(fd);
		return -EIO;
	}
	return 0; /* fd stays open: the lock lives as long as the process */
}

/* Raise the open-file limit as far as max_client_conn needs (each client
 * and each server is a descriptor); say so when the hard limit is lower. */
static void raise_nofile(int max_client_conn)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)max_client_conn * 2 + 64;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur < want) {
		rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < want)
		log_warning("open file limit %llu is below what max_client_conn = %d needs (%llu); "
			    "raise the hard limit (ulimit -Hn)",
				(unsigned long long)rl.rlim_cur, max_client_conn,
				(unsigned long long)want);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "daemon", no_argument, NULL, 'd' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool daemon = false, quiet = false;
	int verbose = 0, c, rc;
	struct config *cfg;
	struct logger *lg;
	struct log_config lc;
	static struct proxy proxy;
	char err[512];

	while ((c = getopt_long(argc, argv, "dqvVh", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			daemon = true;
			break;
		case 'q':
			quiet = true;
			break;
		case 'v':
			verbose++;
			break;
		case 'V':
			printf("pgslab %s\n", PGSLAB_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 1;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "pgslab: expected exactly one config file\n");
		usage(stderr);
		return 1;
	}
	sysalloc_hook_libraries();
	cfg = config_load(argv[optind], err, sizeof(err));
	if (cfg == NULL) {
		fprintf(stderr, "pgslab: %s\n", err);
		return 1;
	}
	if (verbose > cfg->s.verbose)
		cfg->s.verbose = verbose;
	/* warnings must reach the operator's terminal before stderr is gone */
	if (daemon && !quiet) {
		int i;

		for (i = 0; i < cfg->n_warnings; i++)
			if (!cfg->warnings[i].is_default)
				fprintf(stderr, "pgslab: WARNING %s\n", cfg->warnings[i].msg);
	}
	if (daemon) {
		if (cfg->s.pidfile[0] == 0 || (cfg->s.logfile[0] == 0 && !cfg->s.syslog)) {
			fprintf(stderr, "pgslab: -d needs a pidfile and a logfile or syslog\n");
			return 1;
		}
		if (daemonize() < 0) {
			fprintf(stderr, "pgslab: could not daemonize: %s\n", strerror(errno));
			return 1;
		}
	}
	signal(SIGPIPE, SIG_IGN);

	rc = proxy_init(&proxy, &wiring, argv[optind], cfg, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "pgslab: %s\n", err);
		return 1;
	}
	memset(&lc, 0, sizeof(lc));
	lc.logfile = proxy.cfg->s.logfile;
	lc.to_stderr = !daemon && !quiet;
	lc.syslog = proxy.cfg->s.syslog;
	lc.syslog_ident = proxy.cfg->s.syslog_ident;
	lc.syslog_facility = proxy.cfg->s.syslog_facility;
	lc.verbose = proxy.cfg->s.verbose;
	lc.queue_len = (size_t)proxy.cfg->s.log_queue_size;
	proxy.log_to_stderr = lc.to_stderr;
	proxy.verbose_min = verbose;
	lg = log_create(proxy.arena, &lc, err, sizeof(err));
	if (lg == NULL) {
		fprintf(stderr, "pgslab: %s\n", err);
		return 1;
	}
	proxy.log = lg;
	log_set_thread(lg);
	raise_nofile(proxy.cfg->s.max_client_conn);
	rc = write_pidfile(proxy.cfg->s.pidfile);
	if (rc < 0) {
		log_fatal(rc == -EEXIST ? "pidfile %s is locked: another pgslab is running" :
					  "could not write pidfile %s",
				proxy.cfg->s.pidfile);
		log_destroy(lg);
		return 1;
	}
	rc = listener_open_all(&proxy, err, sizeof(err));
	if (rc < 0) {
		log_fatal("%s", err);
		log_destroy(lg);
		return 1;
	}
	rc = metrics_start(&proxy, err, sizeof(err));
	if (rc < 0) {
		log_fatal("%s", err);
		log_destroy(lg);
		return 1;
	}
	log_info("pgslab %s listening on port %d", PGSLAB_VERSION, proxy.cfg->s.listen_port);
	/* systemd Type=notify: started once the listeners are open */
	sdnotify_ready();
	proxy_run(&proxy);
	sdnotify_stopping();
	log_info("shutting down");
	if (proxy.cfg->s.pidfile[0])
		unlink(proxy.cfg->s.pidfile);
	proxy_destroy(&proxy);
	log_set_thread(NULL);
	log_destroy(lg);
	slab_arena_destroy(proxy.arena);
	return 0;
}
