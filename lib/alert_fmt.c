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
#include "json_priv.h"

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

/* "2024-09-30T14:05:00Z": the line shows whole seconds. */
static void time_seconds(int64_t ms, char out[40]) {
    char full[40];
    ops_validate_format_timestamp(ms, full, sizeof(full));
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

/* A JSON number as "%.15g" would write it: whole values as integers (jansson
 * would write 12 as 12.0), NaN and infinities (no JSON form) as null. */
static json_t *json_number(double v) {
    if (!isfinite(v))
        return json_null();
    if (v == floor(v) && fabs(v) < 9007199254740992.0) /* 2^53: exact */
        return json_integer((json_int_t)v);
    return json_real(v);
}

/* A fixed-size field that may lack its NUL (decoded from Kafka). */
static json_t *bounded(const char *s, size_t n) {
    return ops_json_string_repaired(s, strnlen(s, n - 1));
}

static json_t *timestamp(int64_t ms) {
    char t[40];
    ops_validate_format_timestamp(ms, t, sizeof(t));
    return json_string(t);
}

/* Built with jansson, the fields in the alert's order. */
int ops_alert_format_json(const ops_alert_t *a, char *buf, size_t size) {
    const char *sev = ops_severity_name(a->severity);
    int bad = 0, rc = -1;
    json_t *o = json_object(), *ids = json_array();

    if (o == NULL || ids == NULL)
        goto out;
    for (uint32_t i = 0; i < a->n_event_ids && i < OPS_ALERT_EVENT_IDS_MAX; i++)
        bad |= json_array_append_new(ids, bounded(a->event_ids[i], sizeof(a->event_ids[i])));
    bad |= json_object_set_new(o, "alert_id", bounded(a->alert_id, sizeof(a->alert_id)));
    bad |= json_object_set_new(o, "operation", bounded(a->operation, sizeof(a->operation)));
    bad |= json_object_set_new(
        o, "country", a->has_country ? bounded(a->country, sizeof(a->country)) : json_null());
    bad |= json_object_set_new(o, "rule", bounded(a->rule, sizeof(a->rule)));
    bad |= json_object_set_new(o, "metric", bounded(a->metric, sizeof(a->metric)));
    bad |= json_object_set_new(o, "severity", json_string(sev != NULL ? sev : ""));
    bad |= json_object_set_new(o, "observed", json_integer(a->observed));
    bad |= json_object_set_new(o, "baseline", json_number(a->baseline));
    bad |= json_object_set_new(o, "threshold", json_number(a->threshold));
    bad |= json_object_set_new(o, "window_start", timestamp(a->window_start));
    bad |= json_object_set_new(o, "window_end", timestamp(a->window_end));
    bad |= json_object_set(o, "event_ids", ids);
    bad |= json_object_set_new(o, "summary", bounded(a->summary, sizeof(a->summary)));
    bad |= json_object_set_new(o, "raised_at", timestamp(a->raised_at));
    if (!bad)
        rc = ops_json_write(o, buf, size);
out:
    json_decref(ids);
    json_decref(o);
    if (rc < 0 && size > 0)
        buf[0] = '\0';
    return rc;
}
