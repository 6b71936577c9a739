/*
 * opstream JSON Lines input: a bounded line reader and a small, strict parser
 * for the flat objects a national export writes one per line (values are
 * strings, numbers, null or arrays of strings). Errors give the column and
 * the reason. Pure parsing; the line reader only reads the FILE it is given.
 */
#ifndef OPSTREAM_JSONL_H
#define OPSTREAM_JSONL_H

#include <stddef.h>
#include <stdio.h>

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

/* ---- flat JSON object parser ---- */

typedef enum ops_json_type {
    OPS_JSON_STRING = 0,
    OPS_JSON_NUMBER,
    OPS_JSON_NULL,
    OPS_JSON_ARRAY /* of strings */
} ops_json_type_t;

typedef struct ops_json_member {
    const char *key;
    ops_json_type_t type;
    size_t column;      /* 1-based column where the value starts */
    const char *text;   /* STRING: decoded text; NUMBER: its text; else NULL */
    size_t n_items;     /* ARRAY: number of strings */
    const char **items; /* ARRAY: decoded strings */
} ops_json_member_t;

#define OPS_JSON_MEMBERS_MAX 64 /* members per object */
#define OPS_JSON_ITEMS_MAX 1024 /* array items per object, all arrays together */

typedef struct ops_json ops_json_t;

ops_json_t *ops_json_new(void);       /* NULL only when out of memory */
void ops_json_destroy(ops_json_t *p); /* accepts NULL */

/* Parses one object from text[0..len). Whitespace around tokens is allowed;
 * nothing but whitespace may follow the object. Duplicate keys, nested
 * objects, booleans and non-string array items are refused. Returns 0, or -1
 * with errstr as "column N: reason". The members stay owned by p and are
 * valid until the next parse. */
int ops_json_parse(ops_json_t *p, const char *text, size_t len, char *errstr, size_t errstr_size);

size_t ops_json_count(const ops_json_t *p);
const ops_json_member_t *ops_json_member(const ops_json_t *p, size_t i);
/* The member with this key, or NULL. */
const ops_json_member_t *ops_json_find(const ops_json_t *p, const char *key);

/* Writes s as a JSON string (quotes included) into buf at *posp, escaping
 * what JSON requires. Returns 0, or -1 when it does not fit (buf is left
 * NUL-terminated). */
int ops_json_put_string(char *buf, size_t bufsize, size_t *posp, const char *s);

#ifdef __cplusplus
}
#endif
#endif
