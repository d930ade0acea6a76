/* sysalloc.c -- counting wrappers around the system allocator. */
#include "sysalloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
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

/* ---- OpenSSL's allocations ----
 *
 * Each carries a 16-byte header with its size.  With SSL_MODE_RELEASE_BUFFERS
 * a TLS connection frees its record buffers (about 17 KiB each) whenever
 * they drain and takes them again for the next message, and every record
 * read or written also allocates and frees a few small objects.  Freed
 * blocks wait in two small magazines (record-sized blocks of at least
 * OSSL_BIG bytes, and blocks of at most OSSL_SMALL bytes; OSSL_SLOTS each,
 * shared by all connections, so at most ~1 MiB), and the next allocation
 * of the same size takes one back without calling malloc.  A full
 * magazine replaces its slots in turn, so the sizes in current use stay.
 * An idle TLS connection holds no record buffer; a busy one costs no
 * allocator call per message.  sysalloc_trim() empties the magazines.
 */
#define OSSL_HDR 16
#define OSSL_SMALL 256
#define OSSL_BIG 4096
#define OSSL_SLOTS 48

struct ossl_mag {
	int n, rot;
	void *blk[OSSL_SLOTS];     /* header addresses; the size is in the header */
};

static struct {
	pthread_mutex_t lock;
	struct ossl_mag small, big;
	size_t bytes;
	uint64_t reuses;
} mags = { .lock = PTHREAD_MUTEX_INITIALIZER };

static inline size_t *hdr_of(void *p)
{
	return (size_t *)(void *)((char *)p - OSSL_HDR);
}

static struct ossl_mag *mag_for(size_t n)
{
	return n >= OSSL_BIG ? &mags.big : n <= OSSL_SMALL ? &mags.small : NULL;
}

static void *mag_take(struct ossl_mag *m, size_t n)
{
	void *h = NULL;
	int i;

	pthread_mutex_lock(&mags.lock);
	for (i = m->n - 1; i >= 0; i--) {
		if (*(size_t *)m->blk[i] == n) {
			h = m->blk[i];
			m->blk[i] = m->blk[--m->n];
			mags.bytes -= n;
			mags.reuses++;
			break;
		}
	}
	pthread_mutex_unlock(&mags.lock);
	return h;
}

/* Keep <h>; returns the block it displaced (to be freed), or NULL. */
static void *mag_put(struct ossl_mag *m, void *h)
{
	void *old = NULL;

	pthread_mutex_lock(&mags.lock);
	if (m->n < OSSL_SLOTS) {
		m->blk[m->n++] = h;
	} else {
		old = m->blk[m->rot];
		m->blk[m->rot] = h;
		m->rot = (m->rot + 1) % OSSL_SLOTS;
		mags.bytes -= *(size_t *)old;
	}
	mags.bytes += *(size_t *)h;
	pthread_mutex_unlock(&mags.lock);
	return old;
}

static void *ossl_malloc(size_t n, const char *file, int line)
{
	struct ossl_mag *m = mag_for(n);
	size_t *h = NULL;

	(void)file;
	(void)line;
	if (m)
		h = mag_take(m, n);
	if (h == NULL && (h = sys_malloc(n + OSSL_HDR)) == NULL)
		return NULL;
	*h = n;
	return (char *)h + OSSL_HDR;
}

static void ossl_free(void *p, const char *file, int line)
{
	struct ossl_mag *m;
	size_t *h;

	(void)file;
	(void)line;
	if (p == NULL)
		return;
	h = hdr_of(p);
	m = mag_for(*h);
	sys_free(m ? mag_put(m, h) : h);
}

static void *ossl_realloc(void *p, size_t n, const char *file, int line)
{
	size_t *h;

	if (p == NULL)
		return ossl_malloc(n, file, line);
	h = sys_realloc(hdr_of(p), n + OSSL_HDR);
	if (h == NULL)
		return NULL;
	*h = n;
	return (char *)h + OSSL_HDR;
}

void sysalloc_ossl_stats(uint64_t *reuses, unsigned *cached, size_t *bytes)
{
	pthread_mutex_lock(&mags.lock);
	*reuses = mags.reuses;
	*cached = (unsigned)(mags.small.n + mags.big.n);
	*bytes = mags.bytes;
	pthread_mutex_unlock(&mags.lock);
}

static void mag_empty(struct ossl_mag *m)
{
	while (m->n > 0)
		sys_free(m->blk[--m->n]);
	m->rot = 0;
}

void sysalloc_trim(void)
{
	pthread_mutex_lock(&mags.lock);
	mag_empty(&mags.small);
	mag_empty(&mags.big);
	mags.bytes = 0;
	pthread_mutex_unlock(&mags.lock);
}

void sysalloc_hook_libraries(void)
{
	event_set_mem_functions(sys_malloc, sys_realloc, sys_free);
	CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free);
}
