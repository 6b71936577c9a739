/*
 * opstream JSON: a small, strict parser for the flat objects a national
 * export writes one per line (values are strings, numbers, null or arrays of
 * strings), with the column and the reason of the first error; and the one
 * JSON string writer every output uses (escaping by jansson). Pure.
 */
#ifndef OPSTREAM_JSON_H
#define OPSTREAM_JSON_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

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

/* ---- string writer ---- */

/* s as a JSON string literal (with quotes): quotes, backslashes and control
 * characters escaped per RFC 8259, invalid UTF-8 replaced by U+FFFD so the
 * output is valid JSON whatever the bytes. A new string the caller frees
 * with free(), or NULL when out of memory. */
char *ops_json_quote(const char *s);

/* Appends ops_json_quote(s) to buf at *pos, keeping buf NUL-terminated.
 * Returns 0, or -1 when it does not fit (buf then holds a cut, NUL-terminated
 * text and *pos is unchanged) or when out of memory. */
int ops_json_append_string(char *buf, size_t size, size_t *pos, const char *s);

#ifdef __cplusplus
}
#endif
#endif
