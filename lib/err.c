/*
 * opstream library-internal error formatting into a caller's buffer; the
 * one place that knows a NULL or empty errstr means "not interested".
 */
#include "err_priv.h"

#include <stdarg.h>
#include <stdio.h>

void ops_err_format(char *errstr, size_t errstr_size, const char *fmt, ...) {
    va_list ap;

    if (errstr == NULL || errstr_size == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(errstr, errstr_size, fmt, ap);
    va_end(ap);
}
