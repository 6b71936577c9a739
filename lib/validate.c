/*
 * opstream validation: the rules an event must meet before it is produced
 * (operation code, assigned country code, counts, timestamps, enums), the
 * deterministic version 5 event_id, and timestamp parsing and formatting
 * without any dependency on the process time zone. Pure; no I/O.
 */
#include "opstream/validate.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uuid5_priv.h"

/*
 * The officially assigned ISO 3166-1 alpha-2 codes (249), sorted for binary
 * search. Only assigned codes are accepted, because national desks report
 * for states and territories the standard names; user-assigned and reserved
 * codes mean a typing or mapping error. In particular:
 *   - XK (Kosovo) is a user-assigned code that ISO does not assign; a
 *     producer that reports Kosovo must agree its code with the operation
 *     before it can be added, so XK is refused like any other unassigned code.
 *   - UK is only "exceptionally reserved": the assigned code is GB.
 *   - SS (South Sudan, 2011), BQ/CW/SX (2010) and the other recent codes are
 *     assigned and accepted.
 */
static const char country_codes[][3] = {
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW"};

#define N_COUNTRY_CODES (sizeof(country_codes) / sizeof(country_codes[0]))

/* Test hooks: the table itself, so unit tests can check order and size. */
size_t ops_validate_country_table(const char (**tablep)[3]);
size_t ops_validate_country_table(const char (**tablep)[3]) {
    *tablep = country_codes;
    return N_COUNTRY_CODES;
}

/*
 * The namespace of derived event ids, a contract: every producer derives
 * the same id for the same record only while this value stays the same, and
 * changing it would make every re-sent record count again. Never change it.
 *     8df60a3b-629c-40fe-badc-30dbe57ba70d
 */
static const uint8_t event_id_namespace[16] = {0x8d, 0xf6, 0x0a, 0x3b, 0x62, 0x9c, 0x40, 0xfe,
                                               0xba, 0xdc, 0x30, 0xdb, 0xe5, 0x7b, 0xa7, 0x0d};

static bool is_upper(char c) {
    return c >= 'A' && c <= 'Z';
}

static bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

/* Hand-written [A-Z0-9][A-Z0-9-]{0,31}: no regex library, no locale. */
bool ops_valid_operation(const char *op) {
    if (op == NULL || !(is_upper(op[0]) || is_digit(op[0])))
        return false;
    size_t i = 1;
    for (; op[i] != '\0'; i++) {
        if (i >= OPS_OPERATION_MAX)
            return false;
        if (!(is_upper(op[i]) || is_digit(op[i]) || op[i] == '-'))
            return false;
    }
    return true;
}

int ops_operation_check(const char *op, char *errstr, size_t errstr_size) {
    char up[OPS_OPERATION_MAX + 1];
    size_t n = op != NULL ? strlen(op) : 0;
    if (ops_valid_operation(op))
        return 0;
    if (n > 0 && n <= OPS_OPERATION_MAX) {
        for (size_t i = 0; i <= n; i++)
            up[i] = (char)(op[i] >= 'a' && op[i] <= 'z' ? op[i] - 'a' + 'A' : op[i]);
        if (ops_valid_operation(up)) {
            snprintf(errstr, errstr_size, "'%s' is not an operation code (%s): did you mean %s?",
                     op, OPS_OPERATION_FORMAT, up);
            return -1;
        }
    }
    snprintf(errstr, errstr_size, "'%s' is not an operation code (%s, e.g. LIBERTERRA-II)",
             op != NULL ? op : "", OPS_OPERATION_FORMAT);
    return -1;
}

bool ops_valid_country(const char *cc) {
    if (cc == NULL || !is_upper(cc[0]) || !is_upper(cc[1]) || cc[2] != '\0')
        return false;
    size_t lo = 0, hi = N_COUNTRY_CODES;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = memcmp(cc, country_codes[mid], 2);
        if (cmp == 0)
            return true;
        if (cmp < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return false;
}

/* Hex digit value + 1 (0: not a lower-case hex digit): the id check runs
 * once per consumed event. */
static const uint8_t hex1[256] = {
    ['0'] = 1, ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
};

int ops_uuid_raw(const char *s, uint8_t raw[16]) {
    static const uint8_t at[16] = {0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34};
    unsigned bad;

    if (s == NULL || strnlen(s, OPS_EVENT_ID_LEN + 1) != OPS_EVENT_ID_LEN)
        return -1;
    bad = s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-';
    for (size_t k = 0; k < 16; k++) {
        unsigned hi = hex1[(unsigned char)s[at[k]]], lo = hex1[(unsigned char)s[at[k] + 1]];
        bad |= hi == 0 || lo == 0;
        raw[k] = (uint8_t)((hi - 1) << 4 | (lo - 1));
    }
    return bad ? -1 : 0;
}

void ops_uuid_text(const uint8_t raw[16], char text[OPS_EVENT_ID_LEN + 1]) {
    static const char hex[] = "0123456789abcdef";
    size_t k = 0;

    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            text[k++] = '-';
        text[k++] = hex[raw[i] >> 4];
        text[k++] = hex[raw[i] & 15];
    }
    text[k] = '\0';
}

/* Canonical form only (lower-case 8-4-4-4-12), so an id compares equal as
 * a string wherever it is used as a key. Any version and variant. */
bool ops_valid_uuid(const char *s) {
    uint8_t raw[16];

    return ops_uuid_raw(s, raw) == 0;
}

/*
 * Writes s into buf as a double-quoted, escaped and shortened value, so that
 * an error message can name what was wrong without passing control bytes or
 * a whole oversized field through to a terminal or a rejects file. The
 * loop keeps room for the longest escape, "...", the quote and the NUL, so
 * bufsize must be at least 10.
 */
static const char *quote(const char *s, char *buf, size_t bufsize) {
    enum { SHOWN = 40 };
    size_t o = 0;
    buf[o++] = '"';
    size_t i = 0;
    for (; s[i] != '\0' && i < SHOWN && o + 9 <= bufsize; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\') {
            o += (size_t)snprintf(buf + o, bufsize - o, "\\x%02x", c);
        } else {
            buf[o++] = (char)c;
        }
    }
    if (s[i] != '\0') {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}

/* Writes "prefix: message" into errstr (when given), truncating safely. */
static void vprefixed(char *errstr, size_t errstr_size, const char *prefix, const char *fmt,
                      va_list ap) __attribute__((format(printf, 4, 0)));
static void vprefixed(char *errstr, size_t errstr_size, const char *prefix, const char *fmt,
                      va_list ap) {
    if (errstr == NULL || errstr_size == 0)
        return;
    int n = snprintf(errstr, errstr_size, "%s: ", prefix);
    if (n >= 0 && (size_t)n < errstr_size)
        vsnprintf(errstr + n, errstr_size - (size_t)n, fmt, ap);
}

static void vprefixed_args(char *errstr, size_t errstr_size, const char *prefix, const char *fmt,
                           ...) __attribute__((format(printf, 4, 5)));
static void vprefixed_args(char *errstr, size_t errstr_size, const char *prefix, const char *fmt,
                           ...) {
    va_list ap;
    va_start(ap, fmt);
    vprefixed(errstr, errstr_size, prefix, fmt, ap);
    va_end(ap);
}

/* Formats "field: reason" into errstr and reports the field. Returns -1 so
 * rule checks can end with `return fail(...)`. */
static int fail(const char **fieldp, char *errstr, size_t errstr_size, const char *field,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int fail(const char **fieldp, char *errstr, size_t errstr_size, const char *field,
                const char *fmt, ...) {
    va_list ap;
    if (fieldp != NULL)
        *fieldp = field;
    va_start(ap, fmt);
    vprefixed(errstr, errstr_size, field, fmt, ap);
    va_end(ap);
    return -1;
}

/* Length of s up to limit+1, so an unterminated or oversized field is
 * noticed without reading past the bound. */
static size_t bounded_len(const char *s, size_t limit) {
    size_t n = 0;
    while (n <= limit && s[n] != '\0')
        n++;
    return n;
}

static bool has_control_char(const char *s) {
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f)
            return true;
    }
    return false;
}

/* Avro field names of the kind-specific fields, as producers' columns are named. */
static const char *count_field(ops_kind_t kind) {
    static const char *const names[OPS_KIND_COUNT] = {"persons", "victims", "migrants", "items"};
    return names[kind];
}

static const char *nationalities_field(ops_kind_t kind) {
    static const char *const names[OPS_KIND_COUNT] = {
        "suspect_nationalities", "victim_nationalities", "nationalities", "nationalities"};
    return names[kind];
}

/* "1 day", "36 hours", "90 s": the future bound as an operator set it. */
static void format_span(int64_t ms, char *buf, size_t bufsize) {
    if (ms > 0 && ms % 86400000 == 0)
        snprintf(buf, bufsize, "%" PRId64 " day%s", ms / 86400000, ms == 86400000 ? "" : "s");
    else if (ms > 0 && ms % 3600000 == 0)
        snprintf(buf, bufsize, "%" PRId64 " hour%s", ms / 3600000, ms == 3600000 ? "" : "s");
    else
        snprintf(buf, bufsize, "%" PRId64 " s", ms / 1000);
}

/* Both event times share the same bounds; reported_at may precede
 * occurred_at because national systems export with their own lags and
 * corrections, and the counters only use occurred_at. The upper bound is
 * computed without overflow for any now_ms and any limit. */
static int check_time(const char *field, int64_t ms, const ops_event_limits_t *lim, int64_t now_ms,
                      const char **fieldp, char *errstr, size_t errstr_size) {
    char a[32], b[32], span[32];
    if (ms < lim->time_min_ms) {
        ops_validate_format_timestamp(ms, a, sizeof(a));
        ops_validate_format_timestamp(lim->time_min_ms, b, sizeof(b));
        return fail(fieldp, errstr, errstr_size, field, "%s (%" PRId64 ") is before %s", a, ms, b);
    }
    if (now_ms <= INT64_MAX - lim->time_max_future_ms && ms > now_ms + lim->time_max_future_ms) {
        ops_validate_format_timestamp(ms, a, sizeof(a));
        ops_validate_format_timestamp(now_ms, b, sizeof(b));
        format_span(lim->time_max_future_ms, span, sizeof(span));
        return fail(fieldp, errstr, errstr_size, field,
                    "%s (%" PRId64 ") is more than %s in the future (now is %s)", a, ms, span, b);
    }
    return 0;
}

static int check_strings(const ops_event_t *ev, const char **fieldp, char *errstr,
                         size_t errstr_size) {
    char q[128];
    if (!ops_valid_uuid(ev->event_id))
        return fail(fieldp, errstr, errstr_size, "event_id",
                    "%s is not a canonical lower-case UUID (8-4-4-4-12 hex)",
                    quote(ev->event_id, q, sizeof(q)));
    if (!ops_valid_operation(ev->operation))
        return fail(fieldp, errstr, errstr_size, "operation",
                    "%s is not an operation code (" OPS_OPERATION_FORMAT ")",
                    quote(ev->operation, q, sizeof(q)));
    if (!ops_valid_country(ev->country))
        return fail(fieldp, errstr, errstr_size, "country",
                    "%s is not an assigned ISO 3166-1 alpha-2 code",
                    quote(ev->country, q, sizeof(q)));

    size_t n = bounded_len(ev->source_ref, OPS_SOURCE_REF_MAX);
    if (n == 0)
        return fail(fieldp, errstr, errstr_size, "source_ref",
                    "is empty (the national record id is required)");
    if (n > OPS_SOURCE_REF_MAX)
        return fail(fieldp, errstr, errstr_size, "source_ref", "%s is longer than %d bytes",
                    quote(ev->source_ref, q, sizeof(q)), OPS_SOURCE_REF_MAX);
    if (has_control_char(ev->source_ref))
        return fail(fieldp, errstr, errstr_size, "source_ref", "%s contains a control character",
                    quote(ev->source_ref, q, sizeof(q)));
    if (ev->has_location) {
        if (bounded_len(ev->location, OPS_LOCATION_MAX) > OPS_LOCATION_MAX)
            return fail(fieldp, errstr, errstr_size, "location", "%s is longer than %d bytes",
                        quote(ev->location, q, sizeof(q)), OPS_LOCATION_MAX);
        if (has_control_char(ev->location))
            return fail(fieldp, errstr, errstr_size, "location", "%s contains a control character",
                        quote(ev->location, q, sizeof(q)));
    }
    return 0;
}

/* The kind's headline count, minors and referred, each bounded by the count. */
static int check_counts(const ops_event_t *ev, const char **fieldp, char *errstr,
                        size_t errstr_size) {
    const char *cf = count_field(ev->kind);
    if (ev->count < 1 || ev->count > OPS_COUNT_MAX)
        return fail(fieldp, errstr, errstr_size, cf, "%" PRId32 " is not in 1..%d", ev->count,
                    OPS_COUNT_MAX);
    bool has_minors = ev->kind == OPS_KIND_RESCUE || ev->kind == OPS_KIND_MIGRANT;
    if (!has_minors && ev->minors != 0)
        return fail(fieldp, errstr, errstr_size, "minors",
                    "%" PRId32 " given, but %s events carry none", ev->minors,
                    ops_kind_name(ev->kind));
    if (ev->minors < 0)
        return fail(fieldp, errstr, errstr_size, "minors", "%" PRId32 " is negative", ev->minors);
    if (ev->minors > ev->count)
        return fail(fieldp, errstr, errstr_size, "minors",
                    "%" PRId32 " is more than %s (%" PRId32 ")", ev->minors, cf, ev->count);
    if (ev->kind != OPS_KIND_RESCUE && ev->referred != 0)
        return fail(fieldp, errstr, errstr_size, "referred",
                    "%" PRId32 " given, but %s events carry none", ev->referred,
                    ops_kind_name(ev->kind));
    if (ev->referred < 0)
        return fail(fieldp, errstr, errstr_size, "referred", "%" PRId32 " is negative",
                    ev->referred);
    if (ev->referred > ev->count)
        return fail(fieldp, errstr, errstr_size, "referred",
                    "%" PRId32 " is more than %s (%" PRId32 ")", ev->referred, cf, ev->count);
    return 0;
}

/* Only the enums the kind carries on the wire are checked. */
static int check_enums(const ops_event_t *ev, const char **fieldp, char *errstr,
                       size_t errstr_size) {
    if (ev->kind == OPS_KIND_ARREST && ops_offence_name(ev->offence) == NULL)
        return fail(fieldp, errstr, errstr_size, "offence", "%d is not an offence symbol",
                    (int)ev->offence);
    if (ev->kind == OPS_KIND_RESCUE && ops_exploitation_name(ev->exploitation) == NULL)
        return fail(fieldp, errstr, errstr_size, "exploitation", "%d is not an exploitation symbol",
                    (int)ev->exploitation);
    if (ev->kind == OPS_KIND_RESCUE && ops_site_name(ev->site) == NULL)
        return fail(fieldp, errstr, errstr_size, "site", "%d is not a site symbol", (int)ev->site);
    if (ev->kind == OPS_KIND_SEIZURE && ops_category_name(ev->category) == NULL)
        return fail(fieldp, errstr, errstr_size, "category", "%d is not a category symbol",
                    (int)ev->category);
    return 0;
}

static int check_nationalities(const ops_event_t *ev, const char **fieldp, char *errstr,
                               size_t errstr_size) {
    const char *nf = nationalities_field(ev->kind);
    if (ev->kind == OPS_KIND_SEIZURE && ev->n_nationalities != 0)
        return fail(fieldp, errstr, errstr_size, nf,
                    "%" PRIu32 " given, but seizure events carry none", ev->n_nationalities);
    if (ev->n_nationalities > OPS_NATIONALITIES_MAX)
        return fail(fieldp, errstr, errstr_size, nf, "%" PRIu32 " entries, more than %d",
                    ev->n_nationalities, OPS_NATIONALITIES_MAX);
    for (uint32_t i = 0; i < ev->n_nationalities; i++) {
        char q[16];
        char cc[3] = {ev->nationalities[i][0], ev->nationalities[i][1], '\0'};
        if (ev->nationalities[i][2] != '\0' || !ops_valid_country(cc))
            return fail(fieldp, errstr, errstr_size, nf,
                        "entry %" PRIu32 " %s is not an assigned ISO 3166-1 alpha-2 code", i + 1,
                        quote(cc, q, sizeof(q)));
    }
    return 0;
}

void ops_event_limits_default(ops_event_limits_t *lim) {
    lim->time_min_ms = OPS_VALID_MIN_TIME_MS;
    lim->time_max_future_ms = OPS_VALID_MAX_FUTURE_MS;
}

int ops_event_limits_from_config(const ops_config_t *cfg, ops_event_limits_t *lim, char *errstr,
                                 size_t errstr_size) {
    char err[200], q[128];
    const char *min;
    int64_t ms;

    ops_event_limits_default(lim);
    if (cfg == NULL)
        return 0;
    min = ops_config_get(cfg, "opstream.event.time.min");
    if (min != NULL && min[0] != '\0') {
        if (ops_validate_parse_timestamp(min, &ms, err, sizeof(err)) != 0) {
            vprefixed_args(errstr, errstr_size, "opstream.event.time.min", "%s", err);
            return -1;
        }
        if (ms < 0) {
            vprefixed_args(errstr, errstr_size, "opstream.event.time.min",
                           "%s is before 1970-01-01", quote(min, q, sizeof(q)));
            return -1;
        }
        lim->time_min_ms = ms;
    }
    int64_t future_s = ops_config_get_int(cfg, "opstream.event.time.max.future.s");
    if (future_s < 0 || future_s > INT64_MAX / 1000) {
        vprefixed_args(errstr, errstr_size, "opstream.event.time.max.future.s",
                       "%" PRId64 " is out of range", future_s);
        return -1;
    }
    lim->time_max_future_ms = future_s * 1000;
    return 0;
}

/*
 * Checks the fields in schema order and reports the first rule broken, so a
 * national desk fixing its export sees one clear reason per record.
 */
int ops_validate_event_limits(const ops_event_t *ev, const ops_event_limits_t *lim, int64_t now_ms,
                              const char **fieldp, char *errstr, size_t errstr_size) {
    ops_event_limits_t def;

    if (lim == NULL) {
        ops_event_limits_default(&def);
        lim = &def;
    }
    if (fieldp != NULL)
        *fieldp = NULL;
    if (errstr != NULL && errstr_size > 0)
        errstr[0] = '\0';
    if (ev == NULL)
        return fail(fieldp, errstr, errstr_size, "event", "no event given");
    if (ops_kind_name(ev->kind) == NULL)
        return fail(fieldp, errstr, errstr_size, "kind", "%d is not an event kind", (int)ev->kind);
    if (check_strings(ev, fieldp, errstr, errstr_size) != 0 ||
        check_time("occurred_at", ev->occurred_at, lim, now_ms, fieldp, errstr, errstr_size) != 0 ||
        check_time("reported_at", ev->reported_at, lim, now_ms, fieldp, errstr, errstr_size) != 0 ||
        check_counts(ev, fieldp, errstr, errstr_size) != 0 ||
        check_enums(ev, fieldp, errstr, errstr_size) != 0 ||
        check_nationalities(ev, fieldp, errstr, errstr_size) != 0)
        return -1;
    return 0;
}

int ops_validate_event(const ops_event_t *ev, int64_t now_ms, const char **fieldp, char *errstr,
                       size_t errstr_size) {
    return ops_validate_event_limits(ev, NULL, now_ms, fieldp, errstr, errstr_size);
}

/* The consumers' form: the producer's message behind "invalid: ", the
 * class word opstream.error starts with (like "malformed" or "truncated"). */
int ops_event_validate(const ops_event_t *ev, const ops_event_limits_t *lim, int64_t now_ms,
                       char *errstr, size_t errstr_size) {
    char msg[400];

    if (ops_validate_event_limits(ev, lim, now_ms, NULL, msg, sizeof(msg)) == 0) {
        if (errstr != NULL && errstr_size > 0)
            errstr[0] = '\0';
        return 0;
    }
    if (errstr != NULL && errstr_size > 0)
        snprintf(errstr, errstr_size, "invalid: %s", msg);
    return -1;
}

/* The name is "operation\x1fcountry\x1fkind\x1fsource_ref"; the separator
 * cannot occur in a valid component, so distinct records get distinct names. */
void ops_event_id_derive(const char *operation, const char *country, ops_kind_t kind,
                         const char *source_ref, char out[OPS_EVENT_ID_LEN + 1]) {
    const char *parts[4] = {operation, country, ops_kind_name(kind), source_ref};
    ops_uuid5_derive(event_id_namespace, parts, 4, out);
}

/* ---- timestamps ---------------------------------------------------------- */

#define MS_PER_DAY 86400000LL

/*
 * Days since 1970-01-01 of a proleptic Gregorian date. Works in 400-year
 * eras (146097 days each) counted from March 1 so that the leap day falls at
 * the end of the year; pure arithmetic, no time zone, no libc.
 */
static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;                         /* 0..399 */
    int64_t mp = (m + 9) % 12;                           /* March = 0 */
    int64_t doy = (153 * mp + 2) / 5 + d - 1;            /* 0..365 */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; /* 0..146096 */
    return era * 146097 + doe - 719468;
}

/* The inverse of days_from_civil. */
static void civil_from_days(int64_t z, int64_t *yp, int *mp, int *dp) {
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mpp = (5 * doy + 2) / 153;
    int d = (int)(doy - (153 * mpp + 2) / 5 + 1);
    int m = (int)(mpp < 10 ? mpp + 3 : mpp - 9);
    *yp = yoe + era * 400 + (m <= 2);
    *mp = m;
    *dp = d;
}

static bool is_leap(int64_t y) {
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m) {
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* Reads exactly n digits at *pp into *vp and advances; false if any is not a digit. */
static bool read_digits(const char **pp, int n, int *vp) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit((*pp)[i]))
            return false;
        v = v * 10 + ((*pp)[i] - '0');
    }
    *pp += n;
    *vp = v;
    return true;
}

static int ts_fail(char *errstr, size_t errstr_size, const char *s, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int ts_fail(char *errstr, size_t errstr_size, const char *s, const char *fmt, ...) {
    char q[128];
    va_list ap;
    va_start(ap, fmt);
    vprefixed(errstr, errstr_size, quote(s, q, sizeof(q)), fmt, ap);
    va_end(ap);
    return -1;
}

/* All digits: milliseconds since the epoch, checked against int64 overflow. */
static int parse_epoch_ms(const char *s, int64_t *msp, char *errstr, size_t errstr_size) {
    int64_t v = 0;
    for (const char *p = s; *p != '\0'; p++) {
        int digit = *p - '0';
        if (v > (INT64_MAX - digit) / 10)
            return ts_fail(errstr, errstr_size, s, "epoch milliseconds out of range");
        v = v * 10 + digit;
    }
    *msp = v;
    return 0;
}

/* The zone suffix: Z, or an offset +hh:mm / +hhmm / -hh:mm / -hhmm, in minutes east of UTC. */
static int parse_zone(const char *s, const char *p, int *offset_minp, char *errstr,
                      size_t errstr_size) {
    if (*p == '\0')
        return ts_fail(errstr, errstr_size, s,
                       "no time zone: end with Z or an offset such as +02:00");
    if (*p == 'Z') {
        p++;
        *offset_minp = 0;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, hh, mm;
        p++;
        if (!read_digits(&p, 2, &hh))
            return ts_fail(errstr, errstr_size, s, "offset hours must be 2 digits");
        if (*p == ':')
            p++;
        if (!read_digits(&p, 2, &mm))
            return ts_fail(errstr, errstr_size, s, "offset minutes must be 2 digits");
        if (hh > 23 || mm > 59)
            return ts_fail(errstr, errstr_size, s, "offset %02d:%02d is out of range", hh, mm);
        *offset_minp = sign * (hh * 60 + mm);
    } else {
        return ts_fail(errstr, errstr_size, s, "unexpected '%c' where the time zone should be", *p);
    }
    if (*p != '\0')
        return ts_fail(errstr, errstr_size, s, "unexpected text after the time zone");
    return 0;
}

/*
 * ISO 8601 / RFC 3339 profile: YYYY-MM-DDTHH:MM[:SS[.fff]] followed by a
 * zone. Fractions beyond milliseconds are truncated. A zone is required:
 * a local time without one cannot be placed on the operation's timeline.
 */
int ops_validate_parse_timestamp(const char *s, int64_t *msp, char *errstr, size_t errstr_size) {
    if (s == NULL || *s == '\0')
        return ts_fail(errstr, errstr_size, "", "empty timestamp");

    bool all_digits = true;
    for (const char *p = s; *p != '\0'; p++)
        all_digits = all_digits && is_digit(*p);
    if (all_digits)
        return parse_epoch_ms(s, msp, errstr, errstr_size);
    if (s[0] == '-' && is_digit(s[1]) && strchr(s, 'T') == NULL)
        return ts_fail(errstr, errstr_size, s, "negative epoch milliseconds are not accepted");

    const char *p = s;
    int y, mo, d, h, mi, sec = 0, ms = 0;
    if (!read_digits(&p, 4, &y) || *p++ != '-' || !read_digits(&p, 2, &mo) || *p++ != '-' ||
        !read_digits(&p, 2, &d))
        return ts_fail(errstr, errstr_size, s,
                       "not a timestamp: expected YYYY-MM-DDTHH:MM:SSZ or epoch milliseconds");
    if (*p != 'T')
        return ts_fail(errstr, errstr_size, s, "expected 'T' between date and time");
    p++;
    if (!read_digits(&p, 2, &h) || *p++ != ':' || !read_digits(&p, 2, &mi))
        return ts_fail(errstr, errstr_size, s, "time must be HH:MM or HH:MM:SS");
    if (*p == ':') {
        p++;
        if (!read_digits(&p, 2, &sec))
            return ts_fail(errstr, errstr_size, s, "seconds must be 2 digits");
        if (*p == '.' || *p == ',') {
            p++;
            int nd = 0;
            for (; is_digit(*p); p++, nd++) {
                if (nd < 3)
                    ms = ms * 10 + (*p - '0');
            }
            if (nd == 0 || nd > 9)
                return ts_fail(errstr, errstr_size, s, "fraction of a second must be 1-9 digits");
            for (int i = nd; i < 3; i++)
                ms *= 10;
        }
    }
    if (mo < 1 || mo > 12)
        return ts_fail(errstr, errstr_size, s, "month %02d is not in 01..12", mo);
    if (d < 1 || d > days_in_month(y, mo))
        return ts_fail(errstr, errstr_size, s, "day %02d is not in %04d-%02d (01..%02d)", d, y, mo,
                       days_in_month(y, mo));
    if (h > 23)
        return ts_fail(errstr, errstr_size, s, "hour %02d is not in 00..23", h);
    if (mi > 59)
        return ts_fail(errstr, errstr_size, s, "minute %02d is not in 00..59", mi);
    if (sec > 59)
        return ts_fail(errstr, errstr_size, s, "second %02d is not in 00..59", sec);

    int offset_min = 0;
    if (parse_zone(s, p, &offset_min, errstr, errstr_size) != 0)
        return -1;

    int64_t days = days_from_civil(y, mo, d);
    *msp = days * MS_PER_DAY + ((int64_t)h * 3600 + mi * 60 + sec) * 1000 + ms -
           (int64_t)offset_min * 60000;
    return 0;
}

/* Floor division so instants before 1970 format as the right day and time. */
void ops_validate_format_timestamp(int64_t ms, char *buf, size_t bufsize) {
    if (buf == NULL || bufsize == 0)
        return;
    int64_t days = ms / MS_PER_DAY, rem = ms % MS_PER_DAY;
    if (rem < 0) {
        rem += MS_PER_DAY;
        days--;
    }
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    int64_t secs = rem / 1000;
    snprintf(buf, bufsize, "%04" PRId64 "-%02d-%02dT%02d:%02d:%02d.%03dZ", y, m, d,
             (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60), (int)(rem % 1000));
}
