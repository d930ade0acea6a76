/* slab.h -- Bonwick-style object caches over buddy-allocated pages.
 *
 * An arena owns a reserved address range, a buddy allocator over its pages,
 * and every cache created in it.  Nothing here is shared between arenas, so a
 * worker thread that owns its arena needs no locks.  Caches keep objects
 * constructed between uses: <ctor> runs when a slab is populated, <dtor>
 * when a slab's pages are released, never on each alloc/free.
 *
 * Memory flow: cache -> slab (2^k pages from the arena's buddy) -> top-order
 * buddy blocks -> OS.  A wholly free slab beyond a small per-cache reserve
 * goes back to the buddy allocator; a top-order block that becomes wholly
 * free is returned to the kernel (MADV_DONTNEED), so RSS falls after a burst.
 *
 * Size classes (slab_buf_*) serve protocol message buffers: 256 B .. 64 KiB
 * in power-of-two steps; larger requests take whole buddy blocks of pages.
 */
#ifndef PGSLAB_SLAB_H
#define PGSLAB_SLAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SLAB_PAGE_SIZE 4096u
#define SLAB_NAME_MAX 32
#define SLAB_BUF_MIN 256u
#define SLAB_BUF_MAX 65536u

struct slab_arena; /* opaque */
struct slab_cache; /* opaque */

typedef int (*slab_ctor_fn)(void *obj, void *arg);  /* once per object; 0 = ok */
typedef void (*slab_dtor_fn)(void *obj, void *arg); /* before the slab is released */

/* X-macro of per-cache counters (all uint64_t). */
#define SLAB_STAT_FIELDS(X)                                                                      \
	X(allocs)     /* successful slab_alloc calls */                                       \
	X(frees)      /* slab_free calls */                                                   \
	X(hits)       /* allocs served from an existing free object */                        \
	X(misses)     /* allocs that had to grow the cache first */                           \
	X(grows)      /* slabs added */                                                       \
	X(reaps)      /* slabs given back to the buddy allocator */                           \
	X(alloc_fail) /* allocs that returned NULL */                                         \
	X(high_water) /* most objects active at once */

struct slab_stats {
	char name[SLAB_NAME_MAX];
	size_t obj_size;       /* bytes handed to the caller (after alignment) */
	size_t slab_bytes;     /* bytes per slab */
	uint32_t objs_per_slab;
	uint64_t active_objs;  /* allocated and not yet freed */
	uint64_t total_objs;   /* active + free, over all slabs */
	uint64_t slabs;
	uint64_t bytes;        /* slabs * slab_bytes */
#define SLAB_X_DECL(f) uint64_t f;
	SLAB_STAT_FIELDS(SLAB_X_DECL)
#undef SLAB_X_DECL
};

struct slab_arena_stats {
	size_t reserved_bytes; /* address space reserved */
	size_t mapped_bytes;   /* pages handed to the buddy and not returned to the OS */
	size_t used_bytes;     /* pages held by slabs and large buffers */
	uint64_t os_returns;   /* top-order blocks given back to the kernel */
	uint64_t large_allocs, large_frees;
};

/* Create an arena reserving <reserve_bytes> of address space (rounded up to
 * the top buddy order; 0 means the default of 1 GiB).  NULL on failure. */
struct slab_arena *slab_arena_create(size_t reserve_bytes);
/* Destroys every cache still in the arena and unmaps it. */
void slab_arena_destroy(struct slab_arena *a);

/* <name> is copied.  <align> 0 means the natural alignment (16).  NULL on
 * bad arguments or failure. */
struct slab_cache *slab_cache_create(struct slab_arena *a, const char *name, size_t size,
		size_t align, slab_ctor_fn ctor, slab_dtor_fn dtor, void *arg);
/* All objects must have been freed; runs dtors and releases the slabs. */
void slab_cache_destroy(struct slab_cache *c);

/* A constructed object, or NULL when the arena is exhausted or a ctor failed. */
void *slab_alloc(struct slab_cache *c);
/* <obj> goes back in its constructed state.  Debug builds (SLAB_DEBUG) abort,
 * naming the cache, on a double free or a pointer the cache never gave out. */
void slab_free(struct slab_cache *c, void *obj);

/* Release every wholly free slab of <c> (ignoring the reserve) to the buddy
 * allocator; returns the number of slabs released. */
size_t slab_cache_reap(struct slab_cache *c);
/* Reap every cache, then return wholly free top-order blocks to the OS. */
size_t slab_arena_reap(struct slab_arena *a);

void slab_cache_stats(const struct slab_cache *c, struct slab_stats *st);
void slab_arena_stats(const struct slab_arena *a, struct slab_arena_stats *st);

typedef void (*slab_visit_fn)(const struct slab_stats *st, void *arg);
/* Calls <fn> with the stats of each cache of <a>, in creation order. */
void slab_arena_foreach(const struct slab_arena *a, slab_visit_fn fn, void *arg);

/* Message buffers by size class.  Returns a buffer of at least <size> bytes
 * and stores its real capacity in *<cap>; NULL on failure.  Sizes above
 * SLAB_BUF_MAX come straight from buddy pages. */
void *slab_buf_alloc(struct slab_arena *a, size_t size, size_t *cap);
/* <cap> must be the capacity slab_buf_alloc reported for <p>. */
void slab_buf_free(struct slab_arena *a, void *p, size_t cap);

/* Implementation notes (src/slab.c has the full theory statement):
 * - The arena's buddy has max order 10: pages come in blocks of up to
 *   4 MiB, so slab_buf_alloc fails (NULL) above 4 MiB.  A top block that
 *   becomes wholly free is madvised away at once when another free top
 *   block is already kept; slab_arena_reap gives back every free top block
 *   and also madvises the contents of every smaller free block (which stays
 *   counted in mapped_bytes).  slab_arena_reap returns the number of slabs
 *   released.
 * - A slab holds >= 8 objects where that wastes <= 1/8 of it: 700-byte
 *   objects use 8 KiB slabs, buf-65536 512 KiB ones.  A cache keeps at free
 *   time up to max(1 slab, 128 KiB) of empty slabs; slab_cache_reap releases
 *   them all.
 * - <align> must be a power of two <= SLAB_PAGE_SIZE; values below 8 are
 *   raised to 8.  slab_free(c, NULL) and slab_buf_free(a, NULL, cap) do
 *   nothing.  Freeing a large buffer with the wrong capacity aborts in
 *   every build.
 * - SLAB_DEBUG: each object gets a 16-byte red zone (checked on free) and a
 *   state tag (double free); foreign and misaligned pointers abort naming
 *   the cache.  Free objects of caches WITHOUT a ctor are filled with 0x6b
 *   and checked on alloc; caches with a ctor keep free objects constructed,
 *   so only their red zones are checked.  Under AddressSanitizer free
 *   objects are poisoned in any build.
 * - slab_cache_destroy with objects still active aborts under SLAB_DEBUG;
 *   slab_arena_destroy releases everything, active or not (dtors run on
 *   every object of every slab).
 * - SLAB_BYPASS (build flag, `make pgslab-malloc`, for benchmarks only):
 *   same API, but slab_alloc/slab_free and slab_buf_alloc/slab_buf_free
 *   are plain sys_malloc/sys_free, the ctor runs on every alloc and the
 *   dtor on every free; buffers keep the capacities above; reaps do
 *   nothing; objects left allocated at cache/arena destruction are not
 *   freed.  Stats: every alloc is a miss, no slabs (see src/slab.c).
 */

#endif
