/*
 * opstream JSON Lines input: a bounded line reader. Each line is then parsed
 * as one flat JSON object by opstream/json.h. The reader only reads the FILE
 * it is given.
 */
#ifndef OPSTREAM_JSONL_H
#define OPSTREAM_JSONL_H

#include <stddef.h>
#include <stdio.h>

#include "opstream/json.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- bounded line reader ---- */

#define OPS_LINE_MAX_DEFAULT (64 * 1024)

typedef struct ops_lines ops_lines_t;

/* A reader over fp (owned by the caller, must outlive the reader). Lines
 * longer than line_max (0: the default) are cut to line_max bytes and
 * flagged. NULL only when out of memory. */
ops_lines_t *ops_lines_new(FILE *fp, size_t line_max);
void ops_lines_destroy(ops_lines_t *l); /* accepts NULL */

/* Reads the next line. *linep and *lenp: the line without its line end (LF or
 * CRLF; not NUL-terminated); *rawlenp: the same bytes plus the line end as
 * read (the raw copy starts at *linep too). Both stay owned by the reader until
 * the next call. Returns 1 for a line, 0 at end of input, -1 on a read
 * error. */
int ops_lines_next(ops_lines_t *l, const char **linep, size_t *lenp, size_t *rawlenp,
                   int *truncatedp);
/* Number (1-based) of the line last returned. */
long ops_lines_number(const ops_lines_t *l);

#ifdef __cplusplus
}
#endif
#endif
