/* slab.c -- Bonwick/SLUB-style object caches over a buddy-managed page arena.
 *
 * Theory.
 *
 * Arena.  One reservation of <reserved> bytes (sys_mmap_reserve, untouched
 * until used) split into 4 KiB pages.  Pages are handed out by a struct
 * buddy with max order SLAB_TOP_ORDER = 10, so top blocks are 4 MiB.  The
 * buddy only manages top blocks that are "mapped"; the rest sit on the
 * clean stack (never touched, or given back with MADV_DONTNEED):
 *
 *   reserved = (nclean + buddy.units / 1024) * 4 MiB
 *   mapped_bytes = buddy.units * 4 KiB,  used_bytes = (units - units_free) * 4 KiB
 *
 * When the buddy cannot serve an order, a clean top block is added with
 * buddy_add_range().  When freeing pages leaves a whole top block free and
 * more than SLAB_TOP_KEEP such blocks exist, it is removed from the buddy,
 * madvised away (pages and its page descriptors) and pushed on the clean
 * stack (os_returns++).  slab_arena_reap() returns every free top block.
 *
 * Page descriptors.  A second reservation holds one SLAB_DESC-byte (128)
 * descriptor per page.  A slab of 2^k pages is a buddy block, so its first
 * page index is a multiple of 2^k and the descriptor of any object is found
 * by masking: desc = descs + ((obj - base) >> 5 & ~((128 << k) - 1)).  Only
 * the head descriptor is a struct slab; the bytes after it (up to 128 << k)
 * hold the slab's free stack when it fits ("off-slab"), otherwise the stack
 * sits at the end of the slab itself ("in-slab", small objects).
 *
 * Slabs.  Objects of <slot> bytes start at base = slab start + color.  Free
 * objects are never written: their byte offsets from base live on a uint32
 * stack, stack[0 .. nfree) (offsets, not indices: no multiply or divide on
 * either fast path).  Each slab is in exactly one place:
 *
 *   cur (allocating) | partial list | full list (nfree == 0) | empty list
 *   (nfree == objs)
 *   slabs = [cur is real] + |partial| + |full| + |empty|
 *   total_objs = slabs * objs,  active = allocs - frees = total - sum nfree
 *   (the fast paths count active and frees; allocs is derived)
 *   hits + misses == allocs (a miss is an alloc that grew the cache first)
 *
 * slab_alloc pops cur's stack, one unlikely branch to the slow path when cur
 * is exhausted: cur goes to full, and a partial slab (preferred), an empty
 * one, or a new slab becomes cur.  slab_free pushes on the object's slab;
 * one unlikely branch catches the two transitions (full -> partial and
 * partial -> empty).  Empty slabs beyond a small reserve per cache (one
 * slab, or more up to SLAB_EMPTY_KEEP = 128 KiB) go back to the buddy at
 * free time; slab_cache_reap releases all of them, including an empty cur.
 *
 * Object lifetime.  ctor runs once per object when a slab is populated,
 * dtor once per object when the slab is released; alloc/free never run
 * them, so objects come back in the state they were freed in.
 *
 * Debug (SLAB_DEBUG).  Each slot gets a red zone: bytes [size, slot - 8)
 * hold 0xbb and the last 8 bytes a state tag (address ^ FREE or ^ ACTIVE
 * magic).  slab_free checks cache ownership, object boundary, the tag
 * (double free) and the red zone (overrun), aborting with the cache name.
 * Caches WITHOUT a ctor also get their free objects filled with 0x6b,
 * checked at alloc (write after free); caches with a ctor keep objects
 * constructed, so only red zones and tags are checked for them.
 * Under AddressSanitizer (any build) free objects are poisoned with
 * ASAN_POISON_MEMORY_REGION, so a use after free is reported at once.
 *
 * Ownership: an arena owns its caches, a cache its slabs; objects belong to
 * the caller between slab_alloc and slab_free.  No global mutable state.
 */
#include "slab.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buddy.h"
#include "sysalloc.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLAB_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(SLAB_ASAN)
#define SLAB_ASAN 1
#endif

#ifdef SLAB_ASAN
#include <sanitizer/asan_interface.h>
#define asan_poison(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define asan_unpoison(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define asan_poison(p, n) ((void)(p), (void)(n))
#define asan_unpoison(p, n) ((void)(p), (void)(n))
#endif

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

#define SLAB_PAGE_SHIFT 12
#define SLAB_TOP_ORDER 10 /* 4 MiB top blocks */
#define SLAB_TOP_PAGES (1u << SLAB_TOP_ORDER)
#define SLAB_TOP_BYTES ((size_t)SLAB_PAGE_SIZE << SLAB_TOP_ORDER)
#define SLAB_DESC_SHIFT 7 /* 128-byte page descriptors */
#define SLAB_DESC ((size_t)1 << SLAB_DESC_SHIFT)
#define SLAB_DEFAULT_RESERVE ((size_t)1 << 30)
/* Empty slabs a cache keeps at free time: at least one, and as many as fit
 * in SLAB_EMPTY_KEEP bytes, so a cache churning a few dozen objects does not
 * give slabs back and rebuild them on every cycle. */
#define SLAB_EMPTY_KEEP ((size_t)128 << 10)
#define SLAB_TOP_KEEP 1	      /* wholly free top blocks kept mapped */
#define SLAB_MADV_MIN_ORDER 0 /* reap madvises every free block */
#define SLAB_MIN_OBJS 8
#define SLAB_MAX_OBJS 65535u
#define SLAB_LINE 64
#define SLAB_NR_BUF 9 /* 256 .. 65536 */
#define SLAB_REDZONE 16
#define SLAB_POISON 0x6b
#define SLAB_RZ_BYTE 0xbb
#define SLAB_TAG_FREE 0xf4eef4eef4eef4eeull
#define SLAB_TAG_ACTIVE 0xa110ca7eda11ca7eull

/* Size class index of a buffer of <size> <= SLAB_BUF_MAX bytes. */
static unsigned buf_class(size_t size)
{
	if (size <= SLAB_BUF_MIN)
		return 0;
	return (unsigned)(64 - __builtin_clzll((unsigned long long)size - 1)) - 8;
}

/* A buffer from the size-class cache of <size> <= SLAB_BUF_MAX; both builds. */
static inline void *buf_small_alloc(struct slab_cache *const *classes, size_t size, size_t *cap)
{
	unsigned k = buf_class(size);
	void *p = slab_alloc(classes[k]);

	if (p && cap)
		*cap = (size_t)SLAB_BUF_MIN << k;
	return p;
}

#ifndef SLAB_BYPASS /* the normal build; the bypass build is at the end */

enum slab_where {
	SLAB_W_NONE,	/* cur, or being set up / released */
	SLAB_W_PARTIAL, /* c->partial */
	SLAB_W_FULL,	/* c->full */
	SLAB_W_EMPTY,	/* c->empty */
	SLAB_W_LARGE,	/* head of a large buffer (not a slab) */
};

/* Head-page descriptor.  Must fit SLAB_DESC with room for a short stack. */
struct slab {
	struct slab_cache *cache; /* owner; NULL unless a live slab head */
	struct slab *next, *prev; /* on the list named by <where> */
	char *base;		  /* first object */
	uint32_t *stack;	  /* free objects' offsets from base, [0, nfree) */
	uint32_t nfree;
	uint32_t where; /* enum slab_where */
};

#define SLAB_HDR ((sizeof(struct slab) + 7) & ~(size_t)7)

struct slab_list {
	struct slab *head;
	uint64_t n;
};

struct slab_cache {
	/* fast path */
	struct slab *cur;
	uint64_t active; /* allocs - frees */
	uint64_t high_water;
	uint64_t frees;
	uintptr_t base; /* arena base */
	char *descs;	/* arena descriptors */
	uintptr_t desc_mask;
	size_t slot;	  /* distance between objects */
	uint32_t objs_m2; /* objs - 2, wraps for objs < 2 */
	uint32_t objs;
	/* slow path */
	struct slab_arena *arena;
	struct slab_cache *next; /* arena list, creation order */
	struct slab_list partial, full, empty;
	uint64_t slabs;
	uint64_t empty_keep; /* empty slabs kept at free time */
	uint64_t misses, grows, reaps, alloc_fail;
	size_t size;	 /* as requested */
	size_t obj_size; /* size rounded to align */
	size_t align;
	unsigned order;
	bool offslab;
	bool poison; /* SLAB_DEBUG and no ctor */
	size_t color_step, color_max, color_next;
	slab_ctor_fn ctor;
	slab_dtor_fn dtor;
	void *arg;
	struct slab none; /* cur when there is none: nfree == 0 */
	char name[SLAB_NAME_MAX];
};

struct slab_arena {
	char *base;
	size_t reserved;
	uint32_t npages;
	char *descs;
	size_t descs_bytes;
	struct buddy *buddy;
	uint32_t *clean; /* first pages of top blocks not in the buddy */
	uint32_t nclean;
	uint32_t hi_page; /* pages below were handed to the buddy at some time */
	uint64_t os_returns, large_allocs, large_frees;
	unsigned walk_order; /* slab_arena_reap's walk of free blocks */
	struct slab_cache *caches, *caches_tail;
	struct slab_cache *buf[SLAB_NR_BUF];
};

_Static_assert(sizeof(struct slab) <= SLAB_DESC / 2, "page descriptor too large");

/* ---- arena pages ---- */

static struct slab *desc_of_page(const struct slab_arena *a, uint64_t pg)
{
	return (struct slab *)(a->descs + (pg << SLAB_DESC_SHIFT));
}

static uint64_t page_of_desc(const struct slab_arena *a, const struct slab *s)
{
	return (uint64_t)((const char *)s - a->descs) >> SLAB_DESC_SHIFT;
}

static char *page_addr(const struct slab_arena *a, uint64_t pg)
{
	return a->base + (pg << SLAB_PAGE_SHIFT);
}

/* Give the free top block starting at page <top> back to the kernel. */
static void arena_top_release(struct slab_arena *a, uint64_t top)
{
	if (buddy_remove_block(a->buddy, top, SLAB_TOP_ORDER) != 0)
		abort(); /* caller checked it was free */
	sys_madvise_dontneed(page_addr(a, top), SLAB_TOP_BYTES);
	sys_madvise_dontneed(desc_of_page(a, top), SLAB_DESC << SLAB_TOP_ORDER);
	a->clean[a->nclean++] = (uint32_t)top;
	a->os_returns++;
}

/* 2^<order> pages, or -1 when the reservation is exhausted. */
static int64_t arena_pages_alloc(struct slab_arena *a, unsigned order)
{
	if (order > SLAB_TOP_ORDER)
		return -1;
	if (buddy_largest_free_order(a->buddy) < (int)order) {
		uint32_t top;

		if (a->nclean == 0)
			return -1;
		top = a->clean[--a->nclean];
		if (buddy_add_range(a->buddy, top, SLAB_TOP_PAGES) != 0) {
			a->nclean++;
			return -1;
		}
		if (top + SLAB_TOP_PAGES > a->hi_page)
			a->hi_page = top + SLAB_TOP_PAGES;
	}
	return buddy_alloc(a->buddy, order);
}

static void arena_pages_free(struct slab_arena *a, uint64_t pg, unsigned order)
{
	uint64_t top = pg & ~(uint64_t)(SLAB_TOP_PAGES - 1);

	buddy_free(a->buddy, pg, order);
	if (buddy_nr_free(a->buddy, SLAB_TOP_ORDER) > SLAB_TOP_KEEP &&
			buddy_block_is_free(a->buddy, top, SLAB_TOP_ORDER))
		arena_top_release(a, top);
}

/* ---- lists ---- */

static void list_add(struct slab_list *l, struct slab *s, enum slab_where w)
{
	s->prev = NULL;
	s->next = l->head;
	if (l->head)
		l->head->prev = s;
	l->head = s;
	l->n++;
	s->where = w;
}

static void list_del(struct slab_list *l, struct slab *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		l->head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->next = s->prev = NULL;
	l->n--;
	s->where = SLAB_W_NONE;
}

static struct slab_list *list_of(struct slab_cache *c, const struct slab *s)
{
	switch (s->where) {
	case SLAB_W_PARTIAL:
		return &c->partial;
	case SLAB_W_FULL:
		return &c->full;
	case SLAB_W_EMPTY:
		return &c->empty;
	default:
		return NULL;
	}
}

/* ---- debug checks ---- */

/* Abort with a message naming the cache <name>: the slab layer's only I/O. */
static void __attribute__((noreturn, format(printf, 2, 3)))
slab_die(const char *name, const char *fmt, ...);

static void slab_die(const char *name, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "slab: cache %s: ", name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

#ifdef SLAB_DEBUG
static uint64_t *dbg_tag(const struct slab_cache *c, char *obj)
{
	return (uint64_t *)(obj + c->slot - 8);
}

static void dbg_check_redzone(const struct slab_cache *c, char *obj)
{
	size_t i;

	for (i = c->size; i < c->slot - 8; i++)
		if ((unsigned char)obj[i] != SLAB_RZ_BYTE)
			slab_die(c->name, "red zone of object %p overwritten at byte %zu",
					(void *)obj, i);
}

/* A new slab's object: red zone, FREE tag, poison when no ctor. */
static void dbg_init(const struct slab_cache *c, char *obj)
{
	memset(obj + c->size, SLAB_RZ_BYTE, c->slot - 8 - c->size);
	*dbg_tag(c, obj) = (uintptr_t)obj ^ SLAB_TAG_FREE;
	if (c->poison)
		memset(obj, SLAB_POISON, c->size);
}

static void dbg_alloc(const struct slab_cache *c, char *obj)
{
	asan_unpoison(obj, c->slot);
	if (*dbg_tag(c, obj) != ((uintptr_t)obj ^ SLAB_TAG_FREE))
		slab_die(c->name,
				"free object %p has a bad tag (overrun from the previous object?)",
				(void *)obj);
	dbg_check_redzone(c, obj);
	if (c->poison) {
		size_t i;

		for (i = 0; i < c->size; i++)
			if ((unsigned char)obj[i] != SLAB_POISON)
				slab_die(c->name, "object %p modified after free at byte %zu",
						(void *)obj, i);
	}
	*dbg_tag(c, obj) = (uintptr_t)obj ^ SLAB_TAG_ACTIVE;
	asan_poison(obj + c->size, c->slot - c->size);
}

static void dbg_free(const struct slab_cache *c, char *obj)
{
	uintptr_t off = (uintptr_t)obj - c->base;
	const struct slab *s;
	size_t in;

	if ((uintptr_t)obj < c->base || off >= c->arena->reserved)
		slab_die(c->name, "free of foreign pointer %p (outside the arena)", (void *)obj);
	s = (const struct slab *)(c->descs +
				  ((off >> (SLAB_PAGE_SHIFT - SLAB_DESC_SHIFT)) & c->desc_mask));
	if (s->cache != c)
		slab_die(c->name, "free of foreign pointer %p (not from this cache)", (void *)obj);
	in = (size_t)(obj - s->base);
	if (obj < s->base || in % c->slot || in / c->slot >= c->objs)
		slab_die(c->name, "free of %p, not on an object boundary", (void *)obj);
	asan_unpoison(obj + c->size, c->slot - c->size);
	if (*dbg_tag(c, obj) == ((uintptr_t)obj ^ SLAB_TAG_FREE))
		slab_die(c->name, "double free of %p", (void *)obj);
	if (*dbg_tag(c, obj) != ((uintptr_t)obj ^ SLAB_TAG_ACTIVE))
		slab_die(c->name, "free of %p: red zone tag overwritten", (void *)obj);
	dbg_check_redzone(c, obj);
	*dbg_tag(c, obj) = (uintptr_t)obj ^ SLAB_TAG_FREE;
	if (c->poison)
		memset(obj, SLAB_POISON, c->size);
}
#endif

/* ---- slabs ---- */

static char *slab_obj(const struct slab_cache *c, const struct slab *s, uint32_t i)
{
	return s->base + (size_t)i * c->slot;
}

static void slab_run_dtors(struct slab_cache *c, struct slab *s, uint32_t n)
{
	uint32_t i;

	if (c->dtor == NULL)
		return;
	for (i = 0; i < n; i++) {
		char *obj = slab_obj(c, s, i);

		asan_unpoison(obj, c->size);
		c->dtor(obj, c->arg);
	}
}

/* Populate a new slab; NULL when out of pages or a ctor failed. */
static struct slab *slab_grow(struct slab_cache *c)
{
	struct slab_arena *a = c->arena;
	size_t bytes = (size_t)SLAB_PAGE_SIZE << c->order;
	int64_t pg = arena_pages_alloc(a, c->order);
	struct slab *s;
	char *start;
	uint32_t i;

	if (pg < 0)
		return NULL;
	start = page_addr(a, (uint64_t)pg);
	s = desc_of_page(a, (uint64_t)pg);
	asan_unpoison(start, bytes);
	memset(s, 0, sizeof(*s));
	s->base = start + c->color_next;
	c->color_next = c->color_next + c->color_step > c->color_max
					? 0
					: c->color_next + c->color_step;
	if (c->offslab)
		s->stack = (uint32_t *)((char *)s + SLAB_HDR);
	else
		s->stack = (uint32_t *)(start + bytes - (size_t)c->objs * sizeof(uint32_t));
	for (i = 0; i < c->objs; i++) {
		char *obj = slab_obj(c, s, i);

#ifdef SLAB_DEBUG
		dbg_init(c, obj);
#endif
		if (c->ctor && c->ctor(obj, c->arg) != 0) {
			slab_run_dtors(c, s, i);
			asan_poison(start, bytes);
			arena_pages_free(a, (uint64_t)pg, c->order);
			return NULL;
		}
		asan_poison(obj, c->slot);
	}
	/* lowest address on top: handed out first */
	for (i = 0; i < c->objs; i++)
		s->stack[i] = (uint32_t)((c->objs - 1 - i) * c->slot);
	s->nfree = c->objs;
	s->cache = c;
	s->where = SLAB_W_NONE;
	c->slabs++;
	c->grows++;
	return s;
}

/* <s> is on no list.  Runs dtors and gives its pages to the buddy. */
static void slab_release(struct slab_cache *c, struct slab *s)
{
	struct slab_arena *a = c->arena;
	uint64_t pg = page_of_desc(a, s);

	slab_run_dtors(c, s, c->objs);
	s->cache = NULL;
	asan_poison(page_addr(a, pg), (size_t)SLAB_PAGE_SIZE << c->order);
	arena_pages_free(a, pg, c->order);
	c->slabs--;
	c->reaps++;
}

/* ---- the fast paths ---- */

/* Out of line, so the fast paths stay leaf functions without a frame. */
static __attribute__((noinline)) void *slab_alloc_slow(struct slab_cache *c);
static __attribute__((noinline)) void slab_free_slow(struct slab_cache *c, struct slab *s);

void *slab_alloc(struct slab_cache *c)
{
	struct slab *s = c->cur;
	uint32_t n = s->nfree;
	char *obj;

	if (unlikely(n == 0))
		return slab_alloc_slow(c);
	s->nfree = --n;
	obj = s->base + s->stack[n];
	if (++c->active > c->high_water)
		c->high_water = c->active;
#ifdef SLAB_DEBUG
	dbg_alloc(c, obj);
#else
	asan_unpoison(obj, c->size);
#endif
	return obj;
}

void slab_free(struct slab_cache *c, void *obj)
{
	uintptr_t off = (uintptr_t)obj - c->base;
	struct slab *s;
	uint32_t n;

	if (unlikely(obj == NULL))
		return;
#ifdef SLAB_DEBUG
	dbg_free(c, obj);
#endif
	asan_poison(obj, c->slot);
	s = (struct slab *)(c->descs +
			    ((off >> (SLAB_PAGE_SHIFT - SLAB_DESC_SHIFT)) & c->desc_mask));
	n = s->nfree;
	s->stack[n] = (uint32_t)((char *)obj - s->base);
	s->nfree = ++n;
	c->active--;
	c->frees++;
	/* one test for both transitions: n == 1 (was full), n == objs (empty) */
	if (unlikely(n - 2 >= c->objs_m2))
		slab_free_slow(c, s);
}

static void *slab_alloc_slow(struct slab_cache *c)
{
	struct slab *s = c->cur;
	bool grew = false;

	if (s != &c->none)
		list_add(&c->full, s, SLAB_W_FULL);
	if (c->partial.head) {
		s = c->partial.head;
		list_del(&c->partial, s);
	} else if (c->empty.head) {
		s = c->empty.head;
		list_del(&c->empty, s);
	} else {
		s = slab_grow(c);
		if (s == NULL) {
			c->cur = &c->none;
			c->alloc_fail++;
			return NULL;
		}
		grew = true;
	}
	c->cur = s;
	if (grew)
		c->misses++;
	return slab_alloc(c);
}

/* <s> just went full -> partial, or partial/full -> empty (or objs <= 2). */
static void slab_free_slow(struct slab_cache *c, struct slab *s)
{
	struct slab_list *l;

	if (s == c->cur)
		return;
	l = list_of(c, s);
	if (s->nfree == c->objs) {
		list_del(l, s);
		if (c->empty.n >= c->empty_keep)
			slab_release(c, s);
		else
			list_add(&c->empty, s, SLAB_W_EMPTY);
	} else if (s->where == SLAB_W_FULL) {
		list_del(l, s);
		list_add(&c->partial, s, SLAB_W_PARTIAL);
	}
}

/* ---- caches ---- */

/* Pick the slab order, object count and stack placement for c->slot:
 * the smallest order holding >= SLAB_MIN_OBJS objects with <= 1/8 waste,
 * else the order with the least waste. */
static int cache_layout(struct slab_cache *c)
{
	double best_waste = 2.0;
	unsigned k;
	int found = 0;

	for (k = 0; k <= SLAB_TOP_ORDER; k++) {
		size_t bytes = (size_t)SLAB_PAGE_SIZE << k;
		size_t room = ((SLAB_DESC << k) - SLAB_HDR) / sizeof(uint32_t);
		size_t objs = bytes / c->slot, used;
		bool off = true;
		double waste;

		if (objs > SLAB_MAX_OBJS)
			objs = SLAB_MAX_OBJS;
		if (objs > room) {
			off = false;
			objs = bytes / (c->slot + sizeof(uint32_t));
			if (objs > SLAB_MAX_OBJS)
				objs = SLAB_MAX_OBJS;
		}
		if (objs == 0)
			continue;
		used = objs * c->slot + (off ? 0 : objs * sizeof(uint32_t));
		waste = (double)(bytes - used) / (double)bytes;
		if (waste < best_waste || (objs >= SLAB_MIN_OBJS && waste <= 0.125)) {
			best_waste = waste;
			c->order = k;
			c->objs = (uint32_t)objs;
			c->offslab = off;
			c->color_max = bytes - used;
			found = 1;
		}
		if (objs >= SLAB_MIN_OBJS && waste <= 0.125)
			break;
	}
	if (!found)
		return -EINVAL;
	c->empty_keep = SLAB_EMPTY_KEEP >> (SLAB_PAGE_SHIFT + c->order);
	if (c->empty_keep == 0)
		c->empty_keep = 1;
	c->color_step = c->align > SLAB_LINE ? c->align : SLAB_LINE;
	c->color_max = c->color_max / c->color_step * c->color_step;
	return 0;
}

struct slab_cache *slab_cache_create(struct slab_arena *a, const char *name, size_t size,
		size_t align, slab_ctor_fn ctor, slab_dtor_fn dtor, void *arg)
{
	struct slab_cache *c;

	if (a == NULL || name == NULL || size == 0 || size > SLAB_TOP_BYTES)
		return NULL;
	if (align == 0)
		align = 16;
	if (align & (align - 1) || align > SLAB_PAGE_SIZE)
		return NULL;
	if (align < 8)
		align = 8;
	c = sys_calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->arena = a;
	c->size = size;
	c->align = align;
	c->obj_size = (size + align - 1) & ~(align - 1);
	c->slot = c->obj_size;
#ifdef SLAB_DEBUG
	c->slot = (c->obj_size + SLAB_REDZONE + align - 1) & ~(align - 1);
	c->poison = ctor == NULL;
#endif
	if (cache_layout(c) != 0) {
		sys_free(c);
		return NULL;
	}
	c->ctor = ctor;
	c->dtor = dtor;
	c->arg = arg;
	c->base = (uintptr_t)a->base;
	c->descs = a->descs;
	c->desc_mask = ~(uintptr_t)((SLAB_DESC << c->order) - 1);
	c->objs_m2 = c->objs - 2;
	c->none.cache = c;
	c->cur = &c->none;
	if (a->caches_tail)
		a->caches_tail->next = c;
	else
		a->caches = c;
	a->caches_tail = c;
	return c;
}

size_t slab_cache_reap(struct slab_cache *c)
{
	size_t n = 0;

	while (c->empty.head) {
		struct slab *s = c->empty.head;

		list_del(&c->empty, s);
		slab_release(c, s);
		n++;
	}
	if (c->cur != &c->none && c->cur->nfree == c->objs) {
		struct slab *s = c->cur;

		c->cur = &c->none;
		slab_release(c, s);
		n++;
	}
	return n;
}

/* Release every slab, whatever it holds. */
static void cache_teardown(struct slab_cache *c)
{
	struct slab_list *lists[] = {&c->partial, &c->full, &c->empty};
	unsigned i;

	if (c->cur != &c->none) {
		struct slab *s = c->cur;

		c->cur = &c->none;
		slab_release(c, s);
	}
	for (i = 0; i < 3; i++) {
		while (lists[i]->head) {
			struct slab *s = lists[i]->head;

			list_del(lists[i], s);
			slab_release(c, s);
		}
	}
}

static void cache_unlink(struct slab_cache *c)
{
	struct slab_arena *a = c->arena;
	struct slab_cache **pp, *prev = NULL;

	for (pp = &a->caches; *pp; prev = *pp, pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			if (a->caches_tail == c)
				a->caches_tail = prev;
			return;
		}
	}
}

void slab_cache_destroy(struct slab_cache *c)
{
	if (c == NULL)
		return;
#ifdef SLAB_DEBUG
	if (c->active)
		slab_die(c->name, "destroyed with %llu objects still active",
				(unsigned long long)c->active);
#endif
	cache_teardown(c);
	cache_unlink(c);
	sys_free(c);
}

void slab_cache_stats(const struct slab_cache *c, struct slab_stats *st)
{
	memset(st, 0, sizeof(*st));
	memcpy(st->name, c->name, sizeof(st->name));
	st->obj_size = c->obj_size;
	st->slab_bytes = (size_t)SLAB_PAGE_SIZE << c->order;
	st->objs_per_slab = c->objs;
	st->active_objs = c->active;
	st->total_objs = c->slabs * c->objs;
	st->slabs = c->slabs;
	st->bytes = c->slabs * st->slab_bytes;
	st->allocs = c->frees + c->active;
	st->frees = c->frees;
	st->hits = st->allocs - c->misses;
	st->misses = c->misses;
	st->grows = c->grows;
	st->reaps = c->reaps;
	st->alloc_fail = c->alloc_fail;
	st->high_water = c->high_water;
}

/* ---- arena ---- */

struct slab_arena *slab_arena_create(size_t reserve_bytes)
{
	struct slab_arena *a;
	uint32_t ntop, i;

	if (reserve_bytes == 0)
		reserve_bytes = SLAB_DEFAULT_RESERVE;
	if (reserve_bytes > ((size_t)1 << 42)) /* page indices are uint32_t */
		return NULL;
	reserve_bytes = (reserve_bytes + SLAB_TOP_BYTES - 1) & ~(SLAB_TOP_BYTES - 1);
	a = sys_calloc(1, sizeof(*a));
	if (a == NULL)
		return NULL;
	a->reserved = reserve_bytes;
	a->npages = (uint32_t)(reserve_bytes >> SLAB_PAGE_SHIFT);
	ntop = a->npages / SLAB_TOP_PAGES;
	a->base = sys_mmap_reserve(reserve_bytes);
	if (a->base == NULL)
		goto err_free;
	a->descs_bytes = (size_t)a->npages << SLAB_DESC_SHIFT;
	a->descs = sys_mmap_reserve(a->descs_bytes);
	if (a->descs == NULL)
		goto err_unmap;
	a->buddy = buddy_create(SLAB_TOP_ORDER);
	if (a->buddy == NULL || buddy_reserve(a->buddy, a->npages) != 0)
		goto err_buddy;
	a->clean = sys_malloc(ntop * sizeof(*a->clean));
	if (a->clean == NULL)
		goto err_buddy;
	for (i = 0; i < ntop; i++)
		a->clean[i] = (ntop - 1 - i) * SLAB_TOP_PAGES; /* lowest on top */
	a->nclean = ntop;
	for (i = 0; i < SLAB_NR_BUF; i++) {
		char name[SLAB_NAME_MAX];

		snprintf(name, sizeof(name), "buf-%u", SLAB_BUF_MIN << i);
		a->buf[i] = slab_cache_create(
				a, name, SLAB_BUF_MIN << i, SLAB_LINE, NULL, NULL, NULL);
		if (a->buf[i] == NULL)
			goto err_caches;
	}
	return a;

err_caches:
	while (a->caches) {
		struct slab_cache *c = a->caches;

		a->caches = c->next;
		sys_free(c);
	}
	sys_free(a->clean);
err_buddy:
	buddy_destroy(a->buddy);
	sys_munmap(a->descs, a->descs_bytes);
err_unmap:
	sys_munmap(a->base, a->reserved);
err_free:
	sys_free(a);
	return NULL;
}

void slab_arena_destroy(struct slab_arena *a)
{
	if (a == NULL)
		return;
	while (a->caches) {
		struct slab_cache *c = a->caches;

		cache_teardown(c);
		a->caches = c->next;
		sys_free(c);
	}
	/* drop our poisoning so a later mapping at this address starts clean */
	asan_unpoison(a->base, (size_t)a->hi_page << SLAB_PAGE_SHIFT);
	buddy_destroy(a->buddy);
	sys_free(a->clean);
	sys_munmap(a->descs, a->descs_bytes);
	sys_munmap(a->base, a->reserved);
	sys_free(a);
}

static void madvise_free_block(uint64_t pg, void *arg)
{
	struct slab_arena *a = arg;

	sys_madvise_dontneed(page_addr(a, pg), (size_t)SLAB_PAGE_SIZE << a->walk_order);
}

/* Besides whole top blocks, drop the contents of free blocks of at least
 * SLAB_MADV_MIN_ORDER pages: after a burst with a few survivors, no top
 * block is wholly free, but most of the memory lies in such blocks.  They
 * stay in the buddy (and in mapped_bytes); the kernel refills them with
 * zero pages when touched again. */
size_t slab_arena_reap(struct slab_arena *a)
{
	struct slab_cache *c;
	size_t n = 0;
	int64_t top;

	for (c = a->caches; c; c = c->next)
		n += slab_cache_reap(c);
	while ((top = buddy_peek_free(a->buddy, SLAB_TOP_ORDER)) >= 0)
		arena_top_release(a, (uint64_t)top);
	for (a->walk_order = SLAB_MADV_MIN_ORDER; a->walk_order < SLAB_TOP_ORDER; a->walk_order++)
		buddy_foreach_free(a->buddy, a->walk_order, madvise_free_block, a);
	return n;
}

void slab_arena_stats(const struct slab_arena *a, struct slab_arena_stats *st)
{
	struct buddy_stats bs;

	buddy_stats_get(a->buddy, &bs);
	memset(st, 0, sizeof(*st));
	st->reserved_bytes = a->reserved;
	st->mapped_bytes = (size_t)bs.units << SLAB_PAGE_SHIFT;
	st->used_bytes = (size_t)(bs.units - bs.units_free) << SLAB_PAGE_SHIFT;
	st->os_returns = a->os_returns;
	st->large_allocs = a->large_allocs;
	st->large_frees = a->large_frees;
}

/* ---- size classes ---- */


void *slab_buf_alloc(struct slab_arena *a, size_t size, size_t *cap)
{
	unsigned order;
	int64_t pg;
	char *p;

	if (likely(size <= SLAB_BUF_MAX))
		return buf_small_alloc(a->buf, size, cap);
	order = buddy_order_for((size + SLAB_PAGE_SIZE - 1) >> SLAB_PAGE_SHIFT);
	pg = order <= SLAB_TOP_ORDER ? arena_pages_alloc(a, order) : -1;
	if (pg < 0)
		return NULL;
	desc_of_page(a, (uint64_t)pg)->cache = NULL;
	desc_of_page(a, (uint64_t)pg)->where = SLAB_W_LARGE;
	p = page_addr(a, (uint64_t)pg);
	asan_unpoison(p, (size_t)SLAB_PAGE_SIZE << order);
	a->large_allocs++;
	if (cap)
		*cap = (size_t)SLAB_PAGE_SIZE << order;
	return p;
}

void slab_buf_free(struct slab_arena *a, void *p, size_t cap)
{
	uint64_t pg;
	unsigned order;

	if (p == NULL)
		return;
	if (likely(cap <= SLAB_BUF_MAX)) {
		unsigned k = buf_class(cap);

#ifdef SLAB_DEBUG
		if (cap != (size_t)SLAB_BUF_MIN << k)
			slab_die(a->buf[k]->name,
					"slab_buf_free of %p with capacity %zu, not a class size",
					p, cap);
#endif
		slab_free(a->buf[k], p);
		return;
	}
	order = buddy_order_for(cap >> SLAB_PAGE_SHIFT);
	pg = (uint64_t)((char *)p - a->base) >> SLAB_PAGE_SHIFT;
	if ((char *)p < a->base || pg >= a->npages || page_addr(a, pg) != p ||
			cap != (size_t)SLAB_PAGE_SIZE << order ||
			desc_of_page(a, pg)->where != SLAB_W_LARGE) {
		slab_die("(large buffers)",
				"slab_buf_free of %p (capacity %zu): not a large buffer", p, cap);
	}
	desc_of_page(a, pg)->where = SLAB_W_NONE;
	asan_poison(p, cap);
	/* buddy_free aborts if this block is not allocated with this order */
	arena_pages_free(a, pg, order);
	a->large_frees++;
}

#else /* SLAB_BYPASS */

/* ---- bypass build: every cache goes straight to the system allocator ----
 *
 * -DSLAB_BYPASS (make pgslab-malloc) keeps this API and its callers as they
 * are and replaces the caches with plain sys_malloc/sys_free, to measure
 * what the caches buy (make bench).  Same code otherwise:
 *
 *   slab_alloc = sys_malloc(size) + ctor;  slab_free = dtor + sys_free
 *   slab_buf_alloc = sys_malloc(cap), cap the capacity the normal build
 *   reports (the class size, or 2^k pages up to 4 MiB, NULL above), so
 *   callers see the same capacities and behave the same.
 *
 * Nothing is cached or reaped (slab_*_reap return 0) and malloc_trim is
 * never called: what glibc keeps after a burst is what plain malloc gives.
 * Alignment beyond malloc's 16 bytes is not honoured (callers only use it
 * as a cache-line hint).  Argument checks match the normal build.
 *
 * Stats: allocs, frees, active, high_water and alloc_fail count as in the
 * normal build; every alloc is a miss (hits 0); slabs, grows, reaps and
 * the slab geometry are 0; total_objs = active, bytes = active * obj_size.
 * Arena: reserved 0, mapped_bytes = used_bytes = bytes currently handed
 * out (objects at their requested size, buffers at their capacity).
 * Objects still allocated when their cache or arena is destroyed are not
 * freed (nothing lists them); SLAB_DEBUG checks do not apply (use ASan).
 */

struct slab_cache {
	struct slab_arena *arena;
	struct slab_cache *next; /* arena list, creation order */
	size_t size;		 /* as requested: what sys_malloc gets */
	size_t obj_size;	 /* size rounded to align, as reported */
	uint64_t active, high_water, frees, alloc_fail;
	slab_ctor_fn ctor;
	slab_dtor_fn dtor;
	void *arg;
	char name[SLAB_NAME_MAX];
};

struct slab_arena {
	struct slab_cache *caches, *caches_tail;
	struct slab_cache *buf[SLAB_NR_BUF];
	size_t live_bytes; /* sum of sizes handed out and not freed */
	uint64_t large_allocs, large_frees;
};

struct slab_cache *slab_cache_create(struct slab_arena *a, const char *name, size_t size,
		size_t align, slab_ctor_fn ctor, slab_dtor_fn dtor, void *arg)
{
	struct slab_cache *c;

	if (a == NULL || name == NULL || size == 0 || size > SLAB_TOP_BYTES)
		return NULL;
	if (align == 0)
		align = 16;
	if (align & (align - 1) || align > SLAB_PAGE_SIZE)
		return NULL;
	if (align < 8)
		align = 8;
	c = sys_calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->arena = a;
	c->size = size;
	c->obj_size = (size + align - 1) & ~(align - 1);
	c->ctor = ctor;
	c->dtor = dtor;
	c->arg = arg;
	if (a->caches_tail)
		a->caches_tail->next = c;
	else
		a->caches = c;
	a->caches_tail = c;
	return c;
}

void slab_cache_destroy(struct slab_cache *c)
{
	struct slab_arena *a;
	struct slab_cache **pp, *prev = NULL;

	if (c == NULL)
		return;
	a = c->arena;
	for (pp = &a->caches; *pp; prev = *pp, pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			if (a->caches_tail == c)
				a->caches_tail = prev;
			break;
		}
	}
	sys_free(c);
}

void *slab_alloc(struct slab_cache *c)
{
	void *obj = sys_malloc(c->size);

	if (obj == NULL)
		goto fail;
	if (c->ctor && c->ctor(obj, c->arg) != 0) {
		sys_free(obj);
		goto fail;
	}
	c->arena->live_bytes += c->size;
	if (++c->active > c->high_water)
		c->high_water = c->active;
	return obj;
fail:
	c->alloc_fail++;
	return NULL;
}

void slab_free(struct slab_cache *c, void *obj)
{
	if (obj == NULL)
		return;
	if (c->dtor)
		c->dtor(obj, c->arg);
	c->arena->live_bytes -= c->size;
	c->active--;
	c->frees++;
	sys_free(obj);
}

size_t slab_cache_reap(struct slab_cache *c)
{
	(void)c;
	return 0;
}

size_t slab_arena_reap(struct slab_arena *a)
{
	(void)a;
	return 0;
}

void slab_cache_stats(const struct slab_cache *c, struct slab_stats *st)
{
	memset(st, 0, sizeof(*st));
	memcpy(st->name, c->name, sizeof(st->name));
	st->obj_size = c->obj_size;
	st->active_objs = c->active;
	st->total_objs = c->active;
	st->bytes = c->active * c->obj_size;
	st->allocs = c->frees + c->active;
	st->frees = c->frees;
	st->misses = st->allocs;
	st->alloc_fail = c->alloc_fail;
	st->high_water = c->high_water;
}

struct slab_arena *slab_arena_create(size_t reserve_bytes)
{
	struct slab_arena *a;
	unsigned i;

	if (reserve_bytes > ((size_t)1 << 42)) /* as the normal build */
		return NULL;
	a = sys_calloc(1, sizeof(*a));
	if (a == NULL)
		return NULL;
	for (i = 0; i < SLAB_NR_BUF; i++) {
		char name[SLAB_NAME_MAX];

		snprintf(name, sizeof(name), "buf-%u", SLAB_BUF_MIN << i);
		a->buf[i] = slab_cache_create(
				a, name, SLAB_BUF_MIN << i, SLAB_LINE, NULL, NULL, NULL);
		if (a->buf[i] == NULL)
			goto err;
	}
	return a;
err:
	slab_arena_destroy(a);
	return NULL;
}

void slab_arena_destroy(struct slab_arena *a)
{
	if (a == NULL)
		return;
	while (a->caches) {
		struct slab_cache *c = a->caches;

		a->caches = c->next;
		sys_free(c);
	}
	sys_free(a);
}

void slab_arena_stats(const struct slab_arena *a, struct slab_arena_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->mapped_bytes = a->live_bytes;
	st->used_bytes = a->live_bytes;
	st->large_allocs = a->large_allocs;
	st->large_frees = a->large_frees;
}


void *slab_buf_alloc(struct slab_arena *a, size_t size, size_t *cap)
{
	unsigned order;
	size_t bytes;
	char *p;

	if (likely(size <= SLAB_BUF_MAX))
		return buf_small_alloc(a->buf, size, cap);
	order = buddy_order_for((size + SLAB_PAGE_SIZE - 1) >> SLAB_PAGE_SHIFT);
	if (order > SLAB_TOP_ORDER)
		return NULL;
	bytes = (size_t)SLAB_PAGE_SIZE << order;
	p = sys_malloc(bytes);
	if (p == NULL)
		return NULL;
	a->live_bytes += bytes;
	a->large_allocs++;
	if (cap)
		*cap = bytes;
	return p;
}

void slab_buf_free(struct slab_arena *a, void *p, size_t cap)
{
	if (p == NULL)
		return;
	if (likely(cap <= SLAB_BUF_MAX)) {
		slab_free(a->buf[buf_class(cap)], p);
		return;
	}
	if (cap != (size_t)SLAB_PAGE_SIZE << buddy_order_for(cap >> SLAB_PAGE_SHIFT)) {
		fprintf(stderr, "slab: slab_buf_free of %p with capacity %zu: not a large buffer\n",
				p, cap);
		abort();
	}
	a->live_bytes -= cap;
	a->large_frees++;
	sys_free(p);
}

#endif /* SLAB_BYPASS */

void slab_arena_foreach(const struct slab_arena *a, slab_visit_fn fn, void *arg)
{
	const struct slab_cache *c;

	for (c = a->caches; c; c = c->next) {
		struct slab_stats st;

		slab_cache_stats(c, &st);
		fn(&st, arg);
	}
}
