/* config.h -- PgBouncer-compatible ini parsing into plain structs.
 *
 * config_load() (config_load.c) reads a PgBouncer ini file (sections [databases], [users],
 * [pgbouncer], [peers]; "%include"; ';'/'#' comment lines) into a struct
 * config and does nothing else: no sockets, no logging, no globals.  Errors
 * are written to a caller buffer as "<file>:<line>: <what>"; settings that
 * pgslab parses but does not implement yet are collected as warnings for the
 * caller to log.
 *
 * Ownership: everything reachable from a struct config (strings, arrays,
 * entries, warnings) belongs to it and is released by config_free().
 * Pointers returned by the lookup helpers stay valid until then.
 *
 * Snapshots: the config a pooler runs with is immutable once it is in use.
 * A change makes a new one and swaps it in whole: a reload loads a fresh
 * file, and the console's SET clones the running config (config_clone),
 * applies config_set() to the copy and swaps the copy in only if that
 * succeeded (proxy_swap_config), so a failed SET leaves the running config
 * untouched and no reader ever sees one half changed.  config_set() writes
 * in place and is therefore only for a config nobody else reads yet.  With
 * several event loops, each would switch to the new snapshot at a loop
 * boundary (workers.h), and nothing keeps a pointer into a config beyond
 * the call that read it (proxy.c lists what is copied out instead).
 *
 * [pgbouncer] settings are described by one sorted constant table in
 * config.c (name, type, field offset, default, flags) that drives parsing,
 * defaults, SHOW CONFIG (config_foreach_setting), SET (config_set) and reload
 * comparison (config_foreach_changed).
 *
 * File format notes (where pgslab differs from or extends PgBouncer):
 * - "%include <path>": a relative path is tried against the working
 *   directory first (as PgBouncer does) and, if no file is there, against the
 *   directory of the including file.  Includes nest at most
 *   CONFIG_MAX_INCLUDE_DEPTH deep.  The current section carries into the
 *   included file and whatever section it ends in carries back out.
 * - Keys in [pgbouncer] are case-insensitive; enum values too.
 * - Values are taken verbatim to the end of the line (trailing blanks
 *   trimmed): no inline comments, no unquoting, like PgBouncer.
 * - Database and user names may be double-quoted ("my db" = ...), with ""
 *   standing for a literal quote.
 * - Connection strings: key=value pairs separated by blanks; blanks around
 *   '=' are allowed; a value may be single-quoted, where \' and '' give a
 *   quote and \\ a backslash (other backslashes are literal).
 * - Integers are decimal, except unix_socket_mode which is octal.
 * - Durations are seconds and may be fractional ("0.5"); they are stored in
 *   microseconds in fields ending in _us.
 */
#ifndef PGSLAB_CONFIG_H
#define PGSLAB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_MAX_INCLUDE_DEPTH 10
#define CONFIG_FALLBACK_DB "*"	       /* [databases] entry used for unlisted names */
#define CONFIG_RESERVED_DB "pgbouncer" /* the admin console's name */

enum pool_mode {
	POOL_MODE_SESSION,
	POOL_MODE_TRANSACTION,
	POOL_MODE_STATEMENT,
};

enum auth_type {
	AUTH_TYPE_ANY,
	AUTH_TYPE_TRUST,
	AUTH_TYPE_PLAIN,
	AUTH_TYPE_MD5,
	AUTH_TYPE_SCRAM_SHA_256,
	AUTH_TYPE_CERT,
	AUTH_TYPE_HBA,
	AUTH_TYPE_PAM,
	AUTH_TYPE_LDAP,
	AUTH_TYPE_PEER,  /* pgslab: every login as by an HBA "local ... peer" line */
};

enum sslmode {
	SSLMODE_DISABLE,
	SSLMODE_ALLOW,
	SSLMODE_PREFER,
	SSLMODE_REQUIRE,
	SSLMODE_VERIFY_CA,
	SSLMODE_VERIFY_FULL,
};

enum load_balance_hosts {
	LOAD_BALANCE_HOSTS_DISABLE,
	LOAD_BALANCE_HOSTS_ROUND_ROBIN,
};

/* Per-database and per-user fields use this for "not set: inherit the
 * global [pgbouncer] value" (numbers, durations and pool_mode alike). */
#define CONFIG_INHERIT (-1)

const char *config_pool_mode_name(enum pool_mode m);
const char *config_auth_type_name(enum auth_type t);
const char *config_sslmode_name(enum sslmode m);
const char *config_load_balance_hosts_name(enum load_balance_hosts l);

/* A comma-separated setting: <str> is the text as configured (shown by SHOW
 * CONFIG), <v>/<n> its trimmed, non-empty items.  For listen_addr, "*" is
 * expanded to the two items "0.0.0.0" and "::" (the listener should set
 * IPV6_V6ONLY on the latter). */
struct config_strlist {
	char *str;
	char **v;
	int n;
};

/* True when the comma-separated <list> has an item equal to <name>
 * (items are trimmed of blanks; comparison is case-sensitive). */
bool config_list_contains(const char *list, const char *name);
/* Same, ignoring ASCII case (for parameter names such as
 * track_extra_parameters and ignore_startup_parameters). */
bool config_list_contains_nocase(const char *list, const char *name);

/* [pgbouncer]: one field per setting.  Strings are never NULL ("" = unset).
 * Durations are microseconds.  See the table in config.c for defaults. */
struct config_settings {
	struct config_strlist admin_users;
	bool application_name_add_host;
	char *auth_dbname;
	char *auth_file;
	char *auth_hba_file;
	char *auth_ident_file;
	char *auth_ldap_options;
	char *auth_query;
	enum auth_type auth_type;
	char *auth_user;
	int64_t autodb_idle_timeout_us;
	int64_t cancel_wait_timeout_us;
	int64_t client_idle_timeout_us;
	int64_t client_login_timeout_us;
	char *client_tls13_ciphers;
	char *client_tls_ca_file;
	char *client_tls_cert_file;
	char *client_tls_ciphers;
	char *client_tls_dheparams;
	char *client_tls_ecdhcurve;
	char *client_tls_key_file;
	char *client_tls_protocols;
	enum sslmode client_tls_sslmode;
	char *conffile; /* defaults to the path given to config_load() */
	int default_pool_size;
	bool disable_pqexec;
	int64_t dns_max_ttl_us;
	int64_t dns_nxdomain_ttl_us;
	int64_t dns_zone_check_period_us;
	int64_t idle_transaction_timeout_us;
	struct config_strlist ignore_startup_parameters;
	char *job_name;
	struct config_strlist listen_addr;
	int listen_backlog;
	int listen_port;
	bool log_connections;
	bool log_disconnections;
	bool log_pooler_errors;
	int log_queue_size; /* pgslab: entries in the log ring */
	bool log_stats;
	char *logfile;
	int max_client_conn;
	int max_db_client_connections;
	int max_db_connections;
	int max_login_clients; /* pgslab: unauthenticated clients at once; 0 auto, -1 none */
	int max_packet_size;
	int max_prepared_statements;
	int max_user_client_connections;
	int max_user_connections;
	char *metrics_listen; /* pgslab: "host:port" for metrics, "" = off */
	int min_pool_size;
	int peer_id;
	char *pidfile;
	int pkt_buf;
	enum pool_mode pool_mode;
	int64_t query_timeout_us;
	int64_t query_wait_notify_us;
	int64_t query_wait_timeout_us;
	int reserve_pool_size;
	int64_t reserve_pool_timeout_us;
	char *resolv_conf;
	int sbuf_loopcnt;
	int scram_iterations;
	int64_t server_check_delay_us;
	/* "" disables the check; "<empty>" (the default) sends an empty query */
	char *server_check_query;
	int64_t server_connect_timeout_us;
	bool server_fast_close;
	int64_t server_idle_timeout_us;
	int64_t server_lifetime_us;
	int64_t server_login_retry_us;
	char *server_reset_query;
	bool server_reset_query_always;
	bool server_round_robin;
	char *server_tls13_ciphers;
	char *server_tls_ca_file;
	char *server_tls_cert_file;
	char *server_tls_ciphers;
	char *server_tls_key_file;
	char *server_tls_protocols;
	enum sslmode server_tls_sslmode;
	bool so_reuseport;
	int64_t stats_period_us;
	struct config_strlist stats_users;
	int64_t suspend_timeout_us;
	bool syslog;
	char *syslog_facility;
	char *syslog_ident;
	int tcp_defer_accept; /* nonzero: use TCP_DEFER_ACCEPT */
	bool tcp_keepalive;
	int tcp_keepcnt;
	int tcp_keepidle;
	int tcp_keepintvl;
	int tcp_socket_buffer;
	int tcp_user_timeout; /* milliseconds, as the socket option */
	struct config_strlist track_extra_parameters;
	int64_t transaction_timeout_us;
	char *unix_socket_dir;
	char *unix_socket_group;
	int unix_socket_mode;
	char *user;
	int verbose;
};

/* A [databases] entry.  Strings are NULL when not given.  Numbers,
 * durations and pool_mode are CONFIG_INHERIT when not given. */
struct config_db {
	char *name;
	bool fallback; /* the "*" entry: connect to the requested name */
	char *dbname;  /* defaults to <name>; NULL for the "*" entry */
	char *host;    /* may be a comma list, a /unix/dir or @abstract */
	int port;      /* default 5432 */
	char *user;    /* forced user */
	char *password;
	char *auth_user;
	char *auth_query;
	char *auth_dbname;
	char *client_encoding;
	char *datestyle;
	char *timezone;
	char *connect_query;
	char *application_name;
	int pool_size;
	int min_pool_size;
	int reserve_pool_size;
	int max_db_connections;
	int max_db_client_connections;
	int64_t server_lifetime_us;
	int64_t query_wait_timeout_us;
	int pool_mode; /* enum pool_mode or CONFIG_INHERIT */
	enum load_balance_hosts load_balance_hosts;
	int pool_weight;  /* pgslab: relative weight, >= 1, default 1 */
	const char *file; /* where it was defined (points into cfg) */
	int line;
};

/* A [users] entry; unset fields are CONFIG_INHERIT. */
struct config_user {
	char *name;
	int pool_mode; /* enum pool_mode or CONFIG_INHERIT */
	int pool_size;
	int reserve_pool_size;
	int max_user_connections;
	int max_user_client_connections;
	int64_t query_timeout_us;
	int64_t query_wait_timeout_us;
	int64_t idle_transaction_timeout_us;
	int64_t transaction_timeout_us;
	int64_t client_idle_timeout_us;
	const char *file;
	int line;
};

/* A [peers] entry: "<id> = host=... port=... pool_size=..." (PgBouncer's
 * keys): another pgslab or PgBouncer sharing the listening port
 * (so_reuseport) whose cancel keys carry <id>. */
struct config_peer {
	char *name;    /* the id as written */
	int id;        /* 1..65535 */
	char *host;    /* a name, an address or a Unix socket directory */
	int port;      /* default 6432 */
	int pool_size; /* forwarded cancels at once; -1: default_pool_size */
	const char *file;
	int line;
};

/* Something the caller should log; loading still succeeded.  <key> is the
 * [pgbouncer] setting concerned, or NULL (e.g. for [peers]). */
struct config_warning {
	char *msg;	 /* "<file>:<line>: ..." */
	const char *key; /* static string from the table, or NULL */
	bool is_default; /* the value set equals the default: harmless */
};

struct config {
	struct config_settings s;
	struct config_db *dbs; /* sorted by name, unique; no "*" */
	int n_dbs;
	struct config_db *fallback_db; /* the "*" entry, or NULL */
	struct config_user *users;     /* sorted by name, unique */
	int n_users;
	struct config_peer *peers;     /* [peers], sorted by id, unique */
	int n_peers;
	struct config_warning *warnings; /* in file order */
	int n_warnings;
	char **files; /* every file read, in order; entries' <file> point here */
	int n_files;
};

/* Parse <path> (and its includes) into a new config.  On failure returns
 * NULL and writes "<file>:<line>: <message>" into <err>.  Caller frees with
 * config_free(). */
struct config *config_load(const char *path, char *err, size_t errlen);
/* A config holding only the defaults, no databases or users; NULL on OOM. */
struct config *config_new_defaults(void);
/* A deep copy of <cfg>: every setting (through the settings table, so a new
 * setting is covered without code here), the [databases] and [users]
 * entries, warnings and file names, nothing shared with <cfg>.  NULL on
 * OOM.  Caller frees with config_free(). */
struct config *config_clone(const struct config *cfg);
void config_free(struct config *cfg);

/* The entry for <name>, else the "*" entry, else NULL. */
const struct config_db *config_find_db(const struct config *cfg, const char *name);
/* The [users] entry for <name>, or NULL. */
const struct config_user *config_find_user(const struct config *cfg, const char *name);
/* The [peers] entry with <id>, or NULL. */
const struct config_peer *config_find_peer(const struct config *cfg, int id);

/* Flags of a [pgbouncer] setting. */
#define CONFIG_F_NORELOAD 0x1u	  /* not changeable by SET or reload */
#define CONFIG_F_UNSUPPORTED 0x2u /* parsed, but pgslab ignores it for now */

/* SHOW CONFIG: calls <fn> once per setting, sorted by key.  <value> and
 * <dflt> are borrowed for the duration of the call. */
typedef void (*config_setting_fn)(
		const char *key, const char *value, const char *dflt, bool changeable, void *arg);
void config_foreach_setting(const struct config *cfg, config_setting_fn fn, void *arg);
/* Number of [pgbouncer] settings (rows of SHOW CONFIG). */
int config_setting_count(void);
/* CONFIG_F_* flags of <key> (case-insensitive), or -ENOENT. */
int config_setting_flags(const char *key);
/* Current value of <key> as SHOW CONFIG prints it: either a pointer into
 * <cfg> or into <buf>.  NULL if the key is unknown. */
const char *config_setting_get(const struct config *cfg, const char *key, char *buf, size_t buflen);

/* SET <key> = <value> on <cfg>, in place: use it on a config not yet in
 * use (the console's SET applies it to a config_clone() of the running one,
 * see above).  Returns 0, -ENOENT (unknown key), -EPERM (not changeable at
 * run time), -EINVAL (bad value, or a combination config_load() would
 * refuse) or -ENOMEM, with a message in <err>; on failure <cfg> is
 * unchanged.  Unsupported settings can be set (and change nothing). */
int config_set(struct config *cfg, const char *key, const char *value, char *err, size_t errlen);

/* Reload support: calls <fn> for each [pgbouncer] setting whose value differs
 * between <old> and <new>, in key order.  <changeable> false means the new
 * value cannot take effect without a restart. */
typedef void (*config_change_fn)(const char *key, const char *old_value, const char *new_value,
		bool changeable, void *arg);
void config_foreach_changed(
		const struct config *old, const struct config *new, config_change_fn fn, void *arg);

#endif
