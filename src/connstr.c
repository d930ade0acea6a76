/* connstr.c -- tokenizer for libpq-style "key=value key='quoted value'" strings ([databases], [users]). */
#include "connstr.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>

bool connstr_is_blank(char c)
{
	return c == ' ' || c == '\t';
}

char *connstr_skip_blanks(char *p)
{
	while (connstr_is_blank(*p))
		p++;
	return p;
}

int connstr_next(char **pp, char **key, char **val, char *em, size_t emlen)
{
	char *p = connstr_skip_blanks(*pp), *k, *kend, *v, *w;

	if (*p == '\0')
		return 0;
	k = p;
	while (*p && *p != '=' && !connstr_is_blank(*p))
		p++;
	kend = p;
	if (kend == k) {
		snprintf(em, emlen, "missing parameter name before \"=\"");
		return -EINVAL;
	}
	p = connstr_skip_blanks(p);
	if (*p != '=') {
		snprintf(em, emlen, "missing \"=\" after \"%.*s\"", (int)(kend - k), k);
		return -EINVAL;
	}
	*kend = '\0';
	p = connstr_skip_blanks(p + 1);
	if (*p == '\'') {
		v = w = ++p;
		for (;;) {
			if (*p == '\0') {
				snprintf(em, emlen, "unterminated quoted value for \"%s\"", k);
				return -EINVAL;
			}
			if (*p == '\\' && (p[1] == '\'' || p[1] == '\\')) {
				*w++ = p[1];
				p += 2;
			} else if (*p == '\'' && p[1] == '\'') {
				*w++ = '\'';
				p += 2;
			} else if (*p == '\'') {
				p++;
				break;
			} else {
				*w++ = *p++;
			}
		}
		if (*p != '\0' && !connstr_is_blank(*p)) {
			snprintf(em, emlen, "unexpected text after quoted value for \"%s\"", k);
			return -EINVAL;
		}
		*w = '\0';
	} else {
		v = p;
		while (*p && !connstr_is_blank(*p))
			p++;
		if (p == v) {
			snprintf(em, emlen, "missing value for \"%s\"", k);
			return -EINVAL;
		}
		if (*p)
			*p++ = '\0';
	}
	*key = k;
	*val = v;
	*pp = p;
	return 1;
}
