/* fuzz_proto.c -- the bounded readers and writers of proto.c over hostile bytes.
 *
 * Input: one control byte, then a message stream as a backend or client
 * would send it (type, int32 length, body; the length is trusted no more
 * than pgslab trusts it).  For each framed message:
 *   - ErrorResponse/NoticeResponse bodies go through proto_error_field()
 *     for every field code pgslab asks for (the result must lie inside the
 *     body and be NUL-terminated there);
 *   - the body is walked by a reader driven by the body's own bytes (u8,
 *     u16, u32, str, bytes(n)), checking that a reader never moves past its
 *     end and that <bad> is sticky;
 *   - a ParameterStatus-like name/value is re-encoded with the writers into
 *     a buffer of a size chosen by the control byte: the result is either
 *     complete and well-framed, or marked overflow with nothing written past
 *     the capacity.
 */
#include "fuzz.h"
#include "proto.h"

static void walk(const uint8_t *body, size_t len)
{
	struct proto_reader r;
	size_t i;

	proto_reader_init(&r, body, len);
	for (i = 0; i < len && !r.bad; i++) {
		const uint8_t *before = r.p;
		uint8_t op = body[i] & 7;
		const char *s;
		const uint8_t *b;
		size_t n;

		switch (op) {
		case 0:
			proto_get_u8(&r);
			break;
		case 1:
			proto_get_u16(&r);
			break;
		case 2:
			proto_get_u32(&r);
			break;
		case 3:
		case 4:
			s = proto_get_str(&r);
			if (s)
				FUZZ_ASSERT(fuzz_str_within(s, body, len));
			break;
		default:
			n = (size_t)(body[i] >> 3);
			b = proto_get_bytes(&r, n);
			if (b)
				FUZZ_ASSERT(b >= body && b + n <= body + len);
			break;
		}
		FUZZ_ASSERT(r.p >= before && r.p <= r.end);
		if (r.bad)
			FUZZ_ASSERT(r.p == before); /* a failed read moves nothing */
	}
	if (r.bad) {
		const uint8_t *p = r.p;

		FUZZ_ASSERT(proto_get_u8(&r) == 0 && proto_get_u32(&r) == 0);
		FUZZ_ASSERT(proto_get_str(&r) == NULL && proto_get_bytes(&r, 0) == NULL);
		FUZZ_ASSERT(r.p == p && r.bad);
	}
}

static void error_fields(const uint8_t *body, size_t len)
{
	static const char codes[] = "SVCMDHPpqWstcdnFLR";
	size_t i;

	for (i = 0; i < sizeof(codes) - 1; i++) {
		const char *f = proto_error_field(body, len, codes[i]);

		if (f)
			FUZZ_ASSERT(fuzz_str_within(f, body, len));
	}
}

static void rewrite(const uint8_t *body, size_t len, size_t cap)
{
	struct proto_reader r;
	const char *name, *value;
	uint8_t *buf = malloc(cap ? cap : 1);
	struct pkt k;

	if (buf == NULL)
		abort();
	proto_reader_init(&r, body, len);
	name = proto_get_str(&r);
	value = proto_get_str(&r);
	pkt_init(&k, buf, cap);
	if (name && value) {
		proto_write_param_status(&k, name, value);
		proto_write_error(&k, true, SQLSTATE_PROTOCOL_VIOLATION, "bad %s: %s", name, value);
		{
			const char *vals[2] = { name, NULL };
			const char *names[2] = { value, name };
			const uint32_t types[2] = { PROTO_OID_TEXT, PROTO_OID_INT8 };

			proto_write_row_desc(&k, 2, names, types);
			proto_write_data_row(&k, 2, vals);
		}
	}
	proto_write_ready(&k, 'I');
	FUZZ_ASSERT(k.len <= cap);
	if (pkt_ok(&k)) {
		/* re-frame what was written: whole messages back to back */
		size_t pos = 0;

		while (pos < k.len) {
			uint32_t l;

			FUZZ_ASSERT(k.len - pos >= PROTO_HDR_LEN);
			l = proto_peek_u32(buf + pos + 1);
			FUZZ_ASSERT(l >= 4 && l <= k.len - pos - 1);
			pos += 1 + (size_t)l;
		}
		FUZZ_ASSERT(pos == k.len);
	}
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_reader r;
	size_t cap;

	if (size < 1)
		return 0;
	cap = (size_t)data[0] * 8;
	proto_reader_init(&r, data + 1, size - 1);
	while (proto_reader_left(&r) >= PROTO_HDR_LEN) {
		uint8_t type = proto_get_u8(&r);
		uint32_t len = proto_get_u32(&r);
		const uint8_t *body;

		if (len < 4)
			break;
		body = proto_get_bytes(&r, len - 4);
		if (body == NULL) {
			FUZZ_ASSERT(r.bad);
			break;
		}
		if (type == 'E' || type == 'N')
			error_fields(body, len - 4);
		walk(body, len - 4);
		rewrite(body, len - 4, cap);
	}
	return 0;
}
