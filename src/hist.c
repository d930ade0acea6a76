/* hist.c -- percentiles of log2 latency histograms. */
#include "hist.h"

uint64_t hist_percentile(const struct hist *h, double pct)
{
	uint64_t rank, seen = 0;
	unsigned k;

	if (h->n == 0)
		return 0;
	rank = (uint64_t)((double)h->n * pct / 100.0 + 0.999999);
	if (rank == 0)
		rank = 1;
	for (k = 0; k < HIST_BUCKETS; k++) {
		seen += h->b[k];
		if (seen >= rank)
			return k == 0 ? 0 : (1ull << k) - 1;
	}
	return (1ull << (HIST_BUCKETS - 1)) - 1;
}
