/* ident.h -- user name maps as in pg_ident.conf, for HBA map= (ident.c).
 *
 * Each line is "MAPNAME SYSTEM-USERNAME PG-USERNAME".  A system user name
 * starting with '/' is a POSIX extended regular expression (the rest of
 * it); then a "\1" in the PG user name stands for its first parenthesized
 * group.  A PG user name of unquoted "all" admits any user.  Knows nothing
 * of sockets: the caller supplies the system name (peer: the OS user of
 * the socket's peer; cert: the certificate's name).
 */
#ifndef PGSLAB_IDENT_H
#define PGSLAB_IDENT_H

#include <stdbool.h>
#include <stddef.h>

struct ident;

/* Parse <path>; NULL with "<path>:<line>: <why>" in <err>. */
struct ident *ident_load(const char *path, char *err, size_t errlen);
/* Parse file text <text> (modified) named <path> in messages. */
struct ident *ident_parse(char *text, const char *path, char *err, size_t errlen);
/* An ident with no maps (no auth_ident_file). */
struct ident *ident_empty(void);
void ident_free(struct ident *id);
bool ident_has_map(const struct ident *id, const char *map);
/* Does map <map> let OS/certificate user <sys> log in as <pg>? */
bool ident_check(const struct ident *id, const char *map, const char *sys, const char *pg);

#endif
