/* cred.h -- credentials (cred.c).
 */
#ifndef PGSLAB_CRED_H
#define PGSLAB_CRED_H

#include <stdbool.h>
#include <stdint.h>

#include "list.h"
#include "nametab.h"
#include "pwd.h"
#include "scram.h"
#include "vars.h"

struct proxy;

/* A user name pgslab knows.  Two roles, kept apart:
 *   - client authentication: only a cred that is <listed> in the current
 *     auth_file authenticates clients, and never with an empty secret;
 *   - server login identity: a pool logs in to PostgreSQL as a cred (the
 *     client's, or a database's forced user, which need not be listed).
 * <kind> is pwd_classify(<secret>), the one classifier.  <scram> is the
 * verifier clients are checked against with SCRAM: parsed from a SCRAM
 * secret, or derived once from a plain one (so PBKDF2 runs once per secret,
 * not once per login). */
struct cred {
	struct list node;
	struct nametab_node hnode;            /* in proxy.cred_index, by <name> */
	char name[NAME_MAX_LEN];
	char secret[PWD_SECRET_MAX];         /* from auth_file; "" when not listed */
	bool listed;                          /* in the current auth_file */
	uint8_t kind;                         /* enum pwd_kind of <secret> */
	bool has_scram;                       /* <secret> is a SCRAM verifier */
	bool has_derived;                     /* <scram> derived from a plain secret */
	bool has_client_key;                  /* learnt from a client's SCRAM proof */
	struct scram_secret scram;
	uint8_t client_key[SCRAM_KEY_LEN];
	/* found by auth_query (authq.c), not in the auth_file: in
	 * proxy.dyn_index by <dkey> ("authdb\x01user": one per auth database,
	 * since two clusters may hold different secrets for one name), never in
	 * proxy.cred_index; <secret> is the last lookup's answer */
	bool dynamic;
	char dkey[2 * NAME_MAX_LEN + 2];
	int64_t looked_up_us;                 /* when <secret> was last confirmed */
	int n_clients;                        /* logged-in clients of this login name */
};

/* The cred a pool logs in to servers with; created (unlisted) if needed. */
struct cred *cred_find(struct proxy *p, const char *name, bool create);
/* The cred of <name> if one exists already; never creates one. */
struct cred *cred_lookup(struct proxy *p, const char *name);
/* The cred a client authenticates against: listed in the auth_file, else NULL. */
struct cred *cred_auth(struct proxy *p, const char *name);
/* The SCRAM verifier for <cr> (derived once from a plain secret); NULL when
 * it has no usable secret. */
const struct scram_secret *cred_scram(struct proxy *p, struct cred *cr);
/* The auth_query cred of <user> looked up in auth database <authdb>;
 * created (with no secret) when <create>. */
struct cred *cred_dynamic(struct proxy *p, const char *authdb, const char *user, bool create);
/* Set dynamic <cr>'s secret to what a lookup returned ("" when the user is
 * gone, expired or cannot log in: then it authenticates nobody). */
void cred_set_secret(struct cred *cr, const char *secret);
/* Re-sync every cred with the current auth_file (after a reload). */
void cred_sync_all(struct proxy *p);
void cred_destroy_all(struct proxy *p);

#endif
