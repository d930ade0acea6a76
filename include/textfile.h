/* textfile.h -- read a whole text file (config, auth_file) into memory. */
#ifndef PGSLAB_TEXTFILE_H
#define PGSLAB_TEXTFILE_H

/* <path>'s contents as a NUL-terminated string the caller frees with
 * sys_free(), or NULL with *<err> set to an errno value: the open/read
 * error, ENOMEM, or EILSEQ when the file holds a NUL byte (not text). */
char *textfile_read(const char *path, int *err);

#endif
