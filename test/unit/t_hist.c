/* t_hist.c -- latency histogram buckets and percentiles. */
#include <stdlib.h>

#include "hist.h"
#include "tap.h"

int main(void)
{
	struct hist h = { 0 };
	int i;

	plan(9);
	is_int(hist_percentile(&h, 50), 0, "empty histogram: 0");
	hist_add(&h, 0);
	is_int(h.b[0], 1, "0 us goes to bucket 0");
	hist_add(&h, 1);
	hist_add(&h, 3);
	hist_add(&h, 4);
	is_int(h.b[1] + h.b[2] * 10 + h.b[3] * 100, 111, "1 -> b1, 3 -> b2, 4 -> b3");
	hist_add(&h, (int64_t)1 << 62);
	is_int(h.b[HIST_BUCKETS - 1], 1, "huge values land in the last bucket");

	/* 1000 samples: 990 of 100 us, 10 of 50 ms */
	for (i = 0; i < HIST_BUCKETS; i++)
		h.b[i] = 0;
	h.n = 0;
	for (i = 0; i < 990; i++)
		hist_add(&h, 100);
	for (i = 0; i < 10; i++)
		hist_add(&h, 50000);
	ok(hist_percentile(&h, 50) >= 100 && hist_percentile(&h, 50) < 200, "p50 bounds 100 us");
	ok(hist_percentile(&h, 99) >= 100 && hist_percentile(&h, 99) < 200,
			"p99 still in the 100 us bucket (990/1000)");
	ok(hist_percentile(&h, 99.5) >= 50000 && hist_percentile(&h, 99.5) < 100000,
			"p99.5 reaches the 50 ms bucket");
	ok(hist_percentile(&h, 100) >= 50000, "p100 is the largest bucket's bound");
	/* monotone in pct */
	{
		uint64_t prev = 0, cur;
		int mono = 1;
		double pct;

		for (pct = 1; pct <= 100; pct += 1) {
			cur = hist_percentile(&h, pct);
			if (cur < prev)
				mono = 0;
			prev = cur;
		}
		ok(mono, "percentiles are monotone in pct");
	}
	return tap_exit_status();
}
