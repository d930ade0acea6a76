/* nametab.h -- an intrusive hash index of objects by their NUL-terminated name.
 *
 * The object embeds a struct nametab_node and a name at a fixed offset from
 * it (given once, at init); the table owns only its bucket array, which
 * doubles as entries are added (sysalloc; never on the transaction path:
 * names are added when a database, user or credential first appears).  If a
 * doubling fails the table keeps working with longer chains.  Lookup is one
 * hash and, expected, one strcmp: it runs on every login, and a config with
 * tens of thousands of databases must not make startup or login quadratic.
 */
#ifndef PGSLAB_NAMETAB_H
#define PGSLAB_NAMETAB_H

#include <stddef.h>
#include <stdint.h>

struct nametab_node {
	struct nametab_node *next;
	uint32_t hash;
};

struct nametab {
	struct nametab_node **buckets;
	uint32_t mask;       /* buckets - 1; 0 with no array yet */
	uint32_t count;
	ptrdiff_t name_off;  /* name address minus node address */
};

/* <name_off>: offsetof(type, name) - offsetof(type, node). */
void nametab_init(struct nametab *t, ptrdiff_t name_off);
void nametab_destroy(struct nametab *t);
/* Add <n>; its name must not be in the table already.  -1 only when no
 * bucket array could be allocated at all (the caller drops the object). */
int nametab_add(struct nametab *t, struct nametab_node *n);
void nametab_del(struct nametab *t, struct nametab_node *n);
struct nametab_node *nametab_find(const struct nametab *t, const char *name);

#define NAMETAB_INIT(t, type, node, name) \
	nametab_init((t), (ptrdiff_t)offsetof(type, name) - (ptrdiff_t)offsetof(type, node))

#endif
