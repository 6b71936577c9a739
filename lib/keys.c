/*
 * opstream Redis key layout: builds the key names of the query contract
 * (DESIGN.md) and the UTC minute/hour bucket ids behind event-time buckets and
 * rolling windows. Pure string and calendar arithmetic; no I/O.
 *
 * Spelling: "{OP}" is kept literally in braces, as a Redis Cluster hash tag,
 * so every key of one operation lands in one slot:
 *   opstream:{FLASH-WEKA}:total, opstream:{FLASH-WEKA}:country:NG,
 *   opstream:{FLASH-WEKA}:min:202409301405, opstream:{FLASH-WEKA}:hour:2024093014.
 * The other placeholders (country, bucket id, group) are written plainly:
 *   opstream:offsets:opstream-count.
 */
#include "opstream/keys.h"

#include <stdarg.h>
#include <stdio.h>

/* Formats into buf and returns the length, or -1 when the key does not fit
 * (or an argument is missing): callers never get a truncated key. */
static int key_format(char *buf, size_t bufsize, const char *fmt, ...) {
    va_list ap;
    int n;

    if (buf == NULL || bufsize == 0)
        return -1;
    va_start(ap, fmt);
    n = vsnprintf(buf, bufsize, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= bufsize) {
        buf[0] = '\0';
        return -1;
    }
    return n;
}

int ops_key_operations(char *buf, size_t bufsize) {
    return key_format(buf, bufsize, "opstream:operations");
}

int ops_key_total(const char *op, char *buf, size_t bufsize) {
    if (op == NULL)
        return -1;
    return key_format(buf, bufsize, "opstream:{%s}:total", op);
}

int ops_key_country(const char *op, const char *cc, char *buf, size_t bufsize) {
    if (op == NULL || cc == NULL)
        return -1;
    return key_format(buf, bufsize, "opstream:{%s}:country:%s", op, cc);
}

int ops_key_countries(const char *op, char *buf, size_t bufsize) {
    if (op == NULL)
        return -1;
    return key_format(buf, bufsize, "opstream:{%s}:countries", op);
}

int ops_key_minute(const char *op, int64_t ms, char *buf, size_t bufsize) {
    char id[13];

    if (op == NULL)
        return -1;
    ops_minute_id(ms, id);
    return key_format(buf, bufsize, "opstream:{%s}:min:%s", op, id);
}

int ops_key_hour(const char *op, int64_t ms, char *buf, size_t bufsize) {
    char id[11];

    if (op == NULL)
        return -1;
    ops_hour_id(ms, id);
    return key_format(buf, bufsize, "opstream:{%s}:hour:%s", op, id);
}

int ops_key_alerts(const char *op, char *buf, size_t bufsize) {
    if (op == NULL)
        return -1;
    return key_format(buf, bufsize, "opstream:{%s}:alerts", op);
}

int ops_key_alert_ids(const char *op, char *buf, size_t bufsize) {
    if (op == NULL)
        return -1;
    return key_format(buf, bufsize, "opstream:{%s}:alerts:ids", op);
}

int ops_key_offsets(const char *group, char *buf, size_t bufsize) {
    if (group == NULL)
        return -1;
    return key_format(buf, bufsize, "opstream:offsets:%s", group);
}

/* Floor division: C's '/' truncates toward zero, which would put events
 * before 1970 into the wrong bucket. */
static int64_t floor_to(int64_t ms, int64_t unit) {
    int64_t q = ms / unit;

    if (ms % unit != 0 && ms < 0 && q > INT64_MIN / unit)
        q--;
    return q * unit;
}

int64_t ops_minute_floor(int64_t ms) {
    return floor_to(ms, OPS_MINUTE_MS);
}

int64_t ops_hour_floor(int64_t ms) {
    return floor_to(ms, OPS_HOUR_MS);
}

/* The proleptic Gregorian date of a day count since 1970-01-01, done by hand
 * rather than with gmtime_r so that it has no time_t range limits and no
 * locale or TZ dependence. Works in 400-year eras of 146097 days. */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
    int64_t era;
    unsigned doe, yoe, doy, mp;

    z += 719468; /* shift the epoch to 0000-03-01 */
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned)(z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

/* Splits ms into UTC date, hour and minute. */
static void split_utc(int64_t ms, int64_t *y, unsigned *mo, unsigned *d, unsigned *h,
                      unsigned *mi) {
    int64_t min = floor_to(ms, OPS_MINUTE_MS) / OPS_MINUTE_MS;
    int64_t days = floor_to(min, 1440) / 1440;
    unsigned in_day = (unsigned)(min - days * 1440);

    civil_from_days(days, y, mo, d);
    *h = in_day / 60;
    *mi = in_day % 60;
}

/* Years outside 0..9999 cannot be written in four digits; they are clamped
 * so the id keeps its fixed width (validation rejects such times anyway). */
static int64_t clamp_year(int64_t y) {
    return y < 0 ? 0 : (y > 9999 ? 9999 : y);
}

void ops_minute_id(int64_t ms, char out[13]) {
    int64_t y;
    unsigned mo, d, h, mi;

    split_utc(ms, &y, &mo, &d, &h, &mi);
    snprintf(out, 13, "%04u%02u%02u%02u%02u", (unsigned)clamp_year(y), mo, d, h, mi);
}

void ops_hour_id(int64_t ms, char out[11]) {
    int64_t y;
    unsigned mo, d, h, mi;

    split_utc(ms, &y, &mo, &d, &h, &mi);
    snprintf(out, 11, "%04u%02u%02u%02u", (unsigned)clamp_year(y), mo, d, h);
}
