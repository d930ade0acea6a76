/* hba.h -- PgBouncer's auth_hba_file: parsing and matching (hba.c).
 *
 * Lines as in PostgreSQL's pg_hba.conf, the subset PgBouncer 1.25 reads:
 *
 *   local      DATABASE USER                 METHOD [map=NAME]
 *   host       DATABASE USER ADDRESS         METHOD [map=NAME]
 *   hostssl    ...   hostnossl ...
 *
 * DATABASE: comma list of names, all, sameuser, replication, @file.
 * USER: comma list of names, all, @file.  (+group, samerole and samegroup
 * are not supported, as in PgBouncer: a clear error, not a silent skip.)
 * ADDRESS: all, IPv4 or IPv6 in CIDR form (10.0.0.0/8, ::1/128) or
 * address and mask as two fields (10.0.0.0 255.0.0.0).
 * METHOD: trust reject md5 password scram-sha-256 cert peer; map= only
 * for cert and peer, naming a map of the auth_ident_file.
 *
 * The first rule matching (connection type, address, TLS, database, user)
 * decides; none matching refuses.  This module knows nothing of sockets:
 * the caller describes the connection in struct hba_conn (is_tls: whether
 * the client speaks TLS, for hostssl and hostnossl).  Any bad line
 * makes the whole file fail to load with "FILE:LINE: why" (a reload then
 * keeps the rules in force).  One exception, as PgBouncer: an address with
 * bits set outside its mask (10.0.0.1/8) loads with a warning and never
 * matches (PostgreSQL would mask it; PgBouncer compares it unmasked, and a
 * file that works there must not admit more here).
 */
#ifndef PGSLAB_HBA_H
#define PGSLAB_HBA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ident;

enum hba_type { HBA_LOCAL, HBA_HOST, HBA_HOSTSSL, HBA_HOSTNOSSL };

enum hba_method {
	HBA_TRUST,
	HBA_REJECT,
	HBA_MD5,
	HBA_PASSWORD,
	HBA_SCRAM,
	HBA_CERT,
	HBA_PEER,
};

#define HBA_N_ALL 0x1u
#define HBA_N_SAMEUSER 0x2u
#define HBA_N_REPLICATION 0x4u

struct hba_names {
	char **names;
	int n;
	unsigned flags;              /* HBA_N_* */
};

struct hba_rule {
	enum hba_type type;
	struct hba_names db, user;
	bool addr_all;
	int family;                  /* AF_INET or AF_INET6 (host rules) */
	uint8_t addr[16], mask[16];
	enum hba_method method;
	char *map;                   /* map= name, or NULL */
	int line;
	bool bad_mask;               /* address bits outside the mask: never matches */
};

#define HBA_WARNINGS_MAX 4096

struct hba {
	struct hba_rule *rules;
	int n, cap;
	struct ident *ident;         /* owned */
	/* lines that load but deserve a warning, "...\n" each (at most
	 * HBA_WARNINGS_MAX bytes), for the caller to log; NULL when none */
	char *warnings;
	size_t warnings_len;
	int n_warnings;              /* all of them, also those not kept */
};

/* A connection as the client layer sees it. */
struct hba_conn {
	bool local;                  /* Unix socket */
	int family;                  /* AF_INET or AF_INET6 when not local */
	const uint8_t *addr;         /* 4 or 16 bytes, network order */
	bool is_tls;
	bool replication;
	const char *db, *user;
};

/* Load <path>; <ident> (owned by the result, freed on failure) resolves
 * map= names.  NULL with the reason ("FILE:LINE: ...") in <err>. */
struct hba *hba_load(const char *path, struct ident *ident, char *err, size_t errlen);
/* Parse file text <text> (modified); @files are read relative to <path>. */
struct hba *hba_parse(char *text, const char *path, struct ident *ident, char *err,
		size_t errlen);
void hba_free(struct hba *h);
/* The first rule matching <c>, or NULL. */
const struct hba_rule *hba_match(const struct hba *h, const struct hba_conn *c);
const char *hba_method_name(enum hba_method m);

#endif
