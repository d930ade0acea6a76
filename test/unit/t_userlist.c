/* t_userlist.c -- unit tests for auth_file parsing, classification, lookup. */
#include "userlist.h"
#include "tap.h"
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char errbuf[512];

/* 43 base64 chars + '=' decode to 32 bytes: the SHA-256 key length. */
#define KEY44 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
#define KEY44B "zVZH3Ff8nDGZeQSl0EkqRG5LfBL2yL47ev7XLHhQyEg="
#define SCRAM_OK "SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0$" KEY44B ":" KEY44
#define MD5_OK "md5d41d8cd98f00b204e9800998ecf8427e"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_classify(void)
{
	is_int(userlist_secret_classify(""), USERLIST_SECRET_NONE, "empty -> none");
	is_int(userlist_secret_classify("hunter2"), USERLIST_SECRET_PLAIN, "plain");
	is_int(userlist_secret_classify(MD5_OK), USERLIST_SECRET_MD5, "md5 + 32 hex");
	is_int(userlist_secret_classify("md5D41D8CD98F00B204E9800998ECF8427E"),
			USERLIST_SECRET_PLAIN,
			"md5 with uppercase hex is plain (as in PostgreSQL)");
	is_int(userlist_secret_classify("md5d41d8cd98f00b204e9800998ecf8427"),
			USERLIST_SECRET_PLAIN, "md5 + 31 hex is plain");
	is_int(userlist_secret_classify(MD5_OK "0"), USERLIST_SECRET_PLAIN,
			"md5 + 33 hex is plain");
	is_int(userlist_secret_classify("md5d41d8cd98f00b204e9800998ecf842zz"),
			USERLIST_SECRET_PLAIN, "md5 with non-hex is plain");
	is_int(userlist_secret_classify(SCRAM_OK), USERLIST_SECRET_SCRAM, "SCRAM verifier");
	is_int(userlist_secret_classify("SCRAM-SHA-256$0:c2FsdA==$" KEY44 ":" KEY44),
			USERLIST_SECRET_PLAIN, "SCRAM with 0 iterations is plain");
	is_int(userlist_secret_classify("SCRAM-SHA-256$x:c2FsdA==$" KEY44 ":" KEY44),
			USERLIST_SECRET_PLAIN, "SCRAM with non-numeric iterations is plain");
	is_int(userlist_secret_classify("SCRAM-SHA-256$4096:c2FsdA=$" KEY44 ":" KEY44),
			USERLIST_SECRET_PLAIN, "SCRAM with bad salt padding is plain");
	is_int(userlist_secret_classify("SCRAM-SHA-256$4096:$" KEY44 ":" KEY44),
			USERLIST_SECRET_PLAIN, "SCRAM with empty salt is plain");
	is_int(userlist_secret_classify("SCRAM-SHA-256$4096:c2FsdA==$AAAA:" KEY44),
			USERLIST_SECRET_PLAIN, "SCRAM with short stored key is plain");
	is_int(userlist_secret_classify("SCRAM-SHA-256$4096:c2FsdA==$" KEY44 ":" KEY44 "AAAA"),
			USERLIST_SECRET_PLAIN, "SCRAM with long server key is plain");
	is_int(userlist_secret_classify("SCRAM-SHA-256$4096:c2FsdA==$" KEY44),
			USERLIST_SECRET_PLAIN, "SCRAM without server key is plain");
	is_int(userlist_secret_classify("SCRAM-SHA-256$4096:c2Fs!A==$" KEY44 ":" KEY44),
			USERLIST_SECRET_PLAIN, "SCRAM with non-base64 salt is plain");
	is_str(userlist_secret_kind_name(USERLIST_SECRET_SCRAM), "scram-sha-256",
			"kind name scram");
	is_str(userlist_secret_kind_name(USERLIST_SECRET_MD5), "md5", "kind name md5");
}

static void test_parse(void)
{
	/* clang-format off */
	static const char text[] =
		"; PgBouncer userlist\n"                        /* 1 */
		"# hash comment\n"                              /* 2 */
		"\n"                                            /* 3 */
		"\"alice\" \"secret\"\n"                        /* 4 */
		"  \"bob\"   \"" MD5_OK "\"\n"                  /* 5 */
		"\"carol\" \"" SCRAM_OK "\"\n"                  /* 6 */
		"\"dave\" \"\"\n"                               /* 7 */
		"\"e\"\"q\" \"p\"\"w\"\"\"\n"                   /* 8 */
		"\"frank\" \"pw\" \"extra field\" junk\n"       /* 9 */
		"\"gina\"\t\"tab\"\r\n"                         /* 10 */
		"\"alice\" \"newer\"\n"                         /* 11 */
		"\"with space\" \"p w ; # x\"";                 /* 12, no newline */
	/* clang-format on */
	struct userlist *ul = userlist_parse(text, "users.txt", errbuf, sizeof(errbuf));
	const struct userlist_entry *e;

	if (!ok(ul != NULL, "userlist parses"))
		diag("%s", errbuf);
	if (ul == NULL)
		exit(1);
	is_int(userlist_count(ul), 8, "8 distinct users");

	e = userlist_find(ul, "alice");
	ok(e && strcmp(e->secret, "newer") == 0 && e->line == 11 &&
					e->kind == USERLIST_SECRET_PLAIN,
			"duplicate: later line wins");
	ok(userlist_entry_at(ul, 0) == e, "duplicate keeps first position");
	e = userlist_find(ul, "bob");
	ok(e && e->kind == USERLIST_SECRET_MD5 && strcmp(e->secret, MD5_OK) == 0 && e->line == 5,
			"bob: md5, leading blanks");
	e = userlist_find(ul, "carol");
	ok(e && e->kind == USERLIST_SECRET_SCRAM && strcmp(e->secret, SCRAM_OK) == 0,
			"carol: scram");
	e = userlist_find(ul, "dave");
	ok(e && e->kind == USERLIST_SECRET_NONE && e->secret[0] == '\0', "dave: empty password");
	e = userlist_find(ul, "e\"q");
	is_str(e ? e->secret : NULL, "p\"w\"", "\"\" escapes in name and password");
	e = userlist_find(ul, "frank");
	is_str(e ? e->secret : NULL, "pw", "extra fields ignored");
	e = userlist_find(ul, "gina");
	is_str(e ? e->secret : NULL, "tab", "tab separator, CRLF");
	e = userlist_find(ul, "with space");
	is_str(e ? e->secret : NULL, "p w ; # x",
			"last line without newline; ; and # inside quotes");
	ok(userlist_find(ul, "Alice") == NULL && userlist_find(ul, "") == NULL &&
					userlist_find(ul, "alic") == NULL,
			"lookups are exact");
	ok(userlist_entry_at(ul, 8) == NULL, "entry_at past the end -> NULL");
	userlist_free(ul);

	ul = userlist_parse("", "empty.txt", errbuf, sizeof(errbuf));
	ok(ul && userlist_count(ul) == 0 && userlist_find(ul, "x") == NULL, "empty file");
	userlist_free(ul);
	ul = userlist_parse("; only comments\n\n   \n", "c.txt", errbuf, sizeof(errbuf));
	ok(ul && userlist_count(ul) == 0, "comment-only file");
	userlist_free(ul);
}

static void expect_bad(const char *text, const char *want, const char *name)
{
	struct userlist *ul = userlist_parse(text, "u.txt", errbuf, sizeof(errbuf));

	if (!ok(ul == NULL && strcmp(errbuf, want) == 0, "malformed: %s", name))
		diag("got \"%s\", expected \"%s\"", ul ? "(parsed)" : errbuf, want);
	userlist_free(ul);
}

static void test_malformed(void)
{
	expect_bad("\"a\" \"b\"\nalice \"x\"\n", "u.txt:2: expected \"username\" \"password\"",
			"unquoted name");
	expect_bad("\n\n\"alice\" x\n", "u.txt:3: expected \"username\" \"password\"",
			"unquoted password");
	expect_bad("\"alice\"\n", "u.txt:1: expected \"username\" \"password\"",
			"missing password");
	expect_bad("\"alice\" \"pw\"junk\n", "u.txt:1: expected \"username\" \"password\"",
			"junk glued to password");
	expect_bad("; x\n\"alice\n\"pw\"\n", "u.txt:2: unterminated quoted string",
			"unterminated name");
	expect_bad("\"alice\" \"pw\n", "u.txt:1: unterminated quoted string",
			"unterminated password");
}

static void test_files(void)
{
	char path[] = "/tmp/t_userlist.XXXXXX", want[600];
	struct userlist *ul;
	FILE *f;
	int fd = mkstemp(path);
	int i, bad = 0, kinds[4] = {0};
	double t0, t_load, t_find;

	if (fd < 0 || (f = fdopen(fd, "w")) == NULL) {
		diag("mkstemp: %s", strerror(errno));
		exit(2);
	}
	/* 100k users, a mix of plain, md5 and SCRAM secrets. */
	for (i = 0; i < 100000; i++) {
		switch (i % 3) {
		case 0:
			fprintf(f, "\"user%06d\" \"pw%d\"\n", i, i);
			break;
		case 1:
			fprintf(f, "\"user%06d\" \"md5%032x\"\n", i, i);
			break;
		default:
			fprintf(f, "\"user%06d\" \"%s\"\n", i, SCRAM_OK);
			break;
		}
	}
	fclose(f);

	t0 = now();
	ul = userlist_load(path, errbuf, sizeof(errbuf));
	t_load = now() - t0;
	if (!ok(ul != NULL, "100k-user file loads"))
		diag("%s", errbuf);
	if (ul == NULL)
		exit(1);
	is_int(userlist_count(ul), 100000, "100k users counted");
	t0 = now();
	for (i = 0; i < 100000; i++) {
		char name[32];
		const struct userlist_entry *e;

		snprintf(name, sizeof(name), "user%06d", i);
		e = userlist_find(ul, name);
		if (e == NULL || strcmp(e->name, name) != 0 || e->line != i + 1)
			bad++;
		else
			kinds[e->kind]++;
		snprintf(name, sizeof(name), "nouser%06d", i);
		if (userlist_find(ul, name) != NULL)
			bad++;
	}
	t_find = now() - t0;
	is_int(bad, 0, "every user found at its line; 100k misses return NULL");
	ok(kinds[USERLIST_SECRET_PLAIN] == 33334 && kinds[USERLIST_SECRET_MD5] == 33333 &&
					kinds[USERLIST_SECRET_SCRAM] == 33333,
			"kinds classified across the file");
	diag("load 100k users: %.1f ms; 200k lookups: %.1f ms (%.0f ns each)", t_load * 1e3,
			t_find * 1e3, t_find * 1e9 / 200000);
	ok(t_find / 200000 < 20e-6, "lookup averages under 20 us even under sanitizers");
	userlist_free(ul);

	/* Errors from a file name the path and line. */
	f = fopen(path, "w");
	fputs("\"a\" \"b\"\n\"c\" d\n", f);
	fclose(f);
	ul = userlist_load(path, errbuf, sizeof(errbuf));
	snprintf(want, sizeof(want), "%s:2: expected \"username\" \"password\"", path);
	ok(ul == NULL && strcmp(errbuf, want) == 0, "file error names path and line");
	unlink(path);
	ul = userlist_load(path, errbuf, sizeof(errbuf));
	snprintf(want, sizeof(want), "%s: No such file or directory", path);
	ok(ul == NULL && strcmp(errbuf, want) == 0, "missing file");
	ul = userlist_load("/tmp", errbuf, sizeof(errbuf));
	ok(ul == NULL && strcmp(errbuf, "/tmp: Is a directory") == 0, "directory: errno text");
}

int main(void)
{
	plan(47);
	test_classify();
	test_parse();
	test_malformed();
	test_files();
	return tap_exit_status();
}
