/* t_sdnotify.c -- sd_notify messages reach a datagram socket named by $NOTIFY_SOCKET
 * (a path or an @abstract name); no $NOTIFY_SOCKET means no message and no error. */
#include "sdnotify.h"
#include "tap.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Bind a datagram socket at <name> ("/path" or "@abstract"); -1 on error. */
static int listen_at(const char *name)
{
	struct sockaddr_un sa;
	size_t len = strlen(name);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, name, len);
	if (name[0] == '@')
		sa.sun_path[0] = 0;
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa,
				      (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) <
					0)
		return -1;
	return fd;
}

/* The next datagram on <fd> as a string ("" if none is waiting). */
static const char *next_msg(int fd)
{
	static char buf[256];
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

	buf[n > 0 ? n : 0] = 0;
	return buf;
}

static void run(const char *name, const char *what)
{
	int fd = listen_at(name);
	const char *m;

	ok(fd >= 0, "%s: bind %s", what, name);
	setenv("NOTIFY_SOCKET", name, 1);
	is_int(sdnotify_ready(), 1, "ready sent");
	ok(strcmp(next_msg(fd), "READY=1") == 0, "%s: READY=1 received", what);
	is_int(sdnotify_reloading(), 1, "reloading sent");
	m = next_msg(fd);
	ok(strncmp(m, "RELOADING=1\nMONOTONIC_USEC=", 27) == 0 && atoll(m + 27) > 0,
			"%s: RELOADING=1 with MONOTONIC_USEC", what);
	is_int(sdnotify_stopping(), 1, "stopping sent");
	ok(strcmp(next_msg(fd), "STOPPING=1") == 0, "%s: STOPPING=1 received", what);
	close(fd);
}

int main(void)
{
	char path[64], abstract[64];

	plan(18);
	unsetenv("NOTIFY_SOCKET");
	is_int(sdnotify_ready(), 0, "no NOTIFY_SOCKET: nothing sent, no error");
	setenv("NOTIFY_SOCKET", "", 1);
	is_int(sdnotify_ready(), 0, "empty NOTIFY_SOCKET: nothing sent");

	snprintf(path, sizeof(path), "/tmp/pgslab_t_sdnotify.%d", (int)getpid());
	unlink(path);
	run(path, "path socket");
	unlink(path);
	snprintf(abstract, sizeof(abstract), "@pgslab_t_sdnotify.%d", (int)getpid());
	run(abstract, "abstract socket");

	setenv("NOTIFY_SOCKET", "relative/path", 1);
	is_int(sdnotify_ready(), -EINVAL, "relative NOTIFY_SOCKET refused");
	setenv("NOTIFY_SOCKET", path, 1); /* removed above: nobody listens */
	ok(sdnotify_ready() < 0, "send to a missing socket fails");
	return tap_exit_status();
}
