/* vars.c -- tracked session parameters: interned strings, hash-consed sets.
 *
 * Each connection points at one immutable struct varset.  Sets with the same
 * values are the same object, so a client and a server agree exactly when
 * their pointers are equal: the hot path compares one word.  Strings and sets
 * are reference counted; both live in slab memory of the proxy's arena.
 */
#include "proxy.h"

#include <string.h>

#include "log.h"
#include "slab.h"
#include "vars.h"

static const char *const always_tracked[] = {
	"client_encoding", "DateStyle", "TimeZone", "standard_conforming_strings",
	"application_name",
};

static uint32_t hash_bytes(const void *data, size_t n, uint32_t h)
{
	const uint8_t *p = data;

	while (n--)
		h = (h ^ *p++) * 16777619u; /* FNV-1a */
	return h;
}

static bool valid_name(const char *s)
{
	if (*s == 0 || strlen(s) >= NAME_MAX_LEN)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_' ||
				    (*s >= '0' && *s <= '9') || *s == '.'))
			return false;
	return true;
}

static void add_name(struct vartab *t, const char *name)
{
	int i;

	if (t->n >= VAR_MAX || !valid_name(name))
		return;
	for (i = 0; i < t->n; i++)
		if (strcasecmp(t->names[i], name) == 0)
			return;
	strcpy(t->names[t->n++], name);
}

void vars_init(struct proxy *p)
{
	struct vartab *t = &p->vars;
	const struct config_strlist *extra = &p->cfg->s.track_extra_parameters;
	size_t i;
	int j;

	memset(t, 0, sizeof(*t));
	for (i = 0; i < sizeof(always_tracked) / sizeof(always_tracked[0]); i++)
		add_name(t, always_tracked[i]);
	for (j = 0; j < extra->n; j++)
		add_name(t, extra->v[j]);
	t->empty = slab_alloc(p->varset_cache);
	if (t->empty) {
		memset(t->empty, 0, sizeof(*t->empty));
		t->empty->refcnt = 1;
		t->empty->hash = hash_bytes(t->empty->v, sizeof(t->empty->v), 2166136261u);
		t->sets[t->empty->hash % VAR_HASH_SIZE] = t->empty;
	}
}

int vars_index(const struct vartab *t, const char *name)
{
	int i;

	for (i = 0; i < t->n; i++)
		if (strcasecmp(t->names[i], name) == 0)
			return i;
	return -1;
}

static struct istr *istr_get(struct proxy *p, const char *s)
{
	struct vartab *t = &p->vars;
	size_t len = strlen(s), cap;
	uint32_t h = hash_bytes(s, len, 2166136261u);
	struct istr **slot = &t->strs[h % VAR_HASH_SIZE], *is;

	for (is = *slot; is; is = is->hnext) {
		if (is->hash == h && is->len == len && memcmp(is->s, s, len) == 0) {
			is->refcnt++;
			return is;
		}
	}
	is = slab_buf_alloc(p->arena, sizeof(*is) + len + 1, &cap);
	if (is == NULL)
		return NULL;
	is->refcnt = 1;
	is->len = (uint32_t)len;
	is->hash = h;
	is->cap = (uint32_t)cap;
	memcpy(is->s, s, len + 1);
	is->hnext = *slot;
	*slot = is;
	return is;
}

static void istr_put(struct proxy *p, struct istr *is)
{
	struct istr **pp;

	if (is == NULL || --is->refcnt > 0)
		return;
	for (pp = &p->vars.strs[is->hash % VAR_HASH_SIZE]; *pp; pp = &(*pp)->hnext) {
		if (*pp == is) {
			*pp = is->hnext;
			break;
		}
	}
	slab_buf_free(p->arena, is, is->cap);
}

struct varset *vars_get(struct varset *vs)
{
	if (vs)
		vs->refcnt++;
	return vs;
}

void vars_put(struct proxy *p, struct varset *vs)
{
	struct varset **pp;
	int i;

	if (vs == NULL || --vs->refcnt > 0)
		return;
	for (pp = &p->vars.sets[vs->hash % VAR_HASH_SIZE]; *pp; pp = &(*pp)->hnext) {
		if (*pp == vs) {
			*pp = vs->hnext;
			break;
		}
	}
	for (i = 0; i < VAR_MAX; i++)
		istr_put(p, vs->v[i]);
	slab_free(p->varset_cache, vs);
}

struct varset *vars_set(struct proxy *p, struct varset *vs, int idx, const char *value)
{
	struct istr *v[VAR_MAX];
	struct varset **slot, *n;
	uint32_t h;
	int i;

	memcpy(v, vs->v, sizeof(v));
	v[idx] = istr_get(p, value);
	if (v[idx] == NULL)
		return vars_get(vs);
	h = hash_bytes(v, sizeof(v), 2166136261u);
	slot = &p->vars.sets[h % VAR_HASH_SIZE];
	for (n = *slot; n; n = n->hnext) {
		if (n->hash == h && memcmp(n->v, v, sizeof(v)) == 0) {
			istr_put(p, v[idx]);
			return vars_get(n);
		}
	}
	n = slab_alloc(p->varset_cache);
	if (n == NULL) {
		istr_put(p, v[idx]);
		return vars_get(vs);
	}
	n->refcnt = 1;
	n->hash = h;
	memcpy(n->v, v, sizeof(v));
	for (i = 0; i < VAR_MAX; i++)
		if (i != idx && v[i])
			v[i]->refcnt++;
	n->hnext = *slot;
	*slot = n;
	return n;
}

/* Append <c> to <buf> if it fits; always count it. */
static inline void put(char *buf, size_t cap, size_t *len, char c)
{
	if (*len + 1 < cap)
		buf[*len] = c;
	(*len)++;
}

size_t vars_sync_sql(const struct vartab *t, const struct varset *from, const struct varset *to,
		char *buf, size_t cap)
{
	size_t len = 0;
	int i;

	if (from == to)
		return 0;
	for (i = 0; i < t->n; i++) {
		const struct istr *v = to->v[i];
		const char *q;
		size_t k;

		if (v == from->v[i] || v == NULL)
			continue;
		/* an escape-string literal means the same whatever the server's
		 * standard_conforming_strings: backslash and quote are doubled */
		for (q = "SET "; *q; q++)
			put(buf, cap, &len, *q);
		for (q = t->names[i]; *q; q++)
			put(buf, cap, &len, *q);
		for (q = " = E'"; *q; q++)
			put(buf, cap, &len, *q);
		for (k = 0; k < v->len; k++) {
			if (v->s[k] == '\'' || v->s[k] == '\\')
				put(buf, cap, &len, v->s[k]);
			put(buf, cap, &len, v->s[k]);
		}
		put(buf, cap, &len, '\'');
		put(buf, cap, &len, ';');
	}
	if (cap > 0)
		buf[len < cap ? len : cap - 1] = 0;
	return len;
}

void vars_destroy(struct proxy *p)
{
	vars_put(p, p->vars.empty);
	p->vars.empty = NULL;
}
