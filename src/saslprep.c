/* saslprep.c -- SASLprep (RFC 4013) for passwords, exact up to U+00FF. */
#include "saslprep.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Decode one strictly valid UTF-8 sequence at <p>; returns its length or 0. */
static size_t utf8_next(const unsigned char *p, const unsigned char *end, uint32_t *cp)
{
	size_t n, i;
	unsigned char lo = 0x80, hi = 0xbf;
	uint32_t c = p[0];

	if (c < 0x80) {
		*cp = c;
		return 1;
	} else if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		c &= 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f; /* no surrogates */
		c &= 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
		c &= 0x07;
	} else {
		return 0;
	}
	if ((size_t)(end - p) < n)
		return 0;
	for (i = 1; i < n; i++) {
		unsigned char b = p[i];

		if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xbf))
			return 0;
		c = c << 6 | (b & 0x3f);
	}
	*cp = c;
	return n;
}

/* NFKC of the Latin-1 compatibility characters (Unicode data); every other
 * code point <= U+00FF is NFKC-stable.  None of the results can compose
 * with a neighbour: marks follow a space, and Latin-1 has no marks. */
static const struct {
	uint8_t cp;
	const char *utf8;
} latin1_nfkc[] = {
		/* clang-format off */
	{0xa8, " \xcc\x88"},        /* DIAERESIS -> SPACE + U+0308 */
	{0xaa, "a"},                /* FEMININE ORDINAL INDICATOR */
	{0xaf, " \xcc\x84"},        /* MACRON -> SPACE + U+0304 */
	{0xb2, "2"},                /* SUPERSCRIPT TWO */
	{0xb3, "3"},                /* SUPERSCRIPT THREE */
	{0xb4, " \xcc\x81"},        /* ACUTE ACCENT -> SPACE + U+0301 */
	{0xb5, "\xce\xbc"},         /* MICRO SIGN -> U+03BC */
	{0xb8, " \xcc\xa7"},        /* CEDILLA -> SPACE + U+0327 */
	{0xb9, "1"},                /* SUPERSCRIPT ONE */
	{0xba, "o"},                /* MASCULINE ORDINAL INDICATOR */
	{0xbc, "1\xe2\x81\x84" "4"}, /* 1/4 -> 1 U+2044 4 */
	{0xbd, "1\xe2\x81\x84" "2"}, /* 1/2 */
	{0xbe, "3\xe2\x81\x84" "4"}, /* 3/4 */
		/* clang-format on */
};

static const char *latin1_nfkc_of(uint32_t cp)
{
	size_t i;

	for (i = 0; i < sizeof(latin1_nfkc) / sizeof(latin1_nfkc[0]); i++)
		if (latin1_nfkc[i].cp == cp)
			return latin1_nfkc[i].utf8;
	return NULL;
}

/* <out> = the raw bytes of <pw>, and <rc> as the verdict. */
static int prep_raw(const char *pw, size_t len, char *out, size_t cap, size_t *out_len, int rc)
{
	if (len >= cap)
		return -ENOSPC;
	memcpy(out, pw, len);
	out[len] = '\0';
	*out_len = len;
	return rc;
}

/* Append <n> bytes of <s> to <out> holding *<len>; false when <cap> would
 * leave no room for the NUL. */
static bool put(char *out, size_t cap, size_t *len, const char *s, size_t n)
{
	if (n >= cap - *len)
		return false;
	memcpy(out + *len, s, n);
	*len += n;
	out[*len] = '\0';
	return true;
}

int saslprep_password(const char *password, char *out, size_t cap, size_t *out_len)
{
	const unsigned char *p, *end;
	bool ascii = true, wide = false, prohibited = false, fits = true;
	size_t len, kept = 0, n, o = 0;
	uint32_t cp;

	if (!password || !out || !out_len)
		return -EINVAL;
	len = strnlen(password, SASLPREP_PASSWORD_MAX + 1);
	if (len > SASLPREP_PASSWORD_MAX)
		return -E2BIG;
	end = (const unsigned char *)password + len;
	for (p = (const unsigned char *)password; p < end; p++)
		if (*p >= 0x80)
			ascii = false;
	if (ascii) /* PostgreSQL passes pure ASCII through untouched */
		return prep_raw(password, len, out, cap, out_len, SASLPREP_OK);

	/* Pass 1: validate, and classify the mapped string (RFC 4013 2.1, 2.3). */
	for (p = (const unsigned char *)password; p < end; p += n) {
		n = utf8_next(p, end, &cp);
		if (n == 0)
			return prep_raw(password, len, out, cap, out_len, SASLPREP_RAW);
		if (cp > 0xff)
			wide = true;
		else if (cp == 0xad) /* SOFT HYPHEN: mapped to nothing */
			continue;
		else if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) /* C.2.1, C.2.2 */
			prohibited = true;
		kept++;
	}
	if (wide)
		return prep_raw(password, len, out, cap, out_len, SASLPREP_UNSUPPORTED);
	if (prohibited || kept == 0)
		return prep_raw(password, len, out, cap, out_len, SASLPREP_RAW);

	/* Pass 2: map, then normalize (NFKC). */
	if (cap == 0)
		return -ENOSPC;
	out[0] = '\0';
	for (p = (const unsigned char *)password; fits && p < end; p += n) {
		const char *nf;

		n = utf8_next(p, end, &cp);
		if (cp == 0xad)
			continue;
		if (cp == 0xa0) /* C.1.2 non-ASCII space -> SPACE */
			fits = put(out, cap, &o, " ", 1);
		else if ((nf = latin1_nfkc_of(cp)) != NULL)
			fits = put(out, cap, &o, nf, strlen(nf));
		else
			fits = put(out, cap, &o, (const char *)p, n);
	}
	if (!fits)
		return -ENOSPC;
	*out_len = o;
	return SASLPREP_OK;
}
