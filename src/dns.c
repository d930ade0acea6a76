/* dns.c -- server addresses without blocking the event loop (see dns.h).
 *
 * One entry per host name ever asked for (the names come from the
 * [databases] section, so they are few): its last answer and when it
 * expires, or the lookup under way and the waits queued on it.  An entry
 * lives until dns_free(); a lookup in flight belongs to its entry, and
 * cancelling a wait never cancels the lookup (another server may come for
 * the same name before it answers).
 */
#include "dns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <event2/dns.h>
#include <event2/util.h>

#include "log.h"
#include "stream.h"
#include "sysalloc.h"

struct dns_entry {
	struct list node;            /* in dns->entries */
	struct dns *dns;
	struct list waiters;         /* struct dns_wait */
	struct evdns_getaddrinfo_request *req; /* lookup under way */
	struct sockaddr_storage addr; /* the answer, port 0 */
	socklen_t addrlen;           /* 0: the last lookup failed */
	int64_t expires_us;          /* 0: never looked up */
	char name[256];
};

struct dns {
	struct event_base *base;
	struct evdns_base *evdns;    /* made on the first name */
	struct list entries;
	int64_t ok_us, fail_us;
};

struct dns *dns_new(struct event_base *base, const char *resolv_conf, char *err, size_t errlen)
{
	struct dns *d = sys_calloc(1, sizeof(*d));
	int rc;

	if (d == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	d->base = base;
	list_init(&d->entries);
	d->ok_us = d->fail_us = 15 * 1000000LL;
	if (resolv_conf == NULL || resolv_conf[0] == 0)
		return d; /* the system's, read on the first name */
	d->evdns = evdns_base_new(base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (d->evdns == NULL) {
		snprintf(err, errlen, "out of memory");
		sys_free(d);
		return NULL;
	}
	rc = evdns_base_resolv_conf_parse(d->evdns, DNS_OPTIONS_ALL, resolv_conf);
	if (rc != 0 && rc != 6) { /* 6: no nameserver in it, so evdns uses 127.0.0.1 */
		snprintf(err, errlen, "resolv_conf \"%s\": %s", resolv_conf,
				rc == 1 ? "cannot open it" : rc == 3 ? "too large" :
				rc == 4 ? "out of memory" : "cannot read it");
		dns_free(d);
		return NULL;
	}
	return d;
}

void dns_set_ttl(struct dns *d, int64_t ok_us, int64_t fail_us)
{
	d->ok_us = ok_us;
	d->fail_us = fail_us;
}

void dns_free(struct dns *d)
{
	if (d == NULL)
		return;
	while (!list_empty(&d->entries)) {
		struct dns_entry *e = list_first_entry(&d->entries, struct dns_entry, node);

		while (!list_empty(&e->waiters))
			dns_cancel(list_first_entry(&e->waiters, struct dns_wait, node));
		if (e->req)
			evdns_getaddrinfo_cancel(e->req); /* its callback sees EAI_CANCEL, frees nothing */
		list_del(&e->node);
		sys_free(e);
	}
	if (d->evdns)
		evdns_base_free(d->evdns, 0);
	sys_free(d);
}

static void set_port(struct sockaddr_storage *ss, int port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)(void *)ss)->sin_port = htons((uint16_t)port);
	else if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)(void *)ss)->sin6_port = htons((uint16_t)port);
}

/* A Unix socket directory or a numeric address: 0 (filled), 1 (a name), <0. */
static int resolve_now(const char *host, int port, struct sockaddr_storage *out, socklen_t *outlen)
{
	memset(out, 0, sizeof(*out));
	if (host[0] == 0 || host[0] == '/' || host[0] == '@') {
		struct sockaddr_un *un = (struct sockaddr_un *)(void *)out;
		struct stat sb;
		const char *dir = host[0] ? host :
				(stat("/var/run/postgresql", &sb) == 0 ? "/var/run/postgresql" : "/tmp");
		int n;

		un->sun_family = AF_UNIX;
		n = snprintf(un->sun_path, sizeof(un->sun_path), "%s/.s.PGSQL.%d", dir, port);
		if (n < 0 || (size_t)n >= sizeof(un->sun_path))
			return -ENAMETOOLONG;
		if (dir[0] == '@') { /* Linux abstract namespace: the name's length only */
			un->sun_path[0] = 0;
			*outlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n);
		} else {
			*outlen = sizeof(*un);
		}
		return 0;
	}
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)(void *)out)->sin_addr) == 1) {
		out->ss_family = AF_INET;
		*outlen = sizeof(struct sockaddr_in);
	} else if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)(void *)out)->sin6_addr) == 1) {
		out->ss_family = AF_INET6;
		*outlen = sizeof(struct sockaddr_in6);
	} else {
		return 1;
	}
	set_port(out, port);
	return 0;
}

static void lookup_done(int result, struct evutil_addrinfo *res, void *arg)
{
	struct dns_entry *e = arg;

	if (result == EVUTIL_EAI_CANCEL) {
		if (res)
			evutil_freeaddrinfo(res);
		return; /* dns_free() */
	}
	e->req = NULL;
	e->addrlen = 0;
	if (result == 0 && res && res->ai_addrlen <= sizeof(e->addr)) {
		memcpy(&e->addr, res->ai_addr, res->ai_addrlen);
		e->addrlen = (socklen_t)res->ai_addrlen;
		e->expires_us = stream_now_us() + e->dns->ok_us;
	} else {
		log_warning("could not resolve host \"%s\": %s", e->name,
				result ? evutil_gai_strerror(result) : "no address");
		e->expires_us = stream_now_us() + e->dns->fail_us;
	}
	if (res)
		evutil_freeaddrinfo(res);
	while (!list_empty(&e->waiters)) {
		struct dns_wait *w = list_first_entry(&e->waiters, struct dns_wait, node);
		struct sockaddr_storage ss = e->addr;

		list_del(&w->node);
		w->entry = NULL;
		if (e->addrlen == 0) {
			w->done(w, NULL, 0);
		} else {
			set_port(&ss, w->port);
			w->done(w, (const struct sockaddr *)&ss, e->addrlen);
		}
	}
}

static struct dns_entry *entry_get(struct dns *d, const char *name)
{
	struct list *it;
	struct dns_entry *e;

	list_for_each(it, &d->entries) {
		e = list_entry(it, struct dns_entry, node);
		if (strcmp(e->name, name) == 0)
			return e;
	}
	e = sys_calloc(1, sizeof(*e));
	if (e == NULL)
		return NULL;
	e->dns = d;
	list_init(&e->waiters);
	snprintf(e->name, sizeof(e->name), "%s", name);
	list_append(&d->entries, &e->node);
	return e;
}

int dns_resolve(struct dns *d, const char *host, int port, struct dns_wait *w,
		struct sockaddr_storage *out, socklen_t *outlen)
{
	struct evutil_addrinfo hints;
	struct dns_entry *e;
	int rc = resolve_now(host, port, out, outlen);

	if (rc <= 0)
		return rc;
	if (strlen(host) >= sizeof(e->name))
		return -ENAMETOOLONG;
	e = entry_get(d, host);
	if (e == NULL)
		return -ENOMEM;
	if (e->req == NULL && e->expires_us > stream_now_us()) {
		if (e->addrlen == 0)
			return -EHOSTUNREACH;
		memcpy(out, &e->addr, e->addrlen);
		*outlen = e->addrlen;
		set_port(out, port);
		return 0;
	}
	if (e->req == NULL) {
		if (d->evdns == NULL) {
			d->evdns = evdns_base_new(d->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
					EVDNS_BASE_DISABLE_WHEN_INACTIVE);
			if (d->evdns == NULL)
				return -ENOMEM;
		}
		memset(&hints, 0, sizeof(hints));
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
		/* the hosts file or a cached record may answer inside the call:
		 * then the result is at hand and nobody waits */
		e->expires_us = 0;
		e->req = evdns_getaddrinfo(d->evdns, host, NULL, &hints, lookup_done, e);
		if (e->req == NULL) {
			if (e->expires_us == 0)
				return -ENOMEM;
			if (e->addrlen == 0)
				return -EHOSTUNREACH;
			memcpy(out, &e->addr, e->addrlen);
			*outlen = e->addrlen;
			set_port(out, port);
			return 0;
		}
	}
	w->entry = e;
	w->port = port;
	list_append(&e->waiters, &w->node);
	return 1;
}

void dns_cancel(struct dns_wait *w)
{
	if (w->entry == NULL)
		return;
	list_del(&w->node);
	w->entry = NULL;
}
