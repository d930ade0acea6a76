/* hbatok.h -- the pg_hba.conf / pg_ident.conf line tokenizer (hbatok.c).
 *
 * A line is fields separated by whitespace; a field is a comma-separated
 * list of items (whitespace may surround a comma); an item is a run of
 * characters other than whitespace, ',', '#' and '"', or a double-quoted
 * string in which "" stands for one quote.  '#' outside quotes starts a
 * comment.  Quoting matters: "all" quoted is a name, all unquoted is the
 * keyword.  The line is decoded in place; items point into it.
 */
#ifndef PGSLAB_HBATOK_H
#define PGSLAB_HBATOK_H

#include <stdbool.h>
#include <stddef.h>

#define HBATOK_MAX_ITEMS 256
#define HBATOK_MAX_FIELDS 32

struct hbatok_item {
	const char *s;
	bool quoted;
};

struct hbatok_field {
	int first, n;                /* items [first, first + n) */
};

struct hbatok_line {
	struct hbatok_item item[HBATOK_MAX_ITEMS];
	struct hbatok_field field[HBATOK_MAX_FIELDS];
	int n_items, n_fields;
};

/* Split <line> (modified in place).  0, or -1 with <why> set. */
int hbatok_split(char *line, struct hbatok_line *out, const char **why);

typedef int (*hbatok_line_fn)(const struct hbatok_line *t, int lineno, void *arg, char *why,
		size_t wlen);

/* Feed each line of <text> (modified) with fields to <fn>; the first
 * failure (<0 from <fn>, or a line that does not split) stops with
 * "<path>:<line>: why" in <err> and is returned. */
int hbatok_each_line(char *text, const char *path, hbatok_line_fn fn, void *arg, char *err,
		size_t errlen);

/* Is item <it> the unquoted keyword <kw>? */
bool hbatok_is_kw(const struct hbatok_item *it, const char *kw);

#endif
