/*
 * opstream library-internal secret files: the first line of a file holds a
 * password (Redis, SASL), so that it never has to appear on a command line,
 * in the process list or in a properties file. Not installed.
 */
#ifndef OPSTREAM_SECRET_PRIV_H
#define OPSTREAM_SECRET_PRIV_H

#include <stddef.h>

/* Reads the first line of path, without its line ending, into buf. what
 * names the file in errors ("redis password file"); errors never contain
 * the file's content. Returns 0, or -1 with buf zeroed and errstr filled
 * (missing or unreadable file, empty first line, line longer than
 * bufsize - 2). */
int ops_secret_read_file(const char *what, const char *path, char *buf, size_t bufsize,
                         char *errstr, size_t errstr_size);

#endif
