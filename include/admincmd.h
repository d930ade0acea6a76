/* admincmd.h -- the console's command grammar: one query string in, verb/argument/SET value out.
 *
 * Pure: no client, no proxy, no allocation.  admin.c dispatches on the
 * result; the fuzzer (test/fuzz/fuzz_admin_cmd.c) calls it directly.
 *
 *	[ws] WORD [ws WORD] [ws] [;] [ws]
 *	[ws] SET ws WORD ws (= | TO) ws ('string' | "word" | word) [ws] [;] [ws]
 *
 * where WORD is [A-Za-z0-9_.$-]+ or a double-quoted name ("" for a quote).
 * The verb is lower-cased; the argument and value keep their case.
 */
#ifndef PGSLAB_ADMINCMD_H
#define PGSLAB_ADMINCMD_H

#include <stdbool.h>

#define ADMINCMD_VERB_MAX 32
#define ADMINCMD_ARG_MAX 128
#define ADMINCMD_VALUE_MAX 1024

struct admin_cmd {
	char verb[ADMINCMD_VERB_MAX];
	char arg[ADMINCMD_ARG_MAX]; /* SET: the key */
	char value[ADMINCMD_VALUE_MAX];
	bool is_set;
};

/* Parse the NUL-terminated <sql> into <cmd>.  0, or -EINVAL on a syntax
 * error (a token longer than its field is one too). */
int admin_cmd_parse(const char *sql, struct admin_cmd *cmd);

#endif
