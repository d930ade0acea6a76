/* sysalloc.h -- the only door to the system allocator, and its counters.
 *
 * Every call pgslab code makes to malloc/calloc/realloc/strdup/free/mmap/
 * munmap goes through these wrappers, which count it.  libevent's and
 * OpenSSL's allocations are routed here too (sysalloc_hook_libraries()), so
 * a test can read sysalloc_calls() before and after a pgbench run and assert
 * that the steady-state hot path made none.  Counters are relaxed atomics:
 * any thread may call the wrappers.
 */
#ifndef PGSLAB_SYSALLOC_H
#define PGSLAB_SYSALLOC_H

#include <stddef.h>
#include <stdint.h>

void *sys_malloc(size_t n);
void *sys_calloc(size_t nmemb, size_t size);
void *sys_realloc(void *p, size_t n);
char *sys_strdup(const char *s);
char *sys_strndup(const char *s, size_t n);
void sys_free(void *p);
/* Reserve <len> bytes of address space that costs nothing until touched
 * (MAP_NORESERVE); NULL on failure. */
void *sys_mmap_reserve(size_t len);
int sys_munmap(void *p, size_t len);
/* Give the pages back to the kernel but keep the mapping (MADV_DONTNEED). */
int sys_madvise_dontneed(void *p, size_t len);

struct sysalloc_stats {
	uint64_t malloc_calls;  /* malloc + strdup */
	uint64_t calloc_calls;
	uint64_t realloc_calls;
	uint64_t free_calls;
	uint64_t mmap_calls;
	uint64_t munmap_calls;
	uint64_t madvise_calls;
};

void sysalloc_stats_get(struct sysalloc_stats *st);
/* malloc + calloc + realloc + mmap calls so far: the hot-path counter. */
uint64_t sysalloc_calls(void);
/* Route libevent's and OpenSSL's allocations through the counting wrappers.
 * Call once, before any libevent or OpenSSL object is created. */
void sysalloc_hook_libraries(void);
/* OpenSSL's record buffers (see sysalloc.c): allocations served again from
 * the magazine of freed ones, buffers waiting there and their bytes. */
void sysalloc_ossl_stats(uint64_t *reuses, unsigned *cached, size_t *bytes);
/* Free every buffer waiting in the magazine. */
void sysalloc_trim(void);

#endif
