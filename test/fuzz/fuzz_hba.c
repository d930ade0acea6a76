/* fuzz_hba.c -- the auth_hba_file parser and matcher, and the auth_ident_file maps.
 *
 * Input: five parts separated by the byte 0xfe: the HBA text, the ident
 * text, two @files ("a" and "b", which the HBA text and each other may
 * name), and a probe (below).  The HBA path is hba.conf in a private
 * temporary directory, so @files resolve there.  hba_parse() reads any
 * @file it is given, absolute or relative, so the input is bounded before
 * it is parsed: a '/' in a word starting with '@' becomes '_' (no @file
 * can name a path outside the directory), and each @file keeps only its
 * first '@' (a chain of @files, at most five deep, instead of a fan-out
 * that grows as the power of the depth).  The ident text is used as it
 * is: ident.c measures a regular expression before glibc compiles it.
 *
 * Probe: byte 0 flags (bit 0 local, 1 IPv6, 2 TLS, 3 replication), then
 * 16 address bytes, then "db\nuser\nsystem-user\nmap" (missing parts are
 * empty).
 *
 * Checks.  A failed load returns NULL with an error naming the file.  A
 * loaded file: every rule's method has a known name, map= only on peer and
 * cert rules naming a map the ident file has, peer only on local lines,
 * lines increase.  For each rule a connection built to fit it (its type,
 * its address, a name from each list) matches it or an earlier rule.  The
 * probe connection matches nothing or some rule.  Each plain line
 * "MAP SYS PG" of a loaded ident file admits SYS as PG under MAP.
 */
#include <ctype.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "hba.h"
#include "hbatok.h"
#include "ident.h"

static char dir[64];
static char hba_path[96];
static const char ident_path[] = "ident.conf";

static void cleanup(void)
{
	char p[128];

	snprintf(p, sizeof(p), "%s/a", dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/b", dir);
	unlink(p);
	rmdir(dir);
}

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/pgslab-fuzz-hba.XXXXXX");
	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(hba_path, sizeof(hba_path), "%s/hba.conf", dir);
	atexit(cleanup);
}

static bool ends_word(char c)
{
	return isspace((unsigned char)c) || c == ',' || c == '#' || c == '"';
}

/* <s> bounded as the header says: no '/' after an '@' in the same word;
 * with <one_at>, every '@' after the first becomes '_'. */
static void bound(char *s, bool one_at)
{
	bool in_at = false, seen = false;

	for (; *s; s++) {
		if (*s == '@') {
			if (one_at && seen)
				*s = '_';
			else
				in_at = true;
			seen = true;
		} else if (ends_word(*s)) {
			in_at = false;
		} else if (in_at && *s == '/') {
			*s = '_';
		}
	}
}

static void put(const char *name, const struct fuzz_part *part)
{
	char p[128], *text = fuzz_strndup(part->p, part->len);
	size_t n;
	int fd;

	bound(text, true);
	n = strlen(text); /* a NUL ends it, as textfile_read() refuses one */
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, text, n) != (ssize_t)n)
		abort();
	close(fd);
	free(text);
}

static bool known_method(enum hba_method m)
{
	static const char *const names[] = { "trust", "reject", "md5", "password",
		"scram-sha-256", "cert", "peer" };
	const char *s = hba_method_name(m);
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i]) == 0)
			return true;
	return false;
}

/* A connection rule <i> admits, matched: the result is rule <i> or earlier. */
static void match_own(const struct hba *h, int i, const uint8_t *any_addr, bool any_tls)
{
	const struct hba_rule *r = &h->rules[i], *m;
	struct hba_conn c;

	if (r->bad_mask)
		return; /* bits outside its mask: loads with a warning, never matches */
	memset(&c, 0, sizeof(c));
	if (r->user.flags & HBA_N_ALL)
		c.user = "u";
	else if (r->user.n > 0)
		c.user = r->user.names[0];
	else
		return; /* an empty @file: the rule admits nobody */
	if (r->db.flags & HBA_N_REPLICATION) {
		c.replication = true;
		c.db = "replication";
	} else if (r->db.flags & HBA_N_ALL) {
		c.db = "d";
	} else if (r->db.flags & HBA_N_SAMEUSER) {
		c.db = c.user;
	} else if (r->db.n > 0) {
		c.db = r->db.names[0];
	} else {
		return;
	}
	c.local = r->type == HBA_LOCAL;
	c.is_tls = r->type == HBA_HOSTSSL || (r->type == HBA_HOST && any_tls);
	if (!c.local) {
		c.family = r->addr_all ? AF_INET6 : r->family;
		c.addr = r->addr_all ? any_addr : r->addr;
	}
	m = hba_match(h, &c);
	FUZZ_ASSERT(m != NULL && m >= h->rules && m <= r);
}

static void check_rules(const struct hba *h, const struct fuzz_part *probe)
{
	uint8_t addr[16] = { 0 };
	struct fuzz_part f[4];
	char *s[4];
	const struct hba_rule *m;
	struct hba_conn c;
	uint8_t flags = probe->len ? probe->p[0] : 0;
	size_t alen = probe->len > 1 ? probe->len - 1 : 0;
	int i, last = 0;

	if (alen > 16)
		alen = 16;
	if (alen)
		memcpy(addr, probe->p + 1, alen);
	if (probe->len > 17)
		fuzz_split(probe->p + 17, probe->len - 17, '\n', f, 4);
	else
		fuzz_split((const uint8_t *)"", 0, '\n', f, 4);
	for (i = 0; i < 4; i++)
		s[i] = fuzz_strndup(f[i].p, f[i].len);

	FUZZ_ASSERT(h->n >= 0 && h->n <= h->cap);
	for (i = 0; i < h->n; i++) {
		const struct hba_rule *r = &h->rules[i];

		FUZZ_ASSERT(known_method(r->method));
		FUZZ_ASSERT(r->line > last);
		last = r->line;
		FUZZ_ASSERT(r->method != HBA_PEER || r->type == HBA_LOCAL);
		if (r->map) {
			FUZZ_ASSERT(r->method == HBA_PEER || r->method == HBA_CERT);
			FUZZ_ASSERT(ident_has_map(h->ident, r->map));
			(void)ident_check(h->ident, r->map, s[2], s[1]);
		}
		match_own(h, i, addr, flags & 4);
	}

	memset(&c, 0, sizeof(c));
	c.local = flags & 1;
	c.family = flags & 2 ? AF_INET6 : AF_INET;
	c.addr = c.local ? NULL : addr;
	c.is_tls = flags & 4;
	c.replication = flags & 8;
	c.db = s[0];
	c.user = s[1];
	m = hba_match(h, &c);
	FUZZ_ASSERT(m == NULL || (m >= h->rules && m < h->rules + h->n));
	(void)ident_check(h->ident, s[3], s[2], s[1]);
	for (i = 0; i < 4; i++)
		free(s[i]);
}

/* Each plain "MAP SYS PG" line of <text> (unmodified ident text) is
 * admitted by <id>. */
static void check_ident(const struct ident *id, const char *text)
{
	static struct hbatok_line t;
	char *copy = fuzz_strndup((const uint8_t *)text, strlen(text)), *line, *next;
	const char *why;

	for (line = copy; line && *line; line = next) {
		const struct hbatok_item *m, *s, *u;

		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		FUZZ_ASSERT(hbatok_split(line, &t, &why) == 0);
		if (t.n_fields == 0)
			continue;
		FUZZ_ASSERT(t.n_fields == 3);
		m = &t.item[t.field[0].first];
		s = &t.item[t.field[1].first];
		u = &t.item[t.field[2].first];
		FUZZ_ASSERT(ident_has_map(id, m->s));
		if (s->s[0] == '/')
			continue; /* a regular expression */
		FUZZ_ASSERT(ident_check(id, m->s, s->s, hbatok_is_kw(u, "all") ? "anyone" : u->s));
	}
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_part part[5];
	struct ident *id;
	struct hba *h;
	char *hba_text, *ident_text, *ident_orig, err[1024];

	if (dir[0] == 0)
		setup();
	fuzz_split(data, size, 0xfe, part, 5);
	if (memchr(part[0].p, '@', part[0].len)) {
		/* else no @file is read, and stale ones do not matter */
		put("a", &part[2]);
		put("b", &part[3]);
	}

	ident_orig = fuzz_strndup(part[1].p, part[1].len);
	ident_text = fuzz_strndup((const uint8_t *)ident_orig, strlen(ident_orig));
	err[0] = 0;
	id = ident_parse(ident_text, ident_path, err, sizeof(err));
	if (id == NULL) {
		FUZZ_ASSERT(err[0] != 0 && memchr(err, 0, sizeof(err)));
		FUZZ_ASSERT(strncmp(err, ident_path, strlen(ident_path)) == 0);
		id = ident_empty();
		FUZZ_ASSERT(id != NULL);
	} else {
		check_ident(id, ident_orig);
	}
	free(ident_text);
	free(ident_orig);

	hba_text = fuzz_strndup(part[0].p, part[0].len);
	bound(hba_text, false);
	err[0] = 0;
	h = hba_parse(hba_text, hba_path, id, err, sizeof(err)); /* takes <id> */
	if (h == NULL) {
		FUZZ_ASSERT(err[0] != 0 && memchr(err, 0, sizeof(err)));
		FUZZ_ASSERT(strncmp(err, hba_path, strlen(hba_path)) == 0);
	} else {
		check_rules(h, &part[4]);
		hba_free(h);
	}
	free(hba_text);
	return 0;
}
