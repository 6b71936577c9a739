/*
 * opstream JSON: the strict flat-object parser of JSON Lines input, and the
 * one JSON string writer, which repairs invalid UTF-8 and leaves the
 * escaping to jansson. The parser stays hand-written: jansson keeps no
 * position of a value (the field messages name its column), reports other
 * columns and words than the documented rejects ("column 8: duplicate key
 * 'a'" becomes column 10, "duplicate object key near ..."), refuses bytes
 * that are not UTF-8 where this parser hands them to the field checks, and
 * keeps a number as an integer or a double instead of its exact text.
 */
#include "opstream/json.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_priv.h"

/* ---- flat JSON object parser ---- */

struct ops_json {
    char *buf; /* decoded keys and values, NUL-separated */
    size_t cap, used;
    ops_json_member_t members[OPS_JSON_MEMBERS_MAX];
    size_t n;
    const char *items[OPS_JSON_ITEMS_MAX];
    size_t n_items;

    const char *s; /* the text being parsed */
    size_t len, pos;
    char *errstr;
    size_t errstr_size;
};

ops_json_t *ops_json_new(void) {
    return calloc(1, sizeof(ops_json_t));
}

void ops_json_destroy(ops_json_t *p) {
    if (p == NULL)
        return;
    free(p->buf);
    free(p);
}

/* Records an error at a 0-based position; always returns -1. */
static int fail_at(ops_json_t *p, size_t pos, const char *fmt, ...) {
    va_list ap;
    int n = 0;
    if (p->errstr == NULL || p->errstr_size == 0)
        return -1;
    n = snprintf(p->errstr, p->errstr_size, "column %zu: ", pos + 1);
    if (n < 0 || (size_t)n >= p->errstr_size)
        return -1;
    va_start(ap, fmt);
    vsnprintf(p->errstr + n, p->errstr_size - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static void skip_ws(ops_json_t *p) {
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\r'))
        p->pos++;
}

static int peek(ops_json_t *p) {
    return p->pos < p->len ? (unsigned char)p->s[p->pos] : -1;
}

static int put_byte(ops_json_t *p, char c) {
    if (p->used >= p->cap)
        return -1;
    p->buf[p->used++] = c;
    return 0;
}

static int hex4(const char *s, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static int put_utf8(ops_json_t *p, unsigned cp) {
    int rc = 0;
    if (cp < 0x80) {
        rc |= put_byte(p, (char)cp);
    } else if (cp < 0x800) {
        rc |= put_byte(p, (char)(0xC0 | (cp >> 6)));
        rc |= put_byte(p, (char)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        rc |= put_byte(p, (char)(0xE0 | (cp >> 12)));
        rc |= put_byte(p, (char)(0x80 | ((cp >> 6) & 0x3F)));
        rc |= put_byte(p, (char)(0x80 | (cp & 0x3F)));
    } else {
        rc |= put_byte(p, (char)(0xF0 | (cp >> 18)));
        rc |= put_byte(p, (char)(0x80 | ((cp >> 12) & 0x3F)));
        rc |= put_byte(p, (char)(0x80 | ((cp >> 6) & 0x3F)));
        rc |= put_byte(p, (char)(0x80 | (cp & 0x3F)));
    }
    return rc;
}

/* Decodes a \u escape at p->pos (just after the backslash-u), joining a
 * surrogate pair into one code point. */
static int parse_u_escape(ops_json_t *p, size_t esc_pos) {
    unsigned cp, lo;
    if (p->pos + 4 > p->len || hex4(p->s + p->pos, &cp) != 0)
        return fail_at(p, esc_pos, "\\u must be followed by four hex digits");
    p->pos += 4;
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return fail_at(p, esc_pos, "lone low surrogate \\u%04X", cp);
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (p->pos + 6 > p->len || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u' ||
            hex4(p->s + p->pos + 2, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF)
            return fail_at(p, esc_pos, "high surrogate \\u%04X without its low surrogate", cp);
        p->pos += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    if (cp == 0)
        return fail_at(p, esc_pos, "\\u0000 is not allowed in text");
    if (put_utf8(p, cp) != 0)
        return fail_at(p, esc_pos, "internal: decode buffer full");
    return 0;
}

/* Parses a string at p->pos (on the opening quote) into the decode buffer;
 * *outp points at the decoded, NUL-terminated text. */
static int parse_string(ops_json_t *p, const char **outp) {
    size_t start = p->pos;
    size_t out = p->used;
    p->pos++; /* opening quote */
    for (;;) {
        if (p->pos >= p->len)
            return fail_at(p, start, "string is never closed");
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '"') {
            p->pos++;
            break;
        }
        if (c < 0x20)
            return fail_at(p, p->pos, "control character 0x%02X in a string (escape it)", c);
        if (c != '\\') {
            if (put_byte(p, (char)c) != 0)
                return fail_at(p, p->pos, "internal: decode buffer full");
            p->pos++;
            continue;
        }
        size_t esc_pos = p->pos;
        if (p->pos + 1 >= p->len)
            return fail_at(p, start, "string is never closed");
        char e = p->s[p->pos + 1];
        char dec;
        p->pos += 2;
        switch (e) {
        case '"':
        case '\\':
        case '/':
            dec = e;
            break;
        case 'b':
            dec = '\b';
            break;
        case 'f':
            dec = '\f';
            break;
        case 'n':
            dec = '\n';
            break;
        case 'r':
            dec = '\r';
            break;
        case 't':
            dec = '\t';
            break;
        case 'u':
            if (parse_u_escape(p, esc_pos) != 0)
                return -1;
            continue;
        default:
            return fail_at(p, esc_pos, "invalid escape \\%c", e);
        }
        if (put_byte(p, dec) != 0)
            return fail_at(p, esc_pos, "internal: decode buffer full");
    }
    if (put_byte(p, '\0') != 0)
        return fail_at(p, start, "internal: decode buffer full");
    *outp = p->buf + out;
    return 0;
}

/* JSON's number grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int parse_number(ops_json_t *p, const char **outp) {
    size_t start = p->pos, i = p->pos;
    const char *s = p->s;
#define DIGIT(k) ((k) < p->len && s[(k)] >= '0' && s[(k)] <= '9')
    if (i < p->len && s[i] == '-')
        i++;
    if (!DIGIT(i))
        return fail_at(p, start, "malformed number");
    if (s[i] == '0')
        i++;
    else
        while (DIGIT(i))
            i++;
    if (i < p->len && s[i] == '.') {
        i++;
        if (!DIGIT(i))
            return fail_at(p, start, "malformed number");
        while (DIGIT(i))
            i++;
    }
    if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < p->len && (s[i] == '+' || s[i] == '-'))
            i++;
        if (!DIGIT(i))
            return fail_at(p, start, "malformed number");
        while (DIGIT(i))
            i++;
    }
#undef DIGIT
    size_t out = p->used;
    for (size_t k = start; k < i; k++)
        if (put_byte(p, s[k]) != 0)
            return fail_at(p, start, "internal: decode buffer full");
    if (put_byte(p, '\0') != 0)
        return fail_at(p, start, "internal: decode buffer full");
    p->pos = i;
    *outp = p->buf + out;
    return 0;
}

static int parse_array(ops_json_t *p, ops_json_member_t *m) {
    m->items = &p->items[p->n_items];
    m->n_items = 0;
    p->pos++; /* [ */
    skip_ws(p);
    if (peek(p) == ']') {
        p->pos++;
        return 0;
    }
    for (;;) {
        skip_ws(p);
        if (peek(p) != '"')
            return fail_at(p, p->pos, "key '%s': array items must be strings", m->key);
        if (p->n_items >= OPS_JSON_ITEMS_MAX)
            return fail_at(p, p->pos, "more than %d array items", OPS_JSON_ITEMS_MAX);
        if (parse_string(p, &p->items[p->n_items]) != 0)
            return -1;
        p->n_items++;
        m->n_items++;
        skip_ws(p);
        int c = peek(p);
        if (c == ',') {
            p->pos++;
            continue;
        }
        if (c == ']') {
            p->pos++;
            return 0;
        }
        return fail_at(p, p->pos, "expected ',' or ']' in the array of '%s'", m->key);
    }
}

static int parse_value(ops_json_t *p, ops_json_member_t *m) {
    int c = peek(p);
    m->column = p->pos + 1;
    m->text = NULL;
    m->items = NULL;
    m->n_items = 0;
    if (c == '"') {
        m->type = OPS_JSON_STRING;
        return parse_string(p, &m->text);
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        m->type = OPS_JSON_NUMBER;
        return parse_number(p, &m->text);
    }
    if (c == '[') {
        m->type = OPS_JSON_ARRAY;
        return parse_array(p, m);
    }
    if (p->len - p->pos >= 4 && memcmp(p->s + p->pos, "null", 4) == 0) {
        m->type = OPS_JSON_NULL;
        p->pos += 4;
        return 0;
    }
    if (c == '{')
        return fail_at(p, p->pos, "key '%s': nested objects are not supported", m->key);
    if ((p->len - p->pos >= 4 && memcmp(p->s + p->pos, "true", 4) == 0) ||
        (p->len - p->pos >= 5 && memcmp(p->s + p->pos, "false", 5) == 0))
        return fail_at(p, p->pos, "key '%s': true/false are not supported", m->key);
    if (c < 0)
        return fail_at(p, p->pos, "key '%s': value missing at end of line", m->key);
    if (c < 0x20 || c >= 0x7F)
        return fail_at(p, p->pos, "key '%s': unexpected byte 0x%02X", m->key, (unsigned)c);
    return fail_at(p, p->pos, "key '%s': unexpected character '%c'", m->key, c);
}

/* One object: '{' (key ':' value (',' key ':' value)*)? '}' and nothing
 * after it but whitespace. */
int ops_json_parse(ops_json_t *p, const char *text, size_t len, char *errstr, size_t errstr_size) {
    size_t need = len + 16;
    if (need > p->cap) {
        char *nb = realloc(p->buf, need);
        if (nb == NULL) {
            snprintf(errstr, errstr_size, "out of memory");
            return -1;
        }
        p->buf = nb;
        p->cap = need;
    }
    p->used = 0;
    p->n = 0;
    p->n_items = 0;
    p->s = text;
    p->len = len;
    p->pos = 0;
    p->errstr = errstr;
    p->errstr_size = errstr_size;

    skip_ws(p);
    if (peek(p) != '{')
        return fail_at(p, p->pos, "expected '{' (each line must be one JSON object)");
    p->pos++;
    skip_ws(p);
    if (peek(p) == '}') {
        p->pos++;
    } else {
        for (;;) {
            skip_ws(p);
            if (peek(p) != '"')
                return fail_at(p, p->pos, "expected a key in double quotes");
            if (p->n >= OPS_JSON_MEMBERS_MAX)
                return fail_at(p, p->pos, "more than %d keys", OPS_JSON_MEMBERS_MAX);
            ops_json_member_t *m = &p->members[p->n];
            size_t key_pos = p->pos;
            if (parse_string(p, &m->key) != 0)
                return -1;
            if (ops_json_find(p, m->key) != NULL)
                return fail_at(p, key_pos, "duplicate key '%s'", m->key);
            skip_ws(p);
            if (peek(p) != ':')
                return fail_at(p, p->pos, "expected ':' after key '%s'", m->key);
            p->pos++;
            skip_ws(p);
            if (parse_value(p, m) != 0)
                return -1;
            p->n++;
            skip_ws(p);
            int c = peek(p);
            if (c == ',') {
                p->pos++;
                continue;
            }
            if (c == '}') {
                p->pos++;
                break;
            }
            return fail_at(p, p->pos, "expected ',' or '}' after the value of '%s'", m->key);
        }
    }
    skip_ws(p);
    if (p->pos != p->len)
        return fail_at(p, p->pos, "unexpected text after the object");
    return 0;
}

size_t ops_json_count(const ops_json_t *p) {
    return p->n;
}

const ops_json_member_t *ops_json_member(const ops_json_t *p, size_t i) {
    return i < p->n ? &p->members[i] : NULL;
}

const ops_json_member_t *ops_json_find(const ops_json_t *p, const char *key) {
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->members[i].key, key) == 0)
            return &p->members[i];
    return NULL;
}

/* ---- string writer ---- */

/* Length of a valid UTF-8 sequence at s (1-4), or 0 when it is not one
 * (overlong forms, surrogates and code points past U+10FFFF included). */
static size_t utf8_seq(const unsigned char *s) {
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* jansson only takes valid UTF-8: strings from Kafka, Redis or an export
 * may hold anything, so each byte that starts no valid sequence becomes
 * U+FFFD first (at most three bytes for one). */
json_t *ops_json_string_repaired(const char *s, size_t n) {
    char *fixed = malloc(3 * n + 1);
    if (fixed == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        /* utf8_seq reads at most to the first byte that is not a
         * continuation, and s[n] need not be readable: copy the tail. */
        unsigned char tail[4] = {0, 0, 0, 0};
        size_t left = n - i < 4 ? n - i : 4;
        memcpy(tail, s + i, left);
        size_t k = tail[0] == 0 ? 0 : utf8_seq(tail);
        if (k == 0 || k > left) {
            memcpy(fixed + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        } else {
            memcpy(fixed + o, s + i, k);
            o += k;
            i += k;
        }
    }
    json_t *js = json_stringn(fixed, o);
    free(fixed);
    return js;
}

int ops_json_write(const json_t *v, char *buf, size_t size) {
    size_t n = json_dumpb(v, buf, size, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
    if (n == 0 || n >= size) {
        if (size > 0)
            buf[0] = '\0';
        return -1;
    }
    buf[n] = '\0';
    return (int)n;
}

char *ops_json_quote(const char *s) {
    json_t *js = ops_json_string_repaired(s, strlen(s));
    if (js == NULL)
        return NULL;
    char *out = json_dumps(js, JSON_ENCODE_ANY | JSON_COMPACT);
    json_decref(js);
    return out;
}

int ops_json_append_string(char *buf, size_t size, size_t *pos, const char *s) {
    char *q = ops_json_quote(s);
    if (q == NULL)
        return -1;
    size_t n = strlen(q);
    int rc = 0;
    if (*pos + n >= size) {
        n = size > *pos ? size - 1 - *pos : 0;
        rc = -1;
    }
    memcpy(buf + *pos, q, n);
    *pos += n;
    if (size > 0)
        buf[*pos < size ? *pos : size - 1] = '\0';
    free(q);
    return rc;
}
