/*
 * opstream alert formatting: the human line and the JSON object that
 * opstream-alerts prints. Alert strings come from Kafka and are untrusted:
 * the line replaces control characters (no terminal escape injection), the
 * JSON escapes them and repairs invalid UTF-8.
 */
#include "opstream/alert_fmt.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "opstream/validate.h"

typedef struct out {
    char *buf;
    size_t size, pos;
    bool overflow;
} out_t;

static void out_bytes(out_t *o, const char *s, size_t n) {
    if (o->overflow || o->pos + n >= o->size) {
        if (!o->overflow && o->size > 0) {
            size_t room = o->size - 1 - o->pos;
            memcpy(o->buf + o->pos, s, room);
            o->pos += room;
            o->buf[o->pos] = '\0';
        }
        o->overflow = true;
        return;
    }
    memcpy(o->buf + o->pos, s, n);
    o->pos += n;
    o->buf[o->pos] = '\0';
}

static void out_str(out_t *o, const char *s) {
    out_bytes(o, s, strlen(s));
}

static void out_fmt(out_t *o, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    out_bytes(o, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* A string for the terminal: control bytes (C0, DEL) become '?'. Bytes of
 * 0x80 and up pass, so UTF-8 place names stay readable. */
static void out_safe(out_t *o, const char *s, size_t max) {
    for (size_t i = 0; i < max && s[i] != '\0'; i++) {
        char c = s[i];
        if ((unsigned char)c < 0x20 || c == 0x7f)
            c = '?';
        out_bytes(o, &c, 1);
    }
}

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

int ops_json_append_string(char *buf, size_t size, size_t *pos, const char *s) {
    out_t o = {buf, size, *pos, false};
    out_bytes(&o, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    while (*p != '\0') {
        unsigned char c = *p;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            out_bytes(&o, esc, 2);
            p++;
        } else if (c < 0x20) {
            switch (c) {
            case '\n':
                out_str(&o, "\\n");
                break;
            case '\r':
                out_str(&o, "\\r");
                break;
            case '\t':
                out_str(&o, "\\t");
                break;
            default:
                out_fmt(&o, "\\u%04x", c);
            }
            p++;
        } else {
            size_t n = utf8_seq(p);
            if (n == 0) {
                out_str(&o, "\xef\xbf\xbd"); /* U+FFFD */
                p++;
            } else {
                out_bytes(&o, (const char *)p, n);
                p += n;
            }
        }
    }
    out_bytes(&o, "\"", 1);
    *pos = o.pos;
    return o.overflow ? -1 : 0;
}

/* "2024-09-30T14:05:00Z": the line shows whole seconds. */
static void time_seconds(int64_t ms, char out[40]) {
    char full[40];
    ops_format_timestamp(ms, full, sizeof(full));
    char *dot = strchr(full, '.');
    if (dot != NULL) {
        dot[0] = 'Z';
        dot[1] = '\0';
    }
    snprintf(out, 40, "%s", full);
}

static const char *severity_colour(ops_severity_t s) {
    switch (s) {
    case OPS_SEVERITY_CRITICAL:
        return "\033[1;31m";
    case OPS_SEVERITY_WARNING:
        return "\033[33m";
    default:
        return "\033[36m";
    }
}

int ops_alert_format_line(const ops_alert_t *a, bool colour, char *buf, size_t size) {
    out_t o = {buf, size, 0, false};
    char t[40];
    const char *sev = ops_severity_name(a->severity);
    if (size > 0)
        buf[0] = '\0';
    /* A spike's window is still open when it is raised, so its end lies in
     * the future: the line shows when the spike was raised. */
    time_seconds(a->window_start != a->window_end ? a->raised_at : a->window_end, t);
    out_str(&o, t);
    out_str(&o, " ");
    if (colour)
        out_str(&o, severity_colour(a->severity));
    out_fmt(&o, "%-8s", sev != NULL ? sev : "?");
    if (colour)
        out_str(&o, "\033[0m");
    out_str(&o, " ");
    out_safe(&o, a->operation, sizeof(a->operation));
    out_str(&o, " ");
    if (a->has_country)
        out_safe(&o, a->country, sizeof(a->country));
    else
        out_str(&o, "--");
    out_str(&o, "  ");
    if (colour && a->severity == OPS_SEVERITY_CRITICAL)
        out_str(&o, "\033[1m");
    out_safe(&o, a->summary, sizeof(a->summary));
    if (colour && a->severity == OPS_SEVERITY_CRITICAL)
        out_str(&o, "\033[0m");
    return o.overflow ? -1 : (int)o.pos;
}

/* A JSON number; NaN and infinities (no JSON form) become null. */
static void json_double(out_t *o, double v) {
    if (!isfinite(v))
        out_str(o, "null");
    else
        out_fmt(o, "%.15g", v);
}

static void json_key_str(out_t *o, const char *key, const char *val) {
    out_fmt(o, ",\"%s\":", key);
    if (!o->overflow && ops_json_append_string(o->buf, o->size, &o->pos, val) != 0)
        o->overflow = true;
}

static void json_key_time(out_t *o, const char *key, int64_t ms) {
    char t[40];
    ops_format_timestamp(ms, t, sizeof(t));
    out_fmt(o, ",\"%s\":\"%s\"", key, t);
}

/* Copies a fixed-size field that may lack its NUL (decoded from Kafka). */
static const char *bounded(const char *s, size_t n, char *tmp) {
    memcpy(tmp, s, n);
    tmp[n - 1] = '\0';
    return tmp;
}

int ops_alert_format_json(const ops_alert_t *a, char *buf, size_t size) {
    out_t o = {buf, size, 0, false};
    char tmp[OPS_ALERT_SUMMARY_MAX + 1];
    const char *sev = ops_severity_name(a->severity);
    if (size > 0)
        buf[0] = '\0';
    out_str(&o, "{\"alert_id\":");
    if (!o.overflow &&
        ops_json_append_string(buf, size, &o.pos, bounded(a->alert_id, sizeof(a->alert_id), tmp)))
        o.overflow = true;
    json_key_str(&o, "operation", bounded(a->operation, sizeof(a->operation), tmp));
    if (a->has_country)
        json_key_str(&o, "country", bounded(a->country, sizeof(a->country), tmp));
    else
        out_str(&o, ",\"country\":null");
    json_key_str(&o, "rule", bounded(a->rule, sizeof(a->rule), tmp));
    json_key_str(&o, "metric", bounded(a->metric, sizeof(a->metric), tmp));
    json_key_str(&o, "severity", sev != NULL ? sev : "");
    out_fmt(&o, ",\"observed\":%" PRId64 ",\"baseline\":", a->observed);
    json_double(&o, a->baseline);
    out_str(&o, ",\"threshold\":");
    json_double(&o, a->threshold);
    json_key_time(&o, "window_start", a->window_start);
    json_key_time(&o, "window_end", a->window_end);
    out_str(&o, ",\"event_ids\":[");
    for (uint32_t i = 0; i < a->n_event_ids && i < OPS_ALERT_EVENT_IDS_MAX; i++) {
        if (i > 0)
            out_str(&o, ",");
        if (!o.overflow &&
            ops_json_append_string(buf, size, &o.pos,
                                   bounded(a->event_ids[i], sizeof(a->event_ids[i]), tmp)))
            o.overflow = true;
    }
    out_str(&o, "]");
    json_key_str(&o, "summary", bounded(a->summary, sizeof(a->summary), tmp));
    json_key_time(&o, "raised_at", a->raised_at);
    out_str(&o, "}");
    return o.overflow ? -1 : (int)o.pos;
}
