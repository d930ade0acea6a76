/* config.c -- PgBouncer-compatible ini parsing into plain structs.
 *
 * Theory.  One sorted constant table (setting_table) describes every
 * [pgbouncer] setting: name, type, flags, field offset in struct
 * config_settings, default (written exactly as format_cval() prints it, so
 * a fresh config's SHOW CONFIG has value == default) and range.  All
 * reading and writing of settings goes through a tagged value (union cval):
 *
 *	text --parse_cval--> cval --store_cval--> field
 *	field --load_cval--> cval --format_cval--> text
 *
 * store_cval() takes ownership of the strings inside the cval and frees the
 * ones it replaces; nothing else frees setting fields except free_settings().
 *
 * [databases] and [users] entries are parsed into local structs, appended to
 * growable arrays in file order, then sorted by name (ties by position) and
 * deduplicated keeping the last definition, which is PgBouncer's "later line
 * wins".  Lookups then bsearch.  The "*" entry lives apart in fallback_db.
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
#include <unistd.h>

#include "connstr.h"
#include "sysalloc.h"
#include "textfile.h"

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

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

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
	K_DUR(dns_max_ttl, U, "15"),
	K_DUR(dns_nxdomain_ttl, U, "15"),
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
	K_INT(peer_id, U, "0", 0, 65535),
	K_STR(pidfile, N, ""),
	K_INT(pkt_buf, N, "4096", 512, 1 << 30),
	K_ENUM(pool_mode, 0, "session", pool_mode_names),
	K_DUR(query_timeout, 0, "0"),
	K_DUR(query_wait_notify, 0, "5"),
	K_DUR(query_wait_timeout, 0, "120"),
	K_INT(reserve_pool_size, 0, "0", 0, INT_MAX),
	K_DUR(reserve_pool_timeout, 0, "5"),
	K_STR(resolv_conf, N | U, ""),
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
	K_BOOL(so_reuseport, N | U, "0"),
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

static const struct config_key *setting_find(const char *name)
{
	return bsearch(name, setting_table, N_SETTINGS, sizeof(setting_table[0]), key_cmp);
}

int config_setting_count(void)
{
	return N_SETTINGS;
}

int config_setting_flags(const char *key)
{
	const struct config_key *k = setting_find(key);

	return k ? (int)k->flags : -ENOENT;
}

/* ---- small helpers ---------------------------------------------------- */

static void msgf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void msgf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (buf == NULL || len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

static void rtrim(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
}

/* Strict decimal (or octal) integer in [min, max]. */
static int parse_ll(const char *s, int base, long long min, long long max, long long *out, char *em,
		size_t emlen)
{
	char *end;
	long long v;

	if (!isdigit((unsigned char)s[0]) && !(s[0] == '-' && isdigit((unsigned char)s[1]))) {
		msgf(em, emlen, base == 8 ? "expected an octal number" : "expected an integer");
		return -EINVAL;
	}
	errno = 0;
	v = strtoll(s, &end, base);
	if (*end != '\0') {
		msgf(em, emlen, base == 8 ? "expected an octal number" : "expected an integer");
		return -EINVAL;
	}
	if (errno == ERANGE || v < min || v > max) {
		msgf(em, emlen,
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
		msgf(em, emlen, "expected a number of seconds");
		return -EINVAL;
	}
	*out_us = sec * USEC + frac;
	return 0;
range:
	msgf(em, emlen, "must be at most %lld seconds", DUR_MAX_SEC);
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
			msgf(em, emlen, "expected a boolean (0/1, yes/no, on/off, true/false)");
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
			msgf(em, emlen, "expected one of: %s", choices);
			return -EINVAL;
		}
		v->i = e;
		return 0;
	case CT_STR:
		v->s = sys_strdup(text);
		if (v->s == NULL) {
			msgf(em, emlen, "out of memory");
			return -ENOMEM;
		}
		return 0;
	case CT_LIST:
		if (strlist_parse(text, k->off == OFF(listen_addr), &v->l) < 0) {
			msgf(em, emlen, "out of memory");
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
	const struct config_key *k = setting_find(key);

	if (k == NULL)
		return NULL;
	return format_field(&cfg->s, k, buf, buflen);
}

/* Security settings pgslab cannot honour, and combinations under which no
 * client could ever log in, refuse to load: accepting and ignoring them
 * would run a pooler other than its configuration says.  0, or -ENOTSUP /
 * -EINVAL with the reason in <em>. */
static int check_settings(const struct config_settings *s, char *em, size_t emlen)
{
	if (s->auth_type == AUTH_TYPE_CERT && (s->client_tls_sslmode == SSLMODE_DISABLE ||
			s->client_tls_ca_file == NULL || s->client_tls_ca_file[0] == 0)) {
		msgf(em, emlen, "auth_type = cert needs client TLS with client certificates: "
				"client_tls_sslmode other than disable and client_tls_ca_file "
				"(no client could log in)");
		return -EINVAL;
	}
	if (s->auth_type == AUTH_TYPE_PAM || s->auth_type == AUTH_TYPE_LDAP) {
		msgf(em, emlen, "auth_type = %s is not supported by pgslab (it would need a "
				"blocking %s conversation moved off the event loop into a worker thread)",
				config_auth_type_name(s->auth_type),
				s->auth_type == AUTH_TYPE_PAM ? "PAM" : "LDAP");
		return -ENOTSUP;
	}
	return 0;
}

int config_set(struct config *cfg, const char *key, const char *value, char *err, size_t errlen)
{
	const struct config_key *k = setting_find(key);
	char em[200];
	union cval v;
	int rc;

	if (k == NULL) {
		msgf(err, errlen, "unknown setting \"%s\"", key);
		return -ENOENT;
	}
	if (k->flags & CONFIG_F_NORELOAD) {
		msgf(err, errlen, "setting \"%s\" cannot be changed at run time", k->name);
		return -EPERM;
	}
	rc = parse_cval(k, value, &v, em, sizeof(em));
	if (rc < 0) {
		msgf(err, errlen, "invalid value \"%s\" for %s: %s", value, k->name, em);
		return rc;
	}
	if (k->type == CT_ENUM || k->type == CT_STR) {
		/* a shallow copy: <probe>'s string fields still borrow cfg's */
		struct config_settings probe = cfg->s;

		if (k->type == CT_STR)
			*(char **)field_of(&probe, k) = v.s;
		else
			store_cval(&probe, k, &v);
		rc = check_settings(&probe, err, errlen);
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
	{ "password", ET_STR, DOFF(password), 0, 0 },
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
		s = sys_strdup(val);
		if (s == NULL) {
			msgf(em, emlen, "out of memory");
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
			msgf(em, emlen, "expected one of: session, transaction, statement");
			return -EINVAL;
		}
		*(int *)f = e;
		return 0;
	case ET_LB:
		if (parse_enum(lb_names, val, &e) < 0) {
			msgf(em, emlen, "expected one of: disable, round-robin");
			return -EINVAL;
		}
		*(int *)f = e;
		return 0;
	}
	return -EINVAL;
}

/* Applies every pair of <connstr> to <entry> via <keys>.  <what> names the
 * entry kind for messages ("database", "user"). */
static int entry_parse(void *entry, const struct entry_key *keys, size_t nkeys, const char *connstr,
		char *em, size_t emlen)
{
	char *copy = sys_strdup(connstr), *p, *key, *val;
	const struct entry_key *k;
	char sub[200];
	int rc;

	if (copy == NULL) {
		msgf(em, emlen, "out of memory");
		return -ENOMEM;
	}
	p = copy;
	while ((rc = connstr_next(&p, &key, &val, em, emlen)) > 0) {
		k = bsearch(key, keys, nkeys, sizeof(*keys), entry_key_cmp);
		if (k == NULL) {
			msgf(em, emlen, "unknown parameter \"%s\"", key);
			rc = -EINVAL;
			break;
		}
		rc = entry_set(entry, k, val, sub, sizeof(sub));
		if (rc < 0) {
			msgf(em, emlen, "invalid value \"%s\" for %s: %s", val, k->name, sub);
			break;
		}
	}
	sys_free(copy);
	return rc < 0 ? rc : 0;
}

static void db_free_fields(struct config_db *db)
{
	sys_free(db->name);
	sys_free(db->dbname);
	sys_free(db->host);
	sys_free(db->user);
	sys_free(db->password);
	sys_free(db->auth_user);
	sys_free(db->auth_query);
	sys_free(db->auth_dbname);
	sys_free(db->client_encoding);
	sys_free(db->datestyle);
	sys_free(db->timezone);
	sys_free(db->connect_query);
	sys_free(db->application_name);
}

static void user_free_fields(struct config_user *u)
{
	sys_free(u->name);
}

static void db_init(struct config_db *db)
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

static void user_init(struct config_user *u)
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
	int db_cap, user_cap, warn_cap;
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
		msgf(ld->err, ld->errlen, "%s:%d: out of memory", ld->file, ld->line);
	else
		msgf(ld->err, ld->errlen, "%s:%d: %s", ld->file, ld->line, msg);
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
	const struct config_key *k = setting_find(key);
	char em[200], buf[64];
	union cval v;
	int rc;

	if (k == NULL)
		return lerr(ld, -EINVAL, "unknown key \"%s\" in [pgbouncer]", key);
	rc = parse_cval(k, val, &v, em, sizeof(em));
	if (rc < 0)
		return lerr(ld, rc, "invalid value \"%s\" for %s: %s", val, k->name, em);
	store_cval(&ld->cfg->s, k, &v);
	if (k->flags & CONFIG_F_UNSUPPORTED) {
		bool dflt = strcmp(format_field(&ld->cfg->s, k, buf, sizeof(buf)), k->dflt) == 0;

		return lwarn(ld, k->name, dflt, "setting \"%s\" is not supported yet; ignored",
				k->name);
	}
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
	db_init(&db);
	db.file = ld->file;
	db.line = ld->line;
	rc = entry_parse(&db, db_keys, NELEM(db_keys), connstr, em, sizeof(em));
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
			db_free_fields(cfg->fallback_db);
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
	db_free_fields(&db);
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

	user_init(&u);
	u.file = ld->file;
	u.line = ld->line;
	rc = entry_parse(&u, user_keys, NELEM(user_keys), connstr, em, sizeof(em));
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
	user_free_fields(&u);
	if (rc == -ENOMEM)
		return lerr(ld, rc, "out of memory");
	return lerr(ld, rc, "user \"%s\": %s", name, em);
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
			if (ld->sect == SECT_PEERS)
				return lwarn(ld, NULL, false,
						"[peers] section is not supported yet; its entries "
						"are ignored");
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
		return 0; /* warned once at the section header */
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
		msgf(ld->err, ld->errlen, "%s: %s", path, why);
		return -e;
	}
	if (remember_file(ld, path) < 0) {
		sys_free(buf);
		msgf(ld->err, ld->errlen, "%s: out of memory", path);
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
	db_free_fields(p);
}

static void user_free_void(void *p)
{
	user_free_fields(p);
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

struct config *config_load(const char *path, char *err, size_t errlen)
{
	struct loader ld = {0};
	struct config *cfg;
	union cval v;

	msgf(err, errlen, "no error");
	cfg = config_new_defaults();
	if (cfg == NULL) {
		msgf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	ld.cfg = cfg;
	ld.err = err;
	ld.errlen = errlen;
	ld.file = path;
	if (parse_file(&ld, path) < 0)
		goto fail;
	if (cfg->s.conffile[0] == '\0') {
		v.s = sys_strdup(path);
		if (v.s == NULL)
			goto oom;
		store_cval(&cfg->s, setting_find("conffile"), &v);
	}
	if (sort_dedup((void **)&cfg->dbs, &cfg->n_dbs, sizeof(*cfg->dbs), db_free_void) < 0)
		goto oom;
	if (sort_dedup((void **)&cfg->users, &cfg->n_users, sizeof(*cfg->users), user_free_void) <
			0)
		goto oom;
	{
		char em[200];

		if (check_settings(&cfg->s, em, sizeof(em)) < 0) {
			msgf(err, errlen, "%s: %s", path, em);
			goto fail;
		}
	}
	return cfg;
oom:
	msgf(err, errlen, "%s: out of memory", path);
fail:
	config_free(cfg);
	return NULL;
}

void config_free(struct config *cfg)
{
	int i;

	if (cfg == NULL)
		return;
	free_settings(&cfg->s);
	for (i = 0; i < cfg->n_dbs; i++)
		db_free_fields(&cfg->dbs[i]);
	sys_free(cfg->dbs);
	if (cfg->fallback_db != NULL)
		db_free_fields(cfg->fallback_db);
	sys_free(cfg->fallback_db);
	for (i = 0; i < cfg->n_users; i++)
		user_free_fields(&cfg->users[i]);
	sys_free(cfg->users);
	for (i = 0; i < cfg->n_warnings; i++)
		sys_free(cfg->warnings[i].msg);
	sys_free(cfg->warnings);
	for (i = 0; i < cfg->n_files; i++)
		sys_free(cfg->files[i]);
	sys_free(cfg->files);
	sys_free(cfg);
}
