/* t_slab_rss.c -- a 100 MiB burst of slab buffers, freed and reaped, gives its RSS back. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slab.h"
#include "tap.h"
#include "testutil.h"

#define PER_CLASS (10 * MiB) /* bytes requested per size class */
#define NCLASS 11	     /* 256 .. 65536, plus 128 KiB and 1 MiB large buffers */
#define MAXBUF 150000

struct buf {
	void *p;
	size_t cap;
};

/* VmRSS of this process, in bytes. */
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

/* Rss of the mapping that contains <addr>, from /proc/self/smaps. */
static size_t mapping_rss(const void *addr)
{
	char line[512];
	int in = 0;
	size_t kb = 0;
	FILE *f = fopen("/proc/self/smaps", "r");

	if (f == NULL)
		return SIZE_MAX;
	while (fgets(line, sizeof(line), f)) {
		uintptr_t lo, hi;

		/* a mapping header starts "lo-hi ", field lines "Name: ..." */
		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " ", &lo, &hi) == 2 &&
				line[strspn(line, "0123456789abcdef")] == '-') {
			in = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
			continue;
		}
		if (in && sscanf(line, "Rss: %zu kB", &kb) == 1)
			break;
	}
	fclose(f);
	return kb * 1024;
}

static size_t class_size(int k)
{
	if (k < 9)
		return (size_t)256 << k;
	return k == 9 ? 128 * 1024 : MiB;
}

/* Allocate PER_CLASS bytes of each class, interleaved, touching every byte;
 * returns the number of buffers. */
static size_t burst(struct slab_arena *a, struct buf *b, size_t *requested)
{
	size_t n = 0, left[NCLASS];
	int k, more = 1;

	*requested = 0;
	for (k = 0; k < NCLASS; k++)
		left[k] = PER_CLASS;
	while (more) {
		more = 0;
		for (k = 0; k < NCLASS; k++) {
			size_t sz;

			if (left[k] == 0 || n == MAXBUF)
				continue;
			/* sizes inside the class, not only its exact capacity */
			sz = class_size(k) - (n % 7) * (class_size(k) / 16);
			b[n].p = slab_buf_alloc(a, sz, &b[n].cap);
			if (b[n].p == NULL)
				return n;
			memset(b[n].p, (int)n, b[n].cap);
			*requested += sz;
			left[k] = left[k] > sz ? left[k] - sz : 0;
			n++;
			more = 1;
		}
	}
	return n;
}

static void drain(struct slab_arena *a, struct buf *b, size_t n)
{
	size_t i;

	/* free in an order unrelated to allocation order */
	for (i = 0; i < n; i += 2)
		slab_buf_free(a, b[i].p, b[i].cap);
	for (i = 1; i < n; i += 2)
		slab_buf_free(a, b[i].p, b[i].cap);
}

int main(void)
{
	struct buf *b = calloc(MAXBUF, sizeof(*b));
	struct slab_arena_stats st;
	struct slab_arena *a;
	size_t rss0, rss_peak, rss_after, rss_peak2, rss_after2, n, n2, req, slack;
	size_t shadow = 0;
	void *probe;

	plan(14);
	memset(b, 0, MAXBUF * sizeof(*b)); /* touched before the baseline */
	a = slab_arena_create(0);
	ok(a != NULL, "1 GiB arena");
	rss0 = vm_rss();

	n = burst(a, b, &req);
	rss_peak = vm_rss();
	probe = b[0].p;
	slab_arena_stats(a, &st);
	diag("burst: %zu buffers, %zu MiB requested, used %zu MiB, mapped %zu MiB, RSS %zu -> %zu "
	     "MiB",
			n, req / MiB, st.used_bytes / MiB, st.mapped_bytes / MiB, rss0 / MiB,
			rss_peak / MiB);
	ok(req >= 100 * MiB, "burst requested >= 100 MiB");
	ok(rss_peak >= rss0 + 100 * MiB, "RSS grew by the burst (every byte touched)");
	ok(st.used_bytes >= req && st.mapped_bytes >= st.used_bytes &&
					st.mapped_bytes - st.used_bytes <= 8 * MiB,
			"arena stats agree: requested <= used <= mapped <= used + 8 MiB");

	drain(a, b, n);
	slab_arena_reap(a);
	rss_after = vm_rss();
	slab_arena_stats(a, &st);
#ifdef T_ASAN
	/* ASan keeps the shadow of every byte it ever poisoned (1/8 of it). */
	shadow = rss_peak > rss0 ? (rss_peak - rss0) / 8 : 0;
#endif
	slack = 8 * MiB + shadow;
	diag("after drain + reap: RSS %zu MiB, arena mapping RSS %zu KiB, os_returns %" PRIu64,
			rss_after / MiB, mapping_rss(probe) / 1024, st.os_returns);
	ok(rss_after <= rss0 + slack, "RSS back within %zu MiB of its start (%zd KiB above)",
			slack / MiB, (ssize_t)(rss_after - rss0) / 1024);
	ok(mapping_rss(probe) <= MiB, "the arena mapping itself holds <= 1 MiB resident");
	is_int(st.used_bytes, 0, "used_bytes 0");
	is_int(st.mapped_bytes, 0, "mapped_bytes 0: every top block went back to the OS");
	ok(st.os_returns >= 25, "os_returns counts the 4 MiB blocks (%" PRIu64 ")", st.os_returns);

	n2 = burst(a, b, &req);
	rss_peak2 = vm_rss();
	ok(n2 == n, "second identical burst succeeds (%zu buffers)", n2);
	ok(rss_peak2 <= rss_peak + slack, "second burst peak RSS bounded (%zu MiB vs %zu MiB)",
			rss_peak2 / MiB, rss_peak / MiB);
	ok((uintptr_t)b[0].p >= (uintptr_t)probe - 1024 * MiB &&
					(uintptr_t)b[0].p < (uintptr_t)probe + 1024 * MiB &&
					mapping_rss(probe) >= 100 * MiB,
			"second burst reuses the same arena mapping");
	drain(a, b, n2);
	slab_arena_reap(a);
	rss_after2 = vm_rss();
	slab_arena_stats(a, &st);
	ok(rss_after2 <= rss0 + slack, "RSS back again after the second drain (%zd KiB above)",
			(ssize_t)(rss_after2 - rss0) / 1024);
	ok(st.used_bytes == 0 && st.mapped_bytes == 0, "arena empty again");
	slab_arena_destroy(a);
	free(b);
	return tap_exit_status();
}
