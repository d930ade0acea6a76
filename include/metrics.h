/* metrics.h -- the Prometheus endpoint: GET /metrics on metrics_listen, on the proxy's loop.
 *
 * When metrics_listen ("host:port", "[v6addr]:port", "*:port" or ":port";
 * empty = off) is set, pgslab listens there and answers GET (and HEAD)
 * /metrics with the text exposition format 0.0.4: per-pool client and
 * server states and hit rate, per-database totals (the same counters as
 * SHOW STATS), per-cache slab statistics, arena and system-allocator
 * counters, log and network counters, uptime.  Anything else gets 400, 404,
 * 405 or 431; every response closes the connection.
 *
 * A scraper cannot stall the pooler: sockets are non-blocking on the same
 * libevent loop; a request may be at most METRICS_REQ_MAX bytes and must
 * arrive, and its response leave, within METRICS_TIMEOUT_MS; at most
 * METRICS_MAX_CONNS connections are served at once (more are closed at
 * accept).  Connection objects come from a slab cache, response bodies
 * from the arena's message buffers: no system-allocator call per scrape.
 */
#ifndef PGSLAB_METRICS_H
#define PGSLAB_METRICS_H

#include <stddef.h>

struct proxy;

#define METRICS_REQ_MAX 4096
#define METRICS_TIMEOUT_MS 5000
#define METRICS_MAX_CONNS 16
#define METRICS_BODY_MAX (4u << 20)

/* Start listening on p->cfg's metrics_listen; idempotent, and 0 when it is
 * empty.  On failure returns -errno with a reason in <err> (may be NULL)
 * and logs it once; later calls return the same error without retrying. */
int metrics_start(struct proxy *p, char *err, size_t errlen);
/* Close the listener and every connection (before the event base goes). */
void metrics_stop(struct proxy *p);

#endif
