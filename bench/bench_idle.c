/* bench_idle.c -- open N authenticated idle PostgreSQL connections with libpq, hold them, close them on request.
 *
 * Usage: bench_idle CONNINFO N [INFLIGHT [TIMEOUT_S]]
 *
 * Starts non-blocking logins (PQconnectStart/PQconnectPoll), at most
 * INFLIGHT (default 64) at a time, until N have been tried or TIMEOUT_S
 * (default 180) has passed.  Then prints one line
 *
 *   connected OK FAILED MILLISECONDS [first error]
 *
 * and waits: on a line "close" or at end of input it closes every
 * connection (PQfinish, one Terminate message each) and prints "closed".
 * The driver (bench/bench.pl) reads the pooler's RSS between the two lines.
 * Exit status 0 when every login succeeded, 1 otherwise, 2 on usage errors.
 * A bench tool, not part of pgslab: it uses libc's allocator directly.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

struct idle_conn {
	PGconn *conn;
	PostgresPollingStatusType st; /* last PQconnectPoll result */
};

struct idle_run {
	const char *conninfo;
	long n, inflight_max;
	double timeout_s;
	struct idle_conn *pending; /* logins in progress, [0, npending) */
	long npending;
	PGconn **done;		   /* logged-in connections, [0, ndone) */
	long ndone, nfailed, nstarted;
	char first_error[256];
	struct pollfd *pfd;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void idle_fail(struct idle_run *r, PGconn *conn)
{
	if (r->first_error[0] == '\0') {
		const char *msg = conn ? PQerrorMessage(conn) : "out of memory";
		size_t i;

		snprintf(r->first_error, sizeof(r->first_error), "%s", msg);
		for (i = 0; r->first_error[i]; i++)
			if (r->first_error[i] == '\n')
				r->first_error[i] = ' ';
	}
	r->nfailed++;
	if (conn)
		PQfinish(conn);
}

/* Start logins until INFLIGHT are pending or N have been started. */
static void idle_start_more(struct idle_run *r)
{
	while (r->nstarted < r->n && r->npending < r->inflight_max) {
		PGconn *conn = PQconnectStart(r->conninfo);

		r->nstarted++;
		if (conn == NULL || PQstatus(conn) == CONNECTION_BAD) {
			idle_fail(r, conn);
			continue;
		}
		r->pending[r->npending].conn = conn;
		r->pending[r->npending].st = PGRES_POLLING_WRITING;
		r->npending++;
	}
}

/* Advance pending logins whose sockets are ready; returns -1 on poll error. */
static int idle_step(struct idle_run *r)
{
	long i, j;
	int rc;

	for (i = 0; i < r->npending; i++) {
		r->pfd[i].fd = PQsocket(r->pending[i].conn);
		r->pfd[i].events = r->pending[i].st == PGRES_POLLING_READING ? POLLIN : POLLOUT;
		r->pfd[i].revents = 0;
	}
	rc = poll(r->pfd, (nfds_t)r->npending, 1000);
	if (rc < 0)
		return errno == EINTR ? 0 : -1;
	for (i = 0, j = 0; i < r->npending; i++) {
		struct idle_conn ic = r->pending[i];

		if (r->pfd[i].revents)
			ic.st = PQconnectPoll(ic.conn);
		if (ic.st == PGRES_POLLING_OK) {
			r->done[r->ndone++] = ic.conn;
		} else if (ic.st == PGRES_POLLING_FAILED) {
			idle_fail(r, ic.conn);
		} else {
			r->pending[j++] = ic;
		}
	}
	r->npending = j;
	return 0;
}

int main(int argc, char **argv)
{
	struct idle_run r;
	char line[64];
	double t0, deadline;
	long i;

	memset(&r, 0, sizeof(r));
	if (argc < 3) {
		fprintf(stderr, "usage: %s CONNINFO N [INFLIGHT [TIMEOUT_S]]\n", argv[0]);
		return 2;
	}
	r.conninfo = argv[1];
	r.n = strtol(argv[2], NULL, 10);
	r.inflight_max = argc > 3 ? strtol(argv[3], NULL, 10) : 64;
	r.timeout_s = argc > 4 ? strtod(argv[4], NULL) : 180.0;
	if (r.n <= 0 || r.inflight_max <= 0 || r.timeout_s <= 0) {
		fprintf(stderr, "bench_idle: N, INFLIGHT and TIMEOUT_S must be positive\n");
		return 2;
	}
	r.pending = calloc((size_t)r.inflight_max, sizeof(*r.pending));
	r.pfd = calloc((size_t)r.inflight_max, sizeof(*r.pfd));
	r.done = calloc((size_t)r.n, sizeof(*r.done));
	if (r.pending == NULL || r.pfd == NULL || r.done == NULL) {
		fprintf(stderr, "bench_idle: out of memory\n");
		return 2;
	}
	t0 = now_s();
	deadline = t0 + r.timeout_s;
	for (;;) {
		idle_start_more(&r);
		if (r.npending == 0)
			break;
		if (now_s() > deadline) {
			snprintf(r.first_error, sizeof(r.first_error), "timed out after %.0f s",
					r.timeout_s);
			for (i = 0; i < r.npending; i++)
				idle_fail(&r, r.pending[i].conn);
			r.nfailed += r.n - r.nstarted;
			r.npending = 0;
			break;
		}
		if (idle_step(&r) < 0) {
			perror("bench_idle: poll");
			return 2;
		}
	}
	printf("connected %ld %ld %.0f %s\n", r.ndone, r.nfailed, (now_s() - t0) * 1000.0,
			r.first_error);
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin) != NULL)
		if (strncmp(line, "close", 5) == 0)
			break;
	for (i = 0; i < r.ndone; i++)
		PQfinish(r.done[i]);
	printf("closed\n");
	fflush(stdout);
	free(r.done);
	free(r.pfd);
	free(r.pending);
	return r.nfailed ? 1 : 0;
}
