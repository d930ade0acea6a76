/* hist.h -- log2-bucketed latency histograms with percentile estimates.
 *
 * Bucket k counts values v (microseconds) with 2^(k-1) <= v < 2^k, bucket 0
 * counts v == 0; the last bucket takes everything larger.  Recording is a
 * count-leading-zeros and an increment, cheap enough for every query.  A
 * percentile is reported as the upper bound of the bucket holding that rank,
 * so it overestimates by less than a factor of two.
 */
#ifndef PGSLAB_HIST_H
#define PGSLAB_HIST_H

#include <stdint.h>

#define HIST_BUCKETS 40

struct hist {
	uint64_t n;
	uint64_t b[HIST_BUCKETS];
};

static inline void hist_add(struct hist *h, int64_t us)
{
	unsigned k = us <= 0 ? 0 : 64u - (unsigned)__builtin_clzll((unsigned long long)us);

	h->b[k < HIST_BUCKETS ? k : HIST_BUCKETS - 1]++;
	h->n++;
}

/* The value at or below which <pct> percent of the samples lie (an upper
 * bound, see above); 0 when the histogram is empty. */
uint64_t hist_percentile(const struct hist *h, double pct);

#endif
