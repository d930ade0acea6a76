/* userlist.c -- PgBouncer auth_file loading, secret classification, lookup.
 *
 * Theory.  The whole file is read into one buffer (ul->buf) and unquoted in
 * place, so every name and secret is a pointer into it: loading costs three
 * allocations plus the array growth, and userlist_free() releases them.
 *
 * Index: open addressing with linear probing over slots[mask + 1], each slot
 * holding entry index + 1 (0 = empty).  The table is at least twice the
 * entry count, so probes stay short.  Invariant after loading:
 *	every entry is reachable from exactly one slot, names are distinct,
 *	n_slots = mask + 1 is a power of two >= 2 * n.
 * Duplicate names are folded while indexing: the first position keeps the
 * later line's secret, then the array is compacted and the index rebuilt.
 */
#include "userlist.h"

#include "pwd.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "sysalloc.h"
#include "textfile.h"

struct userlist {
	char *buf;
	struct userlist_entry *ents;
	size_t n, cap;
	uint32_t *slots;
	size_t mask;
};

/* ---- secret classification ------------------------------------------- */

enum userlist_secret_kind userlist_secret_classify(const char *secret)
{
	switch (pwd_classify(secret)) {
	case PWD_NONE:
		return USERLIST_SECRET_NONE;
	case PWD_MD5:
		return USERLIST_SECRET_MD5;
	case PWD_SCRAM:
		return USERLIST_SECRET_SCRAM;
	default:
		return USERLIST_SECRET_PLAIN;
	}
}

const char *userlist_secret_kind_name(enum userlist_secret_kind k)
{
	switch (k) {
	case USERLIST_SECRET_NONE:
		return "none";
	case USERLIST_SECRET_PLAIN:
		return "plain";
	case USERLIST_SECRET_MD5:
		return "md5";
	case USERLIST_SECRET_SCRAM:
		return "scram-sha-256";
	}
	return "unknown";
}

/* ---- index ----------------------------------------------------------- */

static uint64_t name_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, then a murmur3 finalizer */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

static size_t slot_find(const struct userlist *ul, const char *name)
{
	size_t h = (size_t)name_hash(name) & ul->mask;

	while (ul->slots[h] != 0 && strcmp(ul->ents[ul->slots[h] - 1].name, name) != 0)
		h = (h + 1) & ul->mask;
	return h;
}

/* Builds the index, folding duplicate names (later secret wins, first
 * position kept).  Returns 0 or -ENOMEM. */
static int index_build(struct userlist *ul)
{
	size_t nslots = 16, i, m, h;
	bool dups = false;

	if (ul->n > UINT32_MAX / 4)
		return -ENOMEM;
	while (nslots < ul->n * 2)
		nslots *= 2;
	ul->slots = sys_calloc(nslots, sizeof(*ul->slots));
	if (ul->slots == NULL)
		return -ENOMEM;
	ul->mask = nslots - 1;
	for (i = 0; i < ul->n; i++) {
		h = slot_find(ul, ul->ents[i].name);
		if (ul->slots[h] != 0) {
			struct userlist_entry *first = &ul->ents[ul->slots[h] - 1];

			first->secret = ul->ents[i].secret;
			first->kind = ul->ents[i].kind;
			first->line = ul->ents[i].line;
			ul->ents[i].name = NULL;
			dups = true;
		} else {
			ul->slots[h] = (uint32_t)(i + 1);
		}
	}
	if (!dups)
		return 0;
	for (i = m = 0; i < ul->n; i++) {
		if (ul->ents[i].name != NULL)
			ul->ents[m++] = ul->ents[i];
	}
	ul->n = m;
	memset(ul->slots, 0, nslots * sizeof(*ul->slots));
	for (i = 0; i < ul->n; i++)
		ul->slots[slot_find(ul, ul->ents[i].name)] = (uint32_t)(i + 1);
	return 0;
}

/* ---- parsing --------------------------------------------------------- */

static void msgf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void msgf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (buf == NULL || len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* <p> is at an opening quote.  Unquotes in place; returns the position after
 * the closing quote and sets <out>, or NULL if the quote is not closed on
 * this line. */
static char *unquote(char *p, char **out)
{
	char *w;

	*out = w = ++p;
	for (;;) {
		if (*p == '\0')
			return NULL;
		if (*p == '"' && p[1] == '"') {
			*w++ = '"';
			p += 2;
		} else if (*p == '"') {
			*w = '\0'; /* w < p + 1 */
			return p + 1;
		} else {
			*w++ = *p++;
		}
	}
}

static int add_entry(struct userlist *ul, const char *name, const char *secret, int line)
{
	struct userlist_entry *e;

	if (ul->n == ul->cap) {
		size_t ncap = ul->cap ? ul->cap * 2 : 64;

		e = sys_realloc(ul->ents, ncap * sizeof(*e));
		if (e == NULL)
			return -ENOMEM;
		ul->ents = e;
		ul->cap = ncap;
	}
	e = &ul->ents[ul->n++];
	e->name = name;
	e->secret = secret;
	e->kind = userlist_secret_classify(secret);
	e->line = line;
	return 0;
}

/* Parses ul->buf (which it modifies). */
static int parse_buf(struct userlist *ul, const char *fname, char *err, size_t errlen)
{
	char *line, *next, *p, *name, *secret;
	int lineno = 0;

	for (line = ul->buf; line != NULL; line = next) {
		lineno++;
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		p = line;
		while (is_space(*p))
			p++;
		if (*p == '\0' || *p == ';' || *p == '#')
			continue;
		if (*p != '"')
			goto syntax;
		p = unquote(p, &name);
		if (p == NULL)
			goto unterminated;
		while (is_space(*p))
			p++;
		if (*p != '"')
			goto syntax;
		p = unquote(p, &secret);
		if (p == NULL)
			goto unterminated;
		if (*p != '\0' && !is_space(*p))
			goto syntax;
		if (strlen(secret) >= PWD_SECRET_MAX) {
			/* PgBouncer's words; refused, never cut */
			msgf(err, errlen, "%s:%d: password too long in auth file (at most %d bytes)",
					fname, lineno, PWD_SECRET_MAX - 1);
			return -EINVAL;
		}
		if (add_entry(ul, name, secret, lineno) < 0) {
			msgf(err, errlen, "%s: out of memory", fname);
			return -ENOMEM;
		}
	}
	if (index_build(ul) < 0) {
		msgf(err, errlen, "%s: out of memory", fname);
		return -ENOMEM;
	}
	return 0;
syntax:
	msgf(err, errlen, "%s:%d: expected \"username\" \"password\"", fname, lineno);
	return -EINVAL;
unterminated:
	msgf(err, errlen, "%s:%d: unterminated quoted string", fname, lineno);
	return -EINVAL;
}

/* Takes ownership of <buf>. */
static struct userlist *userlist_from_buf(char *buf, const char *fname, char *err, size_t errlen)
{
	struct userlist *ul = sys_calloc(1, sizeof(*ul));

	if (ul == NULL) {
		sys_free(buf);
		msgf(err, errlen, "%s: out of memory", fname);
		return NULL;
	}
	ul->buf = buf;
	if (parse_buf(ul, fname, err, errlen) < 0) {
		userlist_free(ul);
		return NULL;
	}
	return ul;
}

struct userlist *userlist_parse(const char *text, const char *name, char *err, size_t errlen)
{
	char *buf = sys_strdup(text);

	if (buf == NULL) {
		msgf(err, errlen, "%s: out of memory", name);
		return NULL;
	}
	return userlist_from_buf(buf, name, err, errlen);
}

struct userlist *userlist_load(const char *path, char *err, size_t errlen)
{
	int e = 0;
	char *buf = textfile_read(path, &e);

	if (buf == NULL) {
		msgf(err, errlen, "%s: %s", path,
				e == EILSEQ ? "contains a NUL byte" : strerror(e));
		return NULL;
	}
	return userlist_from_buf(buf, path, err, errlen);
}

void userlist_free(struct userlist *ul)
{
	if (ul == NULL)
		return;
	sys_free(ul->slots);
	sys_free(ul->ents);
	sys_free(ul->buf);
	sys_free(ul);
}

size_t userlist_count(const struct userlist *ul)
{
	return ul->n;
}

const struct userlist_entry *userlist_find(const struct userlist *ul, const char *name)
{
	size_t h = slot_find(ul, name);

	return ul->slots[h] ? &ul->ents[ul->slots[h] - 1] : NULL;
}

const struct userlist_entry *userlist_entry_at(const struct userlist *ul, size_t i)
{
	return i < ul->n ? &ul->ents[i] : NULL;
}
