/* admin.h -- the admin console (admin.c): SHOW commands and control verbs.
 */
#ifndef PGSLAB_ADMIN_H
#define PGSLAB_ADMIN_H

#include <stdbool.h>

struct client;

/* Execute the console query <sql> for <c>, writing the results.  False when
 * the reply is held (PAUSE, WAIT_CLOSE): admin has stopped <c>'s stream and
 * sends CommandComplete + ReadyForQuery itself. */
bool admin_query(struct client *c, const char *sql);

#endif
