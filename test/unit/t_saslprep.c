/* t_saslprep.c -- SASLprep: the examples of RFC 4013 section 3, the Latin-1 mappings, limits. */
#include "saslprep.h"
#include "tap.h"

#include <errno.h>
#include <string.h>

static const struct {
	const char *name, *in, *out;
	int rc;
} cases[] = {
	/* RFC 4013 section 3 */
	{"RFC 4013 #1 SOFT HYPHEN mapped to nothing", "I\xc2\xadX", "IX", SASLPREP_OK},
	{"RFC 4013 #2 no transformation", "user", "user", SASLPREP_OK},
	{"RFC 4013 #3 case preserved", "USER", "USER", SASLPREP_OK},
	{"RFC 4013 #4 U+00AA output is NFKC", "\xc2\xaa", "a", SASLPREP_OK},
	/* #5 U+2168 -> "IX" is beyond Latin-1: the documented limitation */
	{"RFC 4013 #5 U+2168 (beyond Latin-1: raw, UNSUPPORTED)", "\xe2\x85\xa8", "\xe2\x85\xa8",
			SASLPREP_UNSUPPORTED},
	/* #6 U+0007 is prohibited, but PostgreSQL passes pure ASCII through
	 * untouched (and uses the raw bytes on any SASLprep error anyway) */
	{"RFC 4013 #6 U+0007 (pure ASCII: untouched, as PostgreSQL)", "\x07", "\x07", SASLPREP_OK},
	{"RFC 4013 #7 bidi U+0627 U+0031 (beyond Latin-1)", "\xd8\xa7" "1", "\xd8\xa7" "1",
			SASLPREP_UNSUPPORTED},
	/* the rest of the Latin-1 table */
	{"NBSP -> SPACE", "a\xc2\xa0" "b", "a b", SASLPREP_OK},
	{"superscripts", "\xc2\xb2\xc2\xb3\xc2\xb9", "231", SASLPREP_OK},
	{"MICRO SIGN -> GREEK MU", "\xc2\xb5", "\xce\xbc", SASLPREP_OK},
	{"C1 control prohibited -> raw", "a\xc2\x85", "a\xc2\x85", SASLPREP_RAW},
	{"only a soft hyphen: empty -> raw", "\xc2\xad", "\xc2\xad", SASLPREP_RAW},
	{"invalid UTF-8 -> raw", "\xff" "a", "\xff" "a", SASLPREP_RAW},
	{"overlong UTF-8 -> raw", "\xc0\xaf", "\xc0\xaf", SASLPREP_RAW},
};

int main(void)
{
	char out[64], big[SASLPREP_PASSWORD_MAX + 2];
	size_t i, n = sizeof(cases) / sizeof(cases[0]), len;

	plan((int)(2 * n) + 3);
	for (i = 0; i < n; i++) {
		memset(out, 'x', sizeof(out));
		len = 0;
		is_int(saslprep_password(cases[i].in, out, sizeof(out), &len), cases[i].rc,
				cases[i].name);
		ok(len == strlen(cases[i].out) && strcmp(out, cases[i].out) == 0, "  %s: output",
				cases[i].name);
	}
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	is_int(saslprep_password(big, out, sizeof(out), &len), -E2BIG, "over the limit: -E2BIG");
	is_int(saslprep_password("\xc2\xbc", out, 5, &len), -ENOSPC, "short buffer: -ENOSPC");
	is_int(saslprep_password(NULL, out, sizeof(out), &len), -EINVAL, "NULL: -EINVAL");
	return tap_exit_status();
}
