/*
 * Helpers shared by the producer and simulator integration tests: run a
 * program to its end, read back every event of one operation from the four
 * event topics (decoded, as canonical JSON lines, sorted), and small text
 * utilities. Static functions, included by each test file.
 */
#ifndef OPSTREAM_TEST_PRODUCE_COMMON_H
#define OPSTREAM_TEST_PRODUCE_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "opstream/codec.h"
#include "opstream/event.h"
#include "opstream/record.h"

/* Not every test file uses every helper. */
#define TP_HELPER __attribute__((unused)) static

/* The embedded broker every test of a file shares; each test uses its own
 * operation code, so they do not see each other's events. */
static harness_broker_t *g_broker;

TP_HELPER int group_setup(void **state) {
    if (harness_group_setup(state) != 0)
        return -1;
    g_broker = harness_broker_start(NULL);
    return g_broker ? 0 : -1;
}

TP_HELPER int group_teardown(void **state) {
    harness_broker_free(g_broker);
    return harness_group_teardown(state);
}

/* A growable list of strings. */
typedef struct strlist {
    char **v;
    size_t n, cap;
} strlist_t;

TP_HELPER void strlist_add(strlist_t *l, const char *s, size_t len) {
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = realloc(l->v, l->cap * sizeof(*l->v));
    }
    l->v[l->n] = malloc(len + 1);
    memcpy(l->v[l->n], s, len);
    l->v[l->n][len] = '\0';
    l->n++;
}

TP_HELPER void strlist_free(strlist_t *l) {
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

TP_HELPER int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

TP_HELPER void strlist_sort(strlist_t *l) {
    if (l->n > 0)
        qsort(l->v, l->n, sizeof(*l->v), cmp_str);
}

/* The non-empty lines of a text. */
TP_HELPER void split_lines(const char *text, strlist_t *out) {
    const char *p = text;
    while (*p) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > 0)
            strlist_add(out, p, len);
        p += len + (end != NULL);
    }
}

/* Runs argv to its end (bounded by timeout_ms) and returns its exit code, or
 * -1 when it did not finish. *pp receives the process for its output; the
 * caller frees it. */
TP_HELPER int run_to_end(const char *const argv[], int timeout_ms, harness_proc_t **pp) {
    harness_proc_t *p = harness_spawn(argv, NULL, 0);
    if (p == NULL)
        return -1;
    *pp = p;
    if (harness_proc_wait(p, timeout_ms) != 0)
        return -1;
    return harness_proc_exit_code(p);
}

/* Every event of `operation` on the four event topics, each as the JSON
 * line ops_record_format_json gives, sorted. Checks on the way that every
 * message decodes and is keyed by its event's country. Returns 0 or -1. */
TP_HELPER int events_of_operation(const char *bootstrap, const char *operation, strlist_t *out,
                                  ops_event_t **evs, size_t *n_evs) {
    char err[256], line[OPS_RECORD_JSON_MAX], topic[64];
    ops_codec_t *codec = ops_codec_new(NULL, err, sizeof(err));
    int rc = 0;
    if (codec == NULL) {
        fprintf(stderr, "codec: %s\n", err);
        return -1;
    }
    if (evs != NULL) {
        *evs = NULL;
        *n_evs = 0;
    }
    for (int k = 0; k < OPS_KIND_COUNT && rc == 0; k++) {
        harness_msgs_t msgs = {0};
        ops_topic_name("opstream.", (ops_kind_t)k, topic, sizeof(topic));
        if (harness_consume_all(bootstrap, topic, 500, 60000, &msgs) != 0) {
            rc = -1;
            break;
        }
        for (size_t i = 0; i < msgs.n; i++) {
            ops_event_t ev;
            if (ops_codec_decode_event(codec, msgs.v[i].value, msgs.v[i].value_len, &ev, err,
                                       sizeof(err)) != OPS_CODEC_OK) {
                fprintf(stderr, "%s: undecodable message: %s\n", topic, err);
                rc = -1;
                break;
            }
            if (strcmp(ev.operation, operation) != 0)
                continue;
            if (msgs.v[i].key_len != 2 || memcmp(msgs.v[i].key, ev.country, 2) != 0) {
                fprintf(stderr, "%s: event %s not keyed by its country %s\n", topic, ev.event_id,
                        ev.country);
                rc = -1;
                break;
            }
            int len = ops_record_format_json(&ev, line, sizeof(line));
            strlist_add(out, line, (size_t)len);
            if (evs != NULL) {
                *evs = realloc(*evs, (*n_evs + 1) * sizeof(**evs));
                (*evs)[(*n_evs)++] = ev;
            }
        }
        harness_msgs_free(&msgs);
    }
    ops_codec_destroy(codec);
    strlist_sort(out);
    return rc;
}

/* The value of `"name":"...` in a JSON line (for source_ref, event_id). */
TP_HELPER void json_field(const char *line, const char *name, char *buf, size_t size) {
    char key[64];
    snprintf(key, sizeof(key), "\"%s\":\"", name);
    const char *p = strstr(line, key);
    buf[0] = '\0';
    if (p == NULL)
        return;
    p += strlen(key);
    size_t n = strcspn(p, "\"");
    if (n >= size)
        n = size - 1;
    memcpy(buf, p, n);
    buf[n] = '\0';
}

/* Parses the producer's summary "read R, delivered D, rejected J, failed F". */
TP_HELPER int parse_summary(const char *err, long long *r, long long *d, long long *j,
                            long long *f) {
    const char *p = strstr(err, "read ");
    while (p != NULL) {
        if (sscanf(p, "read %lld, delivered %lld, rejected %lld, failed %lld", r, d, j, f) == 4)
            return 0;
        p = strstr(p + 1, "read ");
    }
    return -1;
}

#endif
