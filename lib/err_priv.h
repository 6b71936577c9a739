/*
 * opstream library-internal error formatting: fills the caller's errstr
 * buffer (librdkafka style) so that every module reports errors the same way.
 * Not installed; modules under lib/ include it.
 */
#ifndef OPSTREAM_ERR_PRIV_H
#define OPSTREAM_ERR_PRIV_H

#include <stddef.h>

/* printf-style into errstr (may be NULL or size 0: nothing is written). */
void ops_err_format(char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
