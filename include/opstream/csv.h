/*
 * opstream CSV reader: a streaming RFC 4180 reader (quoted fields, doubled
 * quotes, quoted line breaks, CRLF or LF line ends) that hands out one record
 * at a time with the line it started on and its raw bytes, so a bad record
 * can be reported by line and copied verbatim. Memory is bounded by the
 * largest record allowed, never by the size of the input.
 */
#ifndef OPSTREAM_CSV_H
#define OPSTREAM_CSV_H

#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Default bound of one record (raw bytes). */
#define OPS_CSV_RECORD_MAX_DEFAULT (64 * 1024)
/* The most fields one record may have. */
#define OPS_CSV_FIELDS_MAX 256

typedef struct ops_csv ops_csv_t;

/* Results of ops_csv_next(). */
typedef enum ops_csv_status {
    OPS_CSV_RECORD = 1, /* a record is available */
    OPS_CSV_EOF = 0,    /* no more records */
    OPS_CSV_BAD = -1,   /* this record is malformed (errstr says where and
                         * why); its line and raw bytes are available and the
                         * next call continues with the following record */
    OPS_CSV_IO = -2     /* reading failed; stop */
} ops_csv_status_t;

/* A reader over fp, which stays owned by the caller and must outlive the
 * reader. record_max bounds a record's raw bytes (0: the default). A UTF-8
 * byte order mark at the start is skipped. Returns NULL only when out of
 * memory. */
ops_csv_t *ops_csv_new(FILE *fp, size_t record_max);
void ops_csv_destroy(ops_csv_t *r); /* accepts NULL */

/* Reads the next record. Blank lines between records are skipped. */
ops_csv_status_t ops_csv_next(ops_csv_t *r, char *errstr, size_t errstr_size);

/* The current record's fields: NUL-terminated, owned by the reader, valid
 * until the next ops_csv_next() call. */
size_t ops_csv_nfields(const ops_csv_t *r);
const char *ops_csv_field(const ops_csv_t *r, size_t i);
/* Line (1-based) on which the current record starts. */
long ops_csv_line(const ops_csv_t *r);
/* The current record's bytes as read, line end included. *truncatedp (may
 * be NULL) is set when the record was longer than record_max, in which case
 * only its first record_max bytes are kept. */
const char *ops_csv_raw(const ops_csv_t *r, size_t *lenp, int *truncatedp);

#ifdef __cplusplus
}
#endif
#endif
