/* sdnotify.h -- systemd's service notification protocol (sd_notify), without libsystemd.
 *
 * When pgslab runs under a systemd unit with Type=notify, systemd passes the
 * path of a datagram socket in $NOTIFY_SOCKET ("/path" or "@abstract") and
 * waits for "READY=1" before it considers the service started.  Each call
 * here sends one datagram "<state>" to that socket; with no $NOTIFY_SOCKET
 * (not under systemd, or a container) every call does nothing and returns 0.
 *
 * Protocol: sd_notify(3); a reload is announced with "RELOADING=1" plus
 * "MONOTONIC_USEC=<CLOCK_MONOTONIC in us>" and finished with "READY=1"
 * (systemd waits for that READY=1 before `systemctl reload` returns).
 *
 * Returns 1 when a message was sent, 0 when there is no $NOTIFY_SOCKET, and
 * -errno on failure (callers normally ignore failures: a lost notification
 * makes systemd time out, it does not harm the proxy).
 */
#ifndef PGSLAB_SDNOTIFY_H
#define PGSLAB_SDNOTIFY_H

/* Send <state> ("READY=1", "STATUS=...", newline-separated assignments). */
int sdnotify(const char *state);

/* "READY=1": the listeners are open (also after a reload has finished). */
int sdnotify_ready(void);
/* "RELOADING=1" with MONOTONIC_USEC: a reload (SIGHUP/RELOAD) starts; send
 * sdnotify_ready() when it is done. */
int sdnotify_reloading(void);
/* "STOPPING=1": shutdown has begun. */
int sdnotify_stopping(void);

#endif
