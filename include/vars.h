/* vars.h -- tracked parameters: interned strings and hash-consed sets.
 *
 * Every client and server carries a varset, the values of the (at most
 * VAR_MAX) parameters pgslab tracks.  Values are interned (struct istr) and
 * sets are hash-consed in the owner's vartab, so "does this server match
 * this client" is one pointer compare and a SET to sync them is built only
 * when they differ.  The table lives in struct proxy; vars.c knows nothing
 * of pools or connections.
 */
#ifndef PGSLAB_VARS_H
#define PGSLAB_VARS_H

#include <stddef.h>
#include <stdint.h>

#define NAME_MAX_LEN 64          /* NAMEDATALEN */
#define VAR_MAX 8                /* tracked parameters per connection */

struct proxy;

struct istr {
	struct istr *hnext;
	uint32_t refcnt, len, hash, cap;
	char s[];
};

/* An immutable set of parameter values, shared by every connection with the
 * same values, so "does this server match this client" is one compare. */
struct varset {
	struct varset *hnext;
	uint32_t refcnt, hash;
	struct istr *v[VAR_MAX];
};

#define VAR_HASH_SIZE 256

struct vartab {
	int n;                           /* names in use */
	char names[VAR_MAX][NAME_MAX_LEN];
	struct istr *strs[VAR_HASH_SIZE];
	struct varset *sets[VAR_HASH_SIZE];
	struct varset *empty;
};

void vars_init(struct proxy *p);
void vars_destroy(struct proxy *p);
int vars_index(const struct vartab *t, const char *name);
struct varset *vars_set(struct proxy *p, struct varset *vs, int idx, const char *value);
void vars_put(struct proxy *p, struct varset *vs);
struct varset *vars_get(struct varset *vs);
/* Build "SET a = E'x'; ..." turning <from> into <to> into <buf> (values as
 * escape-string literals, safe under any standard_conforming_strings).
 * Returns the length the whole text needs (0 when the sets are equal); it
 * was written only if that is below <cap> (as snprintf). */
size_t vars_sync_sql(const struct vartab *t, const struct varset *from, const struct varset *to,
		char *buf, size_t cap);

#endif
