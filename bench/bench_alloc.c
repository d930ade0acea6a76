/* bench_alloc.c -- slab caches vs glibc malloc vs jemalloc vs mimalloc on pooler-shaped workloads.
 *
 * Workloads (all single-threaded, as a pgslab worker is):
 *   churn-700 LIFO/FIFO  batches of 64 700-byte "connection structs",
 *                        allocated then freed newest-first / oldest-first
 *   mixed LIFO/FIFO      batches of 64 buffers, sizes log-uniform in
 *                        256 B .. 64 KiB (our size classes)
 *   burst-drain          100k 700-byte objects (every byte written), then
 *                        all freed; 10k mixed buffers likewise; and 100k
 *                        700-byte objects of which 1% survive the drain
 * Each timing is the median of RUNS runs, in ns per alloc+free pair, after
 * one warm-up round; the allocators take turns run by run, so load from
 * other processes hits them alike.  Every allocation writes its first
 * word, so nothing is optimized away.  Bursts run in a forked child per
 * allocator and run, so their RSS numbers do not see each other: "peak" is
 * VmRSS growth after the burst, "drained" after freeing, "trimmed" after
 * the allocator's own give-back call (slab_arena_reap, malloc_trim(0),
 * jemalloc arena.<all>.purge, mi_collect(true)).
 *
 * How the allocators are called: slab through direct calls into
 * libpgslab.a (slab_alloc/slab_free for churn-700, slab_buf_alloc/_free for
 * mixed); glibc malloc/free directly (through the PLT); jemalloc and
 * mimalloc are dlopen'ed with RTLD_LOCAL | RTLD_DEEPBIND (both export
 * unprefixed malloc/free, which must not replace glibc's in this process)
 * and called through pointers from dlsym: jemalloc's malloc/free, mimalloc's
 * mi_malloc/mi_free.  A pointer call costs about what a PLT call does.
 * Both libraries use initial-exec TLS, so the program re-executes itself
 * once with GLIBC_TUNABLES=glibc.rtld.optional_static_tls=65536 to let
 * dlopen find room for it.
 */
#include <dlfcn.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "slab.h"

#define RUNS 7
#define BATCH 64
#define CHURN_PAIRS (2u << 20)
#define MIXED_PAIRS (1u << 20)
#define BURST_OBJS 100000
#define BURST_MIXED 10000
#define BURST_RUNS 5
#define CONN_SIZE 700
#define NSIZES 4096

enum kind { K_SLAB, K_GLIBC, K_JE, K_MI, K_NR };

static const char *const kind_name[K_NR] = {"slab", "glibc", "jemalloc", "mimalloc"};

struct bench {
	struct slab_arena *arena;
	struct slab_cache *conn;
	void *je_dl, *mi_dl;
	void *(*je_malloc)(size_t);
	void (*je_free)(void *);
	int (*je_mallctl)(const char *, void *, size_t *, void *, size_t);
	void *(*mi_malloc)(size_t);
	void (*mi_free)(void *);
	void (*mi_collect)(_Bool);
	size_t sizes[NSIZES];
	void *ptr[BURST_OBJS];
	size_t cap[BURST_OBJS];
	int have[K_NR];
};

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static size_t vm_rss(void)
{
	char line[256];
	size_t kb = 0;
	FILE *f = fopen("/proc/self/status", "r");

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %zu kB", &kb) == 1)
			break;
	fclose(f);
	return kb * 1024;
}

static int bench_load(struct bench *b)
{
	b->have[K_SLAB] = b->have[K_GLIBC] = 1;
	b->je_dl = dlopen("libjemalloc.so.2", RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
	if (b->je_dl) {
		b->je_malloc = (void *(*)(size_t))dlsym(b->je_dl, "malloc");
		b->je_free = (void (*)(void *))dlsym(b->je_dl, "free");
		b->je_mallctl = (int (*)(const char *, void *, size_t *, void *, size_t))dlsym(
				b->je_dl, "mallctl");
		b->have[K_JE] = b->je_malloc && b->je_free;
	}
	if (!b->have[K_JE])
		fprintf(stderr, "bench_alloc: jemalloc not available: %s\n", dlerror());
	b->mi_dl = dlopen("libmimalloc.so.2", RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
	if (b->mi_dl) {
		b->mi_malloc = (void *(*)(size_t))dlsym(b->mi_dl, "mi_malloc");
		b->mi_free = (void (*)(void *))dlsym(b->mi_dl, "mi_free");
		b->mi_collect = (void (*)(_Bool))dlsym(b->mi_dl, "mi_collect");
		b->have[K_MI] = b->mi_malloc && b->mi_free;
	}
	if (!b->have[K_MI])
		fprintf(stderr, "bench_alloc: mimalloc not available: %s\n", dlerror());
	b->arena = slab_arena_create(0);
	if (b->arena == NULL)
		return -1;
	b->conn = slab_cache_create(b->arena, "conn", CONN_SIZE, 0, NULL, NULL, NULL);
	return b->conn ? 0 : -1;
}

/* ---- allocator dispatch; <k> is a constant at every call site, so the
 * switch folds away in each instantiation below ---- */

static inline __attribute__((always_inline)) void *fixed_alloc(struct bench *b, enum kind k)
{
	switch (k) {
	case K_SLAB:
		return slab_alloc(b->conn);
	case K_GLIBC:
		return malloc(CONN_SIZE);
	case K_JE:
		return b->je_malloc(CONN_SIZE);
	default:
		return b->mi_malloc(CONN_SIZE);
	}
}

static inline __attribute__((always_inline)) void fixed_free(struct bench *b, enum kind k, void *p)
{
	switch (k) {
	case K_SLAB:
		slab_free(b->conn, p);
		break;
	case K_GLIBC:
		free(p);
		break;
	case K_JE:
		b->je_free(p);
		break;
	default:
		b->mi_free(p);
	}
}

static inline __attribute__((always_inline)) void *buf_alloc(
		struct bench *b, enum kind k, size_t sz, size_t *cap)
{
	switch (k) {
	case K_SLAB:
		return slab_buf_alloc(b->arena, sz, cap);
	case K_GLIBC:
		return malloc(sz);
	case K_JE:
		return b->je_malloc(sz);
	default:
		return b->mi_malloc(sz);
	}
}

static inline __attribute__((always_inline)) void buf_free(
		struct bench *b, enum kind k, void *p, size_t cap)
{
	switch (k) {
	case K_SLAB:
		slab_buf_free(b->arena, p, cap);
		break;
	case K_GLIBC:
		free(p);
		break;
	case K_JE:
		b->je_free(p);
		break;
	default:
		b->mi_free(p);
	}
}

static void give_back(struct bench *b, enum kind k)
{
	switch (k) {
	case K_SLAB:
		slab_arena_reap(b->arena);
		break;
	case K_GLIBC:
		malloc_trim(0);
		break;
	case K_JE:
		if (b->je_mallctl)
			b->je_mallctl("arena.4096.purge", NULL, NULL, NULL, 0); /* all arenas */
		break;
	default:
		if (b->mi_collect)
			b->mi_collect(1);
	}
}

/* ---- workloads: ns per alloc+free pair ---- */

static inline __attribute__((always_inline)) double churn(struct bench *b, enum kind k, int fifo)
{
	void *p[BATCH];
	unsigned r, i;
	double t0 = now_ns();

	for (r = 0; r < CHURN_PAIRS / BATCH; r++) {
		for (i = 0; i < BATCH; i++) {
			p[i] = fixed_alloc(b, k);
			*(volatile uintptr_t *)p[i] = i;
		}
		if (fifo)
			for (i = 0; i < BATCH; i++)
				fixed_free(b, k, p[i]);
		else
			for (i = BATCH; i-- > 0;)
				fixed_free(b, k, p[i]);
	}
	return (now_ns() - t0) / (CHURN_PAIRS / BATCH * BATCH);
}

static inline __attribute__((always_inline)) double mixed(struct bench *b, enum kind k, int fifo)
{
	void *p[BATCH];
	size_t cap[BATCH];
	unsigned r, i, s = 0;
	double t0 = now_ns();

	for (r = 0; r < MIXED_PAIRS / BATCH; r++) {
		for (i = 0; i < BATCH; i++) {
			p[i] = buf_alloc(b, k, b->sizes[s++ % NSIZES], &cap[i]);
			*(volatile uintptr_t *)p[i] = i;
		}
		if (fifo)
			for (i = 0; i < BATCH; i++)
				buf_free(b, k, p[i], cap[i]);
		else
			for (i = BATCH; i-- > 0;)
				buf_free(b, k, p[i], cap[i]);
	}
	return (now_ns() - t0) / (MIXED_PAIRS / BATCH * BATCH);
}

/* Burst of <n> objects (fixed 700 B, or mixed sizes), every byte written,
 * then all freed.  Fills out[0..3]: ns/pair (alloc + free loops only), and
 * RSS growth at peak, after draining, after give_back. */
static inline __attribute__((always_inline)) void burst(
		struct bench *b, enum kind k, int mix, unsigned n, unsigned keep, double *out)
{
	size_t rss0 = vm_rss();
	double t_alloc, t_free, t0;
	unsigned i;

	t0 = now_ns();
	for (i = 0; i < n; i++) {
		if (mix) {
			b->ptr[i] = buf_alloc(b, k, b->sizes[i % NSIZES], &b->cap[i]);
		} else {
			b->ptr[i] = fixed_alloc(b, k);
			b->cap[i] = CONN_SIZE;
		}
		*(volatile uintptr_t *)b->ptr[i] = i;
	}
	t_alloc = now_ns() - t0;
	for (i = 0; i < n; i++)
		memset(b->ptr[i], (int)i, mix ? b->sizes[i % NSIZES] : CONN_SIZE);
	out[1] = (double)(vm_rss() - rss0);
	t0 = now_ns();
	for (i = 0; i < n; i++) {
		if (keep && i % keep == 0)
			continue; /* a survivor */
		if (mix)
			buf_free(b, k, b->ptr[i], b->cap[i]);
		else
			fixed_free(b, k, b->ptr[i]);
	}
	t_free = now_ns() - t0;
	out[2] = (double)vm_rss() - (double)rss0;
	give_back(b, k);
	out[3] = (double)vm_rss() - (double)rss0;
	out[0] = (t_alloc + t_free) / n;
}

#define INSTANTIATE(K, suffix)                                                                     \
	static double churn_##suffix(struct bench *b, int fifo)                                    \
	{                                                                                          \
		return churn(b, K, fifo);                                                          \
	}                                                                                          \
	static double mixed_##suffix(struct bench *b, int fifo)                                    \
	{                                                                                          \
		return mixed(b, K, fifo);                                                          \
	}                                                                                          \
	static void burst_##suffix(                                                                \
			struct bench *b, int mix, unsigned n, unsigned keep, double *out)          \
	{                                                                                          \
		burst(b, K, mix, n, keep, out);                                                    \
	}
INSTANTIATE(K_SLAB, slab)
INSTANTIATE(K_GLIBC, glibc)
INSTANTIATE(K_JE, je)
INSTANTIATE(K_MI, mi)

static double (*const churn_fn[K_NR])(struct bench *, int) = {
		churn_slab, churn_glibc, churn_je, churn_mi};
static double (*const mixed_fn[K_NR])(struct bench *, int) = {
		mixed_slab, mixed_glibc, mixed_je, mixed_mi};
static void (*const burst_fn[K_NR])(struct bench *, int, unsigned, unsigned, double *) = {
		burst_slab, burst_glibc, burst_je, burst_mi};

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, c = *(const double *)y;

	return a < c ? -1 : a > c;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return v[n / 2];
}

/* Runs <fn>(b, <arg>) for every allocator, RUNS times, round-robin (so a
 * burst of load from other processes hits all allocators alike), after one
 * warm-up round; out[k] is allocator k's median. */
static void run_medians(struct bench *b, double (*const fn[K_NR])(struct bench *, int), int arg,
		double *out)
{
	double v[K_NR][RUNS];
	int r, k;

	for (r = -1; r < RUNS; r++)
		for (k = 0; k < K_NR; k++)
			if (b->have[k]) {
				double t = fn[k](b, arg);

				if (r >= 0)
					v[k][r] = t;
			}
	for (k = 0; k < K_NR; k++)
		out[k] = b->have[k] ? median(v[k], RUNS) : 0;
}

struct burst_kind {
	const char *name;
	int mix;       /* mixed buffer sizes, else 700-byte objects */
	unsigned n;    /* objects */
	unsigned keep; /* every keep-th object survives the drain; 0: none */
};

static const struct burst_kind bursts[] = {
		{"100k x 700 B", 0, BURST_OBJS, 0},
		{"10k mixed 256 B-64 KiB", 1, BURST_MIXED, 0},
		{"100k x 700 B, 1% survive", 0, BURST_OBJS, 100},
};
#define NBURST (sizeof(bursts) / sizeof(bursts[0]))

/* One burst in a fresh child; 0 on success. */
static int burst_child(struct bench *b, enum kind k, const struct burst_kind *bk, double *out)
{
	int fd[2], status;
	pid_t pid;
	ssize_t got;

	if (pipe(fd) != 0)
		return -1;
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		double r[4];

		close(fd[0]);
		burst_fn[k](b, bk->mix, bk->n, bk->keep, r);
		_exit(write(fd[1], r, sizeof(r)) == (ssize_t)sizeof(r) ? 0 : 1);
	}
	close(fd[1]);
	got = read(fd[0], out, 4 * sizeof(double));
	close(fd[0]);
	waitpid(pid, &status, 0);
	return got == 4 * sizeof(double) && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void burst_row(struct bench *b, enum kind k, const struct burst_kind *bk, double *res)
{
	double v[4][BURST_RUNS], r[4];
	int i, j, runs = 0;

	for (i = 0; i < BURST_RUNS; i++) {
		if (burst_child(b, k, bk, r) != 0)
			continue;
		for (j = 0; j < 4; j++)
			v[j][runs] = r[j];
		runs++;
	}
	for (j = 0; j < 4; j++)
		res[j] = runs ? median(v[j], runs) : -1;
}

static double mib(double bytes)
{
	return bytes / (1024.0 * 1024.0);
}

/* jemalloc and mimalloc use initial-exec TLS; dlopen'ing them needs
 * surplus static TLS, which glibc only grants when asked at startup. */
static void reexec_with_static_tls(char **argv)
{
	char buf[512];
	const char *old = getenv("GLIBC_TUNABLES");

	if (getenv("BENCH_ALLOC_REEXEC"))
		return;
	snprintf(buf, sizeof(buf), "%s%sglibc.rtld.optional_static_tls=65536", old ? old : "",
			old ? ":" : "");
	setenv("GLIBC_TUNABLES", buf, 1);
	setenv("BENCH_ALLOC_REEXEC", "1", 1);
	execv("/proc/self/exe", argv);
	/* exec failed: carry on; a library that cannot load is reported n/a */
}

int main(int argc, char **argv)
{
	struct bench *b;
	double churn_l[K_NR], churn_f[K_NR], mixed_l[K_NR], mixed_f[K_NR];
	double res[NBURST][K_NR][4];
	double t_start;
	uint64_t x = 0x9E3779B97F4A7C15ull;
	unsigned j;
	int k, i;

	(void)argc;
	reexec_with_static_tls(argv);
	t_start = now_ns();
	b = calloc(1, sizeof(*b));
	if (b == NULL || bench_load(b) != 0) {
		fprintf(stderr, "bench_alloc: setup failed\n");
		return 1;
	}
	for (i = 0; i < NSIZES; i++) {
		/* log-uniform in [256, 65536) */
		unsigned sh;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		sh = 8 + (unsigned)(x % 8);
		b->sizes[i] = ((size_t)1 << sh) + (size_t)((x >> 8) % ((size_t)1 << sh));
	}

	/* bursts first, in children forked from a parent that has not yet
	 * churned any allocator */
	for (j = 0; j < NBURST; j++)
		for (k = 0; k < K_NR; k++)
			if (b->have[k])
				burst_row(b, (enum kind)k, &bursts[j], res[j][k]);
	run_medians(b, churn_fn, 0, churn_l);
	run_medians(b, churn_fn, 1, churn_f);
	run_medians(b, mixed_fn, 0, mixed_l);
	run_medians(b, mixed_fn, 1, mixed_f);

	printf("## bench-alloc: ns per alloc+free pair, median of %d round-robin runs (batches of "
	       "%d)\n\n",
			RUNS, BATCH);
	printf("| allocator | churn-700 LIFO | churn-700 FIFO | mixed LIFO | mixed FIFO |\n");
	printf("|---|---:|---:|---:|---:|\n");
	for (k = 0; k < K_NR; k++) {
		if (!b->have[k]) {
			printf("| %s | n/a | n/a | n/a | n/a |\n", kind_name[k]);
			continue;
		}
		printf("| %s | %.1f | %.1f | %.1f | %.1f |\n", kind_name[k], churn_l[k], churn_f[k],
				mixed_l[k], mixed_f[k]);
	}
	printf("\nslab/glibc: churn LIFO %.2f, FIFO %.2f, mixed LIFO %.2f, FIFO %.2f\n",
			churn_l[K_SLAB] / churn_l[K_GLIBC], churn_f[K_SLAB] / churn_f[K_GLIBC],
			mixed_l[K_SLAB] / mixed_l[K_GLIBC], mixed_f[K_SLAB] / mixed_f[K_GLIBC]);
	if (b->have[K_MI])
		printf("slab/mimalloc: churn LIFO %.2f, FIFO %.2f, mixed LIFO %.2f, FIFO %.2f\n",
				churn_l[K_SLAB] / churn_l[K_MI], churn_f[K_SLAB] / churn_f[K_MI],
				mixed_l[K_SLAB] / mixed_l[K_MI], mixed_f[K_SLAB] / mixed_f[K_MI]);

	printf("\n## bursts: one forked child per run, median of %d runs; RSS growth in MiB\n\n",
			BURST_RUNS);
	printf("| burst | allocator | ns/pair | peak | drained | trimmed |\n");
	printf("|---|---|---:|---:|---:|---:|\n");
	for (j = 0; j < NBURST; j++)
		for (k = 0; k < K_NR; k++) {
			if (!b->have[k]) {
				printf("| %s | %s | n/a | | | |\n", bursts[j].name, kind_name[k]);
				continue;
			}
			printf("| %s | %s | %.0f | %.1f | %.1f | %.1f |\n", bursts[j].name,
					kind_name[k], res[j][k][0], mib(res[j][k][1]),
					mib(res[j][k][2]), mib(res[j][k][3]));
		}
	printf("\nns/pair covers the alloc and free loops of the burst (first touch of each "
	       "object's first word, so page faults, included).\n"
	       "drained = after freeing (all but the survivors); trimmed = after "
	       "slab_arena_reap / malloc_trim(0) / jemalloc arena.<all>.purge / "
	       "mi_collect(true).\n");
	printf("jemalloc %s, mimalloc %s (dlopen RTLD_LOCAL|RTLD_DEEPBIND); total run time %.1f "
	       "s\n",
			b->have[K_JE] ? "5.x malloc/free" : "n/a",
			b->have[K_MI] ? "mi_malloc/mi_free" : "n/a", (now_ns() - t_start) / 1e9);
	return 0;
}
