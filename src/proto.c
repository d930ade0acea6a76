/* proto.c -- PostgreSQL v3 wire format: bounded readers and writers. */
#include "proto.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- reading ---------------------------------------------------------- */

static bool need(struct proto_reader *r, size_t n)
{
	if (r->bad || (size_t)(r->end - r->p) < n) {
		r->bad = true;
		return false;
	}
	return true;
}

uint8_t proto_get_u8(struct proto_reader *r)
{
	if (!need(r, 1))
		return 0;
	return *r->p++;
}

uint16_t proto_get_u16(struct proto_reader *r)
{
	uint16_t v;

	if (!need(r, 2))
		return 0;
	v = (uint16_t)((r->p[0] << 8) | r->p[1]);
	r->p += 2;
	return v;
}

uint32_t proto_get_u32(struct proto_reader *r)
{
	uint32_t v;

	if (!need(r, 4))
		return 0;
	v = proto_peek_u32(r->p);
	r->p += 4;
	return v;
}

const char *proto_get_str(struct proto_reader *r)
{
	const uint8_t *nul;
	const char *s;

	if (r->bad)
		return NULL;
	nul = memchr(r->p, 0, (size_t)(r->end - r->p));
	if (nul == NULL) {
		r->bad = true;
		return NULL;
	}
	s = (const char *)r->p;
	r->p = nul + 1;
	return s;
}

const uint8_t *proto_get_bytes(struct proto_reader *r, size_t n)
{
	const uint8_t *b;

	if (!need(r, n))
		return NULL;
	b = r->p;
	r->p += n;
	return b;
}

int proto_parse_startup(const uint8_t *pkt, size_t len, struct proto_startup *out,
		const char **why)
{
	struct proto_reader r;
	uint32_t plen;

	memset(out, 0, sizeof(*out));
	proto_reader_init(&r, pkt, len);
	plen = proto_get_u32(&r);
	out->code = proto_get_u32(&r);
	if (r.bad || plen != len || plen < 8) {
		*why = "invalid length of startup packet";
		return -EPROTO;
	}
	switch (out->code) {
	case PROTO_SSL_CODE:
	case PROTO_GSSENC_CODE:
		if (plen != 8) {
			*why = "invalid length of encryption request packet";
			return -EPROTO;
		}
		return 0;
	case PROTO_CANCEL_CODE:
		out->cancel_pid = proto_get_u32(&r);
		out->cancel_key = proto_get_u32(&r);
		if (r.bad || plen != 16) {
			*why = "invalid length of cancel request packet";
			return -EPROTO;
		}
		return 0;
	}
	if ((out->code >> 16) != 3) {
		*why = "unsupported frontend protocol";
		return -EPROTO;
	}
	out->params = r.p;
	out->params_len = proto_reader_left(&r);
	/* name\0value\0 ... \0: must end in a lone NUL and pair up. */
	if (out->params_len == 0 || out->params[out->params_len - 1] != 0) {
		*why = "invalid startup packet layout: expected terminator as last byte";
		return -EPROTO;
	}
	{
		size_t pos = 0;
		const char *n, *v;

		while (proto_startup_next(out, &pos, &n, &v))
			;
		if (pos != out->params_len) {
			*why = "invalid startup packet layout: parameter without a value";
			return -EPROTO;
		}
	}
	return 0;
}

bool proto_startup_next(const struct proto_startup *st, size_t *pos, const char **name,
		const char **value)
{
	const uint8_t *p = st->params + *pos, *end = st->params + st->params_len;
	const uint8_t *nul;

	if (p >= end || *p == 0) {
		if (p < end)
			*pos = st->params_len; /* consumed the terminator */
		return false;
	}
	nul = memchr(p, 0, (size_t)(end - p));
	if (nul == NULL || nul + 1 >= end)
		return false;
	*name = (const char *)p;
	p = nul + 1;
	nul = memchr(p, 0, (size_t)(end - p));
	if (nul == NULL)
		return false;
	*value = (const char *)p;
	*pos = (size_t)(nul + 1 - st->params);
	return true;
}

const char *proto_error_field(const uint8_t *body, size_t len, char code)
{
	struct proto_reader r;

	proto_reader_init(&r, body, len);
	for (;;) {
		uint8_t f = proto_get_u8(&r);
		const char *s;

		if (r.bad || f == 0)
			return NULL;
		s = proto_get_str(&r);
		if (s == NULL)
			return NULL;
		if (f == (uint8_t)code)
			return s;
	}
}

/* ---- writing ---------------------------------------------------------- */

void pkt_init(struct pkt *p, void *buf, size_t cap)
{
	p->buf = buf;
	p->len = 0;
	p->cap = cap;
	p->start = 0;
	p->overflow = false;
}

static bool room(struct pkt *p, size_t n)
{
	if (p->overflow || p->cap - p->len < n) {
		p->overflow = true;
		return false;
	}
	return true;
}

void pkt_u8(struct pkt *p, uint8_t v)
{
	if (room(p, 1))
		p->buf[p->len++] = v;
}

void pkt_u16(struct pkt *p, uint16_t v)
{
	if (!room(p, 2))
		return;
	p->buf[p->len++] = (uint8_t)(v >> 8);
	p->buf[p->len++] = (uint8_t)v;
}

void pkt_u32(struct pkt *p, uint32_t v)
{
	if (!room(p, 4))
		return;
	p->buf[p->len++] = (uint8_t)(v >> 24);
	p->buf[p->len++] = (uint8_t)(v >> 16);
	p->buf[p->len++] = (uint8_t)(v >> 8);
	p->buf[p->len++] = (uint8_t)v;
}

void pkt_bytes(struct pkt *p, const void *data, size_t n)
{
	if (n && room(p, n)) {
		memcpy(p->buf + p->len, data, n);
		p->len += n;
	}
}

void pkt_str(struct pkt *p, const char *s)
{
	pkt_bytes(p, s, strlen(s) + 1);
}

void pkt_begin(struct pkt *p, char type)
{
	if (type)
		pkt_u8(p, (uint8_t)type);
	p->start = p->len;
	pkt_u32(p, 0); /* patched by pkt_end */
}

void pkt_end(struct pkt *p)
{
	uint32_t n;

	if (p->overflow)
		return;
	n = (uint32_t)(p->len - p->start);
	p->buf[p->start] = (uint8_t)(n >> 24);
	p->buf[p->start + 1] = (uint8_t)(n >> 16);
	p->buf[p->start + 2] = (uint8_t)(n >> 8);
	p->buf[p->start + 3] = (uint8_t)n;
}

static void write_fields(struct pkt *p, char type, const char *sev, const char *sqlstate,
		const char *fmt, va_list ap)
{
	char msg[512];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	pkt_begin(p, type);
	pkt_u8(p, 'S');
	pkt_str(p, sev);
	pkt_u8(p, 'V');
	pkt_str(p, sev);
	pkt_u8(p, 'C');
	pkt_str(p, sqlstate);
	pkt_u8(p, 'M');
	pkt_str(p, msg);
	pkt_u8(p, 0);
	pkt_end(p);
}

void proto_write_error(struct pkt *p, bool fatal, const char *sqlstate, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	write_fields(p, 'E', fatal ? "FATAL" : "ERROR", sqlstate, fmt, ap);
	va_end(ap);
}

void proto_write_notice(struct pkt *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	write_fields(p, 'N', "NOTICE", "00000", fmt, ap);
	va_end(ap);
}

void proto_write_auth(struct pkt *p, uint32_t code, const void *data, size_t len)
{
	pkt_begin(p, 'R');
	pkt_u32(p, code);
	pkt_bytes(p, data, len);
	pkt_end(p);
}

void proto_write_param_status(struct pkt *p, const char *name, const char *value)
{
	pkt_begin(p, 'S');
	pkt_str(p, name);
	pkt_str(p, value);
	pkt_end(p);
}

void proto_write_backend_key(struct pkt *p, uint32_t pid, uint32_t key)
{
	pkt_begin(p, 'K');
	pkt_u32(p, pid);
	pkt_u32(p, key);
	pkt_end(p);
}

void proto_write_ready(struct pkt *p, char status)
{
	pkt_begin(p, 'Z');
	pkt_u8(p, (uint8_t)status);
	pkt_end(p);
}

void proto_write_command_complete(struct pkt *p, const char *tag)
{
	pkt_begin(p, 'C');
	pkt_str(p, tag);
	pkt_end(p);
}

void proto_write_query(struct pkt *p, const char *sql)
{
	pkt_begin(p, 'Q');
	pkt_str(p, sql);
	pkt_end(p);
}

void proto_write_cancel(struct pkt *p, uint32_t pid, uint32_t key)
{
	pkt_begin(p, 0);
	pkt_u32(p, PROTO_CANCEL_CODE);
	pkt_u32(p, pid);
	pkt_u32(p, key);
	pkt_end(p);
}

void proto_write_negotiate_version(struct pkt *p, uint32_t newest_minor, const char *const *opts,
		int nopts)
{
	int i;

	pkt_begin(p, 'v');
	pkt_u32(p, newest_minor);
	pkt_u32(p, (uint32_t)nopts);
	for (i = 0; i < nopts; i++)
		pkt_str(p, opts[i]);
	pkt_end(p);
}

/* pg_type.typlen of the types the console sends; -1 for varlena */
static uint16_t type_len(uint32_t oid)
{
	switch (oid) {
	case PROTO_OID_BOOL:
		return 1;
	case PROTO_OID_INT4:
		return 4;
	case PROTO_OID_INT8:
	case PROTO_OID_FLOAT8:
	case PROTO_OID_TIMESTAMPTZ:
		return 8;
	default:
		return 0xffff;
	}
}

void proto_write_row_desc(struct pkt *p, int n, const char *const *names, const uint32_t *types)
{
	int i;

	pkt_begin(p, 'T');
	pkt_u16(p, (uint16_t)n);
	for (i = 0; i < n; i++) {
		pkt_str(p, names[i]);
		pkt_u32(p, 0);  /* table oid */
		pkt_u16(p, 0);  /* column number */
		pkt_u32(p, types[i]);
		pkt_u16(p, type_len(types[i]));
		pkt_u32(p, 0xffffffffu); /* typmod -1 */
		pkt_u16(p, 0);  /* text format */
	}
	pkt_end(p);
}

void proto_write_data_row(struct pkt *p, int n, const char *const *values)
{
	int i;

	pkt_begin(p, 'D');
	pkt_u16(p, (uint16_t)n);
	for (i = 0; i < n; i++) {
		if (values[i] == NULL) {
			pkt_u32(p, 0xffffffffu);
		} else {
			size_t l = strlen(values[i]);

			pkt_u32(p, (uint32_t)l);
			pkt_bytes(p, values[i], l);
		}
	}
	pkt_end(p);
}
