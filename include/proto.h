/* proto.h -- PostgreSQL v3 wire format: bounded readers and writers.
 *
 * Pure functions over borrowed (ptr, len) views and caller-supplied output
 * buffers.  Nothing here allocates, owns a socket or knows about pools.
 * Every length read off the wire is checked against the bytes available
 * before use: a reader that runs past its end sets <bad> and returns zeros.
 */
#ifndef PGSLAB_PROTO_H
#define PGSLAB_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_HDR_LEN 5              /* type byte + int32 length */
#define PROTO_V3 196608u             /* 3.0 */
#define PROTO_CANCEL_CODE 80877102u
#define PROTO_SSL_CODE 80877103u
#define PROTO_GSSENC_CODE 80877104u
#define PROTO_STARTUP_MAX 10000u     /* PostgreSQL's own limit for startup packets */

/* Authentication request codes ('R' messages). */
#define PROTO_AUTH_OK 0u
#define PROTO_AUTH_CLEARTEXT 3u
#define PROTO_AUTH_MD5 5u
#define PROTO_AUTH_SASL 10u
#define PROTO_AUTH_SASL_CONTINUE 11u
#define PROTO_AUTH_SASL_FINAL 12u

/* SQLSTATEs pgslab sends itself. */
#define SQLSTATE_PROTOCOL_VIOLATION "08P01"
#define SQLSTATE_CONNECTION_FAILURE "08006"
#define SQLSTATE_INVALID_PASSWORD "28P01"
#define SQLSTATE_INVALID_AUTH_SPEC "28000"
#define SQLSTATE_INVALID_CATALOG "3D000"
#define SQLSTATE_TOO_MANY_CONNECTIONS "53300"
#define SQLSTATE_QUERY_CANCELED "57014"
#define SQLSTATE_ADMIN_SHUTDOWN "57P01"
#define SQLSTATE_CANNOT_CONNECT_NOW "57P03"
#define SQLSTATE_FEATURE_NOT_SUPPORTED "0A000"
#define SQLSTATE_INSUFFICIENT_PRIVILEGE "42501"
#define SQLSTATE_SYNTAX_ERROR "42601"
#define SQLSTATE_INVALID_PARAMETER_VALUE "22023"
#define SQLSTATE_IDLE_IN_TXN_TIMEOUT "25P03"
#define SQLSTATE_IDLE_SESSION_TIMEOUT "57P05"
#define SQLSTATE_INTERNAL "XX000"
#define SQLSTATE_PROGRAM_LIMIT "54000"

/* ---- reading ---------------------------------------------------------- */

struct proto_reader {
	const uint8_t *p, *end;
	bool bad; /* set once a read ran past the end or a string lacked its NUL */
};

static inline void proto_reader_init(struct proto_reader *r, const void *data, size_t len)
{
	r->p = (const uint8_t *)data;
	r->end = r->p + len;
	r->bad = false;
}

static inline size_t proto_reader_left(const struct proto_reader *r)
{
	return (size_t)(r->end - r->p);
}

uint8_t proto_get_u8(struct proto_reader *r);
uint16_t proto_get_u16(struct proto_reader *r);
uint32_t proto_get_u32(struct proto_reader *r);
/* A NUL-terminated string inside the message; NULL (and <bad>) if none. */
const char *proto_get_str(struct proto_reader *r);
/* <n> raw bytes; NULL (and <bad>) when fewer remain. */
const uint8_t *proto_get_bytes(struct proto_reader *r, size_t n);

static inline uint32_t proto_peek_u32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* A startup-phase packet: StartupMessage, CancelRequest, SSLRequest or
 * GSSENCRequest.  Parameters stay in the packet; iterate them with
 * proto_startup_next(). */
struct proto_startup {
	uint32_t code;            /* protocol version or special request code */
	uint32_t cancel_pid;      /* CancelRequest */
	uint32_t cancel_key;
	const uint8_t *params;    /* StartupMessage: name\0value\0...\0 */
	size_t params_len;
};

/* Parse a whole startup packet <pkt> of <len> bytes (length word included).
 * Returns 0, or -EPROTO with a reason in *<why>. */
int proto_parse_startup(const uint8_t *pkt, size_t len, struct proto_startup *out,
		const char **why);
/* Next (name, value) pair; false at the end.  <pos> starts at 0. */
bool proto_startup_next(const struct proto_startup *st, size_t *pos, const char **name,
		const char **value);

/* Field <code> ('C' SQLSTATE, 'M' message, 'S' severity...) of an
 * ErrorResponse/NoticeResponse body; NULL when absent or malformed. */
const char *proto_error_field(const uint8_t *body, size_t len, char code);

/* ---- writing ---------------------------------------------------------- */

/* A message writer over a caller's buffer.  Running out of room sets
 * <overflow> and further writes are ignored; check pkt_ok() at the end. */
struct pkt {
	uint8_t *buf;
	size_t len, cap;
	size_t start;   /* offset of the message being built */
	bool overflow;
};

void pkt_init(struct pkt *p, void *buf, size_t cap);
/* Start a message; <type> 0 means a startup-style packet with no type byte. */
void pkt_begin(struct pkt *p, char type);
void pkt_end(struct pkt *p);
void pkt_u8(struct pkt *p, uint8_t v);
void pkt_u16(struct pkt *p, uint16_t v);
void pkt_u32(struct pkt *p, uint32_t v);
void pkt_bytes(struct pkt *p, const void *data, size_t n);
void pkt_str(struct pkt *p, const char *s); /* with its NUL */

static inline bool pkt_ok(const struct pkt *p)
{
	return !p->overflow;
}

void proto_write_error(struct pkt *p, bool fatal, const char *sqlstate, const char *fmt, ...)
		__attribute__((format(printf, 4, 5)));
void proto_write_notice(struct pkt *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void proto_write_auth(struct pkt *p, uint32_t code, const void *data, size_t len);
void proto_write_param_status(struct pkt *p, const char *name, const char *value);
void proto_write_backend_key(struct pkt *p, uint32_t pid, uint32_t key);
void proto_write_ready(struct pkt *p, char status);
void proto_write_command_complete(struct pkt *p, const char *tag);
void proto_write_query(struct pkt *p, const char *sql);
void proto_write_cancel(struct pkt *p, uint32_t pid, uint32_t key);
void proto_write_negotiate_version(struct pkt *p, uint32_t newest_minor, const char *const *opts,
		int nopts);

/* Row description of <n> columns; <types> are PostgreSQL type oids
 * (25 text, 20 int8, 23 int4, 701 float8, 16 bool). */
void proto_write_row_desc(struct pkt *p, int n, const char *const *names, const uint32_t *types);
/* A DataRow; NULL values are sent as SQL NULL. */
void proto_write_data_row(struct pkt *p, int n, const char *const *values);

#define PROTO_OID_BOOL 16u
#define PROTO_OID_INT8 20u
#define PROTO_OID_INT4 23u
#define PROTO_OID_TEXT 25u
#define PROTO_OID_FLOAT8 701u
#define PROTO_OID_TIMESTAMPTZ 1184u

#endif
