/* ident.c -- pg_ident.conf-style user name maps (see ident.h).
 *
 * Ownership: struct ident owns its entries and their strings (sysalloc);
 * compiled regular expressions are libc's (regcomp allocates with malloc,
 * at load time only).
 */
#include "ident.h"

#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>

#include "hbatok.h"
#include "sysalloc.h"
#include "textfile.h"

struct ident_entry {
	char *map, *sys, *pg;
	bool is_re, pg_all;
	regex_t re;
};

struct ident {
	struct ident_entry *e;
	int n, cap;
};

struct ident *ident_empty(void)
{
	return sys_calloc(1, sizeof(struct ident));
}

void ident_free(struct ident *id)
{
	int i;

	if (id == NULL)
		return;
	for (i = 0; i < id->n; i++) {
		if (id->e[i].is_re)
			regfree(&id->e[i].re);
		sys_free(id->e[i].map);
		sys_free(id->e[i].sys);
		sys_free(id->e[i].pg);
	}
	sys_free(id->e);
	sys_free(id);
}

/* glibc's regcomp has no bound on its own work: a quantifier on a quantifier
 * ("a**...*") or repetitions nested in repetitions ("((a{200}){200})")
 * make it run for minutes, and a reload would stall the event loop.  So
 * before regcomp a map's expression is measured: each atom weighs 1, a
 * quantifier multiplies what it repeats (by 2 for * + ?, by the upper
 * bound for {m,n}), and the sum is capped.  As in PostgreSQL's own regex
 * engine, a quantifier needs an operand and repetition counts are at most
 * 255; PostgreSQL reports the same errors. */
#define RE_MAX_LEN 1024
#define RE_MAX_DEPTH 32
#define RE_MAX_DUP 255
#define RE_MAX_WEIGHT 4096

/* The bounds of "{m}", "{m,}" or "{m,n}" at <p> (just after '{'): the
 * repeat factor, or -1.  *<end> is set past the '}'. */
static long re_bound(const char *p, const char **end)
{
	long m = 0, n;
	int digits = 0;

	while (*p >= '0' && *p <= '9' && m <= RE_MAX_DUP) {
		m = m * 10 + (*p++ - '0');
		digits++;
	}
	if (digits == 0 || m > RE_MAX_DUP)
		return -1;
	n = m;
	if (*p == ',') {
		p++;
		n = m + 1; /* {m,}: m copies and a star */
		if (*p >= '0' && *p <= '9') {
			n = 0;
			while (*p >= '0' && *p <= '9' && n <= RE_MAX_DUP)
				n = n * 10 + (*p++ - '0');
			if (n > RE_MAX_DUP || n < m)
				return -1;
		}
	}
	if (*p != '}')
		return -1;
	*end = p + 1;
	return n > 0 ? n : 1;
}

static int re_check(const char *re, char *why, size_t wlen)
{
	long sum[RE_MAX_DEPTH + 1], last = 0, k;
	int depth = 0;
	const char *p = re, *end;

	if (strlen(re) > RE_MAX_LEN) {
		snprintf(why, wlen, "regular expression longer than %d bytes", RE_MAX_LEN);
		return -EINVAL;
	}
	sum[0] = 0;
	while (*p) {
		switch (*p) {
		case '(':
			if (depth == RE_MAX_DEPTH) {
				snprintf(why, wlen, "regular expression nested deeper than %d", RE_MAX_DEPTH);
				return -EINVAL;
			}
			sum[++depth] = 0;
			last = 0;
			p++;
			continue;
		case ')':
			if (depth == 0) { /* a literal ')' in an ERE */
				last = 1;
				break;
			}
			last = sum[depth--];
			sum[depth] += last;
			last = last ? last : 1;
			p++;
			if (sum[depth] > RE_MAX_WEIGHT) {
				snprintf(why, wlen, "regular expression too complex");
				return -EINVAL;
			}
			continue;
		case '|':
			last = 0;
			p++;
			continue;
		case '*': case '+': case '?': case '{':
			if (last == 0) {
				snprintf(why, wlen, p > re && strchr("*+?}", p[-1]) ?
					"a quantifier on a quantifier (\"**\", non-greedy \"*?\") is not supported" :
					"quantifier operand invalid");
				return -EINVAL;
			}
			if (*p == '{') {
				k = re_bound(p + 1, &end);
				if (k < 0) {
					snprintf(why, wlen, "invalid repetition count(s)");
					return -EINVAL;
				}
				p = end;
			} else {
				k = 2;
				p++;
			}
			sum[depth] += last * (k - 1);
			if (sum[depth] > RE_MAX_WEIGHT) {
				snprintf(why, wlen, "regular expression too complex");
				return -EINVAL;
			}
			last = 0; /* no quantifier on a quantifier */
			continue;
		case '\\':
			if (p[1] != '\0')
				p++;
			last = 1;
			break;
		case '[':
			/* a bracket expression: ']' first (after an optional '^') is
			 * a member, "[:class:]" and the like are skipped whole */
			p++;
			if (*p == '^')
				p++;
			if (*p == ']')
				p++;
			while (*p && *p != ']') {
				if (*p == '[' && (p[1] == ':' || p[1] == '.' || p[1] == '=')) {
					const char *c = strchr(p + 2, p[1]);

					p = c && c[1] == ']' ? c + 2 : p + 1;
				} else {
					p++;
				}
			}
			if (*p == '\0')
				break; /* unterminated: regcomp says so */
			last = 1;
			break;
		default:
			last = 1;
			break;
		}
		if (*p)
			p++;
		sum[depth] += last;
		if (sum[depth] > RE_MAX_WEIGHT) {
			snprintf(why, wlen, "regular expression too complex");
			return -EINVAL;
		}
	}
	return 0;
}

static int add_line(const struct hbatok_line *t, int lineno, void *arg, char *why, size_t wlen)
{
	struct ident *id = arg;
	const struct hbatok_item *m, *s, *u;
	struct ident_entry *e;
	int rc;

	(void)lineno;

	if (t->n_fields != 3 || t->field[0].n != 1 || t->field[1].n != 1 || t->field[2].n != 1) {
		snprintf(why, wlen, "expected \"MAPNAME SYSTEM-USERNAME PG-USERNAME\"");
		return -EINVAL;
	}
	m = &t->item[t->field[0].first];
	s = &t->item[t->field[1].first];
	u = &t->item[t->field[2].first];
	if (!u->quoted && u->s[0] == '+') {
		snprintf(why, wlen, "group names (+%s) are not supported", u->s + 1);
		return -EINVAL;
	}
	if (id->n == id->cap) {
		int ncap = id->cap ? id->cap * 2 : 8;
		void *ne = sys_realloc(id->e, (size_t)ncap * sizeof(*id->e));

		if (ne == NULL)
			goto oom;
		id->e = ne;
		id->cap = ncap;
	}
	e = &id->e[id->n];
	memset(e, 0, sizeof(*e));
	e->is_re = s->s[0] == '/';
	e->pg_all = hbatok_is_kw(u, "all");
	if (e->is_re) {
		char rerr[128];

		if (re_check(s->s + 1, rerr, sizeof(rerr)) != 0) {
			snprintf(why, wlen, "invalid regular expression \"%s\": %s", s->s + 1, rerr);
			return -EINVAL;
		}
		rc = regcomp(&e->re, s->s + 1, REG_EXTENDED);
		if (rc != 0) {
			regerror(rc, &e->re, rerr, sizeof(rerr));
			snprintf(why, wlen, "invalid regular expression \"%s\": %s", s->s + 1, rerr);
			return -EINVAL;
		}
	}
	e->map = sys_strdup(m->s);
	e->sys = sys_strdup(s->s);
	e->pg = sys_strdup(u->s);
	id->n++; /* owned now, freed with <id> even if a copy failed */
	if (e->map == NULL || e->sys == NULL || e->pg == NULL)
		goto oom;
	return 0;
oom:
	snprintf(why, wlen, "out of memory");
	return -ENOMEM;
}

struct ident *ident_parse(char *text, const char *path, char *err, size_t errlen)
{
	struct ident *id = ident_empty();

	if (id == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	if (hbatok_each_line(text, path, add_line, id, err, errlen) < 0) {
		ident_free(id);
		return NULL;
	}
	return id;
}

struct ident *ident_load(const char *path, char *err, size_t errlen)
{
	int e = 0;
	char *text = textfile_read(path, &e);
	struct ident *id;

	if (text == NULL) {
		snprintf(err, errlen, "could not read auth_ident_file %s: %s", path, strerror(e));
		return NULL;
	}
	id = ident_parse(text, path, err, errlen);
	sys_free(text);
	return id;
}

bool ident_has_map(const struct ident *id, const char *map)
{
	int i;

	for (i = 0; id && i < id->n; i++)
		if (strcmp(id->e[i].map, map) == 0)
			return true;
	return false;
}

/* <pg> with "\1" replaced by the group of <sys> in <m>, into <out>. */
static bool expand(const char *pg, const char *sys, const regmatch_t *m, char *out, size_t cap)
{
	const char *hole = strstr(pg, "\\1");
	size_t pre, glen;

	if (hole == NULL)
		return (size_t)snprintf(out, cap, "%s", pg) < cap;
	if (m[1].rm_so < 0)
		return false;
	pre = (size_t)(hole - pg);
	glen = (size_t)(m[1].rm_eo - m[1].rm_so);
	if (pre + glen + strlen(hole + 2) + 1 > cap)
		return false;
	memcpy(out, pg, pre);
	memcpy(out + pre, sys + m[1].rm_so, glen);
	strcpy(out + pre + glen, hole + 2);
	return true;
}

bool ident_check(const struct ident *id, const char *map, const char *sys, const char *pg)
{
	int i;

	for (i = 0; id && i < id->n; i++) {
		const struct ident_entry *e = &id->e[i];
		regmatch_t m[2];
		char want[256];

		if (strcmp(e->map, map) != 0)
			continue;
		if (!e->is_re) {
			if (strcmp(e->sys, sys) == 0 && (e->pg_all || strcmp(e->pg, pg) == 0))
				return true;
			continue;
		}
		if (regexec(&e->re, sys, 2, m, 0) != 0)
			continue;
		if (e->pg_all)
			return true;
		if (expand(e->pg, sys, m, want, sizeof(want)) && strcmp(want, pg) == 0)
			return true;
	}
	return false;
}
