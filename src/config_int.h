/* config_int.h -- private to the config module (config.c, config_load.c).
 *
 * config.c knows what a config holds: the settings table, typed values,
 * [databases]/[users] entry fields and their defaults.  config_load.c, the
 * ini reader, fills a config through the calls below and knows nothing of
 * field types or offsets.  Nothing outside those two files includes it.
 */
#ifndef PGSLAB_CONFIG_INT_H
#define PGSLAB_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* printf into <buf> (NULL or 0 <len>: nothing). */
void config_msgf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- [pgbouncer] settings --------------------------------------------- */

/* A row of the settings table; static, so <name> may be kept. */
struct config_key;

/* The row of setting <name> (case-insensitive), or NULL. */
const struct config_key *config_key_find(const char *name);
/* Its name as the table spells it, and its CONFIG_F_* flags. */
const char *config_key_name(const struct config_key *k);
unsigned config_key_flags(const struct config_key *k);
/* Parse <text> for <k> and store it in <s>, freeing what the field held.
 * 0, or -EINVAL / -ENOMEM with the reason (not naming the key) in <em>;
 * <s> is unchanged on failure.  No cross-setting check: see below. */
int config_key_put(struct config_settings *s, const struct config_key *k, const char *text,
		char *em, size_t emlen);
/* Does <k>'s value in <s> print as its default? */
bool config_key_is_default(const struct config_settings *s, const struct config_key *k);
/* The combinations no config may hold (e.g. auth_type = cert without client
 * TLS): 0, or -EINVAL / -ENOTSUP with the reason in <em>. */
int config_check_settings(const struct config_settings *s, char *em, size_t emlen);

/* ---- [databases] and [users] entries ---------------------------------- */

/* Every field "not given": CONFIG_INHERIT, NULL strings, the entry defaults. */
void config_db_init(struct config_db *db);
void config_user_init(struct config_user *u);
/* Set parameter <key> of an entry to <val>: <entry> is a struct config_db
 * when <db>, else a struct config_user.  0, or -EINVAL ("unknown parameter
 * ...", "invalid value ...") / -ENOMEM with the message in <em>. */
int config_entry_put(void *entry, bool db, const char *key, const char *val, char *em,
		size_t emlen);
/* Free the strings an entry owns (not the entry). */
void config_db_free_fields(struct config_db *db);
void config_user_free_fields(struct config_user *u);
void config_peer_free_fields(struct config_peer *pe);

#endif
