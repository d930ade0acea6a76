/* prepwire.h -- prepared statements on linked client/server pairs in
 * transaction and statement mode: the wire side of prep.h (which knows
 * nothing of messages).  Called by client.c and server.c for the few
 * message types that can touch a statement. */
#ifndef PGSLAB_PREPWIRE_H
#define PGSLAB_PREPWIRE_H

#include <stdbool.h>
#include <stdint.h>

#include "prep.h"
#include "proto.h"
#include "stream.h"

struct client;
struct server;
struct track;

/* The hot path's cheap test: can the Query or CommandComplete being headed
 * on <st> be a PREPARE, EXECUTE, DEALLOCATE or DISCARD (or its tag)?  Its
 * first byte usually says no: SELECT, INSERT, BEGIN, ...  Maybe when that
 * byte is not buffered yet. */
static inline bool prepwire_msg_maybe(const struct stream *st)
{
	uint32_t avail;
	const uint8_t *m = stream_peek(st, &avail);

	return avail <= PROTO_HDR_LEN || prep_sql_maybe(m[PROTO_HDR_LEN]);
}

/* prepwire's calls up to the client and server modules above it, filled by
 * main.c at start-up (proxy.prepwire_ops). */
struct prepwire_ops {
	void (*client_close)(struct client *c, const char *sqlstate, const char *reason);
	void (*server_close)(struct server *s, const char *reason);
	/* client.h's client_logid(): the prefix of the client's log lines */
	void (*client_logid)(const struct client *c, char *buf, size_t len);
	/* client.h's client_note_request() */
	bool (*note_request)(struct client *c, struct server *s, uint8_t type, uint32_t len);
};

bool prepwire_on(const struct client *c);
enum stream_act prepwire_client_header(struct client *c, struct server *s, uint8_t type,
		uint32_t len);
enum stream_act prepwire_client_message(struct client *c, struct server *s, uint8_t type,
		const uint8_t *msg, uint32_t len);
/* A '1', '3' or 'C' from linked <s>: true when it must be seen whole
 * (prepwire_server_message); else its bookkeeping is done but the tracker's. */
bool prepwire_server_header(struct server *s, uint8_t type, uint32_t len);
enum stream_act prepwire_server_message(struct server *s, uint8_t type, const uint8_t *msg,
		uint32_t len);
/* A ReadyForQuery from <s> was tracked. */
void prepwire_ready(struct server *s);
void prepwire_settle(struct track *t, bool answered);

#endif
