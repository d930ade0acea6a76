/* fuzz_connstr.c -- the libpq-style connection-string tokenizer ([databases] and [users] values).
 *
 * Input: the value text.  Tokenized in place in a buffer of exactly its
 * size: every key and value must lie inside the buffer, keys are non-empty,
 * each pair moves forward, and the walk ends (0) or fails (-EINVAL with a
 * message).  A string rebuilt from the pairs, every value single-quoted
 * with \ and ' escaped, must tokenize to the same pairs.
 */
#include <errno.h>

#include "connstr.h"
#include "fuzz.h"

#define MAX_PAIRS 64

static int tokenize(char *buf, size_t size, char **keys, char **vals, int *n)
{
	char *p = buf, *k, *v, em[128];
	int rc;

	*n = 0;
	for (;;) {
		char *before = p;

		em[0] = 0;
		rc = connstr_next(&p, &k, &v, em, sizeof(em));
		if (rc <= 0)
			break;
		FUZZ_ASSERT(rc == 1);
		FUZZ_ASSERT(p > before && p <= buf + size);
		FUZZ_ASSERT(fuzz_str_within(k, buf, size + 1) && fuzz_str_within(v, buf, size + 1));
		FUZZ_ASSERT(k[0] != 0);
		if (*n < MAX_PAIRS) {
			keys[*n] = k;
			vals[*n] = v;
			(*n)++;
		}
	}
	if (rc < 0)
		FUZZ_ASSERT(rc == -EINVAL && em[0] != 0 && memchr(em, 0, sizeof(em)));
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = fuzz_strndup(data, size), *keys[MAX_PAIRS], *vals[MAX_PAIRS];
	char *keys2[MAX_PAIRS], *vals2[MAX_PAIRS];
	size_t len = strlen(buf), cap, pos = 0;
	char *re;
	int n, n2, i;

	if (tokenize(buf, len, keys, vals, &n) < 0 || n == MAX_PAIRS) {
		free(buf);
		return 0;
	}
	cap = 4 * size + 8 * (size_t)n + 1;
	re = malloc(cap);
	if (re == NULL)
		abort();
	for (i = 0; i < n; i++) {
		const char *c;

		for (c = keys[i]; *c; c++)
			re[pos++] = *c;
		re[pos++] = '=';
		re[pos++] = '\'';
		for (c = vals[i]; *c; c++) {
			if (*c == '\\' || *c == '\'')
				re[pos++] = '\\';
			re[pos++] = *c;
		}
		re[pos++] = '\'';
		re[pos++] = ' ';
	}
	re[pos] = 0;
	FUZZ_ASSERT(pos < cap);
	/* keys that tokenized once must tokenize again as keys */
	if (tokenize(re, pos, keys2, vals2, &n2) == 0) {
		FUZZ_ASSERT(n2 == n);
		for (i = 0; i < n; i++)
			FUZZ_ASSERT(strcmp(keys[i], keys2[i]) == 0 && strcmp(vals[i], vals2[i]) == 0);
	} else {
		FUZZ_ASSERT(0 && "a rebuilt string failed to tokenize");
	}
	free(re);
	free(buf);
	return 0;
}
