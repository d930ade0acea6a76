/* cred.c -- credentials: the user names pgslab knows, and their secrets.
 *
 * The creds live on proxy->creds and are never freed while the proxy runs
 * (pools and clients point at them); a reload re-syncs each with the new
 * auth_file (cred_sync_all), so a user dropped from it stops authenticating
 * clients at once while pools logged in as it keep working.
 */
#include "cred.h"

#include <stdio.h>
#include <string.h>

#include "proxy.h"
#include "pwd.h"
#include "slab.h"
#include "userlist.h"

static void set_secret(struct cred *cr, const char *secret)
{
	if (strcmp(cr->secret, secret) == 0 && cr->kind == (uint8_t)pwd_classify(secret))
		return;
	snprintf(cr->secret, sizeof(cr->secret), "%s", secret);
	cr->kind = (uint8_t)pwd_classify(cr->secret);
	cr->has_scram = cr->kind == PWD_SCRAM && scram_secret_parse(cr->secret, &cr->scram) == 0;
	if (!cr->has_scram)
		memset(&cr->scram, 0, sizeof(cr->scram));
	cr->has_derived = false;
	cr->has_client_key = false;
	memset(cr->client_key, 0, sizeof(cr->client_key));
}

/* <cr> as the auth_file says now: listed with <e>'s secret, or unlisted. */
static void cred_sync(struct cred *cr, const struct userlist_entry *e)
{
	cr->listed = e != NULL;
	set_secret(cr, e ? e->secret : "");
}

void cred_set_secret(struct cred *cr, const char *secret)
{
	set_secret(cr, secret);
}

/* A new cred named <name> (<dkey>: dynamic, by that key) in <idx>; NULL
 * when out of memory. */
static struct cred *cred_new(struct proxy *p, struct nametab *idx, const char *name,
		const char *dkey)
{
	struct cred *cr = slab_alloc(p->cred_cache);

	if (cr == NULL)
		return NULL;
	memset(cr, 0, sizeof(*cr));
	strcpy(cr->name, name);
	if (dkey) {
		strcpy(cr->dkey, dkey);
		cr->dynamic = true;
	} else {
		cr->kind = 0xff; /* force cred_sync to classify */
	}
	if (nametab_add(idx, &cr->hnode) < 0) {
		slab_free(p->cred_cache, cr);
		return NULL;
	}
	list_append(&p->creds, &cr->node);
	return cr;
}

struct cred *cred_dynamic(struct proxy *p, const char *authdb, const char *user, bool create)
{
	char key[sizeof(((struct cred *)0)->dkey)];
	struct nametab_node *n;

	if (strlen(authdb) >= NAME_MAX_LEN || strlen(user) >= NAME_MAX_LEN)
		return NULL;
	/* the auth database first: its name comes from the config, so the
	 * first \x01 splits the key even when a client's name holds one */
	snprintf(key, sizeof(key), "%s\x01%s", authdb, user);
	n = nametab_find(&p->dyn_index, key);
	if (n)
		return list_entry(n, struct cred, hnode);
	return create ? cred_new(p, &p->dyn_index, user, key) : NULL;
}

static const struct userlist_entry *listed(struct proxy *p, const char *name)
{
	return p->userlist ? userlist_find(p->userlist, name) : NULL;
}

struct cred *cred_find(struct proxy *p, const char *name, bool create)
{
	const struct userlist_entry *e;
	struct nametab_node *n = nametab_find(&p->cred_index, name);
	struct cred *cr;

	if (n)
		return list_entry(n, struct cred, hnode);
	e = listed(p, name);
	if ((e == NULL && !create) || strlen(name) >= NAME_MAX_LEN)
		return NULL;
	cr = cred_new(p, &p->cred_index, name, NULL);
	if (cr)
		cred_sync(cr, e);
	return cr;
}

struct cred *cred_lookup(struct proxy *p, const char *name)
{
	struct nametab_node *n = nametab_find(&p->cred_index, name);

	return n ? list_entry(n, struct cred, hnode) : NULL;
}

struct cred *cred_auth(struct proxy *p, const char *name)
{
	struct cred *cr = cred_find(p, name, false);

	return cr && cr->listed ? cr : NULL;
}

const struct scram_secret *cred_scram(struct proxy *p, struct cred *cr)
{
	if (cr->has_scram)
		return &cr->scram;
	if (cr->kind != PWD_PLAIN)
		return NULL;
	if (!cr->has_derived) {
		int iter = p->cfg->s.scram_iterations > 0 ? p->cfg->s.scram_iterations :
							    SCRAM_DEFAULT_ITERATIONS;

		if (scram_secret_generate(cr->secret, iter, &cr->scram) != 0)
			return NULL;
		cr->has_derived = true;
	}
	return &cr->scram;
}

void cred_sync_all(struct proxy *p)
{
	struct list *it;

	list_for_each(it, &p->creds) {
		struct cred *cr = list_entry(it, struct cred, node);

		if (!cr->dynamic) /* auth_query's answers are not the auth_file's */
			cred_sync(cr, listed(p, cr->name));
	}
}

void cred_destroy_all(struct proxy *p)
{
	struct list *it, *tmp;

	list_for_each_safe(it, tmp, &p->creds) {
		struct cred *cr = list_entry(it, struct cred, node);

		list_del(it);
		memset(cr, 0, sizeof(*cr));
		slab_free(p->cred_cache, cr);
	}
	nametab_destroy(&p->cred_index);
	nametab_destroy(&p->dyn_index);
}
