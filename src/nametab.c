/* nametab.c -- intrusive name index (see nametab.h). */
#include "nametab.h"
#include "sysalloc.h"

#include <string.h>

#define NAMETAB_MIN_BUCKETS 16u

static uint32_t name_hash(const char *s)
{
	uint32_t h = 2166136261u;  /* FNV-1a */

	while (*s)
		h = (h ^ (uint8_t)*s++) * 16777619u;
	return h;
}

static const char *node_name(const struct nametab *t, const struct nametab_node *n)
{
	return (const char *)n + t->name_off;
}

void nametab_init(struct nametab *t, ptrdiff_t name_off)
{
	memset(t, 0, sizeof(*t));
	t->name_off = name_off;
}

void nametab_destroy(struct nametab *t)
{
	sys_free(t->buckets);
	nametab_init(t, t->name_off);
}

/* Double the bucket array (or create it); on failure keep the old one. */
static void grow(struct nametab *t)
{
	uint32_t old = t->buckets ? t->mask + 1 : 0, size = old ? old * 2 : NAMETAB_MIN_BUCKETS;
	struct nametab_node **nb;
	uint32_t i;

	if (size == 0 || (nb = sys_calloc(size, sizeof(*nb))) == NULL)
		return;
	for (i = 0; i < old; i++) {
		struct nametab_node *n = t->buckets[i], *next;

		for (; n; n = next) {
			next = n->next;
			n->next = nb[n->hash & (size - 1)];
			nb[n->hash & (size - 1)] = n;
		}
	}
	sys_free(t->buckets);
	t->buckets = nb;
	t->mask = size - 1;
}

int nametab_add(struct nametab *t, struct nametab_node *n)
{
	struct nametab_node **b;

	if (t->buckets == NULL || t->count >= t->mask + 1)
		grow(t);
	n->hash = name_hash(node_name(t, n));
	n->next = NULL;
	if (t->buckets == NULL)
		return -1;
	b = &t->buckets[n->hash & t->mask];
	n->next = *b;
	*b = n;
	t->count++;
	return 0;
}

void nametab_del(struct nametab *t, struct nametab_node *n)
{
	struct nametab_node **pp;

	if (t->buckets == NULL)
		return;
	for (pp = &t->buckets[n->hash & t->mask]; *pp; pp = &(*pp)->next) {
		if (*pp == n) {
			*pp = n->next;
			n->next = NULL;
			t->count--;
			return;
		}
	}
}

struct nametab_node *nametab_find(const struct nametab *t, const char *name)
{
	uint32_t h;
	struct nametab_node *n;

	if (t->buckets == NULL)
		return NULL;
	h = name_hash(name);
	for (n = t->buckets[h & t->mask]; n; n = n->next)
		if (n->hash == h && strcmp(node_name(t, n), name) == 0)
			return n;
	return NULL;
}
