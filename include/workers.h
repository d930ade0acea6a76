/* workers.h -- theory: how pgslab would run several event loops (workers).
 *
 * There is one worker today.  This header holds no code; it records the
 * design every module keeps to, so that adding workers is a matter of
 * starting more loops, not of untangling shared state.
 *
 * One struct proxy per worker.  A struct proxy owns its event base, slab
 * arena, pools, clients, servers, cancel-key table and random bytes.  No
 * module keeps mutable state at file scope; what is per process is
 * documented where it lives:
 *   - log.c's <log_current> is __thread: each thread logs to its logger;
 *   - sysalloc.c's counters are _Atomic process totals (they count calls
 *     into the system allocator, which is itself per process);
 *   - main.c's static struct proxy is the one worker's instance;
 *   - tls.c's error-string ring is __thread.
 * The config is a snapshot nobody writes: a reload or a console SET builds
 * a new one and proxy_swap_config() makes it the running one (config.h).
 * With workers the snapshot would be shared read-only and the old one freed
 * once every worker has passed a loop boundary; the userlist likewise.
 * The ops tables that wire the layers (struct proxy_wiring, main.c) are
 * const and shared.
 *
 * Learnt SCRAM keys: the keys recovered from a client's SCRAM proof (so
 * that pgslab can log in to PostgreSQL with a verifier and no password)
 * live in the user's struct cred.  With workers the creds would move to
 * one process-wide table, written under a lock once per user (the first
 * login that proves the password) and read without one: the keys of a
 * verifier never change, and a reload with a new verifier makes a new
 * cred rather than rewriting the old.
 *
 * Signals are handled in one place, proxy.c's signal_cb on the first
 * worker's loop, which would tell the others (pause, reload, shutdown)
 * through their loops' own events.
 *
 * Backend slots: the buddy budget as the global structure.  A database's
 * max_db_connections is a range of slots managed by a buddy allocator
 * (budget.h, buddy.h).  A worker would take slots the way a CPU takes pages:
 * it claims a power-of-two block of the database's slots from the global
 * buddy (the only step that needs a lock, and it is off the hot path:
 * once per block, not per connection) and hands out single slots from its
 * block with no synchronisation.  When its pools shrink it returns whole
 * blocks, which coalesce with their buddies as free pages do.  Because
 * every slot in use belongs to exactly one block and every block to exactly
 * one worker, the global max_db_connections stays exact: the sum over
 * workers can never exceed it, and no counter is shared on the hot path.
 * Fair share between pools (pool_weight) is decided inside a worker over
 * its blocks, and between workers by the block sizes they may claim.
 *
 * Cancels: a CancelRequest arrives on a new connection, which any worker
 * may accept.  The cancel pid pgslab gives a client names the owning
 * worker in CANCEL_WORKER_BITS bits (cancel.h), so the accepting worker
 * knows at once whom to pass it to; no shared key table.  Implemented: the
 * bits are written and checked, with worker index 0 (proxy->worker).
 * Peering (peer_id) is the same idea across processes: the key names the
 * issuing process and a request is forwarded there (cancel.h).
 *
 * Accepting: each worker would listen on its own SO_REUSEPORT socket, so
 * the kernel spreads new clients; a client stays on its worker for life,
 * and so do the servers of its pools.
 */
#ifndef PGSLAB_WORKERS_H
#define PGSLAB_WORKERS_H
#endif
