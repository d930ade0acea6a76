/* admincmd.c -- the console's command grammar (see admincmd.h), split from admin.c so it can be fuzzed alone. */
#include "admincmd.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

static const char *skip_ws(const char *s)
{
	while (*s && isspace((unsigned char)*s))
		s++;
	return s;
}

static bool word_char(char ch)
{
	return isalnum((unsigned char)ch) || ch == '_' || ch == '.' || ch == '$' || ch == '-';
}

/* A WORD or a <quote>-quoted string (doubled quote = one) at <s>, copied to
 * <dst>; returns the position after it, or NULL. */
static const char *get_token(const char *s, char *dst, size_t cap, bool allow_single)
{
	size_t n = 0;

	if (*s == '"' || (allow_single && *s == '\'')) {
		char q = *s++;

		for (;;) {
			if (*s == 0)
				return NULL;
			if (*s == q) {
				if (s[1] != q)
					break;
				s++;
			}
			if (n + 1 >= cap)
				return NULL;
			dst[n++] = *s++;
		}
		dst[n] = 0;
		return s + 1;
	}
	while (word_char(*s)) {
		if (n + 1 >= cap)
			return NULL;
		dst[n++] = *s++;
	}
	dst[n] = 0;
	return n ? s : NULL;
}

/* Only blanks and one optional ';' left? */
static bool at_end(const char *s)
{
	s = skip_ws(s);
	if (*s == ';')
		s = skip_ws(s + 1);
	return *s == 0;
}

int admin_cmd_parse(const char *sql, struct admin_cmd *cmd)
{
	const char *s = skip_ws(sql);
	size_t i;

	memset(cmd, 0, sizeof(*cmd));
	s = get_token(s, cmd->verb, sizeof(cmd->verb), false);
	if (s == NULL)
		return -EINVAL;
	for (i = 0; cmd->verb[i]; i++)
		cmd->verb[i] = (char)tolower((unsigned char)cmd->verb[i]);
	if (at_end(s))
		return 0;
	if (!isspace((unsigned char)*s))
		return -EINVAL;
	s = get_token(skip_ws(s), cmd->arg, sizeof(cmd->arg), false);
	if (s == NULL)
		return -EINVAL;
	if (at_end(s))
		return 0;
	if (strcmp(cmd->verb, "set") != 0)
		return -EINVAL;
	/* SET key (= | TO) value */
	s = skip_ws(s);
	if (*s == '=') {
		s++;
	} else if (strncasecmp(s, "to", 2) == 0 && isspace((unsigned char)s[2])) {
		s += 2;
	} else {
		return -EINVAL;
	}
	s = skip_ws(s);
	if (*s == '\'' || *s == '"') {
		s = get_token(s, cmd->value, sizeof(cmd->value), true);
	} else {
		size_t n = 0;

		while (*s && !isspace((unsigned char)*s) && *s != ';') {
			if (n + 1 >= sizeof(cmd->value))
				return -EINVAL;
			cmd->value[n++] = *s++;
		}
		cmd->value[n] = 0;
		if (n == 0)
			return -EINVAL;
	}
	if (s == NULL || !at_end(s))
		return -EINVAL;
	cmd->is_set = true;
	return 0;
}
