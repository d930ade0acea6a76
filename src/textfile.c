/* textfile.c -- read a whole configuration file into memory. */
#include "textfile.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "sysalloc.h"

char *textfile_read(const char *path, int *err)
{
	FILE *f = fopen(path, "r");
	size_t len = 0, cap = 4096, n;
	char *buf, *nb;

	if (f == NULL) {
		*err = errno;
		return NULL;
	}
	buf = sys_malloc(cap);
	if (buf == NULL)
		goto oom;
	for (;;) {
		if (cap - len < 2) {
			nb = sys_realloc(buf, cap * 2);
			if (nb == NULL)
				goto oom;
			buf = nb;
			cap *= 2;
		}
		errno = 0;
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		*err = errno ? errno : EIO;
		sys_free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	buf[len] = '\0';
	if (strlen(buf) != len) {
		*err = EILSEQ; /* NUL byte: not a text file */
		sys_free(buf);
		return NULL;
	}
	return buf;
oom:
	*err = ENOMEM;
	sys_free(buf);
	fclose(f);
	return NULL;
}
