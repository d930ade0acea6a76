/* fuzz_admin_cmd.c -- the console's command parser (admincmd.c) and SET's value parsing (config_set).
 *
 * Input: the text of a console Query (a NUL ends it, as the Query message's
 * own terminator does).  A parsed command has a lower-case verb;
 * rebuilt with every token quoted (quotes doubled) it must parse to the
 * same verb, argument and value.  A SET goes through config_set() on a
 * default config, as control_set() does, and must return a documented
 * result with a message on failure; a SET that succeeded must show the
 * value SHOW CONFIG prints for it (SET of that value again succeeds).
 */
#include <ctype.h>
#include <errno.h>

#include "admincmd.h"
#include "config.h"
#include "fuzz.h"

static size_t quote(char *out, const char *s, char q)
{
	size_t n = 0;

	out[n++] = q;
	for (; *s; s++) {
		if (*s == q)
			out[n++] = q;
		out[n++] = *s;
	}
	out[n++] = q;
	return n;
}

static void rebuild(const struct admin_cmd *cmd)
{
	static char buf[8 * (ADMINCMD_VERB_MAX + ADMINCMD_ARG_MAX + ADMINCMD_VALUE_MAX)];
	struct admin_cmd again;
	size_t n = 0;

	n += quote(buf + n, cmd->verb, '"');
	if (cmd->arg[0] || cmd->is_set) {
		buf[n++] = ' ';
		n += quote(buf + n, cmd->arg, '"');
	}
	if (cmd->is_set) {
		memcpy(buf + n, " = ", 3);
		n += 3;
		n += quote(buf + n, cmd->value, '\'');
	}
	memcpy(buf + n, " ;", 3);
	FUZZ_ASSERT(admin_cmd_parse(buf, &again) == 0);
	FUZZ_ASSERT(strcmp(again.verb, cmd->verb) == 0 && strcmp(again.arg, cmd->arg) == 0);
	FUZZ_ASSERT(again.is_set == cmd->is_set && strcmp(again.value, cmd->value) == 0);
}

static void set(const struct admin_cmd *cmd)
{
	struct config *cfg = config_new_defaults();
	char err[300], buf[256];
	const char *shown;
	int rc;

	if (cfg == NULL)
		abort();
	err[0] = 0;
	rc = config_set(cfg, cmd->arg, cmd->value, err, sizeof(err));
	FUZZ_ASSERT(rc == 0 || rc == -ENOENT || rc == -EPERM || rc == -EINVAL);
	if (rc != 0) {
		FUZZ_ASSERT(err[0] != 0 && memchr(err, 0, sizeof(err)));
		config_free(cfg);
		return;
	}
	shown = config_setting_get(cfg, cmd->arg, buf, sizeof(buf));
	FUZZ_ASSERT(shown != NULL);
	{
		char *copy = fuzz_strndup((const uint8_t *)shown, strlen(shown));

		rc = config_set(cfg, cmd->arg, copy, err, sizeof(err));
		if (rc != 0)
			fprintf(stderr, "SET %s = '%s' (shown for '%s'): %s\n", cmd->arg, copy,
					cmd->value, err);
		FUZZ_ASSERT(rc == 0);
		FUZZ_ASSERT(strcmp(config_setting_get(cfg, cmd->arg, buf, sizeof(buf)), copy) == 0);
		free(copy);
	}
	config_free(cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *sql = fuzz_strndup(data, size);
	struct admin_cmd cmd;
	size_t i;

	if (admin_cmd_parse(sql, &cmd) == 0) {
		/* the verb may be empty ("" is a quoted name): admin.c refuses it */
		FUZZ_ASSERT(memchr(cmd.verb, 0, sizeof(cmd.verb)));
		FUZZ_ASSERT(memchr(cmd.arg, 0, sizeof(cmd.arg)) && memchr(cmd.value, 0, sizeof(cmd.value)));
		for (i = 0; cmd.verb[i]; i++)
			FUZZ_ASSERT(!isupper((unsigned char)cmd.verb[i]));
		if (cmd.is_set)
			FUZZ_ASSERT(strcmp(cmd.verb, "set") == 0);
		rebuild(&cmd);
		if (cmd.is_set)
			set(&cmd);
	}
	free(sql);
	return 0;
}
