/* hbatok.c -- the pg_hba.conf / pg_ident.conf line tokenizer (see hbatok.h). */
#include "hbatok.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "sysalloc.h"

int hbatok_each_line(char *text, const char *path, hbatok_line_fn fn, void *arg, char *err,
		size_t errlen)
{
	struct hbatok_line *t = sys_malloc(sizeof(*t));
	char *line, *next, why[300];
	int lineno = 0, rc = 0;

	if (t == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -ENOMEM;
	}
	for (line = text; line && *line; line = next) {
		const char *w = NULL;

		lineno++;
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		if (hbatok_split(line, t, &w) < 0) {
			snprintf(err, errlen, "%s:%d: %s", path, lineno, w);
			rc = -EINVAL;
			break;
		}
		if (t->n_fields == 0)
			continue;
		why[0] = 0;
		rc = fn(t, lineno, arg, why, sizeof(why));
		if (rc < 0) {
			snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
			break;
		}
	}
	sys_free(t);
	return rc < 0 ? rc : 0;
}

bool hbatok_is_kw(const struct hbatok_item *it, const char *kw)
{
	return !it->quoted && strcmp(it->s, kw) == 0;
}

static bool is_space(char c)
{
	return isspace((unsigned char)c) != 0;
}

/* One item at <*pp>: decoded in place, NUL-terminated; <*pp> moves past
 * it and <*delim> is the character that ended it. */
static int take_item(char **pp, struct hbatok_item *it, char *delim, const char **why)
{
	char *p = *pp, *w;

	if (*p == '"') {
		it->quoted = true;
		it->s = w = ++p;
		for (;;) {
			if (*p == 0 || *p == '\n') {
				*why = "unterminated quoted string";
				return -1;
			}
			if (*p == '"') {
				if (p[1] != '"')
					break;
				p++;
			}
			*w++ = *p++;
		}
		p++; /* the closing quote */
		if (*p && !is_space(*p) && *p != ',' && *p != '#') {
			*why = "unexpected character after a quoted string";
			return -1;
		}
		*delim = *p;
		*w = 0;
	} else {
		it->quoted = false;
		it->s = p;
		while (*p && !is_space(*p) && *p != ',' && *p != '#' && *p != '"')
			p++;
		if (*p == '"') {
			*why = "unexpected quote inside a name (quote the whole name)";
			return -1;
		}
		*delim = *p;
	}
	if (*p) {
		*p = 0;
		if (*delim != '#')
			p++;
	}
	*pp = p;
	return 0;
}

int hbatok_split(char *line, struct hbatok_line *out, const char **why)
{
	char *p = line, delim = 0;

	out->n_items = out->n_fields = 0;
	for (;;) {
		struct hbatok_field *f;

		while (is_space(*p))
			p++;
		if (*p == 0 || *p == '#' || delim == '#')
			return 0;
		if (out->n_fields == HBATOK_MAX_FIELDS) {
			*why = "too many fields";
			return -1;
		}
		f = &out->field[out->n_fields++];
		f->first = out->n_items;
		f->n = 0;
		for (;;) {
			if (out->n_items == HBATOK_MAX_ITEMS) {
				*why = "too many names on one line (use an @file)";
				return -1;
			}
			if (*p == ',' || *p == 0 || *p == '#') {
				*why = "empty name in a list";
				return -1;
			}
			if (take_item(&p, &out->item[out->n_items], &delim, why) < 0)
				return -1;
			if (out->item[out->n_items].s[0] == 0 && !out->item[out->n_items].quoted) {
				*why = "empty name in a list";
				return -1;
			}
			out->n_items++;
			f->n++;
			if (delim != ',' && delim != 0 && delim != '#') {
				/* "a , b": whitespace before a comma continues the list */
				char *q = p;

				while (is_space(*q))
					q++;
				if (*q == ',') {
					delim = ',';
					p = q + 1;
				}
			}
			if (delim != ',')
				break;
			while (is_space(*p))
				p++;
		}
	}
}
