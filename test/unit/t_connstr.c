/* t_connstr.c -- the libpq-style connection-string tokenizer on its own. */
#include "connstr.h"
#include "tap.h"
#include "testutil.h"

#include <errno.h>
#include <string.h>

/* All pairs of <in> as "k=v;" into <out>, or the error message. */
static int tokens(const char *in, char *out, size_t cap)
{
	char buf[256], em[128], *p = buf, *k, *v;
	int rc;

	strcpy(buf, in);
	out[0] = '\0';
	while ((rc = connstr_next(&p, &k, &v, em, sizeof(em))) == 1)
		snprintf(out + strlen(out), cap - strlen(out), "%s=%s;", k, v);
	if (rc < 0)
		snprintf(out, cap, "%s", em);
	return rc;
}

int main(void)
{
	char out[256];

	plan(9);
	is_int(tokens("host=a port=5432", out, sizeof(out)), 0, "two pairs");
	is_str(out, "host=a;port=5432;", "  keys and values");
	tokens("  dbname = x\tuser=y  ", out, sizeof(out));
	is_str(out, "dbname=x;user=y;", "blanks around '=' and at the ends");
	tokens("password='a b\\'c''d\\\\e\\f'", out, sizeof(out));
	is_str(out, "password=a b'c'd\\e\\f;", "quoted value: \\' '' \\\\ and a literal backslash");
	is_int(tokens("", out, sizeof(out)), 0, "empty string: no pairs");
	is_int(tokens("=x", out, sizeof(out)), -EINVAL, "missing name");
	is_int(tokens("host", out, sizeof(out)), -EINVAL, "missing '='");
	is_int(tokens("host='x", out, sizeof(out)), -EINVAL, "unterminated quote");
	is_str(out, "unterminated quoted value for \"host\"", "  with its message");
	return tap_exit_status();
}
