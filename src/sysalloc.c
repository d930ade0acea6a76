/* sysalloc.c -- counting wrappers around the system allocator. */
#include "sysalloc.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <event2/event.h>
#include <openssl/crypto.h>

static _Atomic uint64_t n_malloc, n_calloc, n_realloc, n_free, n_mmap, n_munmap, n_madvise;

#define COUNT(c) atomic_fetch_add_explicit(&(c), 1, memory_order_relaxed)
#define READ(c) atomic_load_explicit(&(c), memory_order_relaxed)

void *sys_malloc(size_t n)
{
	COUNT(n_malloc);
	return malloc(n);
}

void *sys_calloc(size_t nmemb, size_t size)
{
	COUNT(n_calloc);
	return calloc(nmemb, size);
}

void *sys_realloc(void *p, size_t n)
{
	COUNT(n_realloc);
	return realloc(p, n);
}

char *sys_strdup(const char *s)
{
	COUNT(n_malloc);
	return strdup(s);
}

char *sys_strndup(const char *s, size_t n)
{
	COUNT(n_malloc);
	return strndup(s, n);
}

void sys_free(void *p)
{
	if (p == NULL)
		return;
	COUNT(n_free);
	free(p);
}

void *sys_mmap(size_t len)
{
	void *p;

	COUNT(n_mmap);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void *sys_mmap_reserve(size_t len)
{
	void *p;

	COUNT(n_mmap);
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			-1, 0);
	return p == MAP_FAILED ? NULL : p;
}

int sys_munmap(void *p, size_t len)
{
	COUNT(n_munmap);
	return munmap(p, len) == 0 ? 0 : -errno;
}

int sys_madvise_dontneed(void *p, size_t len)
{
	COUNT(n_madvise);
	return madvise(p, len, MADV_DONTNEED) == 0 ? 0 : -errno;
}

void sysalloc_stats_get(struct sysalloc_stats *st)
{
	st->malloc_calls = READ(n_malloc);
	st->calloc_calls = READ(n_calloc);
	st->realloc_calls = READ(n_realloc);
	st->free_calls = READ(n_free);
	st->mmap_calls = READ(n_mmap);
	st->munmap_calls = READ(n_munmap);
	st->madvise_calls = READ(n_madvise);
}

uint64_t sysalloc_calls(void)
{
	return READ(n_malloc) + READ(n_calloc) + READ(n_realloc) + READ(n_mmap);
}

static void *ossl_malloc(size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	return sys_malloc(n);
}

static void *ossl_realloc(void *p, size_t n, const char *file, int line)
{
	(void)file;
	(void)line;
	return sys_realloc(p, n);
}

static void ossl_free(void *p, const char *file, int line)
{
	(void)file;
	(void)line;
	sys_free(p);
}

void sysalloc_hook_libraries(void)
{
	event_set_mem_functions(sys_malloc, sys_realloc, sys_free);
	CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free);
}
