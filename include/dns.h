/* dns.h -- server addresses without blocking the event loop.
 *
 * A database's host is a Unix socket directory, a numeric address, or a
 * name.  The first two are answered at once; a name is looked up with
 * libevent's asynchronous resolver (evdns: /etc/resolv.conf and
 * /etc/hosts, or the resolv_conf setting's file), one lookup per name however many servers wait for it, and
 * the answer is kept for dns_max_ttl (a failure for dns_nxdomain_ttl), as
 * PgBouncer's resolver does.  evdns does not report record TTLs, so the
 * cap is the lifetime.  A loop blocked in getaddrinfo() stalls every
 * client of every pool; this never does.
 *
 * The caller embeds a struct dns_wait (no allocation per lookup) and may
 * cancel it at any time; its callback never runs inside dns_resolve().
 */
#ifndef PGSLAB_DNS_H
#define PGSLAB_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "list.h"

struct event_base;
struct dns;
struct dns_entry;
struct dns_wait;

/* <sa> NULL: the name could not be resolved. */
typedef void (*dns_done_fn)(struct dns_wait *w, const struct sockaddr *sa, socklen_t len);

struct dns_wait {
	struct list node;            /* on its entry's waiters */
	struct dns_entry *entry;     /* NULL when not waiting */
	dns_done_fn done;
	int port;
};

/* <resolv_conf>: the resolver's configuration file, or NULL/"" for the
 * system's.  NULL with <err> when that file cannot be used. */
struct dns *dns_new(struct event_base *base, const char *resolv_conf, char *err, size_t errlen);
/* Pending waits are dropped without their callbacks. */
void dns_free(struct dns *d);
/* Lifetimes of answers and of failures (dns_max_ttl, dns_nxdomain_ttl). */
void dns_set_ttl(struct dns *d, int64_t ok_us, int64_t fail_us);

/* The address of <host> (a name, a numeric address, or a Unix socket
 * directory: "" for the default one) and <port>.  0: <out> holds it now;
 * 1: <w> waits and w->done() follows from the loop unless dns_cancel(w);
 * -EHOSTUNREACH: the name is known not to resolve (cached failure);
 * -ENAMETOOLONG, -ENOMEM. */
int dns_resolve(struct dns *d, const char *host, int port, struct dns_wait *w,
		struct sockaddr_storage *out, socklen_t *outlen);
/* Stop waiting (idempotent; no callback follows). */
void dns_cancel(struct dns_wait *w);

#endif
