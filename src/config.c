/* config.c -- what a config holds: the settings table, typed values, entries, lifetime.
 *
 * Theory.  One sorted constant table (setting_table) describes every
 * [pgbouncer] setting: name, type, flags, field offset in struct
 * config_settings, default (written exactly as format_cval() prints it, so
 * a fresh config's SHOW CONFIG has value == default) and range.  All
 * reading and writing of settings goes through a tagged value (union cval):
 *
 *	text --parse_cval--> cval --store_cval--> field
 *	field --load_cval--> cval --format_cval--> text
 *	field --load_cval--> cval --copy_cval--> cval --store_cval--> field (clone)
 *
 * store_cval() takes ownership of the strings inside the cval and frees the
 * ones it replaces; nothing else frees setting fields except free_settings().
 * Because every field is reached through the table, a setting added to it
 * is parsed, shown, compared on reload and cloned without further code.
 *
 * [databases] and [users] entries are described the same way (db_keys,
 * user_keys) for the reader, and their owned strings by db_strs/user_strs
 * for freeing and cloning.  The ini reader itself is config_load.c, which
 * reaches this file through config_int.h only.
 *
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

#include "config_int.h"
#include "pwd.h"
#include "sysalloc.h"

_Static_assert(sizeof(enum pool_mode) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(enum auth_type) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(enum sslmode) == sizeof(int), "enum fields are stored as int");
_Static_assert(sizeof(enum load_balance_hosts) == sizeof(int), "enum fields are stored as int");

#define DUR_MAX_SEC 10000000000LL /* ~317 years: keeps microseconds far from overflow */
#define USEC 1000000LL

/* clang-format off */
static const char *const pool_mode_names[] = { "session", "transaction", "statement", NULL };
static const char *const auth_type_names[] = { "any", "trust", "plain", "md5", "scram-sha-256",
	"cert", "hba", "pam", "ldap", "peer", NULL };
static const char *const sslmode_names[] = { "disable", "allow", "prefer", "require", "verify-ca",
	"verify-full", NULL };
static const char *const lb_names[] = { "disable", "round-robin", NULL };
/* clang-format on */

static const char *enum_name(const char *const *names, size_t n, int v)
{
	if (v < 0 || (size_t)v >= n)
		return "unknown";
	return names[v];
}

const char *config_pool_mode_name(enum pool_mode m)
{
	return enum_name(pool_mode_names, NELEM(pool_mode_names) - 1, (int)m);
}

const char *config_auth_type_name(enum auth_type t)
{
	return enum_name(auth_type_names, NELEM(auth_type_names) - 1, (int)t);
}

const char *config_sslmode_name(enum sslmode m)
{
	return enum_name(sslmode_names, NELEM(sslmode_names) - 1, (int)m);
}

const char *config_load_balance_hosts_name(enum load_balance_hosts l)
{
	return enum_name(lb_names, NELEM(lb_names) - 1, (int)l);
}

/* ---- the settings table ---------------------------------------------- */

enum ctype {
	CT_INT,	  /* int, decimal, [min, max] */
	CT_OCTAL, /* int, octal digits, [min, max] */
	CT_BOOL,  /* bool: 0/1 yes/no on/off true/false */
	CT_STR,	  /* char *, verbatim */
	CT_LIST,  /* struct config_strlist, comma separated */
	CT_DUR,	  /* int64_t microseconds, written as (fractional) seconds */
	CT_ENUM,  /* int-sized enum, case-insensitive names */
};

struct config_key {
	const char *name;
	enum ctype type;
	unsigned flags; /* CONFIG_F_* */
	size_t off;	/* in struct config_settings */
	const char *dflt;
	long long min, max;
	const char *const *names; /* CT_ENUM: NULL-terminated, indexed by value */
};

/* clang-format off */
#define N CONFIG_F_NORELOAD
#define U CONFIG_F_UNSUPPORTED
#define OFF(f) offsetof(struct config_settings, f)
#define K_INT(n, fl, d, lo, hi) { #n, CT_INT, fl, OFF(n), d, lo, hi, NULL }
#define K_OCT(n, fl, d, lo, hi) { #n, CT_OCTAL, fl, OFF(n), d, lo, hi, NULL }
#define K_BOOL(n, fl, d) { #n, CT_BOOL, fl, OFF(n), d, 0, 1, NULL }
#define K_STR(n, fl, d) { #n, CT_STR, fl, OFF(n), d, 0, 0, NULL }
#define K_LIST(n, fl, d) { #n, CT_LIST, fl, OFF(n), d, 0, 0, NULL }
#define K_DUR(n, fl, d) { #n, CT_DUR, fl, OFF(n##_us), d, 0, DUR_MAX_SEC, NULL }
#define K_ENUM(n, fl, d, nm) { #n, CT_ENUM, fl, OFF(n), d, 0, 0, nm }

#define AUTH_QUERY_DEFAULT                                                                     \
	"SELECT rolname, CASE WHEN rolvaliduntil < now() THEN NULL ELSE rolpassword END "      \
	"FROM pg_authid WHERE rolname=$1 AND rolcanlogin"

/* Sorted by name (bsearch and SHOW CONFIG order rely on it; t_config checks).
 * Defaults are PgBouncer's (1.25) except where pgslab adds the setting.
 * U marks settings pgslab accepts but does not act on yet: flip the flag
 * when a module implements one. */
static const struct config_key setting_table[] = {
	K_LIST(admin_users, 0, ""),
	K_BOOL(application_name_add_host, U, "0"),
	K_STR(auth_dbname, 0, ""),
	K_STR(auth_file, 0, ""),
	K_STR(auth_hba_file, 0, ""),
	K_STR(auth_ident_file, 0, ""),
	K_STR(auth_ldap_options, U, ""),
	K_STR(auth_query, 0, AUTH_QUERY_DEFAULT),
	K_ENUM(auth_type, 0, "md5", auth_type_names),
	K_STR(auth_user, 0, ""),
	K_DUR(autodb_idle_timeout, 0, "3600"),
	K_DUR(cancel_wait_timeout, 0, "10"),
	K_DUR(client_idle_timeout, 0, "0"),
	K_DUR(client_login_timeout, 0, "60"),
	K_STR(client_tls13_ciphers, 0, ""),
	K_STR(client_tls_ca_file, 0, ""),
	K_STR(client_tls_cert_file, 0, ""),
	K_STR(client_tls_ciphers, 0, "default"),
	K_STR(client_tls_dheparams, 0, "auto"),
	K_STR(client_tls_ecdhcurve, 0, "auto"),
	K_STR(client_tls_key_file, 0, ""),
	K_STR(client_tls_protocols, 0, "secure"),
	K_ENUM(client_tls_sslmode, 0, "disable", sslmode_names),
	K_STR(conffile, 0, ""),
	K_INT(default_pool_size, 0, "20", 0, INT_MAX),
	K_BOOL(disable_pqexec, N | U, "0"),
	K_DUR(dns_max_ttl, 0, "15"),
	K_DUR(dns_nxdomain_ttl, 0, "15"),
	K_DUR(dns_zone_check_period, U, "0"),
	K_DUR(idle_transaction_timeout, 0, "0"),
	K_LIST(ignore_startup_parameters, 0, ""),
	K_STR(job_name, N | U, "pgbouncer"),
	K_LIST(listen_addr, N, ""),
	K_INT(listen_backlog, N, "128", 0, INT_MAX),
	K_INT(listen_port, N, "6432", 1, 65535),
	K_BOOL(log_connections, 0, "1"),
	K_BOOL(log_disconnections, 0, "1"),
	K_BOOL(log_pooler_errors, 0, "1"),
	K_INT(log_queue_size, N, "4096", 16, 1 << 24),
	K_BOOL(log_stats, 0, "1"),
	K_STR(logfile, 0, ""),
	K_INT(max_client_conn, 0, "100", 1, INT_MAX),
	K_INT(max_db_client_connections, 0, "0", 0, INT_MAX),
	K_INT(max_db_connections, 0, "0", 0, INT_MAX),
	K_INT(max_login_clients, 0, "0", -1, INT_MAX),
	K_INT(max_packet_size, 0, "2147483647", 0, INT_MAX),
	K_INT(max_prepared_statements, 0, "200", 0, INT_MAX),
	K_INT(max_user_client_connections, 0, "0", 0, INT_MAX),
	K_INT(max_user_connections, 0, "0", 0, INT_MAX),
	K_STR(metrics_listen, N, ""),
	K_INT(min_pool_size, 0, "0", 0, INT_MAX),
	K_INT(peer_id, 0, "0", 0, 65535),
	K_STR(pidfile, N, ""),
	K_INT(pkt_buf, N, "4096", 512, 1 << 30),
	K_ENUM(pool_mode, 0, "session", pool_mode_names),
	K_DUR(query_timeout, 0, "0"),
	K_DUR(query_wait_notify, 0, "5"),
	K_DUR(query_wait_timeout, 0, "120"),
	K_INT(reserve_pool_size, 0, "0", 0, INT_MAX),
	K_DUR(reserve_pool_timeout, 0, "5"),
	K_STR(resolv_conf, N, ""),
	K_INT(sbuf_loopcnt, 0, "5", 0, INT_MAX),
	K_INT(scram_iterations, 0, "4096", 1, INT_MAX),
	K_DUR(server_check_delay, 0, "30"),
	K_STR(server_check_query, 0, "<empty>"),
	K_DUR(server_connect_timeout, 0, "15"),
	K_BOOL(server_fast_close, 0, "0"),
	K_DUR(server_idle_timeout, 0, "600"),
	K_DUR(server_lifetime, 0, "3600"),
	K_DUR(server_login_retry, 0, "15"),
	K_STR(server_reset_query, 0, "DISCARD ALL"),
	K_BOOL(server_reset_query_always, 0, "0"),
	K_BOOL(server_round_robin, 0, "0"),
	K_STR(server_tls13_ciphers, 0, ""),
	K_STR(server_tls_ca_file, 0, ""),
	K_STR(server_tls_cert_file, 0, ""),
	K_STR(server_tls_ciphers, 0, "default"),
	K_STR(server_tls_key_file, 0, ""),
	K_STR(server_tls_protocols, 0, "secure"),
	K_ENUM(server_tls_sslmode, 0, "prefer", sslmode_names),
	K_BOOL(so_reuseport, N, "0"),
	K_DUR(stats_period, 0, "60"),
	K_LIST(stats_users, 0, ""),
	K_DUR(suspend_timeout, U, "10"),
	K_BOOL(syslog, U, "0"),
	K_STR(syslog_facility, U, "daemon"),
	K_STR(syslog_ident, U, "pgbouncer"),
	K_INT(tcp_defer_accept, 0, "1", 0, INT_MAX),
	K_BOOL(tcp_keepalive, 0, "1"),
	K_INT(tcp_keepcnt, 0, "0", 0, INT_MAX),
	K_INT(tcp_keepidle, 0, "0", 0, INT_MAX),
	K_INT(tcp_keepintvl, 0, "0", 0, INT_MAX),
	K_INT(tcp_socket_buffer, 0, "0", 0, INT_MAX),
	K_INT(tcp_user_timeout, 0, "0", 0, INT_MAX),
	K_LIST(track_extra_parameters, N, "IntervalStyle"),
	K_DUR(transaction_timeout, 0, "0"),
	K_STR(unix_socket_dir, N, "/tmp"),
	K_STR(unix_socket_group, N | U, ""),
	K_OCT(unix_socket_mode, N, "0777", 0, 07777),
	K_STR(user, N | U, ""),
	K_INT(verbose, 0, "0", 0, INT_MAX),
};

#undef N
#undef U
/* clang-format on */

#define N_SETTINGS ((int)NELEM(setting_table))

static int key_cmp(const void *a, const void *b)
{
	const char *name = a;
	const struct config_key *k = b;

	return strcasecmp(name, k->name);
}

const struct config_key *config_key_find(const char *name)
{
	return bsearch(name, setting_table, N_SETTINGS, sizeof(setting_table[0]), key_cmp);
}

const char *config_key_name(const struct config_key *k)
{
	return k->name;
}

unsigned config_key_flags(const struct config_key *k)
{
	return k->flags;
}

int config_setting_count(void)
{
	return N_SETTINGS;
}

int config_setting_flags(const char *key)
{
	const struct config_key *k = config_key_find(key);

	return k ? (int)k->flags : -ENOENT;
}

/* ---- small helpers ---------------------------------------------------- */

void config_msgf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (buf == NULL || len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

/* Strict decimal (or octal) integer in [min, max]. */
static int parse_ll(const char *s, int base, long long min, long long max, long long *out, char *em,
		size_t emlen)
{
	char *end;
	long long v;

	if (!isdigit((unsigned char)s[0]) && !(s[0] == '-' && isdigit((unsigned char)s[1]))) {
		config_msgf(em, emlen, base == 8 ? "expected an octal number" : "expected an integer");
		return -EINVAL;
	}
	errno = 0;
	v = strtoll(s, &end, base);
	if (*end != '\0') {
		config_msgf(em, emlen, base == 8 ? "expected an octal number" : "expected an integer");
		return -EINVAL;
	}
	if (errno == ERANGE || v < min || v > max) {
		config_msgf(em, emlen,
				base == 8 ? "must be between %#llo and %#llo"
					  : "must be between %lld and %lld",
				min, max);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

/* Seconds, optionally fractional ("0.5", ".25", "3"), into microseconds.
 * Digits past the sixth decimal are dropped. */
static int parse_duration(const char *s, int64_t *out_us, char *em, size_t emlen)
{
	const char *p = s;
	long long sec = 0, frac = 0, scale = USEC / 10;
	bool digits = false;

	for (; isdigit((unsigned char)*p); p++) {
		digits = true;
		sec = sec * 10 + (*p - '0');
		if (sec > DUR_MAX_SEC)
			goto range;
	}
	if (*p == '.') {
		for (p++; isdigit((unsigned char)*p); p++) {
			digits = true;
			frac += (*p - '0') * scale;
			scale /= 10;
		}
	}
	if (!digits || *p != '\0') {
		config_msgf(em, emlen, "expected a number of seconds");
		return -EINVAL;
	}
	*out_us = sec * USEC + frac;
	return 0;
range:
	config_msgf(em, emlen, "must be at most %lld seconds", DUR_MAX_SEC);
	return -EINVAL;
}

static int format_duration(int64_t us, char *buf, size_t len)
{
	long long sec = us / USEC, frac = us % USEC;
	int n;

	if (frac == 0)
		return snprintf(buf, len, "%lld", sec);
	n = snprintf(buf, len, "%lld.%06lld", sec, frac);
	while (n > 0 && (size_t)n < len && buf[n - 1] == '0')
		buf[--n] = '\0';
	return n;
}

static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"1", "yes", "on", "true"};
	static const char *const no[] = {"0", "no", "off", "false"};
	size_t i;

	for (i = 0; i < NELEM(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

static int parse_enum(const char *const *names, const char *s, int *out)
{
	int i;

	for (i = 0; names[i] != NULL; i++) {
		if (strcasecmp(names[i], s) == 0) {
			*out = i;
			return 0;
		}
	}
	return -EINVAL;
}

static void enum_choices(const char *const *names, char *buf, size_t len)
{
	size_t used = 0;
	int i;

	buf[0] = '\0';
	for (i = 0; names[i] != NULL && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "", names[i]);
}

/* ---- comma lists ------------------------------------------------------ */

/* Calls <fn> on each trimmed non-empty item of <list>; stops when it
 * returns true, and returns that. */
static bool list_walk(
		const char *list, bool (*fn)(const char *item, size_t len, void *arg), void *arg)
{
	const char *p = list, *start, *end;

	while (*p) {
		while (*p == ',' || isspace((unsigned char)*p))
			p++;
		if (!*p)
			break;
		start = p;
		while (*p && *p != ',')
			p++;
		end = p;
		while (end > start && isspace((unsigned char)end[-1]))
			end--;
		if (fn(start, (size_t)(end - start), arg))
			return true;
	}
	return false;
}

struct list_match {
	const char *name;
	size_t len;
	bool nocase;
};

static bool list_match_fn(const char *item, size_t len, void *arg)
{
	const struct list_match *m = arg;

	if (len != m->len)
		return false;
	return m->nocase ? strncasecmp(item, m->name, len) == 0 : memcmp(item, m->name, len) == 0;
}

bool config_list_contains(const char *list, const char *name)
{
	struct list_match m = {name, strlen(name), false};

	return list != NULL && list_walk(list, list_match_fn, &m);
}

bool config_list_contains_nocase(const char *list, const char *name)
{
	struct list_match m = {name, strlen(name), true};

	return list != NULL && list_walk(list, list_match_fn, &m);
}

static void strlist_free(struct config_strlist *l)
{
	int i;

	for (i = 0; i < l->n; i++)
		sys_free(l->v[i]);
	sys_free(l->v);
	sys_free(l->str);
	l->v = NULL;
	l->str = NULL;
	l->n = 0;
}

struct list_build {
	struct config_strlist *l;
	bool expand_star;
	bool oom;
};

static bool strlist_push(struct config_strlist *l, const char *s, size_t len)
{
	char **nv = sys_realloc(l->v, sizeof(*nv) * (size_t)(l->n + 1));

	if (nv == NULL)
		return false;
	l->v = nv;
	l->v[l->n] = sys_strndup(s, len);
	if (l->v[l->n] == NULL)
		return false;
	l->n++;
	return true;
}

static bool list_build_fn(const char *item, size_t len, void *arg)
{
	struct list_build *b = arg;

	if (b->expand_star && len == 1 && item[0] == '*') {
		if (!strlist_push(b->l, "0.0.0.0", 7) || !strlist_push(b->l, "::", 2))
			b->oom = true;
	} else if (!strlist_push(b->l, item, len)) {
		b->oom = true;
	}
	return b->oom;
}

static int strlist_parse(const char *text, bool expand_star, struct config_strlist *out)
{
	struct list_build b = {out, expand_star, false};

	memset(out, 0, sizeof(*out));
	out->str = sys_strdup(text);
	if (out->str == NULL)
		return -ENOMEM;
	list_walk(text, list_build_fn, &b);
	if (b.oom) {
		strlist_free(out);
		return -ENOMEM;
	}
	return 0;
}

/* A deep copy of <src> into <out> (items copied, not re-derived from the
 * text, so the copy equals <src> whatever built it). */
static int strlist_copy(const struct config_strlist *src, struct config_strlist *out)
{
	int i;

	memset(out, 0, sizeof(*out));
	if (src->str != NULL && (out->str = sys_strdup(src->str)) == NULL)
		return -ENOMEM;
	for (i = 0; i < src->n; i++) {
		if (!strlist_push(out, src->v[i], strlen(src->v[i]))) {
			strlist_free(out);
			return -ENOMEM;
		}
	}
	return 0;
}

/* ---- typed values ----------------------------------------------------- */

union cval {
	long long i; /* CT_INT, CT_OCTAL, CT_BOOL, CT_ENUM, CT_DUR */
	char *s;     /* CT_STR */
	struct config_strlist l;
};

static void *field_of(const struct config_settings *s, const struct config_key *k)
{
	return (char *)s + k->off;
}

/* Parse <text> for <k> into <v>; on success <v> may own allocations.
 * On failure <em> says why (without naming the key). */
static int parse_cval(
		const struct config_key *k, const char *text, union cval *v, char *em, size_t emlen)
{
	char choices[160];
	int64_t us;
	bool b;
	int e;

	memset(v, 0, sizeof(*v));
	switch (k->type) {
	case CT_INT:
		return parse_ll(text, 10, k->min, k->max, &v->i, em, emlen);
	case CT_OCTAL:
		return parse_ll(text, 8, k->min, k->max, &v->i, em, emlen);
	case CT_BOOL:
		if (parse_bool(text, &b) < 0) {
			config_msgf(em, emlen, "expected a boolean (0/1, yes/no, on/off, true/false)");
			return -EINVAL;
		}
		v->i = b;
		return 0;
	case CT_DUR:
		if (parse_duration(text, &us, em, emlen) < 0)
			return -EINVAL;
		v->i = us;
		return 0;
	case CT_ENUM:
		if (parse_enum(k->names, text, &e) < 0) {
			enum_choices(k->names, choices, sizeof(choices));
			config_msgf(em, emlen, "expected one of: %s", choices);
			return -EINVAL;
		}
		v->i = e;
		return 0;
	case CT_STR:
		v->s = sys_strdup(text);
		if (v->s == NULL) {
			config_msgf(em, emlen, "out of memory");
			return -ENOMEM;
		}
		return 0;
	case CT_LIST:
		if (strlist_parse(text, k->off == OFF(listen_addr), &v->l) < 0) {
			config_msgf(em, emlen, "out of memory");
			return -ENOMEM;
		}
		return 0;
	}
	return -EINVAL;
}

/* Shallow read of the field: the cval borrows its strings. */
static void load_cval(const struct config_settings *s, const struct config_key *k, union cval *v)
{
	const void *f = field_of(s, k);

	switch (k->type) {
	case CT_INT:
	case CT_OCTAL:
	case CT_ENUM:
		v->i = *(const int *)f;
		break;
	case CT_BOOL:
		v->i = *(const bool *)f;
		break;
	case CT_DUR:
		v->i = *(const int64_t *)f;
		break;
	case CT_STR:
		v->s = *(char *const *)f;
		break;
	case CT_LIST:
		v->l = *(const struct config_strlist *)f;
		break;
	}
}

/* Moves <v> into the field, freeing what the field held. */
static void store_cval(struct config_settings *s, const struct config_key *k, union cval *v)
{
	void *f = field_of(s, k);

	switch (k->type) {
	case CT_INT:
	case CT_OCTAL:
	case CT_ENUM:
		*(int *)f = (int)v->i;
		break;
	case CT_BOOL:
		*(bool *)f = v->i != 0;
		break;
	case CT_DUR:
		*(int64_t *)f = v->i;
		break;
	case CT_STR:
		sys_free(*(char **)f);
		*(char **)f = v->s;
		break;
	case CT_LIST:
		strlist_free(f);
		*(struct config_strlist *)f = v->l;
		break;
	}
}

/* Text for <v>: a pointer into <v> (strings) or into <buf>. */
static const char *format_cval(
		const struct config_key *k, const union cval *v, char *buf, size_t len)
{
	switch (k->type) {
	case CT_INT:
		snprintf(buf, len, "%lld", v->i);
		return buf;
	case CT_OCTAL:
		snprintf(buf, len, "%#llo", v->i);
		return buf;
	case CT_BOOL:
		return v->i ? "1" : "0";
	case CT_DUR:
		format_duration(v->i, buf, len);
		return buf;
	case CT_ENUM:
		return v->i >= 0 && k->names ? k->names[v->i] : "unknown";
	case CT_STR:
		return v->s ? v->s : "";
	case CT_LIST:
		return v->l.str ? v->l.str : "";
	}
	return "";
}

static const char *format_field(
		const struct config_settings *s, const struct config_key *k, char *buf, size_t len)
{
	union cval v;

	load_cval(s, k, &v);
	return format_cval(k, &v, buf, len);
}

static void free_settings(struct config_settings *s)
{
	int i;

	for (i = 0; i < N_SETTINGS; i++) {
		const struct config_key *k = &setting_table[i];

		if (k->type == CT_STR) {
			sys_free(*(char **)field_of(s, k));
			*(char **)field_of(s, k) = NULL;
		} else if (k->type == CT_LIST) {
			strlist_free(field_of(s, k));
		}
	}
}

static int settings_init_defaults(struct config_settings *s)
{
	union cval v;
	int i;

	for (i = 0; i < N_SETTINGS; i++) {
		if (parse_cval(&setting_table[i], setting_table[i].dflt, &v, NULL, 0) < 0)
			return -ENOMEM; /* defaults are valid (t_config checks): only OOM */
		store_cval(s, &setting_table[i], &v);
	}
	return 0;
}

/* <src>'s value of <k> with its own copies of any strings. */
static int copy_cval(const struct config_settings *src, const struct config_key *k, union cval *v)
{
	union cval borrowed;

	load_cval(src, k, &borrowed);
	*v = borrowed;
	if (k->type == CT_STR && borrowed.s != NULL)
		v->s = sys_strdup(borrowed.s);
	else if (k->type == CT_LIST)
		return strlist_copy(&borrowed.l, &v->l);
	return k->type == CT_STR && borrowed.s != NULL && v->s == NULL ? -ENOMEM : 0;
}

/* Every setting of <src> into the empty (zeroed) <s>, through the table. */
static int copy_settings(struct config_settings *s, const struct config_settings *src)
{
	union cval v;
	int i;

	for (i = 0; i < N_SETTINGS; i++) {
		if (copy_cval(src, &setting_table[i], &v) < 0)
			return -ENOMEM;
		store_cval(s, &setting_table[i], &v);
	}
	return 0;
}

int config_key_put(struct config_settings *s, const struct config_key *k, const char *text,
		char *em, size_t emlen)
{
	union cval v;
	int rc = parse_cval(k, text, &v, em, emlen);

	if (rc == 0)
		store_cval(s, k, &v);
	return rc;
}

bool config_key_is_default(const struct config_settings *s, const struct config_key *k)
{
	char buf[64];

	return strcmp(format_field(s, k, buf, sizeof(buf)), k->dflt) == 0;
}

/* ---- public settings API --------------------------------------------- */

void config_foreach_setting(const struct config *cfg, config_setting_fn fn, void *arg)
{
	char buf[64];
	int i;

	for (i = 0; i < N_SETTINGS; i++) {
		const struct config_key *k = &setting_table[i];

		fn(k->name, format_field(&cfg->s, k, buf, sizeof(buf)), k->dflt,
				!(k->flags & CONFIG_F_NORELOAD), arg);
	}
}

const char *config_setting_get(const struct config *cfg, const char *key, char *buf, size_t buflen)
{
	const struct config_key *k = config_key_find(key);

	if (k == NULL)
		return NULL;
	return format_field(&cfg->s, k, buf, buflen);
}

/* Security settings pgslab cannot honour, and combinations under which no
 * client could ever log in, refuse to load: accepting and ignoring them
 * would run a pooler other than its configuration says.  0, or -ENOTSUP /
 * -EINVAL with the reason in <em>. */
int config_check_settings(const struct config_settings *s, char *em, size_t emlen)
{
	if (s->auth_type == AUTH_TYPE_CERT && (s->client_tls_sslmode == SSLMODE_DISABLE ||
			s->client_tls_ca_file == NULL || s->client_tls_ca_file[0] == 0)) {
		config_msgf(em, emlen, "auth_type = cert needs client TLS with client certificates: "
				"client_tls_sslmode other than disable and client_tls_ca_file "
				"(no client could log in)");
		return -EINVAL;
	}
	if (s->auth_dbname && (strcmp(s->auth_dbname, CONFIG_RESERVED_DB) == 0 ||
				      strcmp(s->auth_dbname, "pgslab") == 0)) {
		/* PgBouncer's words: the console (either name) runs no auth_query */
		config_msgf(em, emlen, "cannot use the reserved \"%s\" database as an auth_dbname",
				s->auth_dbname);
		return -EINVAL;
	}
	if (s->auth_type == AUTH_TYPE_PAM || s->auth_type == AUTH_TYPE_LDAP) {
		config_msgf(em, emlen, "auth_type = %s is not supported by pgslab (it would need a "
				"blocking %s conversation moved off the event loop into a worker thread)",
				config_auth_type_name(s->auth_type),
				s->auth_type == AUTH_TYPE_PAM ? "PAM" : "LDAP");
		return -ENOTSUP;
	}
	return 0;
}

int config_set(struct config *cfg, const char *key, const char *value, char *err, size_t errlen)
{
	const struct config_key *k = config_key_find(key);
	char em[200];
	union cval v;
	int rc;

	if (k == NULL) {
		config_msgf(err, errlen, "unknown setting \"%s\"", key);
		return -ENOENT;
	}
	if (k->flags & CONFIG_F_NORELOAD) {
		config_msgf(err, errlen, "setting \"%s\" cannot be changed at run time", k->name);
		return -EPERM;
	}
	rc = parse_cval(k, value, &v, em, sizeof(em));
	if (rc < 0) {
		config_msgf(err, errlen, "invalid value \"%s\" for %s: %s", value, k->name, em);
		return rc;
	}
	if (k->type == CT_ENUM || k->type == CT_STR) {
		/* a shallow copy: <probe>'s string fields still borrow cfg's */
		struct config_settings probe = cfg->s;

		if (k->type == CT_STR)
			*(char **)field_of(&probe, k) = v.s;
		else
			store_cval(&probe, k, &v);
		rc = config_check_settings(&probe, err, errlen);
		if (rc < 0) {
			if (k->type == CT_STR)
				sys_free(v.s);
			return rc;
		}
	}
	store_cval(&cfg->s, k, &v);
	return 0;
}

void config_foreach_changed(
		const struct config *old, const struct config *new, config_change_fn fn, void *arg)
{
	char b1[64], b2[64];
	int i;

	for (i = 0; i < N_SETTINGS; i++) {
		const struct config_key *k = &setting_table[i];
		const char *a = format_field(&old->s, k, b1, sizeof(b1));
		const char *b = format_field(&new->s, k, b2, sizeof(b2));

		if (strcmp(a, b) != 0)
			fn(k->name, a, b, !(k->flags & CONFIG_F_NORELOAD), arg);
	}
}

/* ---- [databases] and [users] entry keys -------------------------------- */

enum etype { ET_STR, ET_INT, ET_DUR, ET_POOL_MODE, ET_LB };

struct entry_key {
	const char *name;
	enum etype type;
	size_t off;
	long long min, max;
};

#define DOFF(f) offsetof(struct config_db, f)
#define UOFF(f) offsetof(struct config_user, f)

/* clang-format off */
/* Sorted by name. */
static const struct entry_key db_keys[] = {
	{ "application_name", ET_STR, DOFF(application_name), 0, 0 },
	{ "auth_dbname", ET_STR, DOFF(auth_dbname), 0, 0 },
	{ "auth_query", ET_STR, DOFF(auth_query), 0, 0 },
	{ "auth_user", ET_STR, DOFF(auth_user), 0, 0 },
	{ "client_encoding", ET_STR, DOFF(client_encoding), 0, 0 },
	{ "connect_query", ET_STR, DOFF(connect_query), 0, 0 },
	{ "datestyle", ET_STR, DOFF(datestyle), 0, 0 },
	{ "dbname", ET_STR, DOFF(dbname), 0, 0 },
	{ "host", ET_STR, DOFF(host), 0, 0 },
	{ "load_balance_hosts", ET_LB, DOFF(load_balance_hosts), 0, 0 },
	{ "max_db_client_connections", ET_INT, DOFF(max_db_client_connections), 0, INT_MAX },
	{ "max_db_connections", ET_INT, DOFF(max_db_connections), 0, INT_MAX },
	{ "min_pool_size", ET_INT, DOFF(min_pool_size), 0, INT_MAX },
	{ "password", ET_STR, DOFF(password), 0, PWD_SECRET_MAX - 1 },
	{ "pool_mode", ET_POOL_MODE, DOFF(pool_mode), 0, 0 },
	{ "pool_size", ET_INT, DOFF(pool_size), 0, INT_MAX },
	{ "pool_weight", ET_INT, DOFF(pool_weight), 1, INT_MAX },
	{ "port", ET_INT, DOFF(port), 1, 65535 },
	{ "query_wait_timeout", ET_DUR, DOFF(query_wait_timeout_us), 0, 0 },
	{ "reserve_pool", ET_INT, DOFF(reserve_pool_size), 0, INT_MAX },
	{ "reserve_pool_size", ET_INT, DOFF(reserve_pool_size), 0, INT_MAX },
	{ "server_lifetime", ET_DUR, DOFF(server_lifetime_us), 0, 0 },
	{ "timezone", ET_STR, DOFF(timezone), 0, 0 },
	{ "user", ET_STR, DOFF(user), 0, 0 },
};

/* Sorted by name. */
static const struct entry_key user_keys[] = {
	{ "client_idle_timeout", ET_DUR, UOFF(client_idle_timeout_us), 0, 0 },
	{ "idle_transaction_timeout", ET_DUR, UOFF(idle_transaction_timeout_us), 0, 0 },
	{ "max_user_client_connections", ET_INT, UOFF(max_user_client_connections), 0, INT_MAX },
	{ "max_user_connections", ET_INT, UOFF(max_user_connections), 0, INT_MAX },
	{ "pool_mode", ET_POOL_MODE, UOFF(pool_mode), 0, 0 },
	{ "pool_size", ET_INT, UOFF(pool_size), 0, INT_MAX },
	{ "query_timeout", ET_DUR, UOFF(query_timeout_us), 0, 0 },
	{ "query_wait_timeout", ET_DUR, UOFF(query_wait_timeout_us), 0, 0 },
	{ "reserve_pool_size", ET_INT, UOFF(reserve_pool_size), 0, INT_MAX },
	{ "transaction_timeout", ET_DUR, UOFF(transaction_timeout_us), 0, 0 },
};
/* clang-format on */

static int entry_key_cmp(const void *a, const void *b)
{
	const struct entry_key *k = b;

	return strcmp(a, k->name);
}

/* Stores <val> into the entry field described by <k>. */
static int entry_set(
		void *entry, const struct entry_key *k, const char *val, char *em, size_t emlen)
{
	void *f = (char *)entry + k->off;
	long long ll;
	int64_t us;
	char *s;
	int e;

	switch (k->type) {
	case ET_STR:
		if (k->max > 0 && strlen(val) > (size_t)k->max) { /* <max>: a length */
			config_msgf(em, emlen, "too long (at most %lld bytes)", k->max);
			return -EINVAL;
		}
		s = sys_strdup(val);
		if (s == NULL) {
			config_msgf(em, emlen, "out of memory");
			return -ENOMEM;
		}
		sys_free(*(char **)f);
		*(char **)f = s;
		return 0;
	case ET_INT:
		if (parse_ll(val, 10, k->min, k->max, &ll, em, emlen) < 0)
			return -EINVAL;
		*(int *)f = (int)ll;
		return 0;
	case ET_DUR:
		if (parse_duration(val, &us, em, emlen) < 0)
			return -EINVAL;
		*(int64_t *)f = us;
		return 0;
	case ET_POOL_MODE:
		if (parse_enum(pool_mode_names, val, &e) < 0) {
			config_msgf(em, emlen, "expected one of: session, transaction, statement");
			return -EINVAL;
		}
		*(int *)f = e;
		return 0;
	case ET_LB:
		if (parse_enum(lb_names, val, &e) < 0) {
			config_msgf(em, emlen, "expected one of: disable, round-robin");
			return -EINVAL;
		}
		*(int *)f = e;
		return 0;
	}
	return -EINVAL;
}

int config_entry_put(void *entry, bool db, const char *key, const char *val, char *em,
		size_t emlen)
{
	const struct entry_key *keys = db ? db_keys : user_keys;
	size_t nkeys = db ? NELEM(db_keys) : NELEM(user_keys);
	const struct entry_key *k = bsearch(key, keys, nkeys, sizeof(*keys), entry_key_cmp);
	char sub[200];
	int rc;

	if (k == NULL) {
		config_msgf(em, emlen, "unknown parameter \"%s\"", key);
		return -EINVAL;
	}
	rc = entry_set(entry, k, val, sub, sizeof(sub));
	if (rc < 0 && db && k->off == DOFF(password)) /* a secret is never echoed */
		config_msgf(em, emlen, "invalid value for %s: %s", k->name, sub);
	else if (rc < 0)
		config_msgf(em, emlen, "invalid value \"%s\" for %s: %s", val, k->name, sub);
	return rc;
}

/* Every char * an entry owns: freeing and cloning both walk these, so the
 * two cannot disagree.  (<file> is not owned: it points into cfg->files.) */
static const size_t db_strs[] = {
	DOFF(name), DOFF(dbname), DOFF(host), DOFF(user), DOFF(password), DOFF(auth_user),
	DOFF(auth_query), DOFF(auth_dbname), DOFF(client_encoding), DOFF(datestyle),
	DOFF(timezone), DOFF(connect_query), DOFF(application_name),
};
static const size_t user_strs[] = { UOFF(name) };
static const size_t peer_strs[] = { offsetof(struct config_peer, name),
	offsetof(struct config_peer, host) };

struct entry_shape {
	size_t size;
	size_t file_off;    /* const char *file, pointing into cfg->files */
	const size_t *strs; /* the owned strings */
	size_t n_strs;
};

static const struct entry_shape db_shape = {
	sizeof(struct config_db), DOFF(file), db_strs, NELEM(db_strs)
};
static const struct entry_shape user_shape = {
	sizeof(struct config_user), UOFF(file), user_strs, NELEM(user_strs)
};
static const struct entry_shape peer_shape = {
	sizeof(struct config_peer), offsetof(struct config_peer, file), peer_strs, NELEM(peer_strs)
};

static char **str_at(const void *entry, size_t off)
{
	return (char **)(void *)((char *)entry + off);
}

static void entry_free_strs(void *entry, const struct entry_shape *sh)
{
	size_t i;

	for (i = 0; i < sh->n_strs; i++)
		sys_free(*str_at(entry, sh->strs[i]));
}

void config_db_free_fields(struct config_db *db)
{
	entry_free_strs(db, &db_shape);
}

void config_user_free_fields(struct config_user *u)
{
	entry_free_strs(u, &user_shape);
}

void config_peer_free_fields(struct config_peer *pe)
{
	entry_free_strs(pe, &peer_shape);
}

void config_db_init(struct config_db *db)
{
	memset(db, 0, sizeof(*db));
	db->port = 5432;
	db->pool_size = CONFIG_INHERIT;
	db->min_pool_size = CONFIG_INHERIT;
	db->reserve_pool_size = CONFIG_INHERIT;
	db->max_db_connections = CONFIG_INHERIT;
	db->max_db_client_connections = CONFIG_INHERIT;
	db->server_lifetime_us = CONFIG_INHERIT;
	db->query_wait_timeout_us = CONFIG_INHERIT;
	db->pool_mode = CONFIG_INHERIT;
	db->load_balance_hosts = LOAD_BALANCE_HOSTS_DISABLE;
	db->pool_weight = 1;
}

void config_user_init(struct config_user *u)
{
	memset(u, 0, sizeof(*u));
	u->pool_mode = CONFIG_INHERIT;
	u->pool_size = CONFIG_INHERIT;
	u->reserve_pool_size = CONFIG_INHERIT;
	u->max_user_connections = CONFIG_INHERIT;
	u->max_user_client_connections = CONFIG_INHERIT;
	u->query_timeout_us = CONFIG_INHERIT;
	u->query_wait_timeout_us = CONFIG_INHERIT;
	u->idle_transaction_timeout_us = CONFIG_INHERIT;
	u->transaction_timeout_us = CONFIG_INHERIT;
	u->client_idle_timeout_us = CONFIG_INHERIT;
}

static int name_cmp(const void *key, const void *entry)
{
	return strcmp(key, *(char *const *)entry);
}

const struct config_db *config_find_db(const struct config *cfg, const char *name)
{
	const struct config_db *db = NULL;

	if (cfg->n_dbs > 0)
		db = bsearch(name, cfg->dbs, (size_t)cfg->n_dbs, sizeof(*db), name_cmp);
	return db ? db : cfg->fallback_db;
}

const struct config_user *config_find_user(const struct config *cfg, const char *name)
{
	if (cfg->n_users == 0)
		return NULL;
	return bsearch(name, cfg->users, (size_t)cfg->n_users, sizeof(*cfg->users), name_cmp);
}

const struct config_peer *config_find_peer(const struct config *cfg, int id)
{
	int i;

	for (i = 0; i < cfg->n_peers; i++)
		if (cfg->peers[i].id == id)
			return &cfg->peers[i];
	return NULL;
}

/* ---- lifetime -------------------------------------------------------- */

struct config *config_new_defaults(void)
{
	struct config *cfg = sys_calloc(1, sizeof(*cfg));

	if (cfg == NULL)
		return NULL;
	if (settings_init_defaults(&cfg->s) < 0) {
		config_free(cfg);
		return NULL;
	}
	return cfg;
}

/* ---- cloning ---------------------------------------------------------- */

/* The name in <cfg>->files of the file <from>->files[i] == <file>. */
static const char *clone_file(const struct config *cfg, const struct config *from,
		const char *file)
{
	int i;

	for (i = 0; i < from->n_files; i++)
		if (from->files[i] == file)
			return cfg->files[i];
	return NULL;
}

/* <src> (an entry of <from>) into <dst> (one of <cfg>), its strings copied.
 * On failure the strings not yet copied are NULL: <dst> can be freed. */
static int entry_copy(const struct config *cfg, const struct config *from, void *dst,
		const void *src, const struct entry_shape *sh)
{
	const char **file = (const char **)(void *)str_at(dst, sh->file_off);
	size_t i;

	memcpy(dst, src, sh->size);
	*file = clone_file(cfg, from, *file);
	for (i = 0; i < sh->n_strs; i++)
		*str_at(dst, sh->strs[i]) = NULL;
	for (i = 0; i < sh->n_strs; i++) {
		const char *s = *str_at(src, sh->strs[i]);

		if (s != NULL && (*str_at(dst, sh->strs[i]) = sys_strdup(s)) == NULL)
			return -ENOMEM;
	}
	return 0;
}

/* The <n> entries at <src> into a new array *<dst>; *<dst_n> is set before
 * any copy, so a failure leaves what config_free() frees. */
static int entries_copy(const struct config *cfg, const struct config *from, void **dst,
		int *dst_n, const void *src, int n, const struct entry_shape *sh)
{
	int i;

	if (n <= 0)
		return 0;
	*dst = sys_calloc((size_t)n, sh->size);
	if (*dst == NULL)
		return -ENOMEM;
	*dst_n = n;
	for (i = 0; i < n; i++)
		if (entry_copy(cfg, from, (char *)*dst + (size_t)i * sh->size,
				    (const char *)src + (size_t)i * sh->size, sh) < 0)
			return -ENOMEM;
	return 0;
}

static int strs_copy(char ***dst, int *dst_n, char *const *src, int n)
{
	int i;

	if (n <= 0)
		return 0;
	*dst = sys_calloc((size_t)n, sizeof(**dst));
	if (*dst == NULL)
		return -ENOMEM;
	*dst_n = n;
	for (i = 0; i < n; i++)
		if (((*dst)[i] = sys_strdup(src[i])) == NULL)
			return -ENOMEM;
	return 0;
}

struct config *config_clone(const struct config *src)
{
	struct config *cfg = sys_calloc(1, sizeof(*cfg));
	int i, n_fallback = 0;

	if (cfg == NULL)
		return NULL;
	if (copy_settings(&cfg->s, &src->s) < 0)
		goto oom;
	/* the files first: the entries' <file> point into them */
	if (strs_copy(&cfg->files, &cfg->n_files, src->files, src->n_files) < 0)
		goto oom;
	if (entries_copy(cfg, src, (void **)&cfg->dbs, &cfg->n_dbs, src->dbs, src->n_dbs,
			    &db_shape) < 0 ||
			entries_copy(cfg, src, (void **)&cfg->fallback_db, &n_fallback, src->fallback_db,
					src->fallback_db ? 1 : 0, &db_shape) < 0 ||
			entries_copy(cfg, src, (void **)&cfg->users, &cfg->n_users, src->users,
					src->n_users, &user_shape) < 0 ||
			entries_copy(cfg, src, (void **)&cfg->peers, &cfg->n_peers, src->peers,
					src->n_peers, &peer_shape) < 0)
		goto oom;
	if (src->n_warnings > 0) {
		cfg->warnings = sys_calloc((size_t)src->n_warnings, sizeof(*cfg->warnings));
		if (cfg->warnings == NULL)
			goto oom;
		cfg->n_warnings = src->n_warnings;
		for (i = 0; i < src->n_warnings; i++) {
			cfg->warnings[i] = src->warnings[i]; /* <key> is static */
			cfg->warnings[i].msg = sys_strdup(src->warnings[i].msg);
			if (cfg->warnings[i].msg == NULL)
				goto oom;
		}
	}
	return cfg;
oom:
	config_free(cfg);
	return NULL;
}

/* ---- freeing ---------------------------------------------------------- */

void config_free(struct config *cfg)
{
	int i;

	if (cfg == NULL)
		return;
	free_settings(&cfg->s);
	for (i = 0; i < cfg->n_dbs; i++)
		config_db_free_fields(&cfg->dbs[i]);
	sys_free(cfg->dbs);
	if (cfg->fallback_db != NULL)
		config_db_free_fields(cfg->fallback_db);
	sys_free(cfg->fallback_db);
	for (i = 0; i < cfg->n_users; i++)
		config_user_free_fields(&cfg->users[i]);
	sys_free(cfg->users);
	for (i = 0; i < cfg->n_peers; i++)
		config_peer_free_fields(&cfg->peers[i]);
	sys_free(cfg->peers);
	for (i = 0; i < cfg->n_warnings; i++)
		sys_free(cfg->warnings[i].msg);
	sys_free(cfg->warnings);
	for (i = 0; i < cfg->n_files; i++)
		sys_free(cfg->files[i]);
	sys_free(cfg->files);
	sys_free(cfg);
}
