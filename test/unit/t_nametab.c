/* t_nametab.c -- the name index against a brute-force reference: random
 * adds, deletes and lookups (seeded; the seed is printed), growth from
 * empty, deletes from the middle of a chain, names that differ only late. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nametab.h"
#include "sysalloc.h"
#include "tap.h"

#define N 5000

struct obj {
	int payload;
	struct nametab_node node;
	char name[40];
	int in;
};

static struct obj objs[N];

int main(int argc, char **argv)
{
	struct nametab t;
	unsigned seed = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : (unsigned)time(NULL);
	int i, step, bad_find = 0, bad_miss = 0, count = 0;

	plan(7);
	diag("seed %u", seed);
	srand(seed);
	NAMETAB_INIT(&t, struct obj, node, name);
	ok(nametab_find(&t, "x") == NULL, "empty table finds nothing");
	for (i = 0; i < N; i++)  /* long shared prefix: only the tail differs */
		snprintf(objs[i].name, sizeof(objs[i].name), "db_dddddddddddddddddddddd_%d", i);
	for (step = 0; step < 200000; step++) {
		struct obj *o = &objs[rand() % N];
		int op = rand() % 3;

		if (op == 0 && !o->in) {
			if (nametab_add(&t, &o->node) == 0) {
				o->in = 1;
				count++;
			}
		} else if (op == 1 && o->in) {
			nametab_del(&t, &o->node);
			o->in = 0;
			count--;
		} else {
			struct nametab_node *n = nametab_find(&t, o->name);

			if (o->in && n != &o->node)
				bad_find++;
			if (!o->in && n != NULL)
				bad_miss++;
		}
	}
	is_int(bad_find, 0, "every present name is found, as its own node");
	is_int(bad_miss, 0, "no absent name is found");
	is_int((int)t.count, count, "count follows adds and deletes");
	ok(t.mask + 1 >= t.count, "buckets grew with the entries (load <= 1)");
	for (i = 0, bad_find = 0; i < N; i++)
		if (objs[i].in) {
			nametab_del(&t, &objs[i].node);
			objs[i].in = 0;
		}
	for (i = 0; i < N; i++)
		if (nametab_find(&t, objs[i].name))
			bad_find++;
	ok(t.count == 0 && bad_find == 0, "after deleting everything nothing is found");
	nametab_destroy(&t);
	ok(t.buckets == NULL && nametab_find(&t, objs[0].name) == NULL,
			"destroy frees the array; the table is empty and usable");
	return tap_exit_status();
}
