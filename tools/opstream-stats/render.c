/*
 * opstream-stats output: a table for people (totals, rolling windows,
 * countries largest first, latest alerts) and one JSON object for machines.
 */
#include "render.h"

#include <stdlib.h>
#include <string.h>

#include "opstream/json.h"
#include "opstream/validate.h"

/* Column heads, 9 characters at most: a row is 80 columns. */
static const char *const short_names[OPS_METRIC_COUNT] = {
    "arrests", "victims", "minor vic", "migrants", "minor mig", "seized", "events"};

static void row(FILE *out, const char *label, const int64_t m[OPS_METRIC_COUNT]) {
    fprintf(out, "%-10s", label);
    for (int k = 0; k < OPS_METRIC_COUNT; k++)
        fprintf(out, " %9lld", (long long)m[k]);
    fputc('\n', out);
}

static void header(FILE *out, const char *first) {
    fprintf(out, "%-10s", first);
    for (int k = 0; k < OPS_METRIC_COUNT; k++)
        fprintf(out, " %9s", short_names[k]);
    fputc('\n', out);
}

void render_text(FILE *out, const ops_stats_t *s, int window, int rows) {
    char ts[32];
    int n_windows = window >= 0 ? 1 : OPS_STATS_WINDOW_COUNT;
    size_t n_alerts = s->n_alerts, n_countries = s->n_countries, more = 0;

    if (rows > 0) {
        /* title, blank, header, total, windows; then the alerts (blank,
         * title, one line each); the countries take what is left (blank,
         * header, rows, and "... N more" when cut). */
        int fixed = 4 + n_windows;
        int room = rows - fixed - 2 - (int)n_alerts;
        while (room < 3 && n_countries > 0 && n_alerts > 0) {
            n_alerts--;
            room++;
        }
        if (n_countries > 0 && (int)n_countries + 2 > room) {
            size_t fit = room > 3 ? (size_t)(room - 3) : 0;
            more = n_countries - fit;
            n_countries = fit;
        }
    }
    ops_validate_format_timestamp(s->now_ms, ts, sizeof ts);
    fprintf(out, "%s%s%s  at %s\n\n", s->operation, s->country[0] ? " / " : "", s->country, ts);
    header(out, "");
    row(out, "total", s->total);
    for (int w = 0; w < OPS_STATS_WINDOW_COUNT; w++) {
        char label[16];
        if (window >= 0 && w != window)
            continue;
        snprintf(label, sizeof label, "last %s", ops_stats_window_name((ops_stats_window_id_t)w));
        row(out, label, s->window[w]);
    }
    if (s->n_countries > 0 && (n_countries > 0 || more == 0)) {
        fprintf(out, "\n");
        header(out, "country");
        for (size_t i = 0; i < n_countries; i++)
            row(out, s->countries[i].cc, s->countries[i].m);
    }
    if (more > 0)
        fprintf(out, "%s\u2026 %zu more %s\n", n_countries > 0 ? "" : "\n", more,
                more == 1 ? "country" : "countries");
    fprintf(out, "\nlatest alerts:%s\n", s->n_alerts ? "" : " none");
    for (size_t i = 0; i < n_alerts; i++) {
        const ops_stats_alert_t *a = &s->alerts[i];
        ops_validate_format_timestamp(a->raised_at, ts, sizeof ts);
        fprintf(out, "  %s  %-8s %-2s %s: %s\n", ts, a->severity, a->country[0] ? a->country : "--",
                a->rule, a->summary);
    }
}

/* A JSON string literal (the library's one writer); null when out of memory. */
static void jstr(FILE *out, const char *s) {
    char *q = ops_json_quote(s);
    fputs(q != NULL ? q : "null", out);
    free(q);
}

static void jmetrics(FILE *out, const int64_t m[OPS_METRIC_COUNT]) {
    fputc('{', out);
    for (int k = 0; k < OPS_METRIC_COUNT; k++)
        fprintf(out, "%s\"%s\":%lld", k ? "," : "", ops_metric_name((ops_metric_t)k),
                (long long)m[k]);
    fputc('}', out);
}

void render_json(FILE *out, const ops_stats_t *s, int window) {
    char ts[32];
    int first = 1;

    ops_validate_format_timestamp(s->now_ms, ts, sizeof ts);
    fputs("{\"operation\":", out);
    jstr(out, s->operation);
    fputs(",\"country\":", out);
    if (s->country[0])
        jstr(out, s->country);
    else
        fputs("null", out);
    fputs(",\"at\":", out);
    jstr(out, ts);
    fputs(",\"total\":", out);
    jmetrics(out, s->total);
    fputs(",\"windows\":{", out);
    for (int w = 0; w < OPS_STATS_WINDOW_COUNT; w++) {
        if (window >= 0 && w != window)
            continue;
        fprintf(out, "%s\"%s\":", first ? "" : ",",
                ops_stats_window_name((ops_stats_window_id_t)w));
        jmetrics(out, s->window[w]);
        first = 0;
    }
    fputs("},\"countries\":[", out);
    for (size_t i = 0; i < s->n_countries; i++) {
        fprintf(out, "%s{\"country\":", i ? "," : "");
        jstr(out, s->countries[i].cc);
        fputs(",\"metrics\":", out);
        jmetrics(out, s->countries[i].m);
        fputc('}', out);
    }
    fputs("],\"alerts\":[", out);
    for (size_t i = 0; i < s->n_alerts; i++) {
        const ops_stats_alert_t *a = &s->alerts[i];
        ops_validate_format_timestamp(a->raised_at, ts, sizeof ts);
        fprintf(out, "%s{\"alert_id\":", i ? "," : "");
        jstr(out, a->id);
        fputs(",\"severity\":", out);
        jstr(out, a->severity);
        fputs(",\"country\":", out);
        if (a->country[0])
            jstr(out, a->country);
        else
            fputs("null", out);
        fputs(",\"rule\":", out);
        jstr(out, a->rule);
        fputs(",\"summary\":", out);
        jstr(out, a->summary);
        fputs(",\"raised_at\":", out);
        jstr(out, ts);
        fputc('}', out);
    }
    fputs("]}\n", out);
}

void render_list(FILE *out, char **ops, size_t n, bool json) {
    if (!json) {
        for (size_t i = 0; i < n; i++)
            fprintf(out, "%s\n", ops[i]);
        return;
    }
    fputc('[', out);
    for (size_t i = 0; i < n; i++) {
        if (i)
            fputc(',', out);
        jstr(out, ops[i]);
    }
    fputs("]\n", out);
}
