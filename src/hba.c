/* hba.c -- auth_hba_file parsing and matching (see hba.h).
 *
 * Ownership: struct hba owns its rules, their name lists and strings
 * (sysalloc) and the ident maps it was loaded with.  Matching allocates
 * nothing and walks the rules in file order (HBA files are short).
 */
#include "hba.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "hbatok.h"
#include "ident.h"
#include "sysalloc.h"
#include "textfile.h"

#define WHY_LEN 300

static const char *const method_names[] = { "trust", "reject", "md5", "password", "scram-sha-256",
	"cert", "peer" };

const char *hba_method_name(enum hba_method m)
{
	return (unsigned)m < sizeof(method_names) / sizeof(method_names[0]) ? method_names[m] : "?";
}

static void names_free(struct hba_names *n)
{
	int i;

	for (i = 0; i < n->n; i++)
		sys_free(n->names[i]);
	sys_free(n->names);
	n->names = NULL;
	n->n = 0;
}

void hba_free(struct hba *h)
{
	int i;

	if (h == NULL)
		return;
	for (i = 0; i < h->n; i++) {
		names_free(&h->rules[i].db);
		names_free(&h->rules[i].user);
		sys_free(h->rules[i].map);
	}
	sys_free(h->rules);
	sys_free(h->warnings);
	ident_free(h->ident);
	sys_free(h);
}

static int name_add(struct hba_names *n, const char *s, char *why)
{
	char **nn = sys_realloc(n->names, (size_t)(n->n + 1) * sizeof(*nn));

	if (nn == NULL) {
		snprintf(why, WHY_LEN, "out of memory");
		return -ENOMEM;
	}
	n->names = nn;
	n->names[n->n] = sys_strdup(s);
	if (n->names[n->n] == NULL) {
		snprintf(why, WHY_LEN, "out of memory");
		return -ENOMEM;
	}
	n->n++;
	return 0;
}

/* <fn> relative to the directory of <parent> (absolute stays). */
static void path_near(const char *parent, const char *fn, char *out, size_t cap)
{
	const char *slash = strrchr(parent, '/');

	if (fn[0] == '/' || slash == NULL)
		snprintf(out, cap, "%s", fn);
	else
		snprintf(out, cap, "%.*s/%s", (int)(slash - parent), parent, fn);
}

static int names_item(struct hba_names *n, const struct hbatok_item *it, bool is_db,
		const char *path, int depth, char *why);

struct names_ctx {
	struct hba_names *n;
	bool is_db;
	const char *path;
	int depth;
};

static int names_line(const struct hbatok_line *t, int lineno, void *arg, char *why, size_t wlen)
{
	struct names_ctx *x = arg;
	int i, rc = 0;

	(void)lineno;
	(void)wlen;
	for (i = 0; rc == 0 && i < t->n_items; i++)
		rc = names_item(x->n, &t->item[i], x->is_db, x->path, x->depth, why);
	return rc;
}

/* An @file: names separated by whitespace, commas or newlines. */
static int names_file(struct hba_names *n, const char *fn, bool is_db, const char *path, int depth,
		char *why)
{
	char full[4096], err[WHY_LEN];
	struct names_ctx x = { n, is_db, full, depth + 1 };
	char *text;
	int e = 0, rc;

	if (depth > 4) {
		snprintf(why, WHY_LEN, "@files nested too deeply");
		return -ELOOP;
	}
	path_near(path, fn, full, sizeof(full));
	text = textfile_read(full, &e);
	if (text == NULL) {
		snprintf(why, WHY_LEN, "could not read @%s (%s): %s", fn, full, strerror(e));
		return -EINVAL;
	}
	rc = hbatok_each_line(text, full, names_line, &x, err, sizeof(err));
	if (rc < 0)
		snprintf(why, WHY_LEN, "in @%s: %s", fn, err);
	sys_free(text);
	return rc;
}

static int names_item(struct hba_names *n, const struct hbatok_item *it, bool is_db,
		const char *path, int depth, char *why)
{
	if (hbatok_is_kw(it, "all")) {
		n->flags |= HBA_N_ALL;
		return 0;
	}
	if (is_db && hbatok_is_kw(it, "sameuser")) {
		n->flags |= HBA_N_SAMEUSER;
		return 0;
	}
	if (is_db && hbatok_is_kw(it, "replication")) {
		n->flags |= HBA_N_REPLICATION;
		return 0;
	}
	if (is_db && (hbatok_is_kw(it, "samerole") || hbatok_is_kw(it, "samegroup"))) {
		snprintf(why, WHY_LEN, "\"%s\" is not supported (as in PgBouncer)", it->s);
		return -EINVAL;
	}
	if (!it->quoted && it->s[0] == '+') {
		snprintf(why, WHY_LEN, "group membership (+%s) is not supported (as in PgBouncer): list the users, or use an @file",
				it->s + 1);
		return -EINVAL;
	}
	if (!it->quoted && it->s[0] == '@') {
		if (it->s[1] == 0) {
			snprintf(why, WHY_LEN, "@ without a file name");
			return -EINVAL;
		}
		return names_file(n, it->s + 1, is_db, path, depth, why);
	}
	return name_add(n, it->s, why);
}

static int parse_names(struct hba_names *n, const struct hbatok_line *t, int f, bool is_db,
		const char *path, char *why)
{
	int i, rc;

	for (i = 0; i < t->field[f].n; i++) {
		rc = names_item(n, &t->item[t->field[f].first + i], is_db, path, 0, why);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int prefix_mask(uint8_t *mask, int family, const char *bits, char *why)
{
	int max = family == AF_INET ? 32 : 128, i;
	char *end = NULL;
	long b;

	errno = 0;
	b = strtol(bits, &end, 10);
	if (bits[0] == 0 || *end || errno || b < 0 || b > max) {
		snprintf(why, WHY_LEN, "invalid CIDR mask length \"%s\" (0..%d)", bits, max);
		return -EINVAL;
	}
	memset(mask, 0, 16);
	for (i = 0; i < b / 8; i++)
		mask[i] = 0xff;
	if (b % 8)
		mask[i] = (uint8_t)(0xff << (8 - b % 8));
	return 0;
}

/* Address field(s) from field <*f>: all, CIDR, or address + mask. */
static int parse_address(struct hba_rule *r, const struct hbatok_line *t, int *f, char *why)
{
	const struct hbatok_item *it;
	char buf[128], *slash;
	int len, i;

	if (*f >= t->n_fields || t->field[*f].n != 1) {
		snprintf(why, WHY_LEN, "expected an address");
		return -EINVAL;
	}
	it = &t->item[t->field[*f].first];
	(*f)++;
	if (hbatok_is_kw(it, "all")) {
		r->addr_all = true;
		return 0;
	}
	if (hbatok_is_kw(it, "samehost") || hbatok_is_kw(it, "samenet")) {
		snprintf(why, WHY_LEN, "\"%s\" is not supported (as in PgBouncer)", it->s);
		return -EINVAL;
	}
	snprintf(buf, sizeof(buf), "%s", it->s);
	slash = strchr(buf, '/');
	if (slash)
		*slash++ = 0;
	if (inet_pton(AF_INET, buf, r->addr) == 1) {
		r->family = AF_INET;
	} else if (inet_pton(AF_INET6, buf, r->addr) == 1) {
		r->family = AF_INET6;
	} else {
		snprintf(why, WHY_LEN, "invalid IP address \"%s\" (host names are not supported)", buf);
		return -EINVAL;
	}
	if (slash) {
		if (prefix_mask(r->mask, r->family, slash, why) < 0)
			return -EINVAL;
	} else {
		if (*f >= t->n_fields || t->field[*f].n != 1) {
			snprintf(why, WHY_LEN, "address \"%s\" needs a /prefix or a mask field", buf);
			return -EINVAL;
		}
		it = &t->item[t->field[*f].first];
		(*f)++;
		if (inet_pton(r->family, it->s, r->mask) != 1) {
			snprintf(why, WHY_LEN, "invalid IP mask \"%s\"", it->s);
			return -EINVAL;
		}
	}
	/* bits outside the mask: as PgBouncer, the line loads and never
	 * matches (the address is compared unmasked); hba_parse() warns */
	len = r->family == AF_INET ? 4 : 16;
	for (i = 0; i < len; i++)
		if (r->addr[i] & (uint8_t)~r->mask[i])
			r->bad_mask = true;
	return 0;
}

static int parse_method(struct hba_rule *r, const struct hbatok_item *it, char *why)
{
	size_t i;

	for (i = 0; i < sizeof(method_names) / sizeof(method_names[0]); i++) {
		if (hbatok_is_kw(it, method_names[i])) {
			r->method = (enum hba_method)i;
			return 0;
		}
	}
	if (hbatok_is_kw(it, "ldap") || hbatok_is_kw(it, "pam"))
		snprintf(why, WHY_LEN, "method \"%s\" is not supported by pgslab", it->s);
	else
		snprintf(why, WHY_LEN, "unknown authentication method \"%s\"", it->s);
	return -EINVAL;
}

static int parse_options(struct hba_rule *r, const struct hbatok_line *t, int f,
		const struct ident *ident, char *why)
{
	for (; f < t->n_fields; f++) {
		const struct hbatok_item *it = &t->item[t->field[f].first];

		if (t->field[f].n != 1 || strncmp(it->s, "map=", 4) != 0 || it->s[4] == 0) {
			snprintf(why, WHY_LEN, "unsupported option \"%s\" (only map=NAME)", it->s);
			return -EINVAL;
		}
		if (r->method != HBA_PEER && r->method != HBA_CERT) {
			snprintf(why, WHY_LEN, "map= is only for the peer and cert methods");
			return -EINVAL;
		}
		if (r->map) {
			snprintf(why, WHY_LEN, "map= given twice");
			return -EINVAL;
		}
		if (!ident_has_map(ident, it->s + 4)) {
			snprintf(why, WHY_LEN, "ident map \"%s\" is not in the auth_ident_file", it->s + 4);
			return -EINVAL;
		}
		r->map = sys_strdup(it->s + 4);
		if (r->map == NULL) {
			snprintf(why, WHY_LEN, "out of memory");
			return -ENOMEM;
		}
	}
	return 0;
}

static int parse_rule(struct hba_rule *r, const struct hbatok_line *t, const char *path,
		const struct ident *ident, char *why)
{
	static const char *const types[] = { "local", "host", "hostssl", "hostnossl" };
	const struct hbatok_item *it = &t->item[t->field[0].first];
	size_t i;
	int f = 1, rc;

	for (i = 0; i < 4; i++)
		if (t->field[0].n == 1 && hbatok_is_kw(it, types[i]))
			break;
	if (i == 4) {
		snprintf(why, WHY_LEN, "unknown connection type \"%s\" (local, host, hostssl, hostnossl)",
				it->s);
		return -EINVAL;
	}
	r->type = (enum hba_type)i;
	if (t->n_fields < (r->type == HBA_LOCAL ? 4 : 5)) {
		snprintf(why, WHY_LEN, "too few fields");
		return -EINVAL;
	}
	rc = parse_names(&r->db, t, f++, true, path, why);
	if (rc == 0)
		rc = parse_names(&r->user, t, f++, false, path, why);
	if (rc == 0 && r->type != HBA_LOCAL)
		rc = parse_address(r, t, &f, why);
	if (rc < 0)
		return rc;
	if (f >= t->n_fields || t->field[f].n != 1) {
		snprintf(why, WHY_LEN, "expected an authentication method");
		return -EINVAL;
	}
	rc = parse_method(r, &t->item[t->field[f].first], why);
	if (rc < 0)
		return rc;
	if (r->method == HBA_PEER && r->type != HBA_LOCAL) {
		snprintf(why, WHY_LEN, "peer authentication is only for local (Unix socket) lines");
		return -EINVAL;
	}
	return parse_options(r, t, f + 1, ident, why);
}

struct rules_ctx {
	struct hba *h;
	const char *path;
};

/* Append one line to <h>'s warnings (at most HBA_WARNINGS_MAX bytes; past
 * that they are only counted). */
static void add_warning(struct hba *h, const char *line)
{
	size_t n = strlen(line);
	char *w;

	h->n_warnings++;
	if (h->warnings_len + n + 2 > HBA_WARNINGS_MAX)
		return;
	w = sys_realloc(h->warnings, h->warnings_len + n + 2);
	if (w == NULL)
		return;
	memcpy(w + h->warnings_len, line, n);
	w[h->warnings_len + n] = '\n';
	w[h->warnings_len + n + 1] = 0;
	h->warnings = w;
	h->warnings_len += n + 1;
}

static int rule_line(const struct hbatok_line *t, int lineno, void *arg, char *why, size_t wlen)
{
	struct rules_ctx *x = arg;
	struct hba *h = x->h;
	struct hba_rule *r;

	(void)wlen;
	if (h->n == h->cap) {
		int ncap = h->cap ? h->cap * 2 : 16;
		void *nr = sys_realloc(h->rules, (size_t)ncap * sizeof(*h->rules));

		if (nr == NULL) {
			snprintf(why, WHY_LEN, "out of memory");
			return -ENOMEM;
		}
		h->rules = nr;
		h->cap = ncap;
	}
	r = &h->rules[h->n++]; /* owned now: freed with <h> */
	memset(r, 0, sizeof(*r));
	r->line = lineno;
	if (parse_rule(r, t, x->path, h->ident, why) < 0)
		return -EINVAL;
	if (r->bad_mask) {
		char a[INET6_ADDRSTRLEN], m[INET6_ADDRSTRLEN], line[WHY_LEN + 64];

		inet_ntop(r->family, r->addr, a, sizeof(a));
		inet_ntop(r->family, r->mask, m, sizeof(m));
		snprintf(line, sizeof(line), "address does not match mask in %s line #%d: %s / %s "
				"(the line never matches, as in PgBouncer)", x->path, lineno, a, m);
		add_warning(h, line);
	}
	return 0;
}

struct hba *hba_parse(char *text, const char *path, struct ident *ident, char *err, size_t errlen)
{
	struct hba *h = sys_calloc(1, sizeof(*h));
	struct rules_ctx x = { h, path };

	if (h == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		ident_free(ident);
		return NULL;
	}
	h->ident = ident;
	if (hbatok_each_line(text, path, rule_line, &x, err, errlen) < 0) {
		hba_free(h);
		return NULL;
	}
	return h;
}

struct hba *hba_load(const char *path, struct ident *ident, char *err, size_t errlen)
{
	int e = 0;
	char *text = textfile_read(path, &e);
	struct hba *h;

	if (text == NULL) {
		snprintf(err, errlen, "could not read auth_hba_file %s: %s", path, strerror(e));
		ident_free(ident);
		return NULL;
	}
	h = hba_parse(text, path, ident, err, errlen);
	sys_free(text);
	return h;
}

static bool name_in(const struct hba_names *n, const char *name, const char *pair)
{
	int i;

	if (n->flags & HBA_N_ALL)
		return true;
	if ((n->flags & HBA_N_SAMEUSER) && strcmp(name, pair) == 0)
		return true;
	for (i = 0; i < n->n; i++)
		if (strcmp(n->names[i], name) == 0)
			return true;
	return false;
}

static bool addr_in(const struct hba_rule *r, const struct hba_conn *c)
{
	int i, len = r->family == AF_INET ? 4 : 16;

	if (r->addr_all)
		return true;
	if (c->family != r->family || c->addr == NULL)
		return false;
	for (i = 0; i < len; i++)
		if ((c->addr[i] & r->mask[i]) != r->addr[i])
			return false;
	return true;
}

const struct hba_rule *hba_match(const struct hba *h, const struct hba_conn *c)
{
	int i;

	for (i = 0; h && i < h->n; i++) {
		const struct hba_rule *r = &h->rules[i];

		if (c->local != (r->type == HBA_LOCAL))
			continue;
		if ((r->type == HBA_HOSTSSL && !c->is_tls) || (r->type == HBA_HOSTNOSSL && c->is_tls))
			continue;
		if (!c->local && !addr_in(r, c))
			continue;
		/* "replication" matches replication connections only, and they
		 * match nothing else (as PostgreSQL and PgBouncer) */
		if (c->replication ? !(r->db.flags & HBA_N_REPLICATION) : !name_in(&r->db, c->db, c->user))
			continue;
		if (!name_in(&r->user, c->user, c->db))
			continue;
		return r;
	}
	return NULL;
}
