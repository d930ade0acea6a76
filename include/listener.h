/* listener.h -- the listening sockets (listener.c).
 */
#ifndef PGSLAB_LISTENER_H
#define PGSLAB_LISTENER_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event_struct.h>

#include "list.h"

struct proxy;

struct listener {
	struct list node;
	struct proxy *proxy;
	size_t cap;             /* slab_buf capacity */
	struct event ev;
	int fd;
	int family;
	char path[108];          /* unix socket path, to unlink at exit */
};

int listener_open_all(struct proxy *p, char *err, size_t errlen);
void listener_close_all(struct proxy *p);
/* Close the TCP listeners; the Unix sockets stay (shutdown: the console). */
void listener_close_tcp(struct proxy *p);
void listener_pause(struct proxy *p, bool pause);

#endif
