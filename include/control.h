/* control.h -- console verbs that change the pooler's state: PAUSE, RESUME, KILL, SET...
 *
 * The admin console (admin.c) parses a command and checks the caller's
 * rights; the verbs that change state are carried out here, where the state
 * they need (suspended flag, console clients waiting for a PAUSE to
 * complete, the timer that watches them) lives in one struct control per
 * proxy.  The state functions below are usable without a console client too
 * (SIGUSR1/SIGUSR2 would call control_pause/control_resume).
 *
 * Semantics are PgBouncer's (doc/usage.md):
 *   PAUSE [db]      hold new server assignments; close servers as they are
 *                   released; complete once no server of the affected pools
 *                   is active.  Waiting clients are held, not failed.
 *   RESUME [db]     undo PAUSE, SUSPEND and KILL; waiting clients get servers.
 *   SUSPEND         PAUSE-like hold, plus stop reading from clients and stop
 *                   accepting; servers are kept.
 *   KILL [db]       close the db's (every db's) clients with an error and its
 *                   servers; the db stays paused until RESUME.
 *   KILL_CLIENT id  close one client.
 *   RECONNECT [db]  close idle servers now, active ones when released.
 *   WAIT_CLOSE [db] complete once no server of the db is close_needed.
 *   DISABLE/ENABLE db  refuse / accept new client logins.
 *   SHUTDOWN [WAIT_FOR_SERVERS|WAIT_FOR_CLIENTS]
 *   SET key = value (control_set: config_set plus the live side effects).
 *
 * A deferred reply (PAUSE, WAIT_CLOSE while servers are busy): the console
 * client's stream is stopped after the command message, a waiter records the
 * client by id (never by pointer: the client may go away meanwhile), and a
 * timer completes it with CommandComplete + ReadyForQuery and resumes the
 * stream.  Deferral needs the caller's cooperation (see admin_query).
 */
#ifndef PGSLAB_CONTROL_H
#define PGSLAB_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct proxy;
struct client;
struct db;
struct control; /* opaque, one per proxy */

#define CONTROL_TICK_US 20000 /* how often held PAUSE/WAIT_CLOSE replies are checked */

/* The control state of <p>, created on first use; NULL only on OOM. */
struct control *control_get(struct proxy *p);
/* Stop the timer and free the state (before the event base goes). */
void control_destroy(struct proxy *p);

/* Is <verb> (lower case) one of the control verbs? */
bool control_is_verb(const char *verb);
/* Carry out <verb> (lower case) with argument <arg> ("" for none) for console
 * client <c>, whose admin rights the caller has checked.  Writes the
 * CommandComplete or an ErrorResponse, or, when <can_defer> and the command
 * must wait, nothing yet: returns true and completes it later (the caller
 * must then not send ReadyForQuery). */
bool control_exec(struct client *c, const char *verb, const char *arg, bool can_defer);

/* ---- state operations (NULL <db> means every database) ---- */

/* 0, -EALREADY (already paused/suspended) or -EINVAL (the console db). */
int control_pause(struct proxy *p, struct db *db);
/* 0, or -EALREADY when nothing was paused. */
int control_resume(struct proxy *p, struct db *db);
/* 0, or -EALREADY. */
int control_suspend(struct proxy *p);
/* Is the pause of <db> (NULL: the global pause) complete: no active server? */
bool control_pause_done(struct proxy *p, struct db *db);
/* Are all servers of <db> free of close_needed? */
bool control_close_done(struct proxy *p, struct db *db);
void control_reconnect(struct proxy *p, struct db *db);
/* Close every client and server of <db> with <reason>; pauses <db>. */
void control_kill(struct proxy *p, struct db *db, const char *reason);
/* 0 or -ENOENT. */
int control_kill_client(struct proxy *p, uint64_t id);
/* SET: a copy of the running config with the change becomes the running
 * one, then what must be applied is (log level, pool sizes, pool_mode,
 * stats_period, max_packet_size, TLS contexts).  Returns config_set()'s
 * error (message in <err>, nothing changed), 0, or 1 when the setting is
 * stored but its TLS contexts could not be made (<err> says why; the old
 * ones stay, as in PgBouncer). */
int control_set(struct proxy *p, const char *key, const char *value, char *err, size_t errlen);

/* A non-console database by name (not created from the "*" entry). */
struct db *control_find_db(struct proxy *p, const char *name);

#endif
