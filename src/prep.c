/* prep.c -- protocol-level prepared statements across pooled backends.
 *
 * See prep.h for the theory.  Three chained hash tables (statements by key,
 * client names by (client id, name), server records by (server id,
 * statement id)) share one implementation; bucket arrays come from the
 * arena's size classes and double when a table holds more records than
 * buckets.  A failed doubling only lengthens chains.
 */
#include "prep.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "proto.h"
#include "slab.h"

struct htab {
	struct prep_hnode **b;
	uint32_t mask;     /* buckets - 1; 0 with no array */
	uint32_t count;
	size_t cap;        /* slab_buf capacity of <b> */
};

struct prep_reg {
	struct slab_arena *a;
	struct slab_cache *stmt_cache, *cmap_cache, *smap_cache, *pend_cache, *key_cache;
	struct htab stmts, cmaps, smaps;
	uint64_t next_id;
	struct prep_stats st;
};

/* ---- hashing and tables ---- */

static uint32_t hash_bytes(const void *p, size_t n, uint32_t h)
{
	const uint8_t *s = p;

	while (n--)
		h = (h ^ *s++) * 16777619u;
	return h;
}

static uint32_t hash_u64(uint64_t v)
{
	v ^= v >> 33;
	v *= 0xff51afd7ed558ccdull;
	v ^= v >> 33;
	return (uint32_t)v;
}

static void htab_grow(struct slab_arena *a, struct htab *t)
{
	uint32_t n = t->mask ? (t->mask + 1) * 2 : 64, i;
	struct prep_hnode **nb;
	size_t cap;

	nb = slab_buf_alloc(a, n * sizeof(*nb), &cap);
	if (nb == NULL)
		return;
	memset(nb, 0, n * sizeof(*nb));
	for (i = 0; t->mask && i <= t->mask; i++) {
		struct prep_hnode *e = t->b[i], *next;

		for (; e; e = next) {
			next = e->next;
			e->next = nb[e->hash & (n - 1)];
			nb[e->hash & (n - 1)] = e;
		}
	}
	if (t->b)
		slab_buf_free(a, t->b, t->cap);
	t->b = nb;
	t->cap = cap;
	t->mask = n - 1;
}

static bool htab_add(struct slab_arena *a, struct htab *t, struct prep_hnode *e)
{
	if (t->count >= (t->mask ? t->mask + 1 : 0))
		htab_grow(a, t);
	if (t->b == NULL)
		return false;
	e->next = t->b[e->hash & t->mask];
	t->b[e->hash & t->mask] = e;
	t->count++;
	return true;
}

static void htab_free(struct slab_arena *a, struct htab *t)
{
	if (t->b)
		slab_buf_free(a, t->b, t->cap);
	memset(t, 0, sizeof(*t));
}

/* An emptied table gives its buckets back, so the registry holds no
 * buffer once the last statement, name and backend record are gone. */
static void htab_del(struct slab_arena *a, struct htab *t, struct prep_hnode *e)
{
	struct prep_hnode **pp = &t->b[e->hash & t->mask];

	for (; *pp; pp = &(*pp)->next) {
		if (*pp == e) {
			*pp = e->next;
			if (--t->count == 0)
				htab_free(a, t);
			return;
		}
	}
}

static inline struct prep_hnode *htab_chain(const struct htab *t, uint32_t hash)
{
	return t->b ? t->b[hash & t->mask] : NULL;
}

/* ---- registry ---- */

struct prep_reg *prep_reg_create(struct slab_arena *a)
{
	struct slab_cache *rc = slab_cache_create(a, "prep_registry", sizeof(struct prep_reg), 0,
			NULL, NULL, NULL);
	struct prep_reg *r = rc ? slab_alloc(rc) : NULL;

	if (r == NULL)
		return NULL;
	memset(r, 0, sizeof(*r));
	r->a = a;
	r->stmt_cache = slab_cache_create(a, "prep_stmt", sizeof(struct prep_stmt), 0, NULL, NULL,
			NULL);
	r->cmap_cache = slab_cache_create(a, "prep_client_name", sizeof(struct prep_cmap), 0, NULL,
			NULL, NULL);
	r->smap_cache = slab_cache_create(a, "prep_server_stmt", sizeof(struct prep_smap), 0, NULL,
			NULL, NULL);
	r->pend_cache = slab_cache_create(a, "prep_pending", sizeof(struct prep_pend), 0, NULL,
			NULL, NULL);
	r->key_cache = slab_cache_create(a, "prep_text", PREP_KEY_SMALL, 0, NULL, NULL, NULL);
	if (!r->stmt_cache || !r->cmap_cache || !r->smap_cache || !r->pend_cache || !r->key_cache)
		return NULL; /* the arena is unusable: the caller gives up */
	return r;
}

void prep_reg_destroy(struct prep_reg *r)
{
	if (r == NULL)
		return;
	htab_free(r->a, &r->stmts);
	htab_free(r->a, &r->cmaps);
	htab_free(r->a, &r->smaps);
	/* records and caches go with the arena */
}

void prep_reg_stats(const struct prep_reg *r, struct prep_stats *st)
{
	*st = r->st;
	st->stmts = r->stmts.count;
	st->cmaps = r->cmaps.count;
	st->smaps = r->smaps.count;
	st->bytes = st->key_bytes + st->stmts * sizeof(struct prep_stmt) +
			st->cmaps * sizeof(struct prep_cmap) + st->smaps * sizeof(struct prep_smap) +
			r->stmts.cap + r->cmaps.cap + r->smaps.cap;
}

void prep_reg_foreach(const struct prep_reg *r, void (*fn)(const struct prep_stmt *, void *),
		void *arg)
{
	uint32_t i;

	for (i = 0; r->stmts.b && i <= r->stmts.mask; i++) {
		const struct prep_hnode *e;

		for (e = r->stmts.b[i]; e; e = e->next)
			fn((const struct prep_stmt *)(const void *)e, arg);
	}
}

/* Query texts: short ones from their own cache (so statements kept by
 * backends show as prep_text, not in the message-buffer classes). */
static uint8_t *key_alloc(struct prep_reg *r, uint32_t len, size_t *cap)
{
	if (len <= PREP_KEY_SMALL) {
		*cap = PREP_KEY_SMALL;
		return slab_alloc(r->key_cache);
	}
	return slab_buf_alloc(r->a, len, cap);
}

static void key_free(struct prep_reg *r, uint8_t *key, size_t cap)
{
	if (cap == PREP_KEY_SMALL)
		slab_free(r->key_cache, key);
	else
		slab_buf_free(r->a, key, cap);
}

static struct prep_stmt *stmt_get(struct prep_reg *r, const uint8_t *key, uint32_t len,
		uint8_t ctx)
{
	uint32_t h = hash_bytes(key, len, 2166136261u ^ ctx);
	struct prep_hnode *e;
	struct prep_stmt *st;
	size_t cap;

	for (e = htab_chain(&r->stmts, h); e; e = e->next) {
		st = (struct prep_stmt *)(void *)e;
		if (e->hash == h && st->key_len == len && st->ctx == ctx &&
				memcmp(st->key, key, len) == 0) {
			r->st.hits++;
			st->refs++;
			return st;
		}
	}
	r->st.misses++;
	st = slab_alloc(r->stmt_cache);
	if (st == NULL)
		return NULL;
	memset(st, 0, sizeof(*st));
	st->key = key_alloc(r, len, &cap);
	if (st->key == NULL) {
		slab_free(r->stmt_cache, st);
		return NULL;
	}
	memcpy(st->key, key, len);
	st->key_len = len;
	st->key_cap = (uint32_t)cap;
	st->ctx = ctx;
	st->h.hash = h;
	st->id = ++r->next_id;
	st->refs = 1;
	if (!htab_add(r->a, &r->stmts, &st->h)) {
		key_free(r, st->key, cap);
		slab_free(r->stmt_cache, st);
		return NULL;
	}
	r->st.key_bytes += cap;
	return st;
}

static void stmt_put(struct prep_reg *r, struct prep_stmt *st)
{
	if (--st->refs > 0)
		return;
	htab_del(r->a, &r->stmts, &st->h);
	r->st.key_bytes -= st->key_cap;
	key_free(r, st->key, st->key_cap);
	slab_free(r->stmt_cache, st);
}

/* Does standard_conforming_strings change what query text <key> means?
 * Only through a backslash in it. */
static bool key_ctx_matters(const uint8_t *key, uint32_t len)
{
	return memchr(key, '\\', strnlen((const char *)key, len)) != NULL;
}

/* The statement a backend parsing under <ctx> holds for <st>: <st>
 * itself, or the same text registered under <ctx>.  A new reference; NULL
 * when out of memory. */
static struct prep_stmt *stmt_in_ctx(struct prep_reg *r, struct prep_stmt *st, uint8_t ctx)
{
	if (st->ctx == ctx || !key_ctx_matters(st->key, st->key_len)) {
		st->refs++;
		return st;
	}
	return stmt_get(r, st->key, st->key_len, ctx);
}

/* ---- client names ---- */

void prep_client_init(struct prep_client *pc, uint64_t id)
{
	list_init(&pc->maps);
	pc->id = id;
	pc->n = 0;
}

static size_t name_len(const char *name)
{
	size_t n = strlen(name);

	return n > PREP_NAME_MAX ? PREP_NAME_MAX : n; /* as PostgreSQL truncates */
}

static uint32_t cmap_hash(uint64_t owner, const char *name, size_t n)
{
	return hash_bytes(name, n, 2166136261u ^ hash_u64(owner));
}

static struct prep_cmap *cmap_find(struct prep_reg *r, struct prep_client *pc, const char *name)
{
	size_t n = name_len(name);
	uint32_t h = cmap_hash(pc->id, name, n);
	struct prep_hnode *e;

	for (e = htab_chain(&r->cmaps, h); e; e = e->next) {
		struct prep_cmap *m = (struct prep_cmap *)(void *)e;

		if (e->hash == h && m->owner == pc->id && m->name_len == n &&
				memcmp(m->name, name, n) == 0)
			return m;
	}
	return NULL;
}

static void cmap_put(struct prep_reg *r, struct prep_cmap *m)
{
	if (--m->refs > 0)
		return;
	/* a Close whose server went before answering: its record was the
	 * last reference, but the name is still on its client's list */
	list_del(&m->node);
	m->stmt->n_clients--;
	stmt_put(r, m->stmt);
	slab_free(r->cmap_cache, m);
}

/* Take <m> out of its client's name table (it may stay on the list). */
static void cmap_unlink(struct prep_reg *r, struct prep_cmap *m)
{
	if (!m->linked)
		return;
	htab_del(r->a, &r->cmaps, &m->h);
	m->linked = false;
	m->pc->n--;
}

/* Detach <m> from its client altogether and drop the client's reference. */
static void cmap_drop(struct prep_reg *r, struct prep_cmap *m)
{
	bool held = m->linked;

	cmap_unlink(r, m);
	list_del(&m->node);
	m->pc = NULL;
	if (held)
		cmap_put(r, m);
}

static struct prep_cmap *cmap_add(struct prep_reg *r, struct prep_client *pc, const char *name,
		struct prep_stmt *st)
{
	struct prep_cmap *m = slab_alloc(r->cmap_cache);
	size_t n = name_len(name);

	if (m == NULL)
		return NULL;
	memset(m, 0, sizeof(*m));
	memcpy(m->name, name, n);
	m->name_len = (uint8_t)n;
	m->owner = pc->id;
	m->pc = pc;
	m->h.hash = cmap_hash(pc->id, name, n);
	if (!htab_add(r->a, &r->cmaps, &m->h)) {
		slab_free(r->cmap_cache, m);
		return NULL;
	}
	m->linked = true;
	m->refs = 1;
	m->stmt = st;
	st->refs++;
	st->n_clients++;
	list_append(&pc->maps, &m->node);
	pc->n++;
	return m;
}

void prep_client_clear(struct prep_reg *r, struct prep_client *pc)
{
	struct list *it, *tmp;

	list_for_each_safe(it, tmp, &pc->maps)
		cmap_drop(r, list_entry(it, struct prep_cmap, node));
	pc->n = 0;
}

/* ---- server sets ---- */

void prep_server_init(struct prep_server *ps, uint64_t id)
{
	list_init(&ps->lru);
	ps->ph = ps->pt = NULL;
	ps->id = id;
	ps->n = 0;
	ps->seg = 0;
	ps->max = 0;
	ps->flags = 0;
}

static uint32_t smap_hash(uint64_t owner, uint64_t stmt)
{
	return hash_u64(owner * 0x9e3779b97f4a7c15ull ^ stmt);
}

static struct prep_smap *smap_find(struct prep_reg *r, struct prep_server *ps,
		const struct prep_stmt *st)
{
	uint32_t h = smap_hash(ps->id, st->id);
	struct prep_hnode *e;

	for (e = htab_chain(&r->smaps, h); e; e = e->next) {
		struct prep_smap *sm = (struct prep_smap *)(void *)e;

		if (e->hash == h && sm->owner == ps->id && sm->stmt == st)
			return sm;
	}
	return NULL;
}

static void smap_del(struct prep_reg *r, struct prep_server *ps, struct prep_smap *sm)
{
	htab_del(r->a, &r->smaps, &sm->h);
	list_del(&sm->lru);
	ps->n--;
	sm->stmt->n_servers--;
	stmt_put(r, sm->stmt);
	slab_free(r->smap_cache, sm);
}

static struct prep_smap *smap_add(struct prep_reg *r, struct prep_server *ps, struct prep_stmt *st)
{
	struct prep_smap *sm = slab_alloc(r->smap_cache);

	if (sm == NULL)
		return NULL;
	memset(sm, 0, sizeof(*sm));
	sm->owner = ps->id;
	sm->stmt = st;
	sm->h.hash = smap_hash(ps->id, st->id);
	if (!htab_add(r->a, &r->smaps, &sm->h)) {
		slab_free(r->smap_cache, sm);
		return NULL;
	}
	st->refs++;
	st->n_servers++;
	list_prepend(&ps->lru, &sm->lru);
	ps->n++;
	return sm;
}

void prep_server_forget_all(struct prep_reg *r, struct prep_server *ps)
{
	while (!list_empty(&ps->lru))
		smap_del(r, ps, list_first_entry(&ps->lru, struct prep_smap, lru));
}

static void pend_free(struct prep_reg *r, struct prep_pend *pd)
{
	if (pd->map)
		cmap_put(r, pd->map);
	stmt_put(r, pd->stmt);
	slab_free(r->pend_cache, pd);
}

void prep_server_clear(struct prep_reg *r, struct prep_server *ps)
{
	while (ps->ph) {
		struct prep_pend *pd = ps->ph;

		ps->ph = pd->next;
		pend_free(r, pd);
	}
	ps->pt = NULL;
	prep_server_forget_all(r, ps);
	ps->flags = 0;
}

static struct prep_pend *pend_push(struct prep_reg *r, struct prep_server *ps, uint8_t kind,
		struct prep_stmt *st, struct prep_cmap *m)
{
	struct prep_pend *pd = slab_alloc(r->pend_cache);

	if (pd == NULL)
		return NULL;
	pd->next = NULL;
	pd->kind = kind;
	pd->held = false;
	pd->seg = ps->seg;
	pd->stmt = st;
	st->refs++;
	pd->map = m;
	if (m)
		m->refs++;
	if (ps->pt)
		ps->pt->next = pd;
	else
		ps->ph = pd;
	ps->pt = pd;
	return pd;
}

/* A Close (or SQL DEALLOCATE) of client name <m> was <answered>: the name
 * goes for good, or, skipped, comes back unless the client parsed it anew. */
static void close_settle(struct prep_reg *r, struct prep_cmap *m, bool answered)
{
	if (m == NULL || m->pc == NULL)
		return; /* the client went */
	if (!answered && cmap_find(r, m->pc, m->name) == NULL && htab_add(r->a, &r->cmaps, &m->h)) {
		m->linked = true;
		m->refs++;
		m->pc->n++;
	} else {
		list_del(&m->node);
		m->pc = NULL;
	}
}

static void pend_pop(struct prep_server *ps)
{
	ps->ph = ps->ph->next;
	if (ps->ph == NULL)
		ps->pt = NULL;
}

void prep_server_sql_end(struct prep_reg *r, struct prep_server *ps, bool done)
{
	struct prep_pend *pd = ps->ph;

	if (!prep_server_sql_pending(ps))
		return;
	pend_pop(ps);
	if (!done && pd->held)
		ps->flags |= PREP_SV_LOST;
	close_settle(r, pd->map, done);
	pend_free(r, pd);
}

int prep_sql_dealloc(struct prep_reg *r, struct prep_client *pc, struct prep_server *ps,
		const char *name)
{
	struct prep_cmap *m = cmap_find(r, pc, name);

	if (m == NULL)
		return 0;
	if (m->failed) {
		cmap_drop(r, m); /* PostgreSQL never had it */
		return 0;
	}
	if (pend_push(r, ps, PREP_P_SQL_DEALLOC, m->stmt, m) == NULL)
		return -ENOMEM;
	cmap_unlink(r, m);
	m->refs--; /* the table's reference; the pending record holds one */
	return 1;
}

void prep_server_settle(struct prep_reg *r, struct prep_server *ps, bool answered)
{
	struct prep_pend *pd;
	struct prep_smap *sm;
	struct prep_cmap *m;

	/* an SQL DEALLOCATE still first: its Query ended without its tag
	 * where no ReadyForQuery hook saw it (its client had left) */
	while (prep_server_sql_pending(ps))
		prep_server_sql_end(r, ps, false);
	pd = ps->ph;
	if (pd == NULL) {
		ps->flags |= PREP_SV_LOST; /* an answer we did not expect: trust nothing */
		return;
	}
	pend_pop(ps);
	m = pd->map;
	switch (pd->kind) {
	case PREP_P_INJECT:
	case PREP_P_PARSE:
		sm = smap_find(r, ps, pd->stmt);
		if (sm && sm->adder == pd) {
			sm->adder = NULL;
			if (!answered)
				smap_del(r, ps, sm);
		}
		if (!answered && m && m->linked)
			m->failed = true; /* the client's name stays, marked (prep.h) */
		break;
	case PREP_P_HAVE:
		if (!answered && m && m->linked)
			m->failed = true;
		break;
	case PREP_P_EVICT:
		if (answered)
			break;
		/* skipped after an error: the backend still holds what it held.
		 * A later Parse of the statement in the same skipped run fails
		 * with it, so the statement is simply held (no adder).  Back in
		 * the set only while that stays at most one over max (a run of
		 * evictions skipped after max_prepared_statements was lowered
		 * leaves the set unknown instead). */
		sm = smap_find(r, ps, pd->stmt);
		if (pd->held && sm)
			sm->adder = NULL;
		else if (!pd->held || ps->n > ps->max || smap_add(r, ps, pd->stmt) == NULL)
			ps->flags |= PREP_SV_LOST;
		break;
	case PREP_P_CLOSE:
		close_settle(r, m, answered);
		break;
	default: /* PREP_P_DUP */
		break;
	}
	pend_free(r, pd);
}

/* ---- plans ---- */

static void op(struct prep_plan *pl, uint8_t kind, uint8_t track, struct prep_stmt *st)
{
	struct prep_op *o = &pl->op[pl->n++];

	o->kind = kind;
	o->track = track;
	o->count = 1;
	o->stmt = st;
	o->pend = NULL;
}

static bool must_wait(const struct prep_server *ps)
{
	return ps->ph != NULL && ps->ph->seg != ps->seg;
}

/* Queue an injected Close ('x') of <st>, which the backend <held> for
 * sure, onto the plan's run of Closes. */
static int close_op(struct prep_reg *r, struct prep_server *ps, struct prep_stmt *st, bool held,
		struct prep_plan *pl)
{
	struct prep_pend *pd = pend_push(r, ps, PREP_P_EVICT, st, NULL);
	struct prep_op *o = pl->n ? &pl->op[pl->n - 1] : NULL;

	if (pd == NULL)
		return -ENOMEM;
	pd->held = held;
	if (o && o->kind == PREP_OP_CLOSE_EVICT) {
		o->count++; /* its records are consecutive on the FIFO */
		return 0;
	}
	op(pl, PREP_OP_CLOSE_EVICT, 'x', st);
	pl->op[pl->n - 1].pend = pd;
	return 0;
}

/* Before a Parse of <st> (<sm>: its entry in the set, or NULL): a Close of
 * <st> itself when the backend may hold it (<sm>, or a set not to be
 * trusted: a Close of a missing statement succeeds), then Closes of the
 * least recently used statements until the backend holds fewer than <max>
 * (more than one when max_prepared_statements was lowered, as PgBouncer
 * evicts).  0 or -ENOMEM. */
static int make_room(struct prep_reg *r, struct prep_server *ps, int max, struct prep_stmt *st,
		struct prep_smap *sm, struct prep_plan *pl)
{
	struct prep_smap *old;

	ps->max = (uint32_t)max;
	if (sm || (ps->flags & PREP_SV_LOST)) {
		if (close_op(r, ps, st, sm && sm->adder == NULL, pl) < 0)
			return -ENOMEM;
		if (sm)
			smap_del(r, ps, sm);
	}
	while (ps->n >= (uint32_t)max && !list_empty(&ps->lru)) {
		old = list_last_entry(&ps->lru, struct prep_smap, lru);
		if (close_op(r, ps, old->stmt, old->adder == NULL, pl) < 0)
			return -ENOMEM;
		r->st.evicts++;
		smap_del(r, ps, old); /* the pending record keeps the statement */
	}
	return 0;
}

/* Make <st> present on <ps> (LRU front), evicting past <max>.  Ops go to
 * <pl>.  0 or -ENOMEM. */
static int ensure(struct prep_reg *r, struct prep_server *ps, int max, struct prep_stmt *st,
		struct prep_plan *pl)
{
	struct prep_smap *sm = smap_find(r, ps, st);
	struct prep_pend *pd;
	int rc;

	if (sm && !(ps->flags & PREP_SV_LOST)) {
		list_del(&sm->lru);
		list_prepend(&ps->lru, &sm->lru);
		return 0;
	}
	rc = make_room(r, ps, max, st, sm, pl);
	if (rc < 0)
		return rc;
	sm = smap_add(r, ps, st);
	if (sm == NULL)
		return -ENOMEM;
	pd = pend_push(r, ps, PREP_P_INJECT, st, NULL);
	if (pd == NULL) {
		smap_del(r, ps, sm);
		return -ENOMEM;
	}
	sm->adder = pd;
	op(pl, PREP_OP_PARSE_INJECT, 'p', st);
	r->st.injects++;
	r->st.server_misses++;
	return 0;
}

int prep_plan_parse(struct prep_reg *r, struct prep_client *pc, struct prep_server *ps, int max,
		const char *name, const uint8_t *key, uint32_t key_len, uint8_t ctx, bool sure,
		struct prep_plan *pl)
{
	struct prep_cmap *m;
	struct prep_stmt *st;
	struct prep_smap *sm;
	struct prep_pend *pd;
	int rc;

	pl->n = 0;
	pl->dup = false;
	if (must_wait(ps))
		return -EAGAIN;
	if (key_len > PREP_KEY_MAX)
		return -E2BIG;
	r->st.parses++;
	if (!key_ctx_matters(key, key_len))
		ctx = 0;
	m = cmap_find(r, pc, name);
	if (m && m->failed) {
		cmap_drop(r, m); /* PostgreSQL never had it: the name is free */
		m = NULL;
	}
	if (m) {
		pl->dup = true;
		/* PostgreSQL answers 42P05: make the backend say it, in order */
		st = stmt_in_ctx(r, m->stmt, ctx);
		if (st == NULL)
			return -ENOMEM;
		rc = ensure(r, ps, max, st, pl);
		if (rc == 0 && pend_push(r, ps, PREP_P_DUP, st, NULL) == NULL)
			rc = -ENOMEM;
		if (rc == 0)
			op(pl, PREP_OP_PARSE, 'n', st);
		stmt_put(r, st); /* the pending records hold it */
		return rc;
	}
	st = stmt_get(r, key, key_len, ctx);
	if (st == NULL)
		return -ENOMEM;
	m = cmap_add(r, pc, name, st);
	stmt_put(r, st); /* the name holds it now */
	if (m == NULL)
		return -ENOMEM;
	sm = smap_find(r, ps, st);
	if (sm && sure && !(ps->flags & PREP_SV_LOST)) {
		list_del(&sm->lru);
		list_prepend(&ps->lru, &sm->lru);
		if (pend_push(r, ps, PREP_P_HAVE, st, m) == NULL)
			goto nomem;
		op(pl, PREP_OP_PARSE_HAVE, 'k', st);
		r->st.server_hits++;
		return 0;
	}
	/* a statement the backend holds is closed first: it may be in a failed
	 * transaction, where a Parse fails (25P02) but a Close does not */
	if (make_room(r, ps, max, st, sm, pl) < 0)
		goto nomem;
	sm = smap_add(r, ps, st);
	if (sm == NULL)
		goto nomem;
	pd = pend_push(r, ps, PREP_P_PARSE, st, m);
	if (pd == NULL) {
		smap_del(r, ps, sm);
		goto nomem;
	}
	sm->adder = pd;
	op(pl, PREP_OP_PARSE, 'n', st);
	r->st.server_misses++;
	return 0;
nomem:
	cmap_drop(r, m);
	return -ENOMEM;
}

int prep_plan_use(struct prep_reg *r, struct prep_client *pc, struct prep_server *ps, int max,
		const char *name, uint8_t ctx, struct prep_plan *pl)
{
	struct prep_stmt *st;
	struct prep_cmap *m;
	int rc;

	pl->n = 0;
	pl->dup = false;
	if (must_wait(ps))
		return -EAGAIN;
	m = cmap_find(r, pc, name);
	if (m == NULL)
		return -ENOENT;
	r->st.binds++;
	st = stmt_in_ctx(r, m->stmt, ctx);
	if (st == NULL)
		return -ENOMEM;
	rc = ensure(r, ps, max, st, pl);
	if (rc == 0) {
		if (pl->n == 0)
			r->st.server_hits++; /* ensure() sent nothing: the backend has it */
		op(pl, PREP_OP_REWRITE, 0, st);
	}
	stmt_put(r, st); /* held by the backend's set */
	return rc;
}

int prep_plan_close(struct prep_reg *r, struct prep_client *pc, struct prep_server *ps,
		const char *name, struct prep_plan *pl)
{
	struct prep_cmap *m;

	pl->n = 0;
	pl->dup = false;
	if (must_wait(ps))
		return -EAGAIN;
	m = cmap_find(r, pc, name);
	if (m == NULL) {
		op(pl, PREP_OP_CLOSE_NONE, 'C', NULL);
		return 0;
	}
	if (pend_push(r, ps, PREP_P_CLOSE, m->stmt, m) == NULL)
		return -ENOMEM;
	/* out of the table now (a Parse of the name may follow), still on the
	 * client's list until the answer says the Close was not skipped */
	cmap_unlink(r, m);
	m->refs--; /* the table's reference; the pending record holds one */
	op(pl, PREP_OP_CLOSE_NONE, 'y', NULL);
	return 0;
}

/* ---- message bodies ---- */

static const char *get_str(const uint8_t **p, const uint8_t *end)
{
	const uint8_t *z = memchr(*p, 0, (size_t)(end - *p));
	const char *s = (const char *)*p;

	if (z == NULL)
		return NULL;
	*p = z + 1;
	return s;
}

bool prep_parse_body(const uint8_t *body, uint32_t len, const char **name, const uint8_t **key,
		uint32_t *key_len)
{
	const uint8_t *p = body, *end = body + len;
	uint32_t np;

	if ((*name = get_str(&p, end)) == NULL)
		return false;
	*key = p;
	if (get_str(&p, end) == NULL || end - p < 2)
		return false;
	np = (uint32_t)p[0] << 8 | p[1];
	if ((size_t)(end - p) != 2 + 4 * (size_t)np)
		return false;
	*key_len = (uint32_t)(end - *key);
	return true;
}

bool prep_bind_body(const uint8_t *body, uint32_t len, const char **portal, const char **name,
		const uint8_t **rest, uint32_t *rest_len)
{
	const uint8_t *p = body, *end = body + len;

	if ((*portal = get_str(&p, end)) == NULL || (*name = get_str(&p, end)) == NULL)
		return false;
	*rest = p;
	*rest_len = (uint32_t)(end - p);
	return true;
}

/* ---- writers ---- */

void prep_server_name(const struct prep_stmt *st, char out[PREP_SERVER_NAME_MAX])
{
	/* called for every rewritten Bind: digits by hand, not snprintf */
	static const char prefix[] = PREP_NAME_PREFIX;
	char digits[20];
	uint64_t v = st ? st->id : 0;
	size_t n = 0;

	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v && n < sizeof(digits));
	_Static_assert(sizeof(prefix) - 1 + sizeof(digits) < PREP_SERVER_NAME_MAX,
			"a server-side statement name fits");
	memcpy(out, prefix, sizeof(prefix) - 1);
	out += sizeof(prefix) - 1;
	while (n)
		*out++ = digits[--n];
	*out = 0;
}

static uint8_t *put_hdr(uint8_t *p, uint8_t type, size_t len)
{
	uint32_t l = (uint32_t)(len - 1);

	p[0] = type;
	p[1] = (uint8_t)(l >> 24);
	p[2] = (uint8_t)(l >> 16);
	p[3] = (uint8_t)(l >> 8);
	p[4] = (uint8_t)l;
	return p + PROTO_HDR_LEN;
}

size_t prep_parse_len(const struct prep_stmt *st)
{
	char nm[PREP_SERVER_NAME_MAX];

	prep_server_name(st, nm);
	return PROTO_HDR_LEN + strlen(nm) + 1 + st->key_len;
}

size_t prep_write_parse(const struct prep_stmt *st, uint8_t *buf)
{
	char nm[PREP_SERVER_NAME_MAX];
	size_t n, len = prep_parse_len(st);
	uint8_t *p = put_hdr(buf, 'P', len);

	prep_server_name(st, nm);
	n = strlen(nm) + 1;
	memcpy(p, nm, n);
	memcpy(p + n, st->key, st->key_len);
	return len;
}

size_t prep_close_len(const struct prep_stmt *st)
{
	char nm[PREP_SERVER_NAME_MAX];

	prep_server_name(st, nm);
	return PROTO_HDR_LEN + 1 + strlen(nm) + 1;
}

size_t prep_write_close(const struct prep_stmt *st, uint8_t *buf)
{
	char nm[PREP_SERVER_NAME_MAX];
	size_t len = prep_close_len(st);
	uint8_t *p = put_hdr(buf, 'C', len);

	prep_server_name(st, nm);
	p[0] = 'S';
	memcpy(p + 1, nm, strlen(nm) + 1);
	return len;
}

size_t prep_rewrite_len(uint8_t type, const char *portal, const struct prep_stmt *st,
		uint32_t rest_len)
{
	char nm[PREP_SERVER_NAME_MAX];

	prep_server_name(st, nm);
	if (type == 'D')
		return PROTO_HDR_LEN + 1 + strlen(nm) + 1;
	return PROTO_HDR_LEN + strlen(portal) + 1 + strlen(nm) + 1 + rest_len;
}

size_t prep_write_rewrite(uint8_t type, const char *portal, const struct prep_stmt *st,
		const uint8_t *rest, uint32_t rest_len, uint8_t *buf)
{
	char nm[PREP_SERVER_NAME_MAX];
	size_t len = prep_rewrite_len(type, portal, st, rest_len), n;
	uint8_t *p = put_hdr(buf, type, len);

	prep_server_name(st, nm);
	if (type == 'D') {
		*p++ = 'S';
	} else {
		n = strlen(portal) + 1;
		memcpy(p, portal, n);
		p += n;
	}
	n = strlen(nm) + 1;
	memcpy(p, nm, n);
	p += n;
	if (type != 'D' && rest)
		memcpy(p, rest, rest_len);
	return len;
}

/* ---- SQL keywords ---- */

static bool word_is(const uint8_t *p, uint32_t n, const char *w)
{
	size_t wl = strlen(w), i;

	if (n < wl)
		return false;
	for (i = 0; i < wl; i++)
		if ((p[i] | 0x20) != (uint8_t)w[i])
			return false;
	return true;
}

/* Skip blanks and comments; false when the text ends first. */
static bool skip_blank(const uint8_t **pp, const uint8_t *end)
{
	const uint8_t *p = *pp;

	for (;;) {
		while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f'))
			p++;
		if (end - p >= 2 && p[0] == '-' && p[1] == '-') {
			while (p < end && *p != '\n')
				p++;
			continue;
		}
		if (end - p >= 2 && p[0] == '/' && p[1] == '*') {
			const uint8_t *q = p + 2;

			while (end - q >= 2 && !(q[0] == '*' && q[1] == '/'))
				q++;
			if (end - q < 2)
				return false;
			p = q + 2;
			continue;
		}
		break;
	}
	*pp = p;
	return p < end;
}

/* The length of the identifier-like word at <p>: a keyword matches only a
 * whole word, so "DEALLOCATE ALL4" names a statement, as PostgreSQL lexes it. */
static uint32_t word_len(const uint8_t *p, const uint8_t *end)
{
	const uint8_t *q = p;

	while (q < end && (((*q | 0x20) >= 'a' && (*q | 0x20) <= 'z') || *q == '_' ||
				  (*q >= '0' && *q <= '9') || *q == '$' || *q >= 0x80))
		q++;
	return (uint32_t)(q - p);
}

enum prep_sql prep_sql_classify(const uint8_t *q, uint32_t len)
{
	const uint8_t *p = q, *end = q + len;
	uint32_t n;
	bool discard, dealloc;

	if (!skip_blank(&p, end))
		return len ? PREP_SQL_UNSURE : PREP_SQL_OTHER;
	n = word_len(p, end);
	if (p + n == end && memchr(q, 0, len) == NULL)
		return PREP_SQL_UNSURE;
	if (n == 7 && (word_is(p, n, "prepare") || word_is(p, n, "execute")))
		return PREP_SQL_PREPARE;
	discard = n == 7 && word_is(p, n, "discard");
	dealloc = n == 10 && word_is(p, n, "deallocate");
	if (!discard && !dealloc)
		return PREP_SQL_OTHER;
	p += n;
	if (!skip_blank(&p, end))
		return PREP_SQL_UNSURE;
	n = word_len(p, end);
	if (p + n == end)
		return PREP_SQL_UNSURE;
	if (dealloc && n == 7 && word_is(p, n, "prepare")) {
		p += n;
		if (!skip_blank(&p, end))
			return PREP_SQL_UNSURE;
		n = word_len(p, end);
		if (p + n == end)
			return PREP_SQL_UNSURE;
	}
	if (n == 3 && word_is(p, n, "all"))
		return PREP_SQL_RESET;
	return dealloc ? PREP_SQL_PREPARE : PREP_SQL_OTHER;
}

enum prep_sql prep_tag_classify(const uint8_t *tag, uint32_t len)
{
	if (len >= 8 && memcmp(tag, "PREPARE", 8) == 0)
		return PREP_SQL_PREPARE;
	if (len >= 11 && memcmp(tag, "DEALLOCATE", 11) == 0)
		return PREP_SQL_DEALLOC;
	if ((len >= 15 && memcmp(tag, "DEALLOCATE ALL", 15) == 0) ||
			(len >= 12 && memcmp(tag, "DISCARD ALL", 12) == 0))
		return PREP_SQL_RESET;
	return PREP_SQL_OTHER;
}

/* Blanks and comments up to the end of the text: true when nothing else
 * is left (an unterminated comment is something else). */
static bool only_blank(const uint8_t *p, const uint8_t *end)
{
	return !skip_blank(&p, end) && p == end;
}

static bool ident_start(uint8_t c)
{
	return ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == '_';
}

static bool ident_char(uint8_t c)
{
	return ident_start(c) || (c >= '0' && c <= '9') || c == '$';
}

bool prep_sql_dealloc_name(const uint8_t *q, uint32_t len, char out[PREP_NAME_MAX + 1])
{
	const uint8_t *p = q, *end = memchr(q, 0, len);
	uint32_t n, o = 0;
	bool quoted;

	if (end == NULL)
		end = q + len;
	if (!skip_blank(&p, end) || (n = word_len(p, end)) != 10 || !word_is(p, n, "deallocate"))
		return false;
	p += n;
	if (!skip_blank(&p, end))
		return false;
	n = word_len(p, end);
	if (n == 7 && word_is(p, n, "prepare")) {
		p += n;
		if (!skip_blank(&p, end))
			return false; /* "DEALLOCATE prepare" alone: left to the refusal */
	}
	quoted = *p == '"';
	if (quoted) {
		for (p++;; p++) {
			if (p == end)
				return false;
			if (*p == '"' && (end - p < 2 || p[1] != '"'))
				break;
			if (*p == '"')
				p++; /* "" is one " */
			if (o == PREP_NAME_MAX)
				return false;
			out[o++] = (char)*p;
		}
		p++;
	} else {
		if (!ident_start(*p))
			return false;
		for (; p < end && ident_char(*p); p++) {
			if (o == PREP_NAME_MAX)
				return false;
			out[o++] = (char)(*p >= 'A' && *p <= 'Z' ? *p | 0x20 : *p);
		}
		if (p < end && *p >= 0x80)
			return false; /* folded by the server's encoding: not ours to guess */
	}
	out[o] = 0;
	if (o == 0 || (!quoted && strcmp(out, "all") == 0))
		return false;
	if (skip_blank(&p, end) && *p == ';')
		p++;
	return only_blank(p, end);
}
