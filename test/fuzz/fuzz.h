/* fuzz.h -- helpers shared by the libFuzzer targets (header only, like test/unit/testutil.h).
 *
 * Each test/fuzz/fuzz_<name>.c defines LLVMFuzzerTestOneInput() and links
 * only the modules it needs (FUZZ_DEPS_fuzz_<name> in the Makefile).  A
 * target checks what it can (bounds, invariants, round trips) with
 * FUZZ_ASSERT, which aborts: libFuzzer then saves the input as a crash.
 */
#ifndef PGSLAB_FUZZ_H
#define PGSLAB_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond)                                                                          \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: FUZZ_ASSERT(%s) failed\n", __FILE__, __LINE__,     \
					#cond);                                                    \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* A NUL-terminated heap copy of <n> bytes at <d> (which may hold NULs);
 * the caller frees it. */
static inline char *fuzz_strndup(const uint8_t *d, size_t n)
{
	char *s = malloc(n + 1);

	if (s == NULL)
		abort();
	if (n)
		memcpy(s, d, n);
	s[n] = 0;
	return s;
}

struct fuzz_part {
	const uint8_t *p;
	size_t len;
};

/* Split (<d>, <n>) at the first <max> - 1 bytes equal to <sep>: parts[i]
 * never contains <sep> except the last, which takes the rest.  Missing parts
 * are empty.  Returns the number of parts found (>= 1). */
static inline int fuzz_split(const uint8_t *d, size_t n, uint8_t sep, struct fuzz_part *parts,
		int max)
{
	int k = 0, i;

	while (k < max - 1) {
		const uint8_t *e = memchr(d, sep, n);

		if (e == NULL)
			break;
		parts[k].p = d;
		parts[k].len = (size_t)(e - d);
		k++;
		n -= (size_t)(e - d) + 1;
		d = e + 1;
	}
	parts[k].p = d;
	parts[k].len = n;
	k++;
	for (i = k; i < max; i++) {
		parts[i].p = (const uint8_t *)"";
		parts[i].len = 0;
	}
	return k;
}

/* A string <s> lies wholly (NUL included) inside [<lo>, <lo> + <n>). */
static inline int fuzz_str_within(const char *s, const void *lo, size_t n)
{
	const char *b = lo, *e = b + n;
	const char *nul;

	if (s < b || s >= e)
		return 0;
	nul = memchr(s, 0, (size_t)(e - s));
	return nul != NULL;
}

#endif
