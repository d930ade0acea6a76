/* config_load.c -- the ini reader: PgBouncer-compatible files into a struct config.
 *
 * Theory.  parse_file() reads a file line by line: "[section]" headers,
 * "%include <path>" (resolved as config.h says, nesting at most
 * CONFIG_MAX_INCLUDE_DEPTH deep), and "key = value" lines, dispatched by
 * the current section.  [pgbouncer] values are parsed and stored by
 * config.c's settings table (config_key_put); [databases] and [users]
 * values are libpq-style connection strings, tokenized by connstr.c and
 * stored field by field by config.c (config_entry_put).  This file knows
 * no field types or offsets, and config.c calls nothing here.
 *
 * [databases] and [users] entries are parsed into local structs, appended to
 * growable arrays in file order, then sorted by name (ties by position) and
 * deduplicated keeping the last definition, which is PgBouncer's "later line
 * wins".  Lookups then bsearch.  The "*" entry lives apart in fallback_db.
 *
 * Every file read is remembered in cfg->files, and entries point there for
 * their <file>.  Errors are "<file>:<line>: <what>" in the caller's buffer.
 * Nothing here logs, opens sockets or keeps state outside a struct config.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config_int.h"
#include "connstr.h"
#include "sysalloc.h"
#include "textfile.h"

static void rtrim(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
}

/* Applies every pair of <connstr> to <entry> (a struct config_db when
 * <db>, else a struct config_user). */
static int entry_parse(void *entry, bool db, const char *connstr, char *em, size_t emlen)
{
	char *copy = sys_strdup(connstr), *p, *key, *val;
	int rc;

	if (copy == NULL) {
		config_msgf(em, emlen, "out of memory");
		return -ENOMEM;
	}
	p = copy;
	while ((rc = connstr_next(&p, &key, &val, em, emlen)) > 0) {
		rc = config_entry_put(entry, db, key, val, em, emlen);
		if (rc < 0)
			break;
	}
	sys_free(copy);
	return rc < 0 ? rc : 0;
}

/* ---- the loader ------------------------------------------------------- */

enum section { SECT_NONE, SECT_DATABASES, SECT_USERS, SECT_PGBOUNCER, SECT_PEERS };

struct loader {
	struct config *cfg;
	char *err;
	size_t errlen;
	const char *file; /* current file, owned by cfg->files */
	int line;
	int depth;
	enum section sect;
	int db_cap, user_cap, peer_cap, warn_cap;
};

static int lerr(struct loader *ld, int rc, const char *fmt, ...)
		__attribute__((format(printf, 3, 4)));
static int lerr(struct loader *ld, int rc, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (rc == -ENOMEM)
		config_msgf(ld->err, ld->errlen, "%s:%d: out of memory", ld->file, ld->line);
	else
		config_msgf(ld->err, ld->errlen, "%s:%d: %s", ld->file, ld->line, msg);
	return rc;
}

static int grow(void **arr, int *cap, int n, size_t esz)
{
	int ncap;
	void *p;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 16;
	p = sys_realloc(*arr, (size_t)ncap * esz);
	if (p == NULL)
		return -ENOMEM;
	*arr = p;
	*cap = ncap;
	return 0;
}

static int lwarn(struct loader *ld, const char *key, bool is_default, const char *fmt, ...)
		__attribute__((format(printf, 4, 5)));
static int lwarn(struct loader *ld, const char *key, bool is_default, const char *fmt, ...)
{
	struct config *cfg = ld->cfg;
	struct config_warning *w;
	char msg[512];
	va_list ap;
	int n;

	if (grow((void **)&cfg->warnings, &ld->warn_cap, cfg->n_warnings, sizeof(*w)) < 0)
		return lerr(ld, -ENOMEM, "out of memory");
	n = snprintf(msg, sizeof(msg), "%s:%d: ", ld->file, ld->line);
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	w = &cfg->warnings[cfg->n_warnings];
	w->msg = sys_strdup(msg);
	if (w->msg == NULL)
		return lerr(ld, -ENOMEM, "out of memory");
	w->key = key;
	w->is_default = is_default;
	cfg->n_warnings++;
	return 0;
}

static int set_pgbouncer(struct loader *ld, const char *key, const char *val)
{
	const struct config_key *k = config_key_find(key);
	char em[200];
	int rc;

	if (k == NULL)
		return lerr(ld, -EINVAL, "unknown key \"%s\" in [pgbouncer]", key);
	rc = config_key_put(&ld->cfg->s, k, val, em, sizeof(em));
	if (rc < 0)
		return lerr(ld, rc, "invalid value \"%s\" for %s: %s", val, config_key_name(k), em);
	if (config_key_flags(k) & CONFIG_F_UNSUPPORTED)
		return lwarn(ld, config_key_name(k), config_key_is_default(&ld->cfg->s, k),
				"setting \"%s\" is not supported yet; ignored", config_key_name(k));
	return 0;
}

static int add_database(struct loader *ld, const char *name, const char *connstr)
{
	struct config *cfg = ld->cfg;
	struct config_db db;
	char em[300];
	int rc;

	if (strcmp(name, CONFIG_RESERVED_DB) == 0)
		return lerr(ld, -EINVAL, "database name \"%s\" is reserved", name);
	config_db_init(&db);
	db.file = ld->file;
	db.line = ld->line;
	rc = entry_parse(&db, true, connstr, em, sizeof(em));
	if (rc < 0)
		goto fail;
	rc = -ENOMEM;
	db.name = sys_strdup(name);
	if (db.name == NULL)
		goto fail;
	if (strcmp(name, CONFIG_FALLBACK_DB) == 0) {
		db.fallback = true;
		if (cfg->fallback_db == NULL) {
			cfg->fallback_db = sys_malloc(sizeof(*cfg->fallback_db));
			if (cfg->fallback_db == NULL)
				goto fail;
		} else {
			config_db_free_fields(cfg->fallback_db);
		}
		*cfg->fallback_db = db;
		return 0;
	}
	if (db.dbname == NULL) {
		db.dbname = sys_strdup(name);
		if (db.dbname == NULL)
			goto fail;
	}
	if (grow((void **)&cfg->dbs, &ld->db_cap, cfg->n_dbs, sizeof(db)) < 0)
		goto fail;
	cfg->dbs[cfg->n_dbs++] = db;
	return 0;
fail:
	config_db_free_fields(&db);
	if (rc == -ENOMEM)
		return lerr(ld, rc, "out of memory");
	return lerr(ld, rc, "database \"%s\": %s", name, em);
}

static int add_user(struct loader *ld, const char *name, const char *connstr)
{
	struct config *cfg = ld->cfg;
	struct config_user u;
	char em[300];
	int rc;

	config_user_init(&u);
	u.file = ld->file;
	u.line = ld->line;
	rc = entry_parse(&u, false, connstr, em, sizeof(em));
	if (rc < 0)
		goto fail;
	rc = -ENOMEM;
	u.name = sys_strdup(name);
	if (u.name == NULL)
		goto fail;
	if (grow((void **)&cfg->users, &ld->user_cap, cfg->n_users, sizeof(u)) < 0)
		goto fail;
	cfg->users[cfg->n_users++] = u;
	return 0;
fail:
	config_user_free_fields(&u);
	if (rc == -ENOMEM)
		return lerr(ld, rc, "out of memory");
	return lerr(ld, rc, "user \"%s\": %s", name, em);
}

/* "<id> = host=... port=... pool_size=..."; a later line for an id
 * replaces an earlier one. */
static int add_peer(struct loader *ld, const char *name, const char *connstr)
{
	struct config *cfg = ld->cfg;
	struct config_peer pe = { .port = 6432, .pool_size = -1, .file = ld->file, .line = ld->line };
	char *buf = sys_strdup(connstr), *p = buf, *key, *val, *end, em[200];
	long id = strtol(name, &end, 10);
	int i, rc;

	if (buf == NULL)
		return lerr(ld, -ENOMEM, "out of memory");
	if (*name == 0 || *end != 0 || id < 1 || id > 65535) {
		sys_free(buf);
		return lerr(ld, -EINVAL, "ids of peers must be a number from 1 to 65535, not \"%s\"",
				name);
	}
	pe.id = (int)id;
	while ((rc = connstr_next(&p, &key, &val, em, sizeof(em))) > 0) {
		if (strcmp(key, "host") == 0) {
			sys_free(pe.host);
			pe.host = sys_strdup(val);
			if (pe.host == NULL)
				goto oom;
		} else if (strcmp(key, "port") == 0 || strcmp(key, "pool_size") == 0) {
			long v = strtol(val, &end, 10);
			bool port = key[0] == 'p' && key[1] == 'o' && key[2] == 'r';

			if (*val == 0 || *end != 0 || v < (port ? 1 : 0) || v > (port ? 65535 : INT_MAX)) {
				rc = lerr(ld, -EINVAL, "peer %d: invalid %s: %s", pe.id, key, val);
				goto fail;
			}
			*(port ? &pe.port : &pe.pool_size) = (int)v;
		} else {
			rc = lerr(ld, -EINVAL, "peer %d: unrecognized connection parameter: %s", pe.id,
					key);
			goto fail;
		}
	}
	if (rc < 0) {
		rc = lerr(ld, -EINVAL, "peer %d: %s", pe.id, em);
		goto fail;
	}
	if (pe.host == NULL) {
		rc = lerr(ld, -EINVAL, "host was not provided for peer %d", pe.id);
		goto fail;
	}
	pe.name = sys_strdup(name);
	if (pe.name == NULL)
		goto oom;
	sys_free(buf);
	for (i = 0; i < cfg->n_peers; i++) {
		if (cfg->peers[i].id == pe.id) {
			config_peer_free_fields(&cfg->peers[i]);
			cfg->peers[i] = pe;
			return 0;
		}
	}
	if (grow((void **)&cfg->peers, &ld->peer_cap, cfg->n_peers, sizeof(pe)) < 0) {
		config_peer_free_fields(&pe);
		return lerr(ld, -ENOMEM, "out of memory");
	}
	cfg->peers[cfg->n_peers++] = pe;
	return 0;
oom:
	rc = lerr(ld, -ENOMEM, "out of memory");
fail:
	config_peer_free_fields(&pe);
	sys_free(buf);
	return rc;
}


/* The path to open for "%include <path>" seen in <cur>: as given if it
 * exists (cwd-relative, like PgBouncer), else relative to <cur>'s
 * directory if that exists, else as given (so the error names it). */
static char *resolve_include(const char *cur, const char *path)
{
	const char *slash = strrchr(cur, '/');
	size_t dlen;
	char *alt;

	if (path[0] == '/' || access(path, F_OK) == 0 || slash == NULL)
		return sys_strdup(path);
	dlen = (size_t)(slash - cur);
	alt = sys_malloc(dlen + 1 + strlen(path) + 1);
	if (alt == NULL)
		return NULL;
	memcpy(alt, cur, dlen);
	alt[dlen] = '/';
	strcpy(alt + dlen + 1, path);
	if (access(alt, F_OK) == 0)
		return alt;
	sys_free(alt);
	return sys_strdup(path);
}

static int parse_file(struct loader *ld, const char *path);

static int parse_section(struct loader *ld, char *p)
{
	static const struct {
		const char *name;
		enum section sect;
	} sects[] = {
			{"databases", SECT_DATABASES},
			{"users", SECT_USERS},
			{"pgbouncer", SECT_PGBOUNCER},
			{"peers", SECT_PEERS},
	};
	char *end = strchr(p, ']'), *name;
	size_t i;

	if (end == NULL)
		return lerr(ld, -EINVAL, "missing \"]\" in section header");
	if (*connstr_skip_blanks(end + 1) != '\0')
		return lerr(ld, -EINVAL, "unexpected text after section header");
	*end = '\0';
	name = connstr_skip_blanks(p + 1);
	rtrim(name);
	for (i = 0; i < NELEM(sects); i++) {
		if (strcasecmp(name, sects[i].name) == 0) {
			ld->sect = sects[i].sect;
			return 0;
		}
	}
	return lerr(ld, -EINVAL, "unknown section [%s]", name);
}

static int parse_include(struct loader *ld, char *p)
{
	const char *saved_file = ld->file;
	int saved_line = ld->line, rc;
	char *target;

	p = connstr_skip_blanks(p);
	rtrim(p);
	if (*p == '\0')
		return lerr(ld, -EINVAL, "%%include needs a file name");
	if (ld->depth >= CONFIG_MAX_INCLUDE_DEPTH)
		return lerr(ld, -ELOOP, "%%include nested more than %d deep",
				CONFIG_MAX_INCLUDE_DEPTH);
	target = resolve_include(ld->file, p);
	if (target == NULL)
		return lerr(ld, -ENOMEM, "out of memory");
	ld->depth++;
	rc = parse_file(ld, target);
	ld->depth--;
	sys_free(target);
	ld->file = saved_file;
	ld->line = saved_line;
	return rc;
}

/* Splits "key = value" (key possibly "quoted") and dispatches it. */
static int parse_keyval(struct loader *ld, char *p)
{
	char *key, *val, *w;

	if (*p == '"') {
		key = w = ++p;
		for (;;) {
			if (*p == '\0')
				return lerr(ld, -EINVAL, "unterminated quoted name");
			if (*p == '"' && p[1] == '"') {
				*w++ = '"';
				p += 2;
			} else if (*p == '"') {
				p++;
				break;
			} else {
				*w++ = *p++;
			}
		}
		*w = '\0'; /* w < p: the closing quote was consumed */
	} else {
		key = p;
		while (*p && *p != '=' && !connstr_is_blank(*p))
			p++;
		if (*p == '=') {
			*p = '\0';
			val = p + 1;
			goto have_val;
		}
		if (*p)
			*p++ = '\0';
	}
	p = connstr_skip_blanks(p);
	if (*p != '=')
		return lerr(ld, -EINVAL, "expected \"key = value\"");
	val = p + 1;
have_val:
	val = connstr_skip_blanks(val);
	rtrim(val);
	if (*key == '\0')
		return lerr(ld, -EINVAL, "empty name before \"=\"");
	switch (ld->sect) {
	case SECT_NONE:
		return lerr(ld, -EINVAL, "\"%s\" is outside of any section", key);
	case SECT_PGBOUNCER:
		return set_pgbouncer(ld, key, val);
	case SECT_DATABASES:
		return add_database(ld, key, val);
	case SECT_USERS:
		return add_user(ld, key, val);
	case SECT_PEERS:
		return add_peer(ld, key, val);
	}
	return 0;
}

static int remember_file(struct loader *ld, const char *path)
{
	struct config *cfg = ld->cfg;
	char **nf = sys_realloc(cfg->files, sizeof(*nf) * (size_t)(cfg->n_files + 1));

	if (nf == NULL)
		return -ENOMEM;
	cfg->files = nf;
	nf[cfg->n_files] = sys_strdup(path);
	if (nf[cfg->n_files] == NULL)
		return -ENOMEM;
	ld->file = nf[cfg->n_files++];
	return 0;
}

static int parse_file(struct loader *ld, const char *path)
{
	char *buf, *line, *next, *p;
	int rc = 0, e = 0;

	buf = textfile_read(path, &e);
	if (buf == NULL) {
		const char *why = e == EILSEQ ? "contains a NUL byte" : strerror(e);

		if (ld->depth > 0)
			return lerr(ld, -e, "cannot read include file \"%s\": %s", path, why);
		config_msgf(ld->err, ld->errlen, "%s: %s", path, why);
		return -e;
	}
	if (remember_file(ld, path) < 0) {
		sys_free(buf);
		config_msgf(ld->err, ld->errlen, "%s: out of memory", path);
		return -ENOMEM;
	}
	ld->line = 0;
	for (line = buf; line != NULL && rc == 0; line = next) {
		ld->line++;
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		rtrim(line);
		p = line;
		while (isspace((unsigned char)*p))
			p++;
		if (*p == '\0' || *p == ';' || *p == '#')
			continue;
		if (*p == '[')
			rc = parse_section(ld, p);
		else if (strncmp(p, "%include", 8) == 0 && (p[8] == '\0' || connstr_is_blank(p[8])))
			rc = parse_include(ld, p + 8);
		else if (*p == '%')
			rc = lerr(ld, -EINVAL, "unknown directive \"%s\"", p);
		else
			rc = parse_keyval(ld, p);
	}
	sys_free(buf);
	return rc;
}

/* ---- sorting, dedup, lookup ------------------------------------------ */

/* Both entry structs start with their name; ties keep file order. */
static int entry_ptr_cmp(const void *a, const void *b)
{
	const char *const *ea = *(const char *const *const *)a;
	const char *const *eb = *(const char *const *const *)b;
	int c;

	if (ea == eb)
		return 0;
	c = strcmp(*ea, *eb);
	if (c != 0)
		return c;
	return (const char *)ea < (const char *)eb ? -1 : 1;
}

_Static_assert(offsetof(struct config_db, name) == 0, "name must come first");
_Static_assert(offsetof(struct config_user, name) == 0, "name must come first");

/* Sorts the <n> entries of size <esz> at *<arr> by name and keeps only the
 * last definition of each name, freeing the others with <free_fn>. */
static int sort_dedup(void **arr, int *n, size_t esz, void (*free_fn)(void *))
{
	char *base = *arr, *out;
	void **ptrs;
	int i, m = 0;

	if (*n == 0)
		return 0;
	ptrs = sys_malloc(sizeof(*ptrs) * (size_t)*n);
	out = sys_malloc(esz * (size_t)*n);
	if (ptrs == NULL || out == NULL) {
		sys_free(ptrs);
		sys_free(out);
		return -ENOMEM;
	}
	for (i = 0; i < *n; i++)
		ptrs[i] = base + (size_t)i * esz;
	qsort(ptrs, (size_t)*n, sizeof(*ptrs), entry_ptr_cmp);
	for (i = 0; i < *n; i++) {
		if (i + 1 < *n && strcmp(*(char **)ptrs[i], *(char **)ptrs[i + 1]) == 0)
			free_fn(ptrs[i]); /* a later line redefines it */
		else
			memcpy(out + (size_t)m++ * esz, ptrs[i], esz);
	}
	sys_free(ptrs);
	sys_free(*arr);
	*arr = out;
	*n = m;
	return 0;
}

static void db_free_void(void *p)
{
	config_db_free_fields(p);
}

static void user_free_void(void *p)
{
	config_user_free_fields(p);
}


struct config *config_load(const char *path, char *err, size_t errlen)
{
	struct loader ld = {0};
	struct config *cfg;
	char em[200];

	config_msgf(err, errlen, "no error");
	cfg = config_new_defaults();
	if (cfg == NULL) {
		config_msgf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	ld.cfg = cfg;
	ld.err = err;
	ld.errlen = errlen;
	ld.file = path;
	if (parse_file(&ld, path) < 0)
		goto fail;
	if (cfg->s.conffile[0] == '\0' &&
			config_key_put(&cfg->s, config_key_find("conffile"), path, em, sizeof(em)) < 0)
		goto oom; /* a string setting: only out of memory */
	if (sort_dedup((void **)&cfg->dbs, &cfg->n_dbs, sizeof(*cfg->dbs), db_free_void) < 0)
		goto oom;
	if (sort_dedup((void **)&cfg->users, &cfg->n_users, sizeof(*cfg->users), user_free_void) <
			0)
		goto oom;
	if (config_check_settings(&cfg->s, em, sizeof(em)) < 0) {
		config_msgf(err, errlen, "%s: %s", path, em);
		goto fail;
	}
	return cfg;
oom:
	config_msgf(err, errlen, "%s: out of memory", path);
fail:
	config_free(cfg);
	return NULL;
}
