/* userlist.h -- PgBouncer auth_file ("userlist.txt") loading and lookup.
 *
 * Format, one user per line:  "username" "secret" [anything else ignored]
 * Inside quotes "" stands for one literal ".  Blank lines and lines whose
 * first non-blank character is ';' or '#' are skipped.  Any other line that
 * does not start with two quoted strings is an error naming the line.  When a
 * name appears twice the later line wins.
 *
 * The secret is classified as PostgreSQL does (get_password_type): "md5"
 * followed by 32 lowercase hex digits is MD5; a syntactically valid
 * "SCRAM-SHA-256$<iter>:<salt>$<storedkey>:<serverkey>" (base64 fields, keys
 * of 32 bytes) is SCRAM; anything else non-empty is plain text.  SCRAM is not
 * decoded here: the auth module does that.
 *
 * Lookup is a hash probe, O(1) expected: it runs on every login.  The list
 * is immutable after loading and may be read from several threads; reload
 * by loading a new one and swapping.  Entries and their strings live until
 * userlist_free().
 */
#ifndef PGSLAB_USERLIST_H
#define PGSLAB_USERLIST_H

#include <stddef.h>

enum userlist_secret_kind {
	USERLIST_SECRET_NONE,  /* "": no password; password auth must fail */
	USERLIST_SECRET_PLAIN, /* clear text */
	USERLIST_SECRET_MD5,   /* "md5" + hex(md5(password || username)) */
	USERLIST_SECRET_SCRAM, /* SCRAM-SHA-256 verifier */
};

struct userlist_entry {
	const char *name;
	const char *secret;
	enum userlist_secret_kind kind;
	int line; /* of the definition that won */
};

struct userlist; /* opaque */

/* Reads and parses the auth file at <path>.  NULL on failure with
 * "<path>:<line>: <message>" (or "<path>: <errno text>") in <err>. */
struct userlist *userlist_load(const char *path, char *err, size_t errlen);
/* Same, from the text <text>; <name> stands for the file in messages. */
struct userlist *userlist_parse(const char *text, const char *name, char *err, size_t errlen);
void userlist_free(struct userlist *ul);

/* Number of distinct users. */
size_t userlist_count(const struct userlist *ul);
/* The entry for <name> (case-sensitive), or NULL. */
const struct userlist_entry *userlist_find(const struct userlist *ul, const char *name);
/* Entries in order of first appearance, 0 <= <i> < userlist_count(). */
const struct userlist_entry *userlist_entry_at(const struct userlist *ul, size_t i);

enum userlist_secret_kind userlist_secret_classify(const char *secret);
const char *userlist_secret_kind_name(enum userlist_secret_kind k);

#endif
