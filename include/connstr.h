/* connstr.h -- tokenizer for libpq-style connection strings, as [databases] and [users] entries use.
 *
 * Grammar (as libpq's conninfo, narrowed to what pgslab.ini needs):
 * key=value pairs separated by blanks; blanks around '=' are allowed; a value
 * may be single-quoted, where \' and '' give a quote and \\ a backslash
 * (other backslashes are literal).  Pure: no allocation, no global state.
 */
#ifndef PGSLAB_CONNSTR_H
#define PGSLAB_CONNSTR_H

#include <stdbool.h>
#include <stddef.h>

/* A blank between tokens: space or tab (also the ini reader's notion). */
bool connstr_is_blank(char c);
/* <p> advanced past blanks. */
char *connstr_skip_blanks(char *p);
/* Take the next pair from *<pp>, tokenizing the string in place (NULs are
 * written, quotes removed).  Returns 1 with <key>/<val> pointing into the
 * string and *<pp> advanced, 0 at the end, -EINVAL on a syntax error
 * (message in <em>). */
int connstr_next(char **pp, char **key, char **val, char *em, size_t emlen);

#endif
