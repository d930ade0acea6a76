/* budget.h -- a database's backend-connection budget, shared by its pools in buddy blocks.
 *
 * A budget domain owns <slots> backend-connection slots (max_db_connections,
 * or the sum of its pools' sizes) as a struct buddy over the indices
 * [0, slots).  Each pool embeds a struct budget_member that holds blocks of
 * 2^k slots; its capacity (the sum of its blocks) is how many servers it may
 * have open or opening.  The module knows nothing of sockets or pools: the
 * caller keeps m->used and m->demand current and calls the verbs below on
 * pool events (see the end of this file).
 *
 * Growth doubles (capacity 0 or 1 asks for 1 slot, 2 for 2, 4 for 4, ...),
 * bounded by m->max and by the free budget, falling back to smaller blocks
 * when the domain is fragmented.  Shrink gives back whole blocks not needed
 * for m->used.  Under contention, fair shares are computed by weighted
 * water-filling over the members with demand, and slots move one at a time
 * from members above their share to members below it.
 *
 * Thread safety: none; a domain and its members belong to one thread.
 */
#ifndef PGSLAB_BUDGET_H
#define PGSLAB_BUDGET_H

#include <stddef.h>
#include <stdint.h>

#include "buddy.h"
#include "list.h"

#define BUDGET_MAX_BLOCKS 32	    /* blocks one member may hold */
#define BUDGET_MAX_SLOTS (1u << 24) /* largest budget */
#define BUDGET_MAX_ORDER 20	    /* largest block: 2^20 slots */
#define BUDGET_MAX_WEIGHT 65535u    /* weights above count as this */

struct budget; /* opaque: one per backend database target */

struct budget_block {
	uint32_t start; /* first slot index, a multiple of 2^order */
	uint8_t order;
};

/* Embedded in the caller's pool object; budget_member_init() before use. */
struct budget_member {
	/* Kept current by the caller; may change at any time. */
	unsigned max;	 /* pool_size; 0 = no limit but the budget */
	unsigned weight; /* pool_weight; 0 counts as 1 */
	unsigned used;	 /* servers open or opening; <= capacity */
	unsigned demand; /* clients wanting a server: waiting + holding one */

	/* Kept by the budget; read-only for the caller. */
	unsigned capacity; /* sum of blocks */
	unsigned owed;	   /* slots promised by budget_pick_victim(), not yet taken */
	unsigned nblocks;
	struct budget_block blocks[BUDGET_MAX_BLOCKS]; /* largest order first */
	uint64_t grows, shrinks;		       /* calls that changed capacity */
	uint64_t slots_grown, slots_shrunk;
	uint64_t taken;	       /* slots taken back from it by budget_take_slot() */
	uint64_t lent;	       /* slots it gained that had been taken back from another */
	uint64_t grow_seq;     /* domain grow clock at its last growth; 0 = never */
	struct budget *budget; /* the domain joined, or NULL */
	struct list node;      /* in the domain's member list */
};

struct budget_stats {
	unsigned slots;	   /* the budget */
	unsigned held;	   /* sum of member capacities */
	unsigned free;	   /* slots - held, or 0 while draining */
	unsigned draining; /* held slots at indices >= slots, after a shrinking resize */
	unsigned members, demanding;
	unsigned owed;			     /* reclaims promised and not yet taken */
	uint64_t grows, grow_fail;	     /* growths; grows refused (exhausted, full table) */
	uint64_t table_full;		     /* grows refused: room, but the block table was full */
	uint64_t shrinks, reclaims, victims; /* shrink events; take_slot; pick_victim hits */
	struct buddy_stats buddy;	     /* free blocks per order, frag_index, ... */
};

/* ---- domains ---- */

/* A domain of <slots> slots (0 is allowed: resize later); NULL on a bad
 * size or allocation failure. */
struct budget *budget_create(unsigned slots);
/* Members still joined are detached (their blocks forgotten, capacity 0). */
void budget_destroy(struct budget *b);

/* Change the budget to <slots>.  Growing adds the new indices at once.
 * Shrinking never takes a held block away: free slots at indices >= <slots>
 * leave the allocator now; blocks held there stay with their members and
 * leave as they are shrunk, taken or released ("draining").  While the
 * members hold more than <slots>, no grow succeeds, so the total only falls;
 * budget_fair_share() already uses the new size, so over-share members are
 * victims.  0, -EINVAL (above BUDGET_MAX_SLOTS) or -ENOMEM (nothing changed). */
int budget_resize(struct budget *b, unsigned slots);

unsigned budget_slots(const struct budget *b);
/* Slots a grow could get now: slots - held, or 0. */
unsigned budget_free(const struct budget *b);
void budget_stats_get(const struct budget *b, struct budget_stats *st);
/* The underlying allocator, read-only, for diagnostics and tests. */
const struct buddy *budget_buddy(const struct budget *b);
/* Check the accounting (sum of capacities, allocator units, draining
 * blocks, member limits of the block table); 0 or -EINVAL.  O(blocks). */
int budget_check(const struct budget *b);

/* ---- members ---- */

/* Zero <m> and set its limits; it holds nothing and joins no domain. */
void budget_member_init(struct budget_member *m, unsigned max, unsigned weight);
/* Add <m> (initialised, holding nothing) to <b>'s members.  O(1)
 * amortised (the domain's share scratch doubles).  0, -EBUSY when <m> is in
 * another domain, or -ENOMEM. */
int budget_join(struct budget *b, struct budget_member *m);
/* budget_release_all(), then leave the domain; returns the slots freed. */
unsigned budget_leave(struct budget *b, struct budget_member *m);

/* Give <m> more slots: a block of the order of its capacity (doubling),
 * smaller when m->max, the free budget or fragmentation say so.  Call when
 * it has waiting clients and no free slot (used == capacity).  Returns the
 * slots gained; 0 when at m->max or the budget is exhausted. */
unsigned budget_grow(struct budget *b, struct budget_member *m);
/* <m> was just served: move it behind the other members, so that when there
 * are more demanding members than slots, fair shares of 0 and 1 (decided by
 * rounding ties in list order) rotate to those that waited longest instead of
 * starving the same members forever. */
void budget_touch(struct budget *b, struct budget_member *m);

/* Give back whole blocks not needed for m->used, largest first (a block of
 * 2^k goes when capacity - 2^k >= used); then, if capacity is above m->max
 * (lowered by a reload), single slots down to max(m->max, used).  Freed
 * slots count against m->owed.  Returns the slots released. */
unsigned budget_shrink(struct budget *b, struct budget_member *m);

/* Give back every block, whatever m->used says (the pool is going away or
 * closed all its servers).  Returns the slots released; <m> stays joined. */
unsigned budget_release_all(struct budget *b, struct budget_member *m);

/* <m>'s fair share under current demand: weighted water-filling over the
 * members with demand > 0, each capped at min(demand, max, slots).  Shares
 * sum to at most the budget (exactly, when demand exceeds it); when
 * slots >= the number of demanding members none of them gets 0.  0 for a
 * member without demand.  O(n log n), n members with demand. */
unsigned budget_fair_share(const struct budget *b, const struct budget_member *m);

/* <needy> waits and budget_grow() gave nothing: find the member that holds
 * the most slots above its fair share (counting slots it already owes;
 * ties: the least recently grown) and commit it to give one back:
 * victim->owed++.  NULL when <needy> already has its share, when promised
 * reclaims already cover every waiting member's shortfall, or when nobody
 * is above share.  The caller then frees one of the victim's slots (a free
 * slot, an idle server, or a server at the end of its transaction),
 * decrements victim->used and calls budget_take_slot().  O(members + n log n). */
struct budget_member *budget_pick_victim(struct budget *b, const struct budget_member *needy);

/* Reduce <m>'s capacity by one slot that m->used does not need: the
 * smallest block is freed and, if larger than 1, its other 2^k - 1 slots
 * are allocated again as blocks of orders k-1 .. 0 (all through the buddy
 * allocator).  Decrements m->owed.  Returns the slots taken: 1; 0 when
 * capacity <= used; more than 1 only when <m>'s block table is full and the
 * smallest pieces cannot be kept (never leaving capacity below used: 0
 * then). */
unsigned budget_take_slot(struct budget *b, struct budget_member *m);

/* The member most deprived relative to its share (lowest capacity/share,
 * ties: least recently grown) among those that wait (demand > capacity,
 * used >= capacity) and are below share; NULL if none.  Hand a slot freed
 * by budget_take_slot() to it with budget_grow().  O(members + n log n). */
struct budget_member *budget_pick_needy(struct budget *b);

/* Write <m>'s blocks as sizes, e.g. "8+2+1", or "-" when it holds none,
 * into <buf> of <len> bytes (truncated with a NUL); returns <buf>. */
char *budget_member_blocks_str(const struct budget_member *m, char *buf, size_t len);

/* How the pool code drives it (events -> verbs):
 *  - pool created: budget_member_init(m, pool_size, pool_weight), budget_join();
 *    with no max_db_connections, budget_resize() the domain to the sum of its
 *    pools' sizes.  Keep m->demand (waiting + clients holding a server) and
 *    m->used (servers open or logging in) current.
 *  - a client must wait, no idle server, used == capacity: g = budget_grow();
 *    if g, open min(g, waiting) servers at once (cold start in parallel).  If
 *    0, v = budget_pick_victim(b, m); when v has a free slot (used <
 *    capacity) or an idle server (close it, v->used--), budget_take_slot(b, v)
 *    and budget_grow(b, m) now; otherwise v pays at its next server release.
 *  - a server is released (end of transaction) in a pool with m->owed > 0:
 *    close it instead of reusing it, m->used--, budget_take_slot(), then
 *    budget_grow() the member budget_pick_needy() returns and open servers
 *    for its waiters.  Same whenever m->used drops below capacity while
 *    m->owed > 0 (settle the debt from the free slot).
 *  - a server closes (idle timeout, lifetime, error) with nobody waiting:
 *    m->used--, budget_shrink().  Also from the janitor for pools with no
 *    waiting clients, so reserved but unused slots go back (min_pool_size:
 *    the floor is in used, since those servers are open).
 *  - pool dropped: budget_leave().  Reload: set m->max and m->weight, call
 *    budget_shrink() (capacity above a lowered max drains as servers close),
 *    budget_resize() when max_db_connections or the pool sizes change. */

#endif
