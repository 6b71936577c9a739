/*
 * opstream CSV reader: RFC 4180 records read one at a time from a stream,
 * with the starting line and raw bytes of each, in memory bounded by the
 * largest allowed record. Malformed records are reported and skipped so that
 * the rest of a file still goes through.
 */
#include "opstream/csv.h"

#include <stdlib.h>
#include <string.h>

#include "err_priv.h"

enum csv_state { ST_FIELD_START, ST_UNQUOTED, ST_QUOTED, ST_QUOTE_SEEN };

struct ops_csv {
    FILE *fp;
    size_t record_max;
    long line;     /* line of the next byte to read */
    long rec_line; /* line the current record started on */
    int started;   /* the byte order mark check is done */

    char *raw; /* raw bytes of the record, up to record_max */
    size_t raw_len;
    int truncated;

    char *fbuf; /* field text, NUL-separated */
    size_t fbuf_len;
    size_t fstart[OPS_CSV_FIELDS_MAX];
    size_t nfields;
    int too_many_fields;
};

ops_csv_t *ops_csv_new(FILE *fp, size_t record_max) {
    ops_csv_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->fp = fp;
    r->record_max = record_max ? record_max : OPS_CSV_RECORD_MAX_DEFAULT;
    r->line = 1;
    r->raw = malloc(r->record_max);
    r->fbuf = malloc(r->record_max + OPS_CSV_FIELDS_MAX + 1);
    if (r->raw == NULL || r->fbuf == NULL) {
        ops_csv_destroy(r);
        return NULL;
    }
    return r;
}

void ops_csv_destroy(ops_csv_t *r) {
    if (r == NULL)
        return;
    free(r->raw);
    free(r->fbuf);
    free(r);
}

/* Reads one byte and keeps it in the raw copy (while it fits) and the line
 * count. Every byte of the input goes through here. */
static int get_byte(ops_csv_t *r) {
    int c = getc_unlocked(r->fp); /* one thread reads the FILE: no lock per byte */
    if (c == EOF)
        return EOF;
    if (r->raw_len < r->record_max)
        r->raw[r->raw_len++] = (char)c;
    else
        r->truncated = 1;
    if (c == '\n')
        r->line++;
    return c;
}

/* A CR is a line end only when an LF follows; a lone CR is data. Returns 1
 * (and consumes the LF) for CRLF. */
static int cr_is_line_end(ops_csv_t *r) {
    int next = getc_unlocked(r->fp);
    if (next == '\n') {
        ungetc(next, r->fp);
        get_byte(r);
        return 1;
    }
    if (next != EOF)
        ungetc(next, r->fp);
    return 0;
}

static void field_byte(ops_csv_t *r, int c) {
    if (r->truncated || r->too_many_fields)
        return;
    r->fbuf[r->fbuf_len++] = (char)c;
}

static void field_end(ops_csv_t *r) {
    if (r->truncated || r->too_many_fields)
        return;
    r->fbuf[r->fbuf_len++] = '\0';
    r->nfields++;
    if (r->nfields == OPS_CSV_FIELDS_MAX) {
        /* the next field, if any, is one too many */
        return;
    }
    r->fstart[r->nfields] = r->fbuf_len;
}

static void field_begin(ops_csv_t *r) {
    if (r->nfields >= OPS_CSV_FIELDS_MAX)
        r->too_many_fields = 1;
}

/* Consumes the rest of a physical line after a syntax error, so the next
 * record starts on the following line. */
static void skip_line(ops_csv_t *r) {
    int c;
    while ((c = get_byte(r)) != EOF && c != '\n')
        ;
}

/* Skips the UTF-8 byte order mark some spreadsheet exports start with. */
static void skip_bom(ops_csv_t *r) {
    int c1 = getc(r->fp);
    if (c1 != 0xEF) {
        if (c1 != EOF)
            ungetc(c1, r->fp);
        return;
    }
    int c2 = getc(r->fp), c3 = getc(r->fp);
    if (c2 == 0xBB && c3 == 0xBF)
        return;
    /* Not a BOM: only one byte of push-back is portable, so keep the bytes
     * by seeking back when we can. */
    if (fseek(r->fp, -((c3 != EOF) + (c2 != EOF) + 1), SEEK_CUR) != 0) {
        ungetc(c1, r->fp); /* best effort on pipes: such input is not UTF-8 text */
    }
}

/* The state machine of RFC 4180, one byte at a time. Line ends outside
 * quotes end the record; a quote may open a field only at its start; inside
 * quotes, "" is a quote and anything else (line breaks too) is data. */
ops_csv_status_t ops_csv_next(ops_csv_t *r, char *errstr, size_t errstr_size) {
    enum csv_state st = ST_FIELD_START;
    int c;
    long quote_line = 0;

    if (!r->started) {
        r->started = 1;
        skip_bom(r);
    }
    r->raw_len = 0;
    r->truncated = 0;
    r->fbuf_len = 0;
    r->nfields = 0;
    r->fstart[0] = 0;
    r->too_many_fields = 0;

    /* Blank lines between records carry nothing. */
    for (;;) {
        r->rec_line = r->line;
        r->raw_len = 0;
        c = get_byte(r);
        if (c == EOF)
            return ferror(r->fp) ? OPS_CSV_IO : OPS_CSV_EOF;
        if (c == '\n')
            continue;
        if (c == '\r' && cr_is_line_end(r))
            continue;
        break;
    }

    for (;; c = get_byte(r)) {
        if (c == EOF && ferror(r->fp))
            return OPS_CSV_IO; /* a record cut short by a read error is not a record */
        if (c == '\0') {
            skip_line(r);
            ops_err_format(errstr, errstr_size, "field %zu: NUL byte in the input", r->nfields + 1);
            return OPS_CSV_BAD;
        }
        switch (st) {
        case ST_FIELD_START:
            field_begin(r);
            if (c == '"') {
                st = ST_QUOTED;
                quote_line = r->line;
                continue;
            }
            st = ST_UNQUOTED;
            /* fall through */
        case ST_UNQUOTED:
            if (c == EOF || c == '\n' || (c == '\r' && cr_is_line_end(r))) {
                field_end(r);
                goto record_end;
            }
            if (c == ',') {
                field_end(r);
                st = ST_FIELD_START;
                continue;
            }
            if (c == '"') {
                skip_line(r);
                ops_err_format(
                    errstr, errstr_size,
                    "field %zu: a quote inside an unquoted field (quote the whole field and "
                    "double the quote)",
                    r->nfields + 1);
                return OPS_CSV_BAD;
            }
            field_byte(r, c);
            continue;
        case ST_QUOTED:
            if (c == EOF) {
                ops_err_format(errstr, errstr_size,
                               "field %zu: quoted field opened on line %ld is never closed",
                               r->nfields + 1, quote_line);
                return OPS_CSV_BAD;
            }
            if (c == '"')
                st = ST_QUOTE_SEEN;
            else
                field_byte(r, c);
            continue;
        case ST_QUOTE_SEEN:
            if (c == '"') {
                field_byte(r, '"');
                st = ST_QUOTED;
                continue;
            }
            if (c == ',') {
                field_end(r);
                st = ST_FIELD_START;
                continue;
            }
            if (c == EOF || c == '\n' || (c == '\r' && cr_is_line_end(r))) {
                field_end(r);
                goto record_end;
            }
            skip_line(r);
            ops_err_format(errstr, errstr_size,
                           "field %zu: unexpected character after the closing quote",
                           r->nfields + 1);
            return OPS_CSV_BAD;
        }
    }

record_end:
    if (r->truncated) {
        ops_err_format(errstr, errstr_size, "record is longer than %zu bytes", r->record_max);
        return OPS_CSV_BAD;
    }
    if (r->too_many_fields) {
        ops_err_format(errstr, errstr_size, "record has more than %d fields", OPS_CSV_FIELDS_MAX);
        return OPS_CSV_BAD;
    }
    if (ferror(r->fp))
        return OPS_CSV_IO;
    return OPS_CSV_RECORD;
}

size_t ops_csv_nfields(const ops_csv_t *r) {
    return r->nfields;
}

const char *ops_csv_field(const ops_csv_t *r, size_t i) {
    if (i >= r->nfields)
        return NULL;
    return r->fbuf + r->fstart[i];
}

long ops_csv_line(const ops_csv_t *r) {
    return r->rec_line;
}

const char *ops_csv_raw(const ops_csv_t *r, size_t *lenp, int *truncatedp) {
    if (lenp != NULL)
        *lenp = r->raw_len;
    if (truncatedp != NULL)
        *truncatedp = r->truncated;
    return r->raw;
}
