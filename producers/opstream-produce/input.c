/*
 * opstream-produce input: reads each CSV or JSON Lines input as a stream,
 * turns every record into an event through the core's record mapping, and
 * either sends it or reports it ("FILE:LINE: field: reason") and copies it
 * verbatim to the rejects file.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "opstream/csv.h"
#include "opstream/jsonl.h"
#include "opstream/clock.h"
#include "produce.h"

const char *prod_input_name(const char *path) {
    return strcmp(path, "-") == 0 ? "stdin" : path;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static input_format_t format_of(const prod_opts_t *o, const char *path) {
    if (o->format != FORMAT_AUTO)
        return o->format;
    if (ends_with(path, ".csv") || ends_with(path, ".CSV"))
        return FORMAT_CSV;
    if (ends_with(path, ".jsonl") || ends_with(path, ".ndjson") || ends_with(path, ".JSONL"))
        return FORMAT_JSONL;
    return FORMAT_AUTO;
}

void prod_progress_clear(prod_run_t *run) {
    if (run->progress_shown) {
        fputs("\r\033[K", stderr);
        run->progress_shown = 0;
    }
}

/* One line, rewritten in place at most once a second. */
void prod_progress(prod_run_t *run, int force) {
    ops_produce_stats_t st = {0};
    int64_t now;
    if (!run->ready && run->producer != NULL && ops_produce_reached_broker(run->producer)) {
        ops_health_set_ready(run->obs.health, NULL); /* /readyz */
        run->ready = 1;
    }
    if (run->o->progress != 1)
        return;
    now = ops_clock_mono_ms();
    if (!force && now - run->progress_at < 1000)
        return;
    run->progress_at = now;
    if (run->producer != NULL)
        ops_produce_stats(run->producer, &st);
    fprintf(stderr, "\r\033[Kread %llu, delivered %llu, rejected %llu, failed %llu",
            (unsigned long long)run->read, (unsigned long long)st.delivered,
            (unsigned long long)run->rejected, (unsigned long long)st.failed);
    fflush(stderr);
    run->progress_shown = 1;
}

/* Per-input state: the CSV header (to map columns and to copy before the
 * first rejected row) and the reusable parsers. */
typedef struct input {
    const char *name;
    int map[OPS_CSV_FIELDS_MAX];
    size_t n_cols;
    char *header_raw;
    size_t header_len;
} input_t;

static void write_reject(prod_run_t *run, input_t *in, const char *raw, size_t len, int truncated) {
    if (run->rejects == NULL)
        return;
    if (truncated) {
        fprintf(stderr, "%s: (record too long to copy to %s)\n", in->name, run->o->rejects);
        return;
    }
    if (in->header_raw != NULL && run->rejects_header_of != in->name) {
        fwrite(in->header_raw, 1, in->header_len, run->rejects);
        if (in->header_len == 0 || in->header_raw[in->header_len - 1] != '\n')
            fputc('\n', run->rejects);
        run->rejects_header_of = in->name;
    }
    fwrite(raw, 1, len, run->rejects);
    if (len == 0 || raw[len - 1] != '\n')
        fputc('\n', run->rejects);
    fflush(run->rejects);
}

static void reject(prod_run_t *run, input_t *in, long line, const char *why, const char *raw,
                   size_t len, int truncated) {
    run->rejected++;
    ops_metrics_add(run->rejected_total, 1);
    prod_progress_clear(run);
    fprintf(stderr, "%s:%ld: %s\n", in->name, line, why);
    write_reject(run, in, raw, len, truncated);
}

/* Builds the event and sends it (or, in a dry run, only counts it). */
static void handle(prod_run_t *run, input_t *in, long line, const ops_record_t *rec,
                   const char *raw, size_t len, int truncated) {
    ops_record_defaults_t d = {run->o->operation, run->o->country, run->o->kind, run->now_ms,
                               &run->limits};
    ops_event_t ev;
    char err[512];

    if (ops_record_build(rec, &d, &ev, NULL, err, sizeof(err)) != 0) {
        reject(run, in, line, err, raw, len, truncated);
        return;
    }
    run->valid++;
    if (run->producer != NULL)
        (void)ops_produce_send(run->producer, &ev, in->name, line, err, sizeof(err));
    /* a send that failed was reported through the producer's on_failed */
    prod_progress(run, 0);
}

static FILE *open_input(const char *path) {
    FILE *fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (fp == NULL)
        fprintf(stderr, "opstream-produce: cannot open %s: %s\n", path, strerror(errno));
    return fp;
}

/* Reads the header row and maps it. Returns 1 with a header, 0 for an empty
 * input, -1 on an error (reported). */
static int read_header(ops_csv_t *csv, input_t *in) {
    char err[512];
    const char *names[OPS_CSV_FIELDS_MAX];
    int st = ops_csv_next(csv, err, sizeof(err));
    if (st == OPS_CSV_EOF)
        return 0;
    if (st != OPS_CSV_RECORD) {
        fprintf(stderr, "%s:%ld: header: %s\n", in->name, ops_csv_line(csv),
                st == OPS_CSV_IO ? strerror(errno) : err);
        return -1;
    }
    in->n_cols = ops_csv_nfields(csv);
    for (size_t i = 0; i < in->n_cols; i++)
        names[i] = ops_csv_field(csv, i);
    if (ops_record_map_header(names, in->n_cols, in->map, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s:%ld: header: %s\n", in->name, ops_csv_line(csv), err);
        return -1;
    }
    size_t len;
    const char *raw = ops_csv_raw(csv, &len, NULL);
    in->header_raw = malloc(len ? len : 1);
    if (in->header_raw == NULL) {
        fprintf(stderr, "%s: out of memory\n", in->name);
        return -1;
    }
    memcpy(in->header_raw, raw, len);
    in->header_len = len;
    return 1;
}

int prod_check_headers(const prod_opts_t *o) {
    int rc = 0;
    for (int i = 0; i < o->n_files; i++) {
        const char *path = o->files[i];
        input_format_t fmt = format_of(o, path);
        if (fmt == FORMAT_AUTO) {
            fprintf(stderr,
                    "opstream-produce: %s: cannot tell the format from the name; use --format "
                    "csv|jsonl\n",
                    prod_input_name(path));
            rc = -1;
            continue;
        }
        if (strcmp(path, "-") == 0)
            continue; /* checked when read */
        FILE *fp = open_input(path);
        if (fp == NULL) {
            rc = -1;
            continue;
        }
        if (fmt == FORMAT_CSV) {
            input_t in = {.name = path};
            ops_csv_t *csv = ops_csv_new(fp, 0);
            if (csv == NULL || read_header(csv, &in) < 0)
                rc = -1;
            free(in.header_raw);
            ops_csv_destroy(csv);
        }
        fclose(fp);
    }
    return rc;
}

static void stopped_at(prod_run_t *run, const char *name, long line) {
    run->stopped_at_file = name;
    run->stopped_at_line = line;
}

static int run_csv(prod_run_t *run, FILE *fp, input_t *in) {
    char err[512], why[600];
    ops_record_t rec;
    int rc = 0;
    ops_csv_t *csv = ops_csv_new(fp, 0);
    if (csv == NULL) {
        fprintf(stderr, "%s: out of memory\n", in->name);
        return -1;
    }
    int h = read_header(csv, in);
    if (h <= 0) {
        rc = h;
        goto cleanup;
    }
    for (;;) {
        if (*run->stop) {
            stopped_at(run, in->name, ops_csv_line(csv) + 1);
            break;
        }
        int st = ops_csv_next(csv, err, sizeof(err));
        if (st == OPS_CSV_EOF)
            break;
        if (st == OPS_CSV_IO) {
            if (*run->stop) {
                stopped_at(run, in->name, ops_csv_line(csv));
                break;
            }
            fprintf(stderr, "%s: read error: %s\n", in->name, strerror(errno));
            rc = -1;
            break;
        }
        size_t len;
        int truncated;
        const char *raw = ops_csv_raw(csv, &len, &truncated);
        long line = ops_csv_line(csv);
        run->read++;
        if (st == OPS_CSV_BAD) {
            reject(run, in, line, err, raw, len, truncated);
            continue;
        }
        size_t n = ops_csv_nfields(csv);
        /* Spreadsheets add empty cells past the last column: those are
         * ignored; a value there has no column and is an error. */
        while (n > in->n_cols && ops_csv_field(csv, n - 1)[0] == '\0')
            n--;
        if (n > in->n_cols) {
            size_t first = in->n_cols;
            while (ops_csv_field(csv, first)[0] == '\0')
                first++;
            snprintf(why, sizeof(why),
                     "field %zu (\"%.40s\") is past the header's %zu columns (only empty cells "
                     "may follow the last column)",
                     first + 1, ops_csv_field(csv, first), in->n_cols);
            reject(run, in, line, why, raw, len, truncated);
            continue;
        }
        if (n != in->n_cols) {
            snprintf(why, sizeof(why), "record has %zu fields, the header has %zu", n, in->n_cols);
            reject(run, in, line, why, raw, len, truncated);
            continue;
        }
        ops_record_clear(&rec);
        for (size_t i = 0; i < n; i++) {
            const char *v = ops_csv_field(csv, i);
            if (v[0] == '\0')
                continue; /* an empty cell is an absent value */
            rec.v[in->map[i]].type = OPS_VALUE_TEXT;
            rec.v[in->map[i]].text = v;
        }
        handle(run, in, line, &rec, raw, len, truncated);
    }
cleanup:
    ops_csv_destroy(csv);
    return rc;
}

static int blank(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return 0;
    return 1;
}

static int run_jsonl(prod_run_t *run, FILE *fp, input_t *in) {
    char err[512], why[600];
    ops_record_t rec;
    int rc = 0;
    ops_lines_t *lines = ops_lines_new(fp, 0);
    ops_json_t *json = ops_json_new();
    if (lines == NULL || json == NULL) {
        fprintf(stderr, "%s: out of memory\n", in->name);
        rc = -1;
        goto cleanup;
    }
    for (;;) {
        const char *line;
        size_t len, rawlen;
        int truncated = 0;
        if (*run->stop) {
            stopped_at(run, in->name, ops_lines_number(lines) + 1);
            break;
        }
        int st = ops_lines_next(lines, &line, &len, &rawlen, &truncated);
        if (st == 0)
            break;
        if (st < 0) {
            if (*run->stop) {
                stopped_at(run, in->name, ops_lines_number(lines) + 1);
                break;
            }
            fprintf(stderr, "%s: read error: %s\n", in->name, strerror(errno));
            rc = -1;
            break;
        }
        long no = ops_lines_number(lines);
        if (blank(line, len))
            continue;
        run->read++;
        if (truncated) {
            snprintf(why, sizeof(why), "line is longer than %d bytes", OPS_LINE_MAX_DEFAULT);
            reject(run, in, no, why, line, rawlen, truncated);
            continue;
        }
        if (ops_json_parse(json, line, len, err, sizeof(err)) != 0 ||
            ops_record_from_json(&rec, json, NULL, err, sizeof(err)) != 0) {
            reject(run, in, no, err, line, rawlen, 0);
            continue;
        }
        handle(run, in, no, &rec, line, rawlen, 0);
    }
cleanup:
    ops_json_destroy(json);
    ops_lines_destroy(lines);
    return rc;
}

int prod_run_input(prod_run_t *run, const char *path) {
    input_t in = {.name = prod_input_name(path)};
    int rc;
    input_format_t fmt = format_of(run->o, path);
    if (fmt == FORMAT_AUTO) {
        fprintf(stderr, "opstream-produce: %s: give --format csv|jsonl\n", in.name);
        return -1;
    }
    FILE *fp = open_input(path);
    if (fp == NULL)
        return -1;
    rc = fmt == FORMAT_CSV ? run_csv(run, fp, &in) : run_jsonl(run, fp, &in);
    if (fp != stdin)
        fclose(fp);
    free(in.header_raw);
    return rc;
}
