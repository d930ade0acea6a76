/* t_slab.c -- unit and randomized property tests of the slab caches. */
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "slab.h"
#include "tap.h"
#include "testutil.h"

struct conn {
	uint64_t magic;
	int ctor_seq;
	int user_field;
	char body[700 - 16];
};

struct counts {
	int ctor, dtor, fail_after; /* fail_after < 0: never fail */
};

static int conn_ctor(void *obj, void *arg)
{
	struct counts *n = arg;
	struct conn *c = obj;

	if (n->fail_after >= 0 && n->ctor >= n->fail_after)
		return -1;
	c->magic = 0xc0ffee;
	c->ctor_seq = n->ctor++;
	c->user_field = 0;
	return 0;
}

static void conn_dtor(void *obj, void *arg)
{
	struct counts *n = arg;
	struct conn *c = obj;

	n->dtor++;
	c->magic = 0;
}

static struct slab_stats sst;
static struct slab_arena_stats ast;

static const struct slab_stats *cstats(struct slab_cache *c)
{
	slab_cache_stats(c, &sst);
	return &sst;
}

static const struct slab_arena_stats *astats(struct slab_arena *a)
{
	slab_arena_stats(a, &ast);
	return &ast;
}

static int stats_add_up(const struct slab_stats *s)
{
	return s->allocs - s->frees == s->active_objs && s->hits + s->misses == s->allocs &&
	       s->total_objs == s->slabs * s->objs_per_slab && s->active_objs <= s->total_objs &&
	       s->bytes == s->slabs * s->slab_bytes && s->high_water >= s->active_objs &&
	       s->grows - s->reaps == s->slabs;
}

static int cmp_ptr(const void *x, const void *y)
{
	uintptr_t a = (uintptr_t) * (void *const *)x, b = (uintptr_t) * (void *const *)y;

	return a < b ? -1 : a > b;
}

struct names {
	char name[32][SLAB_NAME_MAX];
	int n;
};

static void collect_name(const struct slab_stats *st, void *arg)
{
	struct names *nm = arg;

	if (nm->n < 32)
		memcpy(nm->name[nm->n++], st->name, SLAB_NAME_MAX);
}

static void test_ctor_dtor(struct slab_arena *a)
{
	struct counts n = {0, 0, -1};
	struct slab_cache *c = slab_cache_create(
			a, "conn", sizeof(struct conn), 0, conn_ctor, conn_dtor, &n);
	static struct conn *big[1000];
	struct conn *o[100], *x;
	int i, all_magic = 1, ctor_before;

	ok(c != NULL, "cache conn created");
	for (i = 0; i < 100; i++) {
		o[i] = slab_alloc(c);
		if (o[i] == NULL || o[i]->magic != 0xc0ffee)
			all_magic = 0;
	}
	ok(all_magic, "100 objects come back constructed");
	is_int(n.ctor, cstats(c)->total_objs, "ctor ran once per object of each populated slab");
	ok(sst.objs_per_slab >= 8, "at least 8 objects per slab (%u, slab %zu bytes)",
			sst.objs_per_slab, sst.slab_bytes);
	is_int(sst.obj_size, 704, "obj_size is 700 rounded to 16");
	ok(stats_add_up(&sst), "stats add up with 100 active");
	is_int(sst.active_objs, 100, "100 active");
	is_int(sst.misses, sst.grows, "one miss per grow");
	ctor_before = n.ctor;
	for (i = 0; i < 100; i += 2)
		slab_free(c, o[i]);
	for (i = 0; i < 100; i += 2)
		o[i] = slab_alloc(c);
	for (i = 0; i < 10000; i++)
		slab_free(c, slab_alloc(c));
	is_int(n.ctor, ctor_before, "no ctor call when reallocating freed objects");
	x = slab_alloc(c);
	x->user_field = 42;
	slab_free(c, x);
	ok(slab_alloc(c) == x && x->user_field == 42 && x->magic == 0xc0ffee,
			"LIFO reuse; a free object is not written into");
	slab_free(c, x);
	is_int(n.dtor, 0, "no dtor while slabs are in use");
	for (i = 0; i < 100; i++)
		slab_free(c, o[i]);
	is_int(cstats(c)->reaps, 0, "10 empty 8 KiB slabs fit the 128 KiB reserve: none released");
	for (i = 0; i < 1000; i++)
		big[i] = slab_alloc(c);
	for (i = 0; i < 1000; i++)
		slab_free(c, big[i]);
	ok(cstats(c)->slabs * sst.slab_bytes <= 128 * 1024 + sst.slab_bytes,
			"1000 freed: only cur + 128 KiB of empty slabs kept (%" PRIu64 " slabs)",
			sst.slabs);
	ok(sst.reaps > 0, "empty slabs beyond the reserve went back at free time");
	ok(slab_cache_reap(c) > 0 && cstats(c)->slabs == 0, "reap releases every empty slab");
	is_int(n.dtor, n.ctor, "dtor ran once per constructed object on release");
	ok(stats_add_up(&sst), "stats add up after reap");
	is_int(sst.high_water, 1000, "high_water is 1000");

	/* a failing ctor */
	n.fail_after = n.ctor + 3;
	ok(slab_alloc(c) == NULL, "failing ctor: slab_alloc returns NULL");
	is_int(cstats(c)->alloc_fail, 1, "alloc_fail counted");
	is_int(n.dtor, n.ctor, "objects constructed before the failure were destroyed");
	is_int(sst.slabs, 0, "no slab kept from the failed grow");
	n.fail_after = -1;
	x = slab_alloc(c);
	ok(x != NULL && x->magic == 0xc0ffee, "alloc works once the ctor succeeds");
	slab_free(c, x);
	slab_cache_destroy(c);
	is_int(n.dtor, n.ctor, "destroy ran the remaining dtors");
}

static void test_layout(struct slab_arena *a)
{
	struct slab_cache *c64 = slab_cache_create(a, "al64", 100, 64, NULL, NULL, NULL);
	struct slab_cache *cpg = slab_cache_create(a, "al4k", 5000, 4096, NULL, NULL, NULL);
	struct slab_cache *cd = slab_cache_create(a, "al16", 24, 0, NULL, NULL, NULL);
	struct slab_cache *cc = slab_cache_create(a, "color", 480, 0, NULL, NULL, NULL);
	void *p[512];
	int i, aligned = 1, apart = 1;
	unsigned long colors[3];
	unsigned per;

	ok(slab_cache_create(a, "bad", 0, 0, NULL, NULL, NULL) == NULL, "size 0 refused");
	ok(slab_cache_create(a, "bad", 10, 24, NULL, NULL, NULL) == NULL,
			"non-power-of-two align refused");
	ok(slab_cache_create(a, "bad", 10, 8192, NULL, NULL, NULL) == NULL,
			"align above a page refused");
	for (i = 0; i < 200; i++) {
		p[i] = slab_alloc(c64);
		if ((uintptr_t)p[i] % 64)
			aligned = 0;
	}
	for (i = 0; i < 200; i++)
		slab_free(c64, p[i]);
	for (i = 0; i < 20; i++) {
		p[i] = slab_alloc(cpg);
		if ((uintptr_t)p[i] % 4096)
			aligned = 0;
	}
	for (i = 0; i < 20; i++)
		slab_free(cpg, p[i]);
	for (i = 0; i < 512; i++) {
		p[i] = slab_alloc(cd);
		if ((uintptr_t)p[i] % 16)
			aligned = 0;
	}
	ok(aligned, "alignment 64, 4096 and the default 16 honoured");
	qsort(p, 512, sizeof(p[0]), cmp_ptr);
	for (i = 1; i < 512; i++)
		if ((uintptr_t)p[i - 1] + 24 > (uintptr_t)p[i])
			apart = 0;
	ok(apart, "512 small objects distinct and non-overlapping");
	for (i = 0; i < 512; i++)
		slab_free(cd, p[i]);

	/* coloring: 480-byte objects, 8 per page, 256 bytes of slack */
	is_int(cstats(cc)->slab_bytes, 4096, "480-byte cache uses one-page slabs");
	per = sst.objs_per_slab;
	for (i = 0; i < 24; i++)
		p[i] = slab_alloc(cc);
	for (i = 0; i < 3; i++)
		colors[i] = (uintptr_t)p[i * per] % 4096;
	ok(colors[0] != colors[1] && colors[1] != colors[2] && colors[0] % 64 == 0 &&
					colors[1] % 64 == 0 && colors[2] % 64 == 0,
			"successive slabs colored: first objects at %lu, %lu, %lu", colors[0],
			colors[1], colors[2]);
	for (i = 0; i < 24; i++)
		slab_free(cc, p[i]);
	slab_cache_destroy(c64);
	slab_cache_destroy(cpg);
	slab_cache_destroy(cd);
	slab_cache_destroy(cc);
}

static void test_buffers(struct slab_arena *a)
{
	static const size_t sizes[] = {0, 1, 255, 256, 257, 1000, 4096, 4097, 65535, 65536};
	struct names nm = {.n = 0};
	size_t i, cap, u0;
	int good = 1, names_ok = 1;
	void *p, *q;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t want = 256;

		while (want < sizes[i])
			want *= 2;
		p = slab_buf_alloc(a, sizes[i], &cap);
		if (p == NULL || cap != want || cap < sizes[i])
			good = 0;
		else
			memset(p, 0x5a, cap);
		slab_buf_free(a, p, cap);
	}
	ok(good, "size classes: capacity is the next power of two >= max(size, 256)");
	slab_arena_foreach(a, collect_name, &nm);
	for (i = 0; i < 9; i++) {
		char want[SLAB_NAME_MAX];

		snprintf(want, sizeof(want), "buf-%u", 256u << i);
		if ((int)i >= nm.n || strcmp(nm.name[i], want) != 0)
			names_ok = 0;
	}
	ok(names_ok, "foreach visits buf-256 .. buf-65536 first, in creation order");

	p = slab_buf_alloc(a, 3000, &cap);
	{
		struct names n2 = {.n = 0};
		struct slab_cache *later = slab_cache_create(a, "zz-last", 40, 0, NULL, NULL, NULL);

		slab_arena_foreach(a, collect_name, &n2);
		ok(n2.n > 9 && strcmp(n2.name[n2.n - 1], "zz-last") == 0,
				"a new cache is visited last");
		slab_cache_destroy(later);
	}
	slab_buf_free(a, p, cap);

	u0 = astats(a)->used_bytes;
	p = slab_buf_alloc(a, 65537, &cap);
	is_int(cap, 128 * 1024, "65537 bytes: a 128 KiB block of pages");
	ok(p != NULL && (uintptr_t)p % 4096 == 0, "large buffer is page aligned");
	if (p)
		memset(p, 0xa5, cap);
	q = slab_buf_alloc(a, 3 * MiB, &cap);
	ok(q != NULL && cap == 4 * MiB, "3 MiB: a 4 MiB (top-order) block");
	if (q)
		memset(q, 0xa5, 3 * MiB);
	ok(astats(a)->used_bytes == u0 + 128 * 1024 + 4 * MiB, "used_bytes counts large buffers");
	ok(slab_buf_alloc(a, 4 * MiB + 1, &cap) == NULL, "above the top order: NULL");
	slab_buf_free(a, p, 128 * 1024);
	slab_buf_free(a, q, 4 * MiB);
	is_int(astats(a)->used_bytes, u0, "large frees give the pages back");
	is_int(ast.large_allocs - ast.large_frees, 0, "large_allocs == large_frees");
	ok(ast.large_allocs >= 2, "large allocs counted");
}

static void test_exhaustion(void)
{
	struct slab_arena *a = slab_arena_create(4 * MiB);
	struct slab_cache *c = slab_cache_create(a, "fill", 60000, 0, NULL, NULL, NULL);
	static void *p[256];
	int n = 0;

	is_int(astats(a)->reserved_bytes, 4 * MiB, "4 MiB arena");
	while (n < 256 && (p[n] = slab_alloc(c)) != NULL)
		n++;
	ok(n > 8 && n < 70, "exhausted after %d 60000-byte objects", n);
	is_int(cstats(c)->alloc_fail, 1, "the failing alloc counted");
	ok(slab_buf_alloc(a, 100000, NULL) == NULL, "large buffer fails in a full arena");
	while (n > 0)
		slab_free(c, p[--n]);
	slab_arena_reap(a);
	is_int(astats(a)->used_bytes, 0, "used_bytes 0 after freeing all and reaping");
	is_int(ast.mapped_bytes, 0, "mapped_bytes 0: the top block went back to the OS");
	ok(ast.os_returns >= 1, "os_returns counted");
	p[0] = slab_alloc(c);
	ok(p[0] != NULL, "the arena is reused after giving pages back");
	slab_free(c, p[0]);
	slab_arena_destroy(a); /* destroys <c> too */
}

/* ---- debug-mode aborts (SLAB_DEBUG only) ---- */

#ifdef SLAB_DEBUG
/* Writes that AddressSanitizer must not intercept, so that the slab's own
 * checks are what catches them. */
__attribute__((no_sanitize_address, noinline)) static void raw_poke(char *p, char v)
{
	*(volatile char *)p = v;
}

static struct slab_arena *d_arena;
static struct slab_cache *d_c1, *d_c2;

static void bad_double_free(void *unused)
{
	void *p = slab_alloc(d_c1);

	slab_free(d_c1, p);
	slab_free(d_c1, p);
}

static void bad_foreign(void *unused)
{
	void *p = slab_alloc(d_c2);

	slab_free(d_c1, p);
}

static void bad_interior(void *unused)
{
	char *p = slab_alloc(d_c1);

	slab_free(d_c1, p + 8);
}

static void bad_outside(void *unused)
{
	static char not_ours[64];

	slab_free(d_c1, not_ours);
}

static void bad_overrun(void *unused)
{
	char *p = slab_alloc(d_c1);

	raw_poke(p + 100, 1); /* size is 100 */
	slab_free(d_c1, p);
}

static void bad_write_after_free(void *unused)
{
	char *p = slab_alloc(d_c1);

	slab_free(d_c1, p);
	raw_poke(p + 10, 1);
	(void)slab_alloc(d_c1); /* LIFO: gets <p> back, finds the poison broken */
}

static void bad_buf_cap(void *unused)
{
	size_t cap;
	void *p = slab_buf_alloc(d_arena, 300, &cap);

	slab_buf_free(d_arena, p, cap - 1);
}

#define DEBUG_TESTS 7
static void test_debug(void)
{
	d_arena = slab_arena_create(16 * MiB);
	d_c1 = slab_cache_create(d_arena, "victim", 100, 0, NULL, NULL, NULL);
	d_c2 = slab_cache_create(d_arena, "other", 100, 0, NULL, NULL, NULL);
	ok(dies_with_abort(bad_double_free, NULL), "debug: double free aborts");
	ok(dies_with_abort(bad_foreign, NULL), "debug: pointer from another cache aborts");
	ok(dies_with_abort(bad_interior, NULL), "debug: pointer off an object boundary aborts");
	ok(dies_with_abort(bad_outside, NULL), "debug: pointer outside the arena aborts");
	ok(dies_with_abort(bad_overrun, NULL), "debug: red zone overrun caught at free");
	ok(dies_with_abort(bad_write_after_free, NULL), "debug: write after free caught at alloc");
	ok(dies_with_abort(bad_buf_cap, NULL), "debug: slab_buf_free with a wrong capacity aborts");
	slab_arena_destroy(d_arena);
}
#else
#define DEBUG_TESTS 0
#endif

#ifdef T_ASAN
static void uaf_read(void *unused)
{
	struct slab_arena *a = slab_arena_create(8 * MiB);
	struct slab_cache *c = slab_cache_create(a, "uaf", 64, 0, NULL, NULL, NULL);
	volatile char *p = slab_alloc(c);

	slab_free(c, (void *)p);
	(void)p[3];
}

#define ASAN_TESTS 1
static void test_asan(void)
{
	int status = run_in_child(uaf_read, NULL);

	ok(status != -1 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0),
			"ASan reports a use after free of a slab object");
}
#else
#define ASAN_TESTS 0
#endif

/* ---- randomized property test ---- */

#define PROP_OPS 1000000
#define PROP_LIVE 16384
#define PROP_NCACHES 6

struct pobj {
	char *p;
	uint64_t tag;
	size_t size, cap;
	int kind; /* cache index, or -1 for slab_buf_* */
};

static uint64_t rng;

static uint64_t rnd(void)
{
	return xorshift64star(&rng);
}

/* One tag word per 64 bytes plus the last 8 bytes: any overlap of two live
 * objects by a cache line or more breaks somebody's pattern. */
static void pattern_write(char *p, size_t size, uint64_t tag)
{
	size_t off;

	if (size < 8) {
		memset(p, (int)(tag & 0xff), size);
		return;
	}
	for (off = 0; off + 8 <= size; off += 64)
		memcpy(p + off, &tag, 8);
	if (size - 8 >= (size - 8) / 64 * 64 + 8) /* tail word clear of the last one */
		memcpy(p + size - 8, &tag, 8);
}

static int pattern_ok(const char *p, size_t size, uint64_t tag)
{
	size_t off;
	uint64_t v;

	if (size < 8) {
		for (off = 0; off < size; off++)
			if ((unsigned char)p[off] != (tag & 0xff))
				return 0;
		return 1;
	}
	for (off = 0; off + 8 <= size; off += 64) {
		memcpy(&v, p + off, 8);
		if (v != tag)
			return 0;
	}
	if (size - 8 >= (size - 8) / 64 * 64 + 8) {
		memcpy(&v, p + size - 8, 8);
		return v == tag;
	}
	return 1;
}

static size_t buf_size(void)
{
	unsigned r = rnd() % 1000;

	if (r == 0)
		return 65537 + rnd() % (400 * 1024); /* large: whole buddy blocks */
	/* log-uniform in [1, 65536] */
	return 1 + rnd() % ((size_t)1 << (1 + rnd() % 16));
}

static void test_property(void)
{
	static const size_t csize[PROP_NCACHES] = {24, 64, 200, sizeof(struct conn), 1000, 4000};
	static const size_t calign[PROP_NCACHES] = {0, 8, 0, 0, 64, 0};
	static struct pobj live[PROP_LIVE];
	struct slab_cache *c[PROP_NCACHES];
	struct counts cn = {0, 0, -1};
	uint64_t seed = 0x51ab0c0ffee5eedull, op, next_tag = 1;
	uint64_t bad_pattern = 0, bad_stats = 0, bad_cap = 0, bad_align = 0, nulls = 0;
	uint64_t model_active[PROP_NCACHES] = {0};
	uint64_t max_live = 0;
	size_t reaped = 0;
	unsigned nlive = 0, i;
	struct slab_arena *a;
	const char *env = getenv("SLAB_SEED");

	if (env)
		seed = strtoull(env, NULL, 0);
	rng = seed ? seed : 1;
	diag("property test: %d ops, seed 0x%" PRIx64 " (set SLAB_SEED to replay)", PROP_OPS, seed);
	a = slab_arena_create(0);
	for (i = 0; i < PROP_NCACHES; i++) {
		char name[16];

		snprintf(name, sizeof(name), "prop-%zu", csize[i]);
		c[i] = slab_cache_create(a, name, csize[i], calign[i], i == 3 ? conn_ctor : NULL,
				i == 3 ? conn_dtor : NULL, &cn);
	}
	for (op = 0; op < PROP_OPS; op++) {
		/* drift between filling up and draining, so slabs empty out */
		unsigned phase = (unsigned)((op >> 16) & 1);
		unsigned want_alloc = phase ? 40 : 60;

		if (nlive == 0 || (nlive < PROP_LIVE && rnd() % 100 < want_alloc)) {
			struct pobj *o = &live[nlive];
			int kind = (int)(rnd() % (PROP_NCACHES + 3)) - 3;

			if (kind < 0) {
				o->size = buf_size();
				o->p = slab_buf_alloc(a, o->size, &o->cap);
				if (o->p && (o->cap < o->size ||
							    (o->size <= 256 && o->cap != 256) ||
							    (o->size > 256 &&
									    o->cap >= 2 * o->size &&
									    o->cap <= SLAB_BUF_MAX)))
					bad_cap++;
				kind = -1;
			} else {
				o->size = csize[kind];
				o->cap = o->size;
				o->p = slab_alloc(c[kind]);
				if (o->p && (uintptr_t)o->p % (calign[kind] ? calign[kind] : 16))
					bad_align++;
			}
			if (o->p == NULL) {
				nulls++;
				continue;
			}
			o->kind = kind;
			o->tag = next_tag++ * 0x9E3779B97F4A7C15ull;
			pattern_write(o->p, o->size, o->tag);
			if (kind >= 0)
				model_active[kind]++;
			nlive++;
			if (nlive > max_live)
				max_live = nlive;
		} else {
			unsigned j = (unsigned)(rnd() % nlive);
			struct pobj o = live[j];

			live[j] = live[--nlive];
			if (!pattern_ok(o.p, o.size, o.tag))
				bad_pattern++;
			if (o.kind < 0) {
				slab_buf_free(a, o.p, o.cap);
			} else {
				slab_free(c[o.kind], o.p);
				model_active[o.kind]--;
			}
		}
		if (op % 65536 == 0) {
			/* reaping with live objects: madvising a block that
			 * still held one would zero its pattern */
			if (op % (4 * 65536) == 0)
				reaped += slab_arena_reap(a);
			for (i = 0; i < PROP_NCACHES; i++)
				if (!stats_add_up(cstats(c[i])) ||
						sst.active_objs != model_active[i])
					bad_stats++;
		}
	}
	diag("max live %" PRIu64 ", %u live at end, arena used %zu KiB, %zu slabs reaped midway",
			max_live, nlive, astats(a)->used_bytes >> 10, reaped);
	ok(nulls == 0, "no allocation failed (%" PRIu64 ")", nulls);
	ok(bad_pattern == 0, "every live object kept its pattern: no overlap (%" PRIu64 " bad)",
			bad_pattern);
	ok(bad_cap == 0 && bad_align == 0, "capacities and alignment right");
	ok(bad_stats == 0, "cache stats add up and match the model throughout");
	while (nlive > 0) {
		struct pobj *o = &live[--nlive];

		if (!pattern_ok(o->p, o->size, o->tag))
			bad_pattern++;
		if (o->kind < 0)
			slab_buf_free(a, o->p, o->cap);
		else
			slab_free(c[o->kind], o->p);
	}
	ok(bad_pattern == 0, "patterns intact when draining");
	slab_arena_reap(a);
	is_int(astats(a)->used_bytes, 0, "after freeing everything and reaping, used_bytes is 0");
	is_int(ast.mapped_bytes, 0, "and every top block went back to the OS");
	is_int(cn.dtor, cn.ctor, "dtor ran for every constructed conn");
	slab_arena_destroy(a);
}

int main(void)
{
	struct slab_arena *a;

	plan(61 + DEBUG_TESTS + ASAN_TESTS);
	a = slab_arena_create(64 * MiB);
	ok(a != NULL, "arena created");
	is_int(astats(a)->reserved_bytes, 64 * MiB, "64 MiB reserved");
	is_int(ast.used_bytes, 0, "nothing used yet");
	test_ctor_dtor(a);
	test_layout(a);
	test_buffers(a);
	slab_arena_destroy(a);
	test_exhaustion();
#ifdef SLAB_DEBUG
	test_debug();
#endif
#ifdef T_ASAN
	test_asan();
#endif
	test_property();
	return tap_exit_status();
}
