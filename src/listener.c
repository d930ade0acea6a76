/* listener.c -- listening sockets (TCP v4/v6 and Unix) and the accept loop. */
#include "proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "client.h"
#include "listener.h"
#include "log.h"
#include "slab.h"

#define ACCEPT_BATCH 64
#define ACCEPT_BACKOFF_US 250000 /* out of descriptors: stop accepting this long */

static void tune_client_socket(struct proxy *p, int fd, int family)
{
	const struct config_settings *s = &p->cfg->s;
	int one = 1;

	if (family == AF_UNIX)
		return;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (s->tcp_keepalive) {
		setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
		if (s->tcp_keepidle > 0)
			setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &s->tcp_keepidle, sizeof(int));
		if (s->tcp_keepintvl > 0)
			setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &s->tcp_keepintvl, sizeof(int));
		if (s->tcp_keepcnt > 0)
			setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &s->tcp_keepcnt, sizeof(int));
	}
	if (s->tcp_user_timeout > 0)
		setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &s->tcp_user_timeout, sizeof(int));
}

static void accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct proxy *p = arg;

	(void)fd;
	(void)what;
	p->accept_paused = false;
	if (!p->suspended)
		listener_pause(p, false);
}

/* Out of descriptors (or kernel memory): a listening socket stays readable,
 * so retrying at once would spin.  Stop accepting for a moment, say so once. */
static void accept_backoff(struct proxy *p, int err)
{
	struct timeval tv = { 0, ACCEPT_BACKOFF_US };

	if (p->accept_paused)
		return;
	if (!event_initialized(&p->accept_ev))
		event_assign(&p->accept_ev, p->base, -1, 0, accept_resume_cb, p);
	p->accept_paused = true;
	p->accept_backoffs++;
	listener_pause(p, true);
	event_add(&p->accept_ev, &tv);
	log_warning("accept failed: %s; not accepting for %d ms (backoff %llu)", strerror(err),
			ACCEPT_BACKOFF_US / 1000, (unsigned long long)p->accept_backoffs);
}

static void accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct listener *l = arg;
	struct proxy *p = l->proxy;
	int i;

	(void)what;
	for (i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				accept_backoff(p, errno);
			else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
					errno != ECONNABORTED)
				log_warning("accept failed: %s", strerror(errno));
			break;
		}
		tune_client_socket(p, fd, ss.ss_family);
		client_accept(p, fd, (struct sockaddr *)&ss, sl);
	}
	proxy_settle(p);
}

static struct listener *listener_add(struct proxy *p, int fd, int family, const char *path)
{
	size_t cap;
	struct listener *l = slab_buf_alloc(p->arena, sizeof(*l), &cap);

	if (l == NULL)
		return NULL;
	memset(l, 0, sizeof(*l));
	l->proxy = p;
	l->cap = cap;
	l->fd = fd;
	l->family = family;
	if (path)
		snprintf(l->path, sizeof(l->path), "%s", path);
	event_assign(&l->ev, p->base, fd, EV_READ | EV_PERSIST, accept_cb, l);
	event_add(&l->ev, NULL);
	list_append(&p->listeners, &l->node);
	return l;
}

static int listen_tcp(struct proxy *p, const char *addr, char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL, *ai;
	char port[16];
	int rc, n = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(port, sizeof(port), "%d", p->cfg->s.listen_port);
	rc = getaddrinfo(addr, port, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "listen_addr \"%s\": %s", addr, gai_strerror(rc));
		return -EINVAL;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		int one = 1, fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		if (p->cfg->s.so_reuseport)
			setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
				listen(fd, p->cfg->s.listen_backlog > 0 ? p->cfg->s.listen_backlog : 128) < 0) {
			snprintf(err, errlen, "could not listen on %s:%d: %s", addr, p->cfg->s.listen_port,
					strerror(errno));
			close(fd);
			freeaddrinfo(res);
			return -errno;
		}
		if (listener_add(p, fd, ai->ai_family, NULL) == NULL) {
			close(fd);
			freeaddrinfo(res);
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		n++;
	}
	freeaddrinfo(res);
	if (n == 0) {
		snprintf(err, errlen, "could not listen on \"%s\"", addr);
		return -EINVAL;
	}
	return 0;
}

/* Does a process accept connections on <un>?  (Then it is not stale.) */
static bool unix_socket_live(const struct sockaddr_un *un)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool live;

	if (fd < 0)
		return false;
	live = connect(fd, (const struct sockaddr *)un, sizeof(*un)) == 0;
	close(fd);
	return live;
}

static int listen_unix(struct proxy *p, char *err, size_t errlen)
{
	struct sockaddr_un un;
	int fd;

	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	if ((size_t)snprintf(un.sun_path, sizeof(un.sun_path), "%s/.s.PGSQL.%d",
			    p->cfg->s.unix_socket_dir, p->cfg->s.listen_port) >= sizeof(un.sun_path)) {
		snprintf(err, errlen, "unix_socket_dir too long");
		return -ENAMETOOLONG;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -errno;
	}
	if (unix_socket_live(&un)) {
		snprintf(err, errlen, "another process is listening on %s", un.sun_path);
		close(fd);
		return -EADDRINUSE;
	}
	unlink(un.sun_path); /* a stale socket from a crashed run */
	if (bind(fd, (struct sockaddr *)&un, sizeof(un)) < 0 ||
			listen(fd, p->cfg->s.listen_backlog > 0 ? p->cfg->s.listen_backlog : 128) < 0) {
		snprintf(err, errlen, "could not listen on %s: %s", un.sun_path, strerror(errno));
		close(fd);
		return -errno;
	}
	chmod(un.sun_path, (mode_t)p->cfg->s.unix_socket_mode);
	if (listener_add(p, fd, AF_UNIX, un.sun_path) == NULL) {
		close(fd);
		unlink(un.sun_path);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

int listener_open_all(struct proxy *p, char *err, size_t errlen)
{
	const struct config_strlist *addrs = &p->cfg->s.listen_addr;
	int i, rc;

	for (i = 0; i < addrs->n; i++) {
		rc = listen_tcp(p, addrs->v[i], err, errlen);
		if (rc < 0)
			return rc;
	}
	if (p->cfg->s.unix_socket_dir[0]) {
		rc = listen_unix(p, err, errlen);
		if (rc < 0)
			return rc;
	}
	if (list_empty(&p->listeners)) {
		snprintf(err, errlen, "nothing to listen on: set listen_addr or unix_socket_dir");
		return -EINVAL;
	}
	return 0;
}

void listener_pause(struct proxy *p, bool pause)
{
	struct list *it;

	list_for_each(it, &p->listeners) {
		struct listener *l = list_entry(it, struct listener, node);

		if (pause)
			event_del(&l->ev);
		else
			event_add(&l->ev, NULL);
	}
}

static void listener_close(struct proxy *p, struct listener *l)
{
	list_del(&l->node);
	event_del(&l->ev);
	close(l->fd);
	if (l->path[0])
		unlink(l->path);
	slab_buf_free(p->arena, l, l->cap);
}

void listener_close_all(struct proxy *p)
{
	if (event_initialized(&p->accept_ev))
		event_del(&p->accept_ev);
	p->accept_paused = false;
	while (!list_empty(&p->listeners))
		listener_close(p, list_first_entry(&p->listeners, struct listener, node));
}

void listener_close_tcp(struct proxy *p)
{
	struct list *it, *tmp;

	list_for_each_safe(it, tmp, &p->listeners) {
		struct listener *l = list_entry(it, struct listener, node);

		if (l->family != AF_UNIX)
			listener_close(p, l);
	}
}
