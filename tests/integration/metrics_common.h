/*
 * Helpers for tests of the programs' metrics endpoints: find the address a
 * program printed ("PROGRAM: metrics on http://HOST:PORT/metrics"), read one
 * sample or a status over HTTP, wait for a sample to reach a value. Static
 * functions, included by the tests that use them.
 */
#ifndef OPSTREAM_TEST_METRICS_COMMON_H
#define OPSTREAM_TEST_METRICS_COMMON_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "http_client.h"

#define MC_HELPER __attribute__((unused)) static

typedef struct mc_port_wait {
    harness_proc_t *p;
    int port;
} mc_port_wait_t;

static bool mc_port_printed(void *arg) {
    mc_port_wait_t *w = arg;
    char *err = harness_proc_stderr(w->p);
    const char *at = err ? strstr(err, ": metrics on http://") : NULL;
    if (at) {
        const char *colon = strchr(at + strlen(": metrics on http://"), ':');
        if (colon)
            w->port = atoi(colon + 1);
    }
    free(err);
    return w->port > 0 || !harness_proc_running(w->p);
}

/* The port a program serves its metrics on (it was started with --metrics
 * 127.0.0.1:0), or -1. */
MC_HELPER int mc_port(harness_proc_t *p, int timeout_ms) {
    mc_port_wait_t w = {p, -1};
    if (harness_wait_until(mc_port_printed, &w, timeout_ms) != 0 || w.port <= 0) {
        char *err = harness_proc_stderr(p);
        fprintf(stderr, "no metrics address printed; stderr:\n%s\n", err ? err : "");
        free(err);
        return -1;
    }
    return w.port;
}

/* The value of one sample ("name" or "name{labels}") now; -1 when absent
 * or the endpoint does not answer. */
MC_HELPER double mc_sample(int port, const char *series) {
    http_answer_t a;
    double v = -1;
    if (http_request(port, "GET", "/metrics", &a) == 0 && a.status == 200 && a.body)
        v = http_sample(a.body, series);
    http_answer_free(&a);
    return v;
}

/* The status of GET path, or -1. */
MC_HELPER int mc_status(int port, const char *path) {
    http_answer_t a;
    int st = http_request(port, "GET", path, &a) == 0 ? a.status : -1;
    http_answer_free(&a);
    return st;
}

typedef struct mc_sample_wait {
    int port;
    const char *series;
    double at_least;
    double last;
} mc_sample_wait_t;

static bool mc_sample_reached(void *arg) {
    mc_sample_wait_t *w = arg;
    w->last = mc_sample(w->port, w->series);
    return w->last >= w->at_least;
}

/* Waits until the sample is at least `at_least`; returns its value then,
 * or what it was at the deadline (with a line on stderr). */
MC_HELPER double mc_wait_sample(int port, const char *series, double at_least, int timeout_ms) {
    mc_sample_wait_t w = {port, series, at_least, -1};
    if (harness_wait_until(mc_sample_reached, &w, timeout_ms) != 0)
        fprintf(stderr, "%s stayed at %g (wanted at least %g)\n", series, w.last, at_least);
    return w.last;
}

typedef struct mc_status_wait {
    int port;
    const char *path;
    int status;
} mc_status_wait_t;

static bool mc_status_is(void *arg) {
    mc_status_wait_t *w = arg;
    return mc_status(w->port, w->path) == w->status;
}

/* Waits until GET path answers status. 0, or -1 at the deadline. */
MC_HELPER int mc_wait_status(int port, const char *path, int status, int timeout_ms) {
    mc_status_wait_t w = {port, path, status};
    return harness_wait_until(mc_status_is, &w, timeout_ms);
}

/* opstream-simulate producing operation op at 200 events/s (for longer
 * than a test waits) with its metrics on a free port, *port (-1 when it
 * printed none). NULL when it cannot be started. */
MC_HELPER harness_proc_t *mc_spawn_simulate(const char *bootstrap, const char *op, int *port) {
    const char *argv[] = {"opstream-simulate",
                          "-b",
                          bootstrap,
                          "--operation",
                          op,
                          "--rate",
                          "200",
                          "--events",
                          "1000000",
                          "--metrics",
                          "127.0.0.1:0",
                          NULL};
    harness_proc_t *p = harness_spawn(argv, NULL, 0);
    *port = p != NULL ? mc_port(p, 15000) : -1;
    return p;
}

#endif
