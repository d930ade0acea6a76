/* t_config.c -- unit tests for the PgBouncer-compatible config parser. */
#include "config.h"
#include "tap.h"
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEC 1000000LL

static char tmpdir[] = "/tmp/t_config.XXXXXX";
static char errbuf[1024];

/* Files created under tmpdir, removed at exit. */
static char *created[256];
static int n_created;

static void track(const char *path)
{
	if (n_created < (int)(sizeof(created) / sizeof(created[0])))
		created[n_created++] = strdup(path);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f == NULL) {
		diag("cannot write %s: %s", path, strerror(errno));
		exit(2);
	}
	fputs(text, f);
	fclose(f);
}

/* Writes <text> to a fresh mkstemp file in tmpdir; path into <path>. */
static void tmp_ini(const char *text, char *path, size_t len)
{
	int fd;

	snprintf(path, len, "%s/cfgXXXXXX", tmpdir);
	fd = mkstemp(path);
	if (fd < 0) {
		diag("mkstemp: %s", strerror(errno));
		exit(2);
	}
	close(fd);
	write_file(path, text);
	track(path);
}

static struct config *load_text(const char *text, char *path, size_t len)
{
	tmp_ini(text, path, len);
	return config_load(path, errbuf, sizeof(errbuf));
}

/* Loads <text>, expects failure with "<path>:<line>: <msg>". */
static void expect_error(const char *text, int line, const char *msg, const char *name)
{
	char path[256], want[1024];
	struct config *cfg = load_text(text, path, sizeof(path));

	snprintf(want, sizeof(want), "%s:%d: %s", path, line, msg);
	if (!ok(cfg == NULL && strcmp(errbuf, want) == 0, "error: %s", name))
		diag("got \"%s\", expected \"%s\"", cfg ? "(loaded)" : errbuf, want);
	config_free(cfg);
}

/* ---- defaults and the table ------------------------------------------ */

static void test_defaults(void)
{
	struct config *cfg = config_new_defaults();
	const struct config_settings *s = &cfg->s;

	is_int(s->listen_port, 6432, "default listen_port 6432");
	is_int(s->max_client_conn, 100, "default max_client_conn 100");
	is_int(s->default_pool_size, 20, "default default_pool_size 20");
	is_int(s->server_idle_timeout_us, 600 * SEC, "default server_idle_timeout 600 s");
	is_int(s->query_wait_timeout_us, 120 * SEC, "default query_wait_timeout 120 s");
	is_int(s->pkt_buf, 4096, "default pkt_buf 4096");
	is_int(s->auth_type, AUTH_TYPE_MD5, "default auth_type md5");
	is_int(s->pool_mode, POOL_MODE_SESSION, "default pool_mode session");
	is_str(s->server_reset_query, "DISCARD ALL", "default server_reset_query");
	is_int(s->server_lifetime_us, 3600 * SEC, "default server_lifetime 3600 s");
	is_int(s->server_connect_timeout_us, 15 * SEC, "default server_connect_timeout 15 s");
	is_int(s->server_login_retry_us, 15 * SEC, "default server_login_retry 15 s");
	is_int(s->client_login_timeout_us, 60 * SEC, "default client_login_timeout 60 s");
	is_int(s->reserve_pool_timeout_us, 5 * SEC, "default reserve_pool_timeout 5 s");
	is_int(s->cancel_wait_timeout_us, 10 * SEC, "default cancel_wait_timeout 10 s");
	is_int(s->autodb_idle_timeout_us, 3600 * SEC, "default autodb_idle_timeout 3600 s");
	is_int(s->query_timeout_us, 0, "default query_timeout 0");
	is_str(s->unix_socket_dir, "/tmp", "default unix_socket_dir /tmp");
	is_int(s->unix_socket_mode, 0777, "default unix_socket_mode 0777");
	is_int(s->max_packet_size, 2147483647, "default max_packet_size");
	is_int(s->listen_backlog, 128, "default listen_backlog 128");
	is_int(s->sbuf_loopcnt, 5, "default sbuf_loopcnt 5");
	is_int(s->max_prepared_statements, 200, "default max_prepared_statements 200");
	is_int(s->server_tls_sslmode, SSLMODE_PREFER, "default server_tls_sslmode prefer");
	is_int(s->client_tls_sslmode, SSLMODE_DISABLE, "default client_tls_sslmode disable");
	is_str(s->client_tls_protocols, "secure", "default client_tls_protocols secure");
	ok(s->tcp_keepalive && s->log_connections && s->log_disconnections &&
					s->log_pooler_errors && s->log_stats &&
					!s->server_round_robin && !s->so_reuseport,
			"default booleans");
	ok(s->track_extra_parameters.n == 1 && strcmp(s->track_extra_parameters.v[0],
							       "IntervalStyle") == 0,
			"default track_extra_parameters IntervalStyle");
	ok(s->listen_addr.n == 0 && strcmp(s->listen_addr.str, "") == 0,
			"default listen_addr empty");
	ok(strstr(s->auth_query, "FROM pg_authid WHERE rolname=$1") != NULL, "default auth_query");
	is_str(s->server_check_query, "<empty>", "default server_check_query <empty>");
	is_int(s->log_queue_size, 4096, "default log_queue_size 4096 (pgslab)");
	is_str(s->metrics_listen, "", "default metrics_listen empty (pgslab)");
	ok(cfg->n_dbs == 0 && cfg->n_users == 0 && cfg->fallback_db == NULL && cfg->n_warnings == 0,
			"defaults: no entries, no warnings");
	config_free(cfg);
}

struct walk {
	int n;
	bool sorted;
	bool value_is_default;
	char prev[64];
	char first_bad[64];
	bool listen_port_changeable, pool_mode_changeable;
};

static void walk_fn(
		const char *key, const char *value, const char *dflt, bool changeable, void *arg)
{
	struct walk *w = arg;

	if (w->n > 0 && strcmp(w->prev, key) >= 0)
		w->sorted = false;
	snprintf(w->prev, sizeof(w->prev), "%s", key);
	if (strcmp(value, dflt) != 0 && w->value_is_default) {
		w->value_is_default = false;
		snprintf(w->first_bad, sizeof(w->first_bad), "%s", key);
	}
	if (strcmp(key, "listen_port") == 0)
		w->listen_port_changeable = changeable;
	if (strcmp(key, "pool_mode") == 0)
		w->pool_mode_changeable = changeable;
	w->n++;
}

/* Every key the task lists, plus the two pgslab adds. */
/* clang-format off */
static const char *const required_keys[] = { "listen_addr", "listen_port", "unix_socket_dir",
	"unix_socket_mode", "unix_socket_group", "user", "auth_type", "auth_file", "auth_hba_file",
	"auth_user", "auth_query", "auth_dbname", "pool_mode", "max_client_conn",
	"default_pool_size", "min_pool_size", "reserve_pool_size", "reserve_pool_timeout",
	"max_db_connections", "max_user_connections", "max_db_client_connections",
	"max_user_client_connections", "server_round_robin", "server_reset_query",
	"server_reset_query_always", "server_check_query", "server_check_delay",
	"server_lifetime", "server_idle_timeout", "server_connect_timeout", "server_login_retry",
	"server_fast_close", "client_login_timeout", "client_idle_timeout", "query_timeout",
	"query_wait_timeout", "idle_transaction_timeout", "transaction_timeout",
	"cancel_wait_timeout", "suspend_timeout", "autodb_idle_timeout",
	"ignore_startup_parameters", "track_extra_parameters", "disable_pqexec",
	"application_name_add_host", "max_packet_size", "pkt_buf", "sbuf_loopcnt",
	"listen_backlog", "so_reuseport", "tcp_defer_accept", "tcp_keepalive", "tcp_keepcnt",
	"tcp_keepidle", "tcp_keepintvl", "tcp_user_timeout", "tcp_socket_buffer", "logfile",
	"pidfile", "syslog", "syslog_ident", "syslog_facility", "log_connections",
	"log_disconnections", "log_pooler_errors", "log_stats", "stats_period", "verbose",
	"admin_users", "stats_users", "max_prepared_statements", "dns_max_ttl",
	"dns_nxdomain_ttl", "dns_zone_check_period", "resolv_conf", "query_wait_notify",
	"client_tls_sslmode", "client_tls_key_file", "client_tls_cert_file", "client_tls_ca_file",
	"client_tls_protocols", "client_tls_ciphers", "client_tls_ecdhcurve",
	"client_tls_dheparams", "server_tls_sslmode", "server_tls_ca_file", "server_tls_key_file",
	"server_tls_cert_file", "server_tls_protocols", "server_tls_ciphers", "peer_id",
	"metrics_listen", "log_queue_size" };
/* clang-format on */

static void test_table(void)
{
	struct config *cfg = config_new_defaults();
	struct walk w = {.sorted = true, .value_is_default = true};
	const char *missing = NULL;
	char buf[64];
	size_t i;

	config_foreach_setting(cfg, walk_fn, &w);
	is_int(w.n, config_setting_count(), "foreach visits every table row");
	ok(w.n >= (int)(sizeof(required_keys) / sizeof(required_keys[0])), "table has >= %zu keys",
			sizeof(required_keys) / sizeof(required_keys[0]));
	ok(w.sorted, "SHOW CONFIG order is sorted by key");
	if (!ok(w.value_is_default, "fresh config: every value prints as its default"))
		diag("first mismatch: %s", w.first_bad);
	ok(!w.listen_port_changeable && w.pool_mode_changeable, "changeable flags");
	for (i = 0; i < sizeof(required_keys) / sizeof(required_keys[0]); i++) {
		if (config_setting_flags(required_keys[i]) < 0 && missing == NULL)
			missing = required_keys[i];
	}
	if (!ok(missing == NULL, "every required key is in the table"))
		diag("missing: %s", missing);
	is_int(config_setting_flags("no_such_key"), -ENOENT, "flags of unknown key: -ENOENT");
	ok(config_setting_flags("dns_zone_check_period") & CONFIG_F_UNSUPPORTED,
			"dns_zone_check_period unsupported");
	ok(!(config_setting_flags("so_reuseport") & CONFIG_F_UNSUPPORTED), "so_reuseport supported");
	ok(!(config_setting_flags("pool_mode") & CONFIG_F_UNSUPPORTED), "pool_mode supported");
	ok(config_setting_flags("Listen_Port") & CONFIG_F_NORELOAD, "flags lookup ignores case");
	is_str(config_setting_get(cfg, "unix_socket_mode", buf, sizeof(buf)), "0777",
			"unix_socket_mode prints as octal");
	is_str(config_setting_get(cfg, "auth_type", buf, sizeof(buf)), "md5", "auth_type prints");
	ok(config_setting_get(cfg, "nope", buf, sizeof(buf)) == NULL, "get unknown -> NULL");
	is_str(config_pool_mode_name(POOL_MODE_TRANSACTION), "transaction", "pool mode name");
	is_str(config_auth_type_name(AUTH_TYPE_SCRAM_SHA_256), "scram-sha-256", "auth type name");
	is_str(config_sslmode_name(SSLMODE_VERIFY_FULL), "verify-full", "sslmode name");
	is_str(config_load_balance_hosts_name(LOAD_BALANCE_HOSTS_ROUND_ROBIN), "round-robin",
			"load_balance_hosts name");
	config_free(cfg);
}

/* ---- a complete file --------------------------------------------------- */

/* clang-format off */
static const char full_ini[] =
	"; a PgBouncer-style config\n"                                                    /* 1 */
	"# hash comments too\n"                                                           /* 2 */
	"\n"                                                                              /* 3 */
	"[databases]\n"                                                                   /* 4 */
	"main = host=127.0.0.1 port=5433 dbname=real user=app password='se cr\\'et' "
	"pool_size=7 pool_mode=transaction reserve_pool=3\n"                              /* 5 */
	"\"my db\" = host=/var/run/postgresql dbname='weird ''name' pool_weight=3\n"      /* 6 */
	"* = host=fallback.example port=6000\n"                                           /* 7 */
	"plain =\n"                                                                       /* 8 */
	"  spaced  =  host = h1   port= 6001  server_lifetime=0.25 load_balance_hosts=round-robin\n"
	"full = auth_user=au auth_query='SELECT 1' auth_dbname=adb client_encoding=UTF8 "
	"datestyle=ISO timezone=UTC min_pool_size=1 reserve_pool_size=4 max_db_connections=9 "
	"max_db_client_connections=11 connect_query='SET x = 1' application_name=app "
	"query_wait_timeout=30\n"                                                         /* 10 */
	"[users]\n"                                                                       /* 11 */
	"alice = pool_mode=statement max_user_connections=3 query_timeout=1.5\n"          /* 12 */
	"\"bob \"\"the\"\" builder\" = pool_size=2 reserve_pool_size=1 "
	"max_user_client_connections=4 query_wait_timeout=2 idle_transaction_timeout=3 "
	"transaction_timeout=4 client_idle_timeout=5\n"                                   /* 13 */
	"[pgbouncer]\n"                                                                   /* 14 */
	"LISTEN_PORT = 7000\n"                                                            /* 15 */
	"listen_addr = 127.0.0.1, ::1\n"                                                  /* 16 */
	"auth_type = SCRAM-SHA-256\n"                                                     /* 17 */
	"query_timeout = 0.5\n"                                                           /* 18 */
	"server_round_robin = yes\n"                                                      /* 19 */
	"admin_users = admin, root\n"                                                     /* 20 */
	"stats_users = watcher\n"                                                         /* 21 */
	"server_reset_query = DISCARD ALL ; not a comment   \n"                           /* 22 */
	"pool_mode = Transaction\r\n"                                                     /* 23 */
	"unix_socket_mode = 0700\n"                                                       /* 24 */
	"ignore_startup_parameters = extra_float_digits,search_path\n"                    /* 25 */
	"server_tls_sslmode = allow\n"                                                    /* 26 */
	"metrics_listen = 127.0.0.1:9127\n"                                               /* 27 */
	"log_queue_size = 1024\n"                                                         /* 28 */
	"max_client_conn = 5000\n";                                                       /* 29 */
/* clang-format on */

static void test_full(void)
{
	char path[256];
	struct config *cfg = load_text(full_ini, path, sizeof(path));
	const struct config_db *db;
	const struct config_user *u;
	const struct config_settings *s;

	if (!ok(cfg != NULL, "full ini loads"))
		diag("%s", errbuf);
	if (cfg == NULL)
		exit(1);
	s = &cfg->s;
	is_int(cfg->n_dbs, 5, "5 named databases");
	is_int(cfg->n_users, 2, "2 users");
	is_int(cfg->n_warnings, 0, "no warnings");

	db = config_find_db(cfg, "main");
	ok(db && !db->fallback && strcmp(db->host, "127.0.0.1") == 0 && db->port == 5433 &&
					strcmp(db->dbname, "real") == 0 &&
					strcmp(db->user, "app") == 0,
			"main: host, port, dbname, user");
	is_str(db ? db->password : NULL, "se cr'et", "main: quoted password with \\'");
	ok(db && db->pool_size == 7 && db->pool_mode == POOL_MODE_TRANSACTION &&
					db->reserve_pool_size == 3,
			"main: pool_size, pool_mode, reserve_pool alias");
	ok(db && db->min_pool_size == CONFIG_INHERIT && db->max_db_connections == CONFIG_INHERIT &&
					db->server_lifetime_us == CONFIG_INHERIT &&
					db->pool_weight == 1 && db->client_encoding == NULL,
			"main: unset values inherit");
	ok(db && db->line == 5 && strcmp(db->file, path) == 0, "main: file and line recorded");

	db = config_find_db(cfg, "my db");
	ok(db && strcmp(db->name, "my db") == 0 && strcmp(db->host, "/var/run/postgresql") == 0,
			"quoted database name");
	is_str(db ? db->dbname : NULL, "weird 'name", "quoted value with ''");
	ok(db && db->port == 5432 && db->pool_weight == 3, "default port 5432, pool_weight 3");

	db = config_find_db(cfg, "plain");
	ok(db && strcmp(db->dbname, "plain") == 0 && db->host == NULL && db->port == 5432,
			"empty connstring: dbname = entry name");
	db = config_find_db(cfg, "spaced");
	ok(db && strcmp(db->host, "h1") == 0 && db->port == 6001 &&
					db->server_lifetime_us == 250000 &&
					db->load_balance_hosts == LOAD_BALANCE_HOSTS_ROUND_ROBIN,
			"blanks around names and '=' in connstring");
	db = config_find_db(cfg, "full");
	ok(db && strcmp(db->auth_user, "au") == 0 && strcmp(db->auth_query, "SELECT 1") == 0 &&
					strcmp(db->auth_dbname, "adb") == 0 &&
					strcmp(db->client_encoding, "UTF8") == 0 &&
					strcmp(db->datestyle, "ISO") == 0 &&
					strcmp(db->timezone, "UTC") == 0 &&
					strcmp(db->connect_query, "SET x = 1") == 0 &&
					strcmp(db->application_name, "app") == 0,
			"every string db key");
	ok(db && db->min_pool_size == 1 && db->reserve_pool_size == 4 &&
					db->max_db_connections == 9 &&
					db->max_db_client_connections == 11 &&
					db->query_wait_timeout_us == 30 * SEC,
			"every numeric db key");

	db = config_find_db(cfg, "unlisted");
	ok(db && db->fallback && db == cfg->fallback_db &&
					strcmp(db->host, "fallback.example") == 0 &&
					db->port == 6000 && db->dbname == NULL,
			"unlisted name falls back to *");
	ok(config_find_db(cfg, "main") != cfg->fallback_db, "listed name does not fall back");

	u = config_find_user(cfg, "alice");
	ok(u && u->pool_mode == POOL_MODE_STATEMENT && u->max_user_connections == 3 &&
					u->query_timeout_us == 1500000 &&
					u->pool_size == CONFIG_INHERIT,
			"user alice");
	u = config_find_user(cfg, "bob \"the\" builder");
	ok(u && u->pool_size == 2 && u->reserve_pool_size == 1 &&
					u->max_user_client_connections == 4 &&
					u->query_wait_timeout_us == 2 * SEC &&
					u->idle_transaction_timeout_us == 3 * SEC &&
					u->transaction_timeout_us == 4 * SEC &&
					u->client_idle_timeout_us == 5 * SEC &&
					u->pool_mode == CONFIG_INHERIT,
			"quoted user name with \"\" and every user key");
	ok(config_find_user(cfg, "carol") == NULL, "unknown user -> NULL");

	is_int(s->listen_port, 7000, "[pgbouncer] keys are case-insensitive");
	ok(s->listen_addr.n == 2 && strcmp(s->listen_addr.v[0], "127.0.0.1") == 0 &&
					strcmp(s->listen_addr.v[1], "::1") == 0,
			"listen_addr list");
	is_int(s->auth_type, AUTH_TYPE_SCRAM_SHA_256, "enum values are case-insensitive");
	is_int(s->query_timeout_us, 500000, "fractional duration 0.5 s");
	ok(s->server_round_robin, "bool yes");
	ok(config_list_contains(s->admin_users.str, "root") && s->admin_users.n == 2 &&
					config_list_contains(s->stats_users.str, "watcher"),
			"admin_users / stats_users lists");
	is_str(s->server_reset_query, "DISCARD ALL ; not a comment",
			"value verbatim to end of line, trailing blanks trimmed");
	is_int(s->pool_mode, POOL_MODE_TRANSACTION, "CRLF line ending");
	is_int(s->unix_socket_mode, 0700, "unix_socket_mode octal");
	ok(s->ignore_startup_parameters.n == 2 && config_list_contains_nocase(
								  s->ignore_startup_parameters.str,
								  "SEARCH_PATH"),
			"ignore_startup_parameters list");
	is_int(s->server_tls_sslmode, SSLMODE_ALLOW, "sslmode enum");
	is_str(s->metrics_listen, "127.0.0.1:9127", "metrics_listen");
	is_int(s->log_queue_size, 1024, "log_queue_size");
	is_int(s->max_client_conn, 5000, "max_client_conn");
	is_str(s->conffile, path, "conffile defaults to the loaded path");
	config_free(cfg);
}

/* ---- value types -------------------------------------------------------- */

static struct config *load_setting(const char *key, const char *val)
{
	char text[512], path[256];

	snprintf(text, sizeof(text), "[pgbouncer]\n%s = %s\n", key, val);
	return load_text(text, path, sizeof(path));
}

/* auth_type = cert only with client TLS that asks for certificates, at load
 * and on SET. */
static void test_cert_settings(void)
{
	static const char tls[] = "[pgbouncer]\nauth_type = cert\nclient_tls_sslmode = require\n"
				  "client_tls_ca_file = /ca.crt\n";
	char path[256];
	struct config *cfg;
	int rc;

	cfg = load_text("[pgbouncer]\nauth_type = cert\nclient_tls_sslmode = require\n", path,
			sizeof(path));
	ok(cfg == NULL && strstr(errbuf, "auth_type = cert needs"),
			"auth_type = cert without client_tls_ca_file refused");
	config_free(cfg);
	cfg = load_text("[pgbouncer]\nauth_type = cert\nclient_tls_ca_file = /ca.crt\n", path,
			sizeof(path));
	ok(cfg == NULL && strstr(errbuf, "auth_type = cert needs"),
			"auth_type = cert with client_tls_sslmode = disable refused");
	config_free(cfg);
	cfg = load_text(tls, path, sizeof(path));
	if (!ok(cfg != NULL && cfg->s.auth_type == AUTH_TYPE_CERT,
			    "auth_type = cert with client_tls_sslmode and client_tls_ca_file "
			    "loads"))
		return;
	rc = config_set(cfg, "client_tls_ca_file", "", errbuf, sizeof(errbuf));
	ok(rc == -EINVAL && strcmp(cfg->s.client_tls_ca_file, "/ca.crt") == 0,
			"SET client_tls_ca_file = '' under auth_type = cert refused, unchanged");
	rc = config_set(cfg, "client_tls_sslmode", "disable", errbuf, sizeof(errbuf));
	ok(rc == -EINVAL && cfg->s.client_tls_sslmode == SSLMODE_REQUIRE,
			"SET client_tls_sslmode = disable under auth_type = cert refused");
	rc = config_set(cfg, "client_tls_ca_file", "/other.crt", errbuf, sizeof(errbuf));
	ok(rc == 0 && strcmp(cfg->s.client_tls_ca_file, "/other.crt") == 0,
			"SET client_tls_ca_file to another file is fine");
	config_free(cfg);
}

static void test_types(void)
{
	static const struct {
		const char *text;
		bool want;
	} bools[] = {{"1", true}, {"0", false}, {"yes", true}, {"NO", false}, {"on", true},
			{"Off", false}, {"true", true}, {"FALSE", false}};
	struct config *cfg;
	char buf[64];
	size_t i;
	bool all = true;

	for (i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
		cfg = load_setting("log_stats", bools[i].text);
		if (cfg == NULL || cfg->s.log_stats != bools[i].want) {
			all = false;
			diag("bool \"%s\" failed: %s", bools[i].text, cfg ? "wrong value" : errbuf);
		}
		config_free(cfg);
	}
	ok(all, "all boolean spellings");

	cfg = load_setting("server_check_delay", "0.000001");
	ok(cfg && cfg->s.server_check_delay_us == 1, "duration 1 us");
	is_str(cfg ? config_setting_get(cfg, "server_check_delay", buf, sizeof(buf)) : NULL,
			"0.000001", "duration prints as 0.000001");
	config_free(cfg);
	cfg = load_setting("server_check_delay", ".25");
	ok(cfg && cfg->s.server_check_delay_us == 250000, "duration .25");
	is_str(cfg ? config_setting_get(cfg, "server_check_delay", buf, sizeof(buf)) : NULL, "0.25",
			"duration prints as 0.25");
	config_free(cfg);
	cfg = load_setting("server_lifetime", "86400");
	ok(cfg && cfg->s.server_lifetime_us == 86400 * SEC, "duration integral seconds");
	config_free(cfg);

	cfg = load_setting("unix_socket_mode", "777");
	ok(cfg && cfg->s.unix_socket_mode == 0777, "unix_socket_mode 777 read as octal");
	config_free(cfg);

	cfg = load_setting("listen_addr", "*");
	ok(cfg && cfg->s.listen_addr.n == 2 && strcmp(cfg->s.listen_addr.v[0], "0.0.0.0") == 0 &&
					strcmp(cfg->s.listen_addr.v[1], "::") == 0 &&
					strcmp(cfg->s.listen_addr.str, "*") == 0,
			"listen_addr * = all IPv4 + IPv6");
	config_free(cfg);

	cfg = load_setting("track_extra_parameters", " IntervalStyle , , search_path,");
	ok(cfg && cfg->s.track_extra_parameters.n == 2 &&
					strcmp(cfg->s.track_extra_parameters.v[1], "search_path") ==
							0,
			"comma list: blanks trimmed, empty items skipped");
	config_free(cfg);

	cfg = load_setting("server_check_query", "");
	is_str(cfg ? cfg->s.server_check_query : NULL, "", "empty string value");
	config_free(cfg);

	cfg = load_setting("pool_mode", "statement");
	ok(cfg && cfg->s.pool_mode == POOL_MODE_STATEMENT, "pool_mode statement");
	config_free(cfg);
	/* security settings that are not implemented refuse to load */
	cfg = load_setting("auth_type", "pam");
	ok(cfg == NULL && strstr(errbuf, "auth_type = pam is not supported"),
			"auth_type pam refused (not supported)");
	config_free(cfg);
	/* TLS exists: every sslmode loads (certificate files are checked when
	 * the TLS contexts are built, in proxy.c) */
	cfg = load_setting("client_tls_sslmode", "verify-full");
	ok(cfg != NULL && cfg->s.client_tls_sslmode == SSLMODE_VERIFY_FULL,
			"client_tls_sslmode verify-full loads");
	config_free(cfg);
	cfg = load_setting("server_tls_sslmode", "verify-full");
	ok(cfg != NULL && cfg->s.server_tls_sslmode == SSLMODE_VERIFY_FULL,
			"server_tls_sslmode verify-full loads");
	config_free(cfg);
	/* auth_type = cert: only with client TLS that asks for certificates */
	cfg = load_setting("auth_type", "cert");
	ok(cfg == NULL && strstr(errbuf, "auth_type = cert needs client TLS with client "
					 "certificates: client_tls_sslmode other than disable and "
					 "client_tls_ca_file"),
			"auth_type = cert without client TLS refused: %s", errbuf);
	config_free(cfg);
	test_cert_settings();
	cfg = load_setting("auth_type", "md5");
	ok(cfg && config_set(cfg, "auth_type", "cert", errbuf, sizeof(errbuf)) == -EINVAL &&
					cfg->s.auth_type == AUTH_TYPE_MD5,
			"SET auth_type = cert without client TLS refused, value unchanged");
	config_free(cfg);

	ok(config_list_contains("admin, root ,x", "root") &&
					!config_list_contains("admin,root", "roo") &&
					!config_list_contains("admin,root", "Root") &&
					config_list_contains_nocase("admin,root", "Root") &&
					!config_list_contains("", "x"),
			"config_list_contains");
}

/* ---- connection strings -------------------------------------------------- */

static void test_connstr(void)
{
	char path[256];
	struct config *cfg = load_text("[databases]\n"
				       "a = password='a\\\\b' user=x\n"
				       "b = password=ab\\cd\n"
				       "c = password='' dbname='x y z'\n"
				       "d = password='it''s' host=h\n"
				       "e=dbname=e2\n",
			path, sizeof(path));
	const struct config_db *db;

	if (!ok(cfg != NULL, "connstr escapes load"))
		diag("%s", errbuf);
	if (cfg == NULL)
		return;
	db = config_find_db(cfg, "a");
	is_str(db ? db->password : NULL, "a\\b", "\\\\ in quoted value");
	db = config_find_db(cfg, "b");
	is_str(db ? db->password : NULL, "ab\\cd", "backslash literal in unquoted value");
	db = config_find_db(cfg, "c");
	is_str(db ? db->password : NULL, "", "empty quoted value");
	is_str(db ? db->dbname : NULL, "x y z", "quoted value with blanks");
	db = config_find_db(cfg, "d");
	is_str(db ? db->password : NULL, "it's", "'' in quoted value (PgBouncer style)");
	db = config_find_db(cfg, "e");
	is_str(db ? db->dbname : NULL, "e2", "no blanks around '='");
	config_free(cfg);
}

/* ---- errors -------------------------------------------------------------- */

static void test_errors(void)
{
	char path[256], want[512];
	struct config *cfg;

	expect_error("[pgbouncer]\nlisten_port = 7000\nfoo = 1\n", 3,
			"unknown key \"foo\" in [pgbouncer]", "unknown [pgbouncer] key, line 3");
	expect_error("; c\n\n[databases]\nd = host=x bogus=1\n", 4,
			"database \"d\": unknown parameter \"bogus\"",
			"unknown db parameter, line 4");
	expect_error("[databases]\nd = host=x reserve_pool_sizes=1\n", 2,
			"database \"d\": unknown parameter \"reserve_pool_sizes\"",
			"misspelt db key");
	expect_error("[users]\nu = pool_mode=session max_db_connections=1\n", 2,
			"user \"u\": unknown parameter \"max_db_connections\"",
			"unknown user parameter");
	expect_error("[pgbouncer]\nlisten_port = 70000\n", 2,
			"invalid value \"70000\" for listen_port: must be between 1 and 65535",
			"port > 65535");
	expect_error("[pgbouncer]\ndefault_pool_size = -1\n", 2,
			"invalid value \"-1\" for default_pool_size: must be between 0 and "
			"2147483647",
			"negative size");
	expect_error("[pgbouncer]\nmax_client_conn = 99999999999\n", 2,
			"invalid value \"99999999999\" for max_client_conn: must be between 1 and "
			"2147483647",
			"int overflow");
	expect_error("[pgbouncer]\npkt_buf = 4k\n", 2,
			"invalid value \"4k\" for pkt_buf: expected an integer",
			"trailing junk in int");
	expect_error("[pgbouncer]\nserver_round_robin = maybe\n", 2,
			"invalid value \"maybe\" for server_round_robin: expected a boolean (0/1, "
			"yes/no, "
			"on/off, true/false)",
			"bad bool");
	expect_error("[pgbouncer]\npool_mode = sometimes\n", 2,
			"invalid value \"sometimes\" for pool_mode: expected one of: session, "
			"transaction, statement",
			"bad enum");
	expect_error("[pgbouncer]\nauth_type = kerberos\n", 2,
			"invalid value \"kerberos\" for auth_type: expected one of: any, trust, "
			"plain, "
			"md5, scram-sha-256, cert, hba, pam, ldap, peer",
			"bad auth_type");
	expect_error("[pgbouncer]\nquery_timeout = 1s\n", 2,
			"invalid value \"1s\" for query_timeout: expected a number of seconds",
			"duration with unit");
	expect_error("[pgbouncer]\nquery_timeout = -1\n", 2,
			"invalid value \"-1\" for query_timeout: expected a number of seconds",
			"negative duration");
	expect_error("[pgbouncer]\nunix_socket_mode = 0800\n", 2,
			"invalid value \"0800\" for unix_socket_mode: expected an octal number",
			"bad octal");
	expect_error("[databases]\nd = port=0\n", 2,
			"database \"d\": invalid value \"0\" for port: must be between 1 and 65535",
			"db port 0");
	expect_error("[databases]\nd = port=5432x\n", 2,
			"database \"d\": invalid value \"5432x\" for port: expected an integer",
			"db port junk");
	expect_error("[databases]\nd = pool_weight=0\n", 2,
			"database \"d\": invalid value \"0\" for pool_weight: must be between 1 "
			"and "
			"2147483647",
			"pool_weight 0");
	expect_error("[databases]\nd = pool_size=-3\n", 2,
			"database \"d\": invalid value \"-3\" for pool_size: must be between 0 and "
			"2147483647",
			"negative db pool_size");
	expect_error("[databases]\nd = pool_mode=sometimes\n", 2,
			"database \"d\": invalid value \"sometimes\" for pool_mode: expected one "
			"of: "
			"session, transaction, statement",
			"bad db pool_mode");
	expect_error("[databases]\nd = host=x password='abc\n", 2,
			"database \"d\": unterminated quoted value for \"password\"",
			"unterminated quote");
	expect_error("[databases]\nd = host x\n", 2, "database \"d\": missing \"=\" after \"host\"",
			"missing = in connstring");
	expect_error("[databases]\nd = host='a'b\n", 2,
			"database \"d\": unexpected text after quoted value for \"host\"",
			"junk after quoted value");
	expect_error("[databases]\nd = host=\n", 2, "database \"d\": missing value for \"host\"",
			"missing value");
	expect_error("[databases]\npgbouncer = host=x\n", 2,
			"database name \"pgbouncer\" is reserved", "reserved name");
	expect_error("[users]\nu = query_timeout=abc\n", 2,
			"user \"u\": invalid value \"abc\" for query_timeout: expected a number of "
			"seconds",
			"bad user duration");
	expect_error("listen_port = 1\n", 1, "\"listen_port\" is outside of any section",
			"key before any section");
	expect_error("[pgbouncer]\n[bogus]\n", 2, "unknown section [bogus]", "unknown section");
	expect_error("[pgbouncer\n", 1, "missing \"]\" in section header", "unclosed section");
	expect_error("[pgbouncer]\nlisten_port\n", 2, "expected \"key = value\"", "no '='");
	expect_error("[databases]\n\"abc = host=x\n", 2, "unterminated quoted name",
			"unterminated quoted name");
	expect_error("[pgbouncer]\n%includes x\n", 2, "unknown directive \"%includes x\"",
			"unknown directive");
	expect_error("[pgbouncer]\n%include\n", 2, "%include needs a file name",
			"include without name");

	expect_error("[pgbouncer]\nunix_socket_mode = 010000\n", 2,
			"invalid value \"010000\" for unix_socket_mode: must be between 0 and "
			"07777",
			"octal out of range");

	cfg = config_load(tmpdir, errbuf, sizeof(errbuf));
	snprintf(want, sizeof(want), "%s: Is a directory", tmpdir);
	ok(cfg == NULL && strcmp(errbuf, want) == 0, "directory as config: errno text");
	config_free(cfg);

	tmp_ini("", path, sizeof(path));
	{
		FILE *f = fopen(path, "w");

		fwrite("[pgbouncer]\n\0\n", 1, 14, f);
		fclose(f);
	}
	cfg = config_load(path, errbuf, sizeof(errbuf));
	snprintf(want, sizeof(want), "%s: contains a NUL byte", path);
	ok(cfg == NULL && strcmp(errbuf, want) == 0, "NUL byte in file");
	config_free(cfg);

	snprintf(path, sizeof(path), "%s/does-not-exist.ini", tmpdir);
	cfg = config_load(path, errbuf, sizeof(errbuf));
	snprintf(want, sizeof(want), "%s: No such file or directory", path);
	ok(cfg == NULL && strcmp(errbuf, want) == 0, "missing file: errno text");
}

/* ---- duplicates, many entries ------------------------------------------ */

static void test_duplicates(void)
{
	char path[256];
	struct config *cfg;
	const struct config_db *db;
	char *text, *p;
	int i, missing = 0;

	cfg = load_text("[databases]\n"
			"x = port=1\n"
			"y = port=2\n"
			"x = port=3\n"
			"* = port=4\n"
			"* = port=5\n"
			"[users]\n"
			"u = pool_size=1\n"
			"u = pool_size=2\n"
			"[pgbouncer]\n"
			"listen_port = 1\n"
			"listen_port = 2\n",
			path, sizeof(path));
	ok(cfg != NULL, "duplicates load");
	if (cfg == NULL)
		return;
	db = config_find_db(cfg, "x");
	ok(cfg->n_dbs == 2 && db && db->port == 3 && db->line == 4, "later database line wins");
	ok(cfg->fallback_db && cfg->fallback_db->port == 5, "later * line wins");
	ok(cfg->n_users == 1 && config_find_user(cfg, "u")->pool_size == 2, "later user line wins");
	is_int(cfg->s.listen_port, 2, "later setting wins");
	config_free(cfg);

	/* 5000 databases, each defined twice: sort + dedup + bsearch. */
	text = malloc(5000 * 2 * 48 + 32);
	p = text + sprintf(text, "[databases]\n");
	for (i = 0; i < 10000; i++)
		p += sprintf(p, "db%05d = port=%d\n", (i * 7919) % 5000, 1000 + i);
	cfg = load_text(text, path, sizeof(path));
	free(text);
	ok(cfg && cfg->n_dbs == 5000, "5000 distinct databases");
	if (cfg == NULL)
		return;
	for (i = 0; i < 5000; i++) {
		char name[16];

		snprintf(name, sizeof(name), "db%05d", i);
		db = config_find_db(cfg, name);
		if (db == NULL || strcmp(db->name, name) != 0 || db->port < 1000 + 5000)
			missing++;
	}
	is_int(missing, 0, "every database found with its second definition");
	ok(config_find_db(cfg, "db99999") == NULL, "no fallback without *");
	config_free(cfg);
}

/* ---- %include ---------------------------------------------------------- */

static void test_include(void)
{
	char sub[64], main_ini[300], inc[300], cwd_inc[300], text[700], want[900], oldcwd[512];
	struct config *cfg;

	if (getcwd(oldcwd, sizeof(oldcwd)) == NULL)
		exit(2);
	snprintf(sub, sizeof(sub), "%s/sub", tmpdir);
	mkdir(sub, 0700);

	/* Absolute include; section carries into the included file. */
	snprintf(inc, sizeof(inc), "%s/abs.ini", sub);
	write_file(inc, "pool_mode = transaction\n[databases]\nincdb = port=7\n");
	track(inc);
	snprintf(text, sizeof(text), "[pgbouncer]\n%%include %s\nmain_db = port=8\n", inc);
	cfg = load_text(text, main_ini, sizeof(main_ini));
	if (!ok(cfg != NULL, "absolute %%include loads"))
		diag("%s", errbuf);
	ok(cfg && cfg->s.pool_mode == POOL_MODE_TRANSACTION, "included file inherits [pgbouncer]");
	ok(cfg && config_find_db(cfg, "incdb") && config_find_db(cfg, "main_db") &&
					config_find_db(cfg, "main_db")->port == 8,
			"section set in included file carries back");
	ok(cfg && config_find_db(cfg, "incdb") &&
					strcmp(config_find_db(cfg, "incdb")->file, inc) == 0 &&
					config_find_db(cfg, "incdb")->line == 3,
			"entry from include records its file and line");
	ok(cfg && cfg->n_files == 2, "both files recorded");
	config_free(cfg);

	/* Relative include: cwd first, then the including file's directory. */
	snprintf(inc, sizeof(inc), "%s/rel.ini", sub);
	write_file(inc, "listen_port = 2222\n");
	track(inc);
	snprintf(main_ini, sizeof(main_ini), "%s/main.ini", sub);
	write_file(main_ini, "[pgbouncer]\n%include rel.ini\n");
	track(main_ini);
	if (chdir("/") != 0)
		exit(2);
	cfg = config_load(main_ini, errbuf, sizeof(errbuf));
	if (!ok(cfg && cfg->s.listen_port == 2222, "relative include found next to includer"))
		diag("%s", errbuf);
	config_free(cfg);

	snprintf(cwd_inc, sizeof(cwd_inc), "%s/rel.ini", tmpdir);
	write_file(cwd_inc, "listen_port = 1111\n");
	if (chdir(tmpdir) != 0)
		exit(2);
	cfg = config_load(main_ini, errbuf, sizeof(errbuf));
	ok(cfg && cfg->s.listen_port == 1111, "relative include: working directory wins");
	config_free(cfg);
	unlink(cwd_inc);
	if (chdir(oldcwd) != 0)
		exit(2);

	/* Errors inside includes name the included file. */
	snprintf(inc, sizeof(inc), "%s/bad.ini", sub);
	write_file(inc, "\n\nno_such_setting = 1\n");
	track(inc);
	snprintf(text, sizeof(text), "[pgbouncer]\n%%include %s\n", inc);
	cfg = load_text(text, main_ini, sizeof(main_ini));
	snprintf(want, sizeof(want), "%s:3: unknown key \"no_such_setting\" in [pgbouncer]", inc);
	ok(cfg == NULL && strcmp(errbuf, want) == 0, "error in include names file and line");
	config_free(cfg);

	snprintf(text, sizeof(text), "[pgbouncer]\n\n%%include %s/nope.ini\n", sub);
	cfg = load_text(text, main_ini, sizeof(main_ini));
	snprintf(want, sizeof(want),
			"%s:3: cannot read include file \"%s/nope.ini\": No such file or "
			"directory",
			main_ini, sub);
	if (!ok(cfg == NULL && strcmp(errbuf, want) == 0, "missing include: includer's line"))
		diag("got %s", errbuf);
	config_free(cfg);

	/* Self-include hits the depth limit. */
	snprintf(inc, sizeof(inc), "%s/loop.ini", sub);
	snprintf(text, sizeof(text), "[pgbouncer]\n%%include %s\n", inc);
	write_file(inc, text);
	track(inc);
	cfg = config_load(inc, errbuf, sizeof(errbuf));
	snprintf(want, sizeof(want), "%s:2: %%include nested more than %d deep", inc,
			CONFIG_MAX_INCLUDE_DEPTH);
	if (!ok(cfg == NULL && strcmp(errbuf, want) == 0, "include loop stops at depth limit"))
		diag("got %s", errbuf);
	config_free(cfg);
}

/* ---- unsupported settings ------------------------------------------------ */

static void test_warnings(void)
{
	char path[256], want[512];
	struct config *cfg = load_text("[pgbouncer]\n"
				       "pool_mode = session\n"
				       "dns_zone_check_period = 60\n"
				       "syslog = 0\n",
			path, sizeof(path));

	if (!ok(cfg != NULL, "unsupported keys still load"))
		diag("%s", errbuf);
	if (cfg == NULL)
		return;
	is_int(cfg->n_warnings, 2, "two warnings");
	snprintf(want, sizeof(want),
			"%s:3: setting \"dns_zone_check_period\" is not supported yet; ignored", path);
	ok(cfg->n_warnings > 0 && strcmp(cfg->warnings[0].msg, want) == 0 &&
					strcmp(cfg->warnings[0].key, "dns_zone_check_period") == 0 &&
					!cfg->warnings[0].is_default,
			"dns_zone_check_period warning names key and line");
	ok(cfg->n_warnings > 1 && strcmp(cfg->warnings[1].key, "syslog") == 0 &&
					cfg->warnings[1].is_default,
			"syslog = 0 warning flagged as default");
	ok(cfg->s.dns_zone_check_period_us == 60 * 1000000LL, "unsupported value is still stored");
	config_free(cfg);
}

/* ---- [peers] ------------------------------------------------------------- */

static void test_peers(void)
{
	char path[256];
	struct config *cfg = load_text("[peers]\n"
				       "2 = host=/tmp/b\n"
				       "1 = host=10.0.0.1 port=7000 pool_size=3\n"
				       "2 = host='/tmp/c d' port=6500\n",
			path, sizeof(path));
	const struct config_peer *pe;
	struct config *cl;

	if (!ok(cfg != NULL && cfg->n_peers == 2 && cfg->n_warnings == 0,
			    "[peers]: two peers, a later line replaces an id, no warning"))
		diag("%s", errbuf);
	if (cfg == NULL)
		return;
	pe = config_find_peer(cfg, 1);
	ok(pe && strcmp(pe->host, "10.0.0.1") == 0 && pe->port == 7000 && pe->pool_size == 3,
			"[peers]: host, port, pool_size");
	pe = config_find_peer(cfg, 2);
	ok(pe && strcmp(pe->host, "/tmp/c d") == 0 && pe->port == 6500 && pe->pool_size == -1 &&
					pe->line == 4,
			"[peers]: the later line wins, defaults for what it omits");
	ok(config_find_peer(cfg, 3) == NULL, "[peers]: an unknown id is not found");
	cl = config_clone(cfg);
	ok(cl && cl->n_peers == 2 && config_find_peer(cl, 2) &&
					config_find_peer(cl, 2)->host != config_find_peer(cfg, 2)->host &&
					strcmp(config_find_peer(cl, 2)->host, "/tmp/c d") == 0,
			"config_clone copies [peers]");
	config_free(cl);
	config_free(cfg);
	cfg = load_text("[peers]\n0 = host=/tmp/a\n", path, sizeof(path));
	ok(cfg == NULL && strstr(errbuf, "ids of peers must be a number from 1 to 65535"),
			"[peers]: id 0 refused");
	config_free(cfg);
	cfg = load_text("[peers]\n1 = port=5\n", path, sizeof(path));
	ok(cfg == NULL && strstr(errbuf, "host was not provided for peer 1"),
			"[peers]: no host refused");
	config_free(cfg);
	cfg = load_text("[peers]\n1 = host=/tmp dbname=x\n", path, sizeof(path));
	ok(cfg == NULL && strstr(errbuf, "unrecognized connection parameter: dbname"),
			"[peers]: an unknown key refused");
	config_free(cfg);
	cfg = load_text("[peers]\n1 = host=/tmp port=70000\n", path, sizeof(path));
	ok(cfg == NULL && strstr(errbuf, "invalid port"), "[peers]: a bad port refused");
	config_free(cfg);
}

/* ---- SET and reload ------------------------------------------------------ */

struct changes {
	int n;
	char keys[8][32];
	bool changeable[8];
};

static void change_fn(const char *key, const char *old_value, const char *new_value,
		bool changeable, void *arg)
{
	struct changes *c = arg;

	if (c->n < 8) {
		snprintf(c->keys[c->n], sizeof(c->keys[0]), "%s", key);
		c->changeable[c->n] = changeable;
	}
	c->n++;
}

static void test_set(void)
{
	struct config *cfg = config_new_defaults(), *cfg2;
	struct changes ch = {0};
	char err[256], buf[64];

	is_int(config_set(cfg, "pool_mode", "transaction", err, sizeof(err)), 0, "SET pool_mode");
	is_int(cfg->s.pool_mode, POOL_MODE_TRANSACTION, "SET took effect");
	is_int(config_set(cfg, "QUERY_TIMEOUT", "2.25", err, sizeof(err)), 0,
			"SET ignores key case");
	is_int(cfg->s.query_timeout_us, 2250000, "SET duration");
	is_str(config_setting_get(cfg, "query_timeout", buf, sizeof(buf)), "2.25",
			"SHOW after SET");
	is_int(config_set(cfg, "listen_port", "7000", err, sizeof(err)), -EPERM,
			"SET listen_port: -EPERM");
	is_str(err, "setting \"listen_port\" cannot be changed at run time", "EPERM message");
	is_int(cfg->s.listen_port, 6432, "listen_port unchanged");
	is_int(config_set(cfg, "no_such", "1", err, sizeof(err)), -ENOENT, "SET unknown: -ENOENT");
	is_str(err, "unknown setting \"no_such\"", "ENOENT message");
	is_int(config_set(cfg, "default_pool_size", "-5", err, sizeof(err)), -EINVAL,
			"SET bad value: -EINVAL");
	is_str(err, "invalid value \"-5\" for default_pool_size: must be between 0 and 2147483647",
			"EINVAL message");
	is_int(cfg->s.default_pool_size, 20, "value unchanged after bad SET");
	is_int(config_set(cfg, "admin_users", "a, b", err, sizeof(err)), 0, "SET list");
	ok(cfg->s.admin_users.n == 2 && strcmp(cfg->s.admin_users.v[1], "b") == 0 &&
					strcmp(cfg->s.admin_users.str, "a, b") == 0,
			"list rebuilt after SET");
	is_int(config_set(cfg, "server_reset_query", "RESET ALL", err, sizeof(err)), 0,
			"SET string");
	is_str(cfg->s.server_reset_query, "RESET ALL", "string replaced");

	cfg2 = config_new_defaults();
	config_foreach_changed(cfg2, cfg, change_fn, &ch);
	is_int(ch.n, 4, "four settings differ from defaults");
	ok(strcmp(ch.keys[0], "admin_users") == 0 && strcmp(ch.keys[1], "pool_mode") == 0 &&
					strcmp(ch.keys[2], "query_timeout") == 0 &&
					strcmp(ch.keys[3], "server_reset_query") == 0,
			"changed keys in order");
	config_set(cfg, "admin_users", "", err, sizeof(err));
	config_set(cfg, "pool_mode", "session", err, sizeof(err));
	config_set(cfg, "query_timeout", "0", err, sizeof(err));
	config_set(cfg, "server_reset_query", "DISCARD ALL", err, sizeof(err));
	cfg2->s.listen_port = 1;
	ch.n = 0;
	config_foreach_changed(cfg, cfg2, change_fn, &ch);
	ok(ch.n == 1 && strcmp(ch.keys[0], "listen_port") == 0 && !ch.changeable[0],
			"non-reloadable change reported as such");
	config_free(cfg2);
	config_free(cfg);
}

/* ---- config_clone ---------------------------------------------------------- */

/* A value for <key> that loads and differs from its default, tried from a
 * list wide enough for every type in the table; NULL when none does. */
static const char *non_default(const char *key, const char *dflt)
{
	static const char *const tries[] = { "2", "1", "0", "4000", "0.5", "transaction", "trust",
		"verify-full", "a, b" };
	char text[200], path[256], buf[64];
	size_t i;

	snprintf(path, sizeof(path), "%s/probe.ini", tmpdir);
	for (i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		struct config *cfg;
		bool differs;

		if (strcmp(tries[i], dflt) == 0)
			continue;
		snprintf(text, sizeof(text), "[pgbouncer]\n%s = %s\n", key, tries[i]);
		write_file(path, text);
		cfg = config_load(path, errbuf, sizeof(errbuf));
		unlink(path);
		differs = cfg && strcmp(config_setting_get(cfg, key, buf, sizeof(buf)), dflt) != 0;
		config_free(cfg);
		if (differs)
			return tries[i];
	}
	return NULL;
}

struct every {
	char text[8192];
	size_t len;
	const char *stuck; /* a key no tried value moves off its default */
};

static void every_fn(const char *key, const char *value, const char *dflt, bool changeable,
		void *arg)
{
	struct every *e = arg;
	const char *v = non_default(key, dflt);

	if (v == NULL) {
		if (e->stuck == NULL)
			e->stuck = key;
		return;
	}
	e->len += (size_t)snprintf(e->text + e->len, sizeof(e->text) - e->len, "%s = %s\n", key, v);
}

struct same {
	const struct config *clone;
	int n, differ;
	const char *first_bad;
};

/* Every setting of the original against the clone prints the same.  (That
 * no string is shared shows under ASan: test_clone reads a clone after
 * freeing its original.) */
static void same_fn(const char *key, const char *value, const char *dflt, bool changeable,
		void *arg)
{
	struct same *x = arg;
	char buf[64];
	const char *mine = config_setting_get(x->clone, key, buf, sizeof(buf));

	x->n++;
	if (mine == NULL || strcmp(mine, value) != 0) {
		x->differ++;
		if (x->first_bad == NULL)
			x->first_bad = key;
	}
}

static bool str_same(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return a != b && strcmp(a, b) == 0; /* equal, and a copy */
}

static bool list_same(const struct config_strlist *a, const struct config_strlist *b)
{
	int i;

	if (!str_same(a->str, b->str) || a->n != b->n)
		return false;
	for (i = 0; i < a->n; i++)
		if (!str_same(a->v[i], b->v[i]))
			return false;
	return true;
}

/* <file> of an entry of <cfg> names one of cfg->files (not another config's). */
static bool file_of(const struct config *cfg, const char *file)
{
	int i;

	for (i = 0; i < cfg->n_files; i++)
		if (cfg->files[i] == file)
			return true;
	return false;
}

static bool db_same(const struct config *ca, const struct config_db *a, const struct config *cb,
		const struct config_db *b)
{
	return str_same(a->name, b->name) && a->fallback == b->fallback &&
	       str_same(a->dbname, b->dbname) && str_same(a->host, b->host) && a->port == b->port &&
	       str_same(a->user, b->user) && str_same(a->password, b->password) &&
	       str_same(a->auth_user, b->auth_user) && str_same(a->auth_query, b->auth_query) &&
	       str_same(a->auth_dbname, b->auth_dbname) &&
	       str_same(a->client_encoding, b->client_encoding) &&
	       str_same(a->datestyle, b->datestyle) && str_same(a->timezone, b->timezone) &&
	       str_same(a->connect_query, b->connect_query) &&
	       str_same(a->application_name, b->application_name) && a->pool_size == b->pool_size &&
	       a->min_pool_size == b->min_pool_size && a->reserve_pool_size == b->reserve_pool_size &&
	       a->max_db_connections == b->max_db_connections &&
	       a->max_db_client_connections == b->max_db_client_connections &&
	       a->server_lifetime_us == b->server_lifetime_us &&
	       a->query_wait_timeout_us == b->query_wait_timeout_us && a->pool_mode == b->pool_mode &&
	       a->load_balance_hosts == b->load_balance_hosts && a->pool_weight == b->pool_weight &&
	       str_same(a->file, b->file) && file_of(ca, a->file) && file_of(cb, b->file) &&
	       a->line == b->line;
}

static bool user_same(const struct config *ca, const struct config_user *a,
		const struct config *cb, const struct config_user *b)
{
	return str_same(a->name, b->name) && a->pool_mode == b->pool_mode &&
	       a->pool_size == b->pool_size && a->reserve_pool_size == b->reserve_pool_size &&
	       a->max_user_connections == b->max_user_connections &&
	       a->max_user_client_connections == b->max_user_client_connections &&
	       a->query_timeout_us == b->query_timeout_us &&
	       a->query_wait_timeout_us == b->query_wait_timeout_us &&
	       a->idle_transaction_timeout_us == b->idle_transaction_timeout_us &&
	       a->transaction_timeout_us == b->transaction_timeout_us &&
	       a->client_idle_timeout_us == b->client_idle_timeout_us && str_same(a->file, b->file) &&
	       file_of(ca, a->file) && file_of(cb, b->file) && a->line == b->line;
}

/* The settings, entries, warnings and files of <b> equal <a>'s, all copies. */
static void expect_same(const struct config *a, const struct config *b, const char *what)
{
	struct same x = {.clone = b};
	bool dbs = a->n_dbs == b->n_dbs, users = a->n_users == b->n_users;
	bool warns = a->n_warnings == b->n_warnings, files = a->n_files == b->n_files;
	int i;

	config_foreach_setting(a, same_fn, &x);
	ok(x.n == config_setting_count(), "%s: every setting compared", what);
	if (!ok(x.differ == 0, "%s: every setting prints the same", what))
		diag("%d differ, first %s", x.differ, x.first_bad);
	ok(list_same(&a->s.admin_users, &b->s.admin_users) &&
					list_same(&a->s.stats_users, &b->s.stats_users) &&
					list_same(&a->s.listen_addr, &b->s.listen_addr) &&
					list_same(&a->s.ignore_startup_parameters,
							&b->s.ignore_startup_parameters) &&
					list_same(&a->s.track_extra_parameters,
							&b->s.track_extra_parameters),
			"%s: list items copied", what);
	for (i = 0; dbs && i < a->n_dbs; i++)
		dbs = db_same(a, &a->dbs[i], b, &b->dbs[i]);
	ok(dbs, "%s: [databases] equal, strings copied, files remapped", what);
	ok(a->fallback_db == NULL ? b->fallback_db == NULL :
				    b->fallback_db != NULL && b->fallback_db != a->fallback_db &&
						    db_same(a, a->fallback_db, b, b->fallback_db),
			"%s: the \"*\" entry equal", what);
	for (i = 0; users && i < a->n_users; i++)
		users = user_same(a, &a->users[i], b, &b->users[i]);
	ok(users, "%s: [users] equal", what);
	for (i = 0; warns && i < a->n_warnings; i++)
		warns = str_same(a->warnings[i].msg, b->warnings[i].msg) &&
			a->warnings[i].key == b->warnings[i].key &&
			a->warnings[i].is_default == b->warnings[i].is_default;
	ok(warns, "%s: warnings equal", what);
	for (i = 0; files && i < a->n_files; i++)
		files = str_same(a->files[i], b->files[i]);
	ok(files, "%s: file names equal", what);
}

static void test_clone(void)
{
	static struct every e;
	char inc[300], main_ini[300], buf[64], err[256];
	struct config *cfg, *clone, *dflt;
	struct changes ch = {0};

	/* every setting off its default, so a clone that kept defaults fails */
	dflt = config_new_defaults();
	e.len = (size_t)snprintf(e.text, sizeof(e.text), "[pgbouncer]\n");
	config_foreach_setting(dflt, every_fn, &e);
	if (!ok(e.stuck == NULL, "every setting has a loadable non-default value"))
		diag("stuck: %s", e.stuck);
	/* the entries in an included file: two files for <file> to point into */
	snprintf(inc, sizeof(inc), "%s/clone_inc.ini", tmpdir);
	write_file(inc, strstr(full_ini, "[databases]"));
	track(inc);
	e.len += (size_t)snprintf(e.text + e.len, sizeof(e.text) - e.len,
			"[databases]\nlate = host=h9 port=9\n%%include %s\n", inc);
	cfg = load_text(e.text, main_ini, sizeof(main_ini));
	if (!ok(cfg != NULL, "config with every setting changed loads"))
		diag("%s", errbuf);
	if (cfg == NULL) {
		config_free(dflt);
		return;
	}
	config_foreach_changed(dflt, cfg, change_fn, &ch);
	is_int(ch.n, config_setting_count(), "every setting differs from its default");
	ok(cfg->n_dbs == 6 && cfg->n_users == 2 && cfg->fallback_db && cfg->n_files == 2 &&
					cfg->n_warnings > 0,
			"entries from two files, a \"*\" entry, warnings");

	clone = config_clone(cfg);
	if (!ok(clone != NULL && clone != cfg, "config_clone")) {
		config_free(cfg);
		config_free(dflt);
		return;
	}
	expect_same(cfg, clone, "clone");
	ok(config_find_db(clone, "full") == &clone->dbs[0] &&
					config_find_db(clone, "unlisted") == clone->fallback_db &&
					config_find_user(clone, "alice") == &clone->users[0],
			"lookups on the clone find the clone's entries");

	/* a change to the clone stays there */
	is_int(config_set(clone, "pool_mode", "statement", err, sizeof(err)), 0, "SET on the clone");
	is_str(config_setting_get(cfg, "pool_mode", buf, sizeof(buf)), "transaction",
			"the original keeps its value");

	/* the original gone, the clone still reads whole (ASan: nothing shared) */
	config_free(cfg);
	cfg = config_clone(clone);
	expect_same(clone, cfg, "clone of a clone after the original was freed");
	config_free(clone);
	config_free(cfg);

	/* a config with no entries, warnings or files */
	clone = config_clone(dflt);
	ok(clone && clone->dbs == NULL && clone->users == NULL && clone->fallback_db == NULL &&
					clone->warnings == NULL && clone->files == NULL,
			"clone of the defaults: no entries");
	if (clone)
		expect_same(dflt, clone, "defaults");
	config_free(clone);
	config_free(dflt);
}

int main(void)
{
	plan(239);
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	test_defaults();
	test_table();
	test_full();
	test_types();
	test_connstr();
	test_errors();
	test_duplicates();
	test_include();
	test_warnings();
	test_peers();
	test_set();
	test_clone();

	while (n_created > 0) {
		unlink(created[--n_created]);
		free(created[n_created]);
	}
	{
		char sub[300];

		snprintf(sub, sizeof(sub), "%s/sub", tmpdir);
		rmdir(sub);
		rmdir(tmpdir);
	}
	return tap_exit_status();
}
