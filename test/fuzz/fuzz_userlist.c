/* fuzz_userlist.c -- the auth_file ("userlist.txt") parser.
 *
 * Input: the file's text (a NUL ends it, as textfile_read() refuses files
 * holding one).  On success every entry is found by its own name, later
 * definitions win, and each kind matches the classifier; on failure the
 * error message is written and terminated.
 */
#include "fuzz.h"
#include "userlist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_strndup(data, size), err[256];
	struct userlist *ul;
	size_t i, n;

	err[0] = 0;
	ul = userlist_parse(text, "fuzz.txt", err, sizeof(err));
	if (ul == NULL) {
		FUZZ_ASSERT(err[0] != 0 && memchr(err, 0, sizeof(err)));
		free(text);
		return 0;
	}
	n = userlist_count(ul);
	for (i = 0; i < n; i++) {
		const struct userlist_entry *e = userlist_entry_at(ul, i);

		FUZZ_ASSERT(e && e->name && e->secret && e->line >= 1);
		FUZZ_ASSERT(userlist_find(ul, e->name) == e);
		FUZZ_ASSERT(e->kind == userlist_secret_classify(e->secret));
		FUZZ_ASSERT(strlen(userlist_secret_kind_name(e->kind)) > 0);
	}
	FUZZ_ASSERT(userlist_find(ul, "\x01no such user\x01") == NULL || strstr(text, "\x01"));
	userlist_free(ul);
	free(text);
	return 0;
}
