/* client.h -- client connections: accept, startup, authentication, welcome,
 * and the forwarding callbacks of a linked client (client.c). */
#ifndef PGSLAB_CLIENT_H
#define PGSLAB_CLIENT_H

#include "proxy.h"

void client_accept(struct proxy *p, int fd, const struct sockaddr *sa, socklen_t salen);
/* Close <c>: send the ErrorResponse (when <sqlstate>), log, and mark its
 * stream failed.  <c> stays valid and listed; it is torn down from the
 * event loop (stream_ctx_run_failed), never inside the caller.  Idempotent. */
void client_close(struct client *c, const char *sqlstate, const char *reason);
void client_error(struct client *c, const char *sqlstate, const char *fmt, ...)
		__attribute__((format(printf, 3, 4)));
/* Send <c> a NoticeResponse (severity NOTICE, SQLSTATE 00000). */
void client_notice(struct client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A server became linked to waiting client <c>: start forwarding. */
void client_server_ready(struct client *c);
/* The pool learnt its server parameters: complete <c>'s login. */
void client_welcome(struct client *c);
void client_logid(const struct client *c, char *buf, size_t len);
void client_addr_str(const struct client *c, char *buf, size_t len);
void client_finish_login(struct client *c);
size_t client_login_size(void);
/* <c> sends a request to linked <s>: timing and byte counts, and the
 * tracker unless <type> is 0.  False when the pipeline is too deep to
 * track (<c> is closed). */
bool client_note_request(struct client *c, struct server *s, uint8_t type, uint32_t len);

#endif
