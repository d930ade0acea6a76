/* server.h -- server connections: connect, login, the protocol tracker's
 * reading side, drain after an unclean release (server.c). */
#ifndef PGSLAB_SERVER_H
#define PGSLAB_SERVER_H

#include "proxy.h"

struct server *server_launch(struct pool *pool);
void server_close(struct server *s, const char *reason);
/* Send <sql> as a simple query whose results pgslab swallows; the server is
 * SV_RESET until its ReadyForQuery. */
int server_send_internal(struct server *s, const char *sql);
/* Unlinked <s> was left with work in flight: bring it back to idle (see
 * server.c), then pool_release() it; or close it. */
void server_drain(struct server *s);
void server_drain_step(struct server *s);
void server_logid(const struct server *s, char *buf, size_t len);
size_t server_login_size(void);

#endif
