/* t_hba.c -- auth_hba_file and auth_ident_file: parsing, errors with line numbers, matching. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hba.h"
#include "ident.h"
#include "tap.h"

static char dir[] = "/tmp/t_hba_XXXXXX";

static void write_file(const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static struct hba *parse(const char *text, const char *ident_text, char *err, size_t errlen)
{
	char path[256], *t = strdup(text), *it = strdup(ident_text ? ident_text : "");
	struct ident *id = ident_parse(it, "ident.conf", err, errlen);
	struct hba *h = NULL;

	snprintf(path, sizeof(path), "%s/hba.conf", dir);
	if (id)
		h = hba_parse(t, path, id, err, errlen);
	free(t);
	free(it);
	return h;
}

/* The line of the rule matching, 0 for none. */
static int match(const struct hba *h, const char *addr, bool tls, const char *db, const char *user)
{
	uint8_t a[16];
	struct hba_conn c;
	const struct hba_rule *r;

	memset(&c, 0, sizeof(c));
	c.is_tls = tls;
	c.db = db;
	c.user = user;
	if (addr == NULL) {
		c.local = true;
	} else if (inet_pton(AF_INET, addr, a) == 1) {
		c.family = AF_INET;
		c.addr = a;
	} else if (inet_pton(AF_INET6, addr, a) == 1) {
		c.family = AF_INET6;
		c.addr = a;
	}
	r = hba_match(h, &c);
	return r ? r->line : 0;
}

static const struct hba_rule *rule_at(const struct hba *h, int line)
{
	int i;

	for (i = 0; i < h->n; i++)
		if (h->rules[i].line == line)
			return &h->rules[i];
	return NULL;
}

static void check_error(const char *text, const char *want, const char *name)
{
	char err[512] = "";
	struct hba *h = parse(text, "m1 alice bob\n", err, sizeof(err));

	ok(h == NULL && strstr(err, want) != NULL, "%s: refused with \"%s\"", name, want);
	if (h != NULL || strstr(err, want) == NULL)
		diag("got: %s", h ? "(loaded)" : err);
	hba_free(h);
}

int main(void)
{
	char err[512] = "";
	struct hba *h;
	const struct hba_rule *r;
	struct ident *id;
	char *txt;

	plan(85);
	if (mkdtemp(dir) == NULL)
		return 1;
	write_file("admins.txt", "# admins\nroot, \"Mixed Case\"\n  ops\n");
	write_file("dbs.txt", "db1 db2,db3\n");

	h = parse("# comment line\n"
		  "local   all       all                         peer map=m1\n"      /* 2 */
		  "host    db1       alice   10.0.0.0/8          reject\n"            /* 3 */
		  "host    db1,db9   all     10.0.0.0 255.0.0.0  md5\n"               /* 4 */
		  "hostssl all       all     0.0.0.0/0           cert\n"              /* 5 */
		  "host    sameuser  all     192.168.1.0/24      scram-sha-256 # trailing\n" /* 6 */
		  "host    all       @admins.txt 127.0.0.1/32    trust\n"            /* 7 */
		  "host    @dbs.txt  all     127.0.0.0/8         password\n"          /* 8 */
		  "host    \"all\"     all     ::1/128             md5\n"             /* 9 */
		  "host    all       all     fe80::/10           reject\n"            /* 10 */
		  "hostnossl all     all     all                 scram-sha-256\n"     /* 11 */
		  "\n",
		"m1 alice bob\nm1 /^(.*)@example\\.com$ \\1\nm2 carol all\n", err, sizeof(err));
	ok(h != NULL, "a file with every form loads") || (diag("%s", err), 0);
	if (h == NULL)
		return tap_exit_status();
	is_int(h->n, 10, "ten rules");

	/* parsed forms */
	r = rule_at(h, 2);
	ok(r && r->type == HBA_LOCAL && r->method == HBA_PEER && r->map && strcmp(r->map, "m1") == 0,
			"line 2: local peer map=m1");
	r = rule_at(h, 4);
	ok(r && r->family == AF_INET && r->mask[0] == 255 && r->mask[1] == 0 && r->db.n == 2,
			"line 4: address + mask form, two databases");
	r = rule_at(h, 7);
	ok(r && r->user.n == 3 && strcmp(r->user.names[1], "Mixed Case") == 0,
			"line 7: @file with commas, quotes, comments and newlines");
	r = rule_at(h, 8);
	ok(r && r->db.n == 3, "line 8: @file of databases");
	r = rule_at(h, 9);
	ok(r && !(r->db.flags & HBA_N_ALL) && r->db.n == 1 && strcmp(r->db.names[0], "all") == 0,
			"line 9: quoted \"all\" is a database named all, not the keyword");

	/* matching: first rule wins, in file order */
	is_int(match(h, NULL, false, "x", "y"), 2, "Unix socket: local line");
	is_int(match(h, "10.1.2.3", false, "db1", "alice"), 3, "10/8 alice db1: reject (line 3 before 4)");
	is_int(match(h, "10.1.2.3", false, "db1", "bob"), 4, "10/8 bob db1: md5 (line 4)");
	is_int(match(h, "10.1.2.3", false, "db9", "alice"), 4, "db list: db9 on line 4");
	is_int(match(h, "11.0.0.1", false, "db1", "bob"), 11, "outside 10/8: falls to line 11");
	is_int(match(h, "10.1.2.3", false, "db2", "bob"), 11, "db2 not in line 4's list");
	is_int(match(h, "11.0.0.1", true, "db1", "bob"), 5, "TLS: hostssl line 5");
	is_int(match(h, "11.0.0.1", false, "db1", "bob"), 11, "no TLS: hostssl never matches");
	is_int(match(h, "192.168.1.7", false, "bob", "bob"), 6, "sameuser: db bob, user bob");
	is_int(match(h, "192.168.1.7", false, "other", "bob"), 11, "sameuser: other db does not match");
	is_int(match(h, "192.168.2.7", false, "bob", "bob"), 11, "sameuser: outside /24");
	is_int(match(h, "127.0.0.1", false, "x", "Mixed Case"), 7, "@file user with a space");
	is_int(match(h, "127.0.0.1", false, "x", "mixed case"), 11, "names are case-sensitive (falls to line 11)");
	is_int(match(h, "127.0.0.2", false, "x", "ops"), 11, "127.0.0.2 is outside 127.0.0.1/32: line 11");
	is_int(match(h, "127.0.0.5", false, "db3", "u"), 8, "@dbs.txt database db3 from 127/8");
	is_int(match(h, "::1", false, "all", "u"), 9, "IPv6 ::1/128, database literally named all");
	is_int(match(h, "::1", false, "x", "u"), 11, "IPv6 ::1, other db: line 11");
	is_int(match(h, "fe80::1", false, "x", "u"), 10, "IPv6 fe80::/10");
	is_int(match(h, "::ffff:10.1.2.3", false, "db1", "bob"), 11, "IPv4-mapped IPv6 is not IPv4 (as PostgreSQL)");

	hba_free(h);

	/* whitespace around commas continues a list; quotes keep commas and spaces */
	h = parse("host  tmp1,all  user1,user2 , user3  16.0.0.0/8  md5\n"
		  "host  \"q1\"\"q2\"  \"a , b\"  19.0.0.0/8  trust\n", NULL, err, sizeof(err));
	ok(h && h->rules[0].user.n == 3 && strcmp(h->rules[0].user.names[2], "user3") == 0,
			"\"user2 , user3\": one list of three users") || (diag("%s", err), 0);
	is_int(h ? match(h, "16.0.0.1", false, "x", "user3") : -1, 1, "user3 matches line 1");
	is_int(h ? match(h, "19.0.0.2", false, "q1\"q2", "a , b") : -1, 2,
			"quoted names with a doubled quote, a comma and spaces");
	hba_free(h);

	h = parse("host replication all 10.0.0.0/8 trust\nhost all all 10.0.0.0/8 md5\n", NULL, err,
			sizeof(err));
	ok(h != NULL, "replication line loads");
	is_int(match(h, "10.0.0.1", false, "replication", "u"), 2,
			"a database named replication is not matched by the keyword");
	{
		struct hba_conn c;
		uint8_t a[4] = { 10, 0, 0, 1 };

		memset(&c, 0, sizeof(c));
		c.family = AF_INET;
		c.addr = a;
		c.db = "x";
		c.user = "u";
		c.replication = true;
		ok(hba_match(h, &c) && hba_match(h, &c)->line == 1, "a replication connection matches the keyword");
	}
	hba_free(h);

	/* errors name the file and line */
	check_error("local all all trust\nhost all all 10.0.0.0/33 md5\n", "hba.conf:2: invalid CIDR mask", "mask /33");
	/* bits outside the mask: loads with a warning and never matches (PgBouncer) */
	h = parse("host all all 10.0.0.1/8 reject\nhost all all 192.168.1.1/0 trust\n"
		  "host all all 10.0.0.0/8 md5\n", NULL, err, sizeof(err));
	ok(h != NULL, "address with bits outside its mask: the file loads");
	if (h == NULL)
		diag("got: %s", err);
	ok(h && h->n_warnings == 2 && h->warnings &&
			strstr(h->warnings, "address does not match mask in ") &&
			strstr(h->warnings, "hba.conf line #1: 10.0.0.1 / 255.0.0.0") &&
			strstr(h->warnings, "hba.conf line #2: 192.168.1.1 / 0.0.0.0"),
			"... with PgBouncer's warning for each such line");
	is_int(h ? match(h, "10.0.0.1", false, "x", "u") : -1, 3, "... which never match (10.0.0.1 falls to line 3)");
	is_int(h ? match(h, "192.168.1.1", false, "x", "u") : -1, 0, "... not even the address itself");
	hba_free(h);
	check_error("host all all 10.0.0.0 md5\n", ":1: invalid IP mask \"md5\"", "address without mask");
	check_error("host all all 10.0.0.0\n", ":1: too few fields", "no method");
	check_error("host all all db.example.com/32 md5\n", "host names are not supported", "host name");
	check_error("host all all ::1/129 md5\n", "invalid CIDR mask length", "IPv6 /129");
	check_error("host all all 10.0.0.0/8 ldap\n", "method \"ldap\" is not supported", "ldap");
	check_error("host all all 10.0.0.0/8 pam\n", "method \"pam\" is not supported", "pam");
	check_error("host all all 10.0.0.0/8 gss\n", "unknown authentication method \"gss\"", "gss");
	check_error("hostgssenc all all 10.0.0.0/8 md5\n", "unknown connection type", "hostgssenc");
	check_error("host all +admins 10.0.0.0/8 md5\n", "group membership (+admins) is not supported", "+group");
	check_error("host samerole all 10.0.0.0/8 md5\n", "\"samerole\" is not supported", "samerole");
	check_error("host all all samenet md5\n", "\"samenet\" is not supported", "samenet");
	check_error("local all all peer map=nomap\n", "ident map \"nomap\" is not in the auth_ident_file", "unknown map");
	check_error("local all all md5 map=m1\n", "map= is only for the peer and cert methods", "map on md5");
	check_error("local all all peer foo=bar\n", "unsupported option \"foo=bar\"", "unknown option");
	check_error("host all all 10.0.0.0/8 peer\n", "peer authentication is only for local", "peer on host");
	check_error("local all all trust\nlocal \"unterminated all trust\n", "hba.conf:2: unterminated quoted string", "open quote");
	check_error("local a,,b all trust\n", "empty name in a list", "empty list item");
	check_error("local all @missing.txt trust\n", "could not read @missing.txt", "missing @file");
	check_error("local all all trust extra\n", "unsupported option \"extra\"", "trailing junk");

	/* ident maps */
	txt = strdup("# map   system    pg\nm1 alice bob\nm1 /^(.*)@example\\.com$ \\1\nm2 carol all\nm3 \"dave x\" dave\n");
	id = ident_parse(txt, "ident.conf", err, sizeof(err));
	free(txt);
	ok(id != NULL, "ident file loads") || (diag("%s", err), 0);
	ok(ident_check(id, "m1", "alice", "bob"), "m1: alice -> bob");
	ok(!ident_check(id, "m1", "alice", "alice"), "m1: alice -/-> alice");
	ok(ident_check(id, "m1", "zed@example.com", "zed"), "m1 regex: zed@example.com -> zed (\\1)");
	ok(!ident_check(id, "m1", "zed@example.com", "bob"), "m1 regex: zed@example.com -/-> bob");
	ok(!ident_check(id, "m1", "zed@example.org", "zed"), "m1 regex: other domain refused");
	ok(ident_check(id, "m2", "carol", "anyone"), "m2: carol -> all");
	ok(!ident_check(id, "m2", "alice", "bob"), "m2 does not have m1's lines");
	ok(ident_check(id, "m3", "dave x", "dave"), "quoted system name with a space");
	ok(!ident_check(id, "nomap", "alice", "bob"), "unknown map admits nobody");
	ident_free(id);
	txt = strdup("m1 alice\n");
	id = ident_parse(txt, "ident.conf", err, sizeof(err));
	free(txt);
	ok(id == NULL && strstr(err, "ident.conf:1: expected"), "ident line with two fields: error with line");
	txt = strdup("m1 alice bob\nm1 /a(b carol\n");
	id = ident_parse(txt, "ident.conf", err, sizeof(err));
	free(txt);
	ok(id == NULL && strstr(err, "ident.conf:2: invalid regular expression"), "bad regex: error with line") ||
		(diag("%s", err), 0);
	{
		/* expressions glibc's regcomp would spend minutes on (the HBA
		 * fuzzer found the first) are refused before it runs, as
		 * PostgreSQL's engine refuses the first three */
		static const struct { const char *re, *why; } bad[] = {
			{ "/^(.********************************************)@x$", "quantifier on a quantifier" },
			{ "/^(.*?)@x$", "non-greedy" },
			{ "/*a", "quantifier operand invalid" },
			{ "/a{256}", "invalid repetition count" },
			{ "\"/a{3,2}\"", "invalid repetition count" },
			{ "/((a{200}){200})", "too complex" },
			{ "/((((((((((((((a*)*)*)*)*)*)*)*)*)*)*)*)*)*)", "too complex" },
			{ "/(a{200}b{200})(a{200}b{200})(a{200}b{200})(a{200}b{200})(a{200}b{200})"
			  "(a{200}b{200})(a{200}b{200})(a{200}b{200})(a{200}b{200})(a{200}b{200})(a{200}b{200})",
			  "too complex" }, /* only the groups' sum exceeds, at the last ')' */
		};
		static const char *good[] = { "/^(.*)@example\\.com$", "\"/^[]a-z*]{1,63}$\"", "/^[[:alnum:]_*+]+(x|y)?$",
			"/a\\**", "/^a{255}$", "/(a|b|)*c" };
		char line[256];
		size_t i;

		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			snprintf(line, sizeof(line), "m1 alice bob\nm1 %s bob\n", bad[i].re);
			txt = strdup(line);
			id = ident_parse(txt, "ident.conf", err, sizeof(err));
			free(txt);
			ok(id == NULL && strstr(err, "ident.conf:2: invalid regular expression") &&
				strstr(err, bad[i].why), "regex %s refused: %s", bad[i].re, bad[i].why) ||
				(diag("%s", id ? "loaded" : err), 0);
			ident_free(id);
		}
		for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
			snprintf(line, sizeof(line), "m1 %s bob\n", good[i]);
			txt = strdup(line);
			id = ident_parse(txt, "ident.conf", err, sizeof(err));
			free(txt);
			ok(id != NULL, "regex %s loads", good[i]) || (diag("%s", err), 0);
			ident_free(id);
		}
		id = NULL;
	}
	txt = strdup("m1 alice +grp\n");
	id = ident_parse(txt, "ident.conf", err, sizeof(err));
	free(txt);
	ok(id == NULL && strstr(err, "not supported"), "ident +group refused");

	/* hba_load reads files; a missing one is an error */
	h = hba_load("/nonexistent/hba.conf", ident_empty(), err, sizeof(err));
	ok(h == NULL && strstr(err, "could not read auth_hba_file /nonexistent/hba.conf"), "missing file: error");
	write_file("real.conf", "local all all trust\n");
	{
		char path[256];

		snprintf(path, sizeof(path), "%s/real.conf", dir);
		h = hba_load(path, ident_empty(), err, sizeof(err));
		ok(h && h->n == 1 && match(h, NULL, false, "a", "b") == 1, "hba_load reads a real file");
		hba_free(h);
	}
	{
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			diag("could not remove %s", dir);
	}
	return tap_exit_status();
}
