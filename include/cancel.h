/* cancel.h -- cancel keys and CancelRequest forwarding (cancel.c).
 *
 * Worker bits.  The (pid, key) pair pgslab hands a client in BackendKeyData
 * carries the index of the worker (event loop, struct proxy) that owns the
 * client in CANCEL_WORKER_BITS bits of the pid just below its sign bit.  A
 * CancelRequest arrives on a fresh connection that any worker may accept;
 * with the owner named in the pid, that worker can pass the request to the
 * owner without a shared table or a lock.  Today there is one worker, whose
 * index is 0, and a cancel naming another worker is dropped like an unknown
 * key.  The bits come out of the random part of the pid, so a pid still has
 * 31 - CANCEL_WORKER_BITS random bits next to the 32 of the key.
 *
 * Peer bits.  With peer_id set, several processes share the listening port
 * (so_reuseport) and a CancelRequest may reach the wrong one.  As in
 * PgBouncer, so that pgslab and PgBouncer peers understand each other's
 * keys: the second and third byte of the pid (as sent, big-endian) hold the
 * issuing process's peer_id, low byte first, and the two low bits of the
 * key a forwarding count (3 when issued).  A process forwards a request
 * naming another peer to that peer's [peers] address with the count
 * lowered, and drops it at 0, so a misconfigured ring cannot loop.
 */
#ifndef PGSLAB_CANCEL_H
#define PGSLAB_CANCEL_H

#include <stdint.h>

#include "dns.h"
#include "list.h"
#include "stream.h"

struct proxy;
struct client;

/* A cancel request being forwarded on a fresh connection to a server, or
 * to the peer that issued its key. */
struct cancel_req {
	struct stream st;
	struct list node;
	struct dns_wait dns;         /* a peer's host name being resolved */
	uint32_t pid, key;
	int64_t start_us;
	unsigned peer;               /* forwarded to this peer_id, or 0 */
};

#define CANCEL_TTL_MASK 0x3u

/* The peer_id a cancel pid names (PgBouncer's bytes). */
static inline unsigned cancel_pid_peer(uint32_t pid)
{
	return ((pid >> 16) & 0xffu) | (((pid >> 8) & 0xffu) << 8);
}

static inline uint32_t cancel_pid_set_peer(uint32_t pid, unsigned peer)
{
	return (pid & 0xff0000ffu) | ((peer & 0xffu) << 16) | (((peer >> 8) & 0xffu) << 8);
}

/* Forwarded cancels connecting at once, per worker: beyond, dropped. */
#define CANCEL_MAX_INFLIGHT 16

#define CANCEL_WORKER_BITS 4
#define CANCEL_WORKER_SHIFT (31 - CANCEL_WORKER_BITS)
#define CANCEL_WORKER_MAX ((1u << CANCEL_WORKER_BITS) - 1)
#define CANCEL_WORKER_MASK (CANCEL_WORKER_MAX << CANCEL_WORKER_SHIFT)

/* The worker index a cancel pid names. */
static inline unsigned cancel_pid_worker(uint32_t pid)
{
	return (pid & CANCEL_WORKER_MASK) >> CANCEL_WORKER_SHIFT;
}

/* <random> with the worker bits replaced by <worker>; always < 2^31. */
static inline uint32_t cancel_pid_make(uint32_t random, unsigned worker)
{
	return (random & 0x7fffffffu & ~CANCEL_WORKER_MASK) |
	       ((uint32_t)(worker & CANCEL_WORKER_MAX) << CANCEL_WORKER_SHIFT);
}

void cancel_register(struct proxy *p, struct client *c);
void cancel_unregister(struct proxy *p, struct client *c);
void cancel_forward(struct proxy *p, uint32_t pid, uint32_t key);
/* Requests being forwarded to peer <peer> now (SHOW PEER_POOLS). */
int cancel_peer_count(struct proxy *p, unsigned peer);
/* Give up forwards still connecting after <timeout_us> (cancel_wait_timeout). */
void cancel_expire(struct proxy *p, int64_t now, int64_t timeout_us);
void cancel_destroy(struct proxy *p);

#endif
