/*
 * A real Prometheus (Debian's prometheus package) for integration tests:
 * started in the test's temp dir on a free loopback port with its own TSDB
 * directory and a scrape config of the given targets at a short interval,
 * queried through its HTTP API (/api/v1/query). Static functions, included
 * by the tests that use them.
 */
#ifndef OPSTREAM_TEST_PROMETHEUS_SERVER_H
#define OPSTREAM_TEST_PROMETHEUS_SERVER_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "http_client.h"

#define PS_HELPER __attribute__((unused)) static

typedef struct prom_server {
    harness_proc_t *proc;
    int port;
    char dir[HARNESS_PATH_MAX];
} prom_server_t;

static int ps_free_port(void) {
    struct sockaddr_in a = {0};
    socklen_t alen = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;
    if (fd < 0)
        return -1;
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static bool ps_ready(void *arg) {
    prom_server_t *s = arg;
    http_answer_t a;
    bool ok = http_request(s->port, "GET", "/-/ready", &a) == 0 && a.status == 200;
    http_answer_free(&a);
    return ok || !harness_proc_running(s->proc);
}

/* Starts prometheus scraping each "JOB=HOST:PORT" of targets (NULL-
 * terminated) every second; waits until it is ready. NULL on failure (the
 * reason on stderr). */
PS_HELPER prom_server_t *ps_start(const char *const *targets) {
    prom_server_t *s = calloc(1, sizeof(*s));
    char cfg[HARNESS_PATH_MAX + 16], data[HARNESS_PATH_MAX + 8], text[8192], listen[64];
    size_t n = 0;
    if (!s || harness_init() != 0)
        goto fail;
    if (system("command -v prometheus >/dev/null 2>&1") != 0) {
        fprintf(stderr, "prometheus is missing: Debian's prometheus package is a test "
                        "dependency (make test-deps)\n");
        goto fail;
    }
    static int started;
    char name[32];
    snprintf(name, sizeof name, "prometheus-%d", ++started);
    harness_path(s->dir, sizeof s->dir, name);
    snprintf(data, sizeof data, "%s/data", s->dir);
    snprintf(cfg, sizeof cfg, "%s/prometheus.yml", s->dir);
    if (mkdir(s->dir, 0755) != 0)
        goto fail;
    n += (size_t)snprintf(text + n, sizeof text - n,
                          "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                          "  evaluation_interval: 1s\nscrape_configs:\n");
    for (; *targets; targets++) {
        const char *eq = strchr(*targets, '=');
        if (!eq)
            goto fail;
        n += (size_t)snprintf(text + n, sizeof text - n,
                              "  - job_name: %.*s\n    static_configs:\n"
                              "      - targets: [\"%s\"]\n",
                              (int)(eq - *targets), *targets, eq + 1);
    }
    if (harness_write_file(cfg, text, n) != 0)
        goto fail;
    for (int attempt = 0; attempt < 3; attempt++) {
        char cfg_opt[HARNESS_PATH_MAX + 32], data_opt[HARNESS_PATH_MAX + 40];
        s->port = ps_free_port();
        snprintf(listen, sizeof listen, "--web.listen-address=127.0.0.1:%d", s->port);
        snprintf(cfg_opt, sizeof cfg_opt, "--config.file=%s", cfg);
        snprintf(data_opt, sizeof data_opt, "--storage.tsdb.path=%s", data);
        const char *argv[] = {"prometheus", cfg_opt, data_opt, listen, "--log.level=warn", NULL};
        s->proc = harness_spawn(argv, NULL, 0);
        if (!s->proc)
            goto fail;
        if (harness_wait_until(ps_ready, s, 30000) == 0 && harness_proc_running(s->proc))
            return s;
        /* the port was taken in between: try another */
        harness_proc_free(s->proc);
        s->proc = NULL;
    }
fail:
    fprintf(stderr, "harness: prometheus failed to start\n");
    if (s)
        harness_proc_free(s->proc);
    free(s);
    return NULL;
}

PS_HELPER void ps_free(prom_server_t *s) {
    if (!s)
        return;
    if (s->proc)
        harness_proc_stop(s->proc, 15000);
    harness_proc_free(s->proc);
    free(s);
}

static void ps_urlencode(const char *in, char *out, size_t size) {
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *in && o + 4 < size; in++) {
        unsigned char c = (unsigned char)*in;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
}

/* Runs an instant query; returns the JSON answer (caller frees) or NULL. */
PS_HELPER char *ps_query_json(prom_server_t *s, const char *promql) {
    char enc[4096], path[4200];
    http_answer_t a;
    ps_urlencode(promql, enc, sizeof enc);
    snprintf(path, sizeof path, "/api/v1/query?query=%s", enc);
    if (http_request(s->port, "GET", path, &a) != 0) {
        http_answer_free(&a);
        return NULL;
    }
    char *body = a.body;
    a.body = NULL;
    http_answer_free(&a);
    return body;
}

/* Runs an instant query whose answer is a vector; returns the number of
 * samples and the sum of their values in *sum. -1 when the query failed. */
PS_HELPER int ps_query(prom_server_t *s, const char *promql, double *sum) {
    char *json = ps_query_json(s, promql);
    int n = 0;
    *sum = 0;
    if (!json || !strstr(json, "\"status\":\"success\"")) {
        fprintf(stderr, "query %s: %s\n", promql, json ? json : "(no answer)");
        free(json);
        return -1;
    }
    /* "value":[<time>,"<value>"] per sample */
    for (const char *p = strstr(json, "\"value\":["); p; p = strstr(p + 1, "\"value\":[")) {
        const char *q = strstr(p, ",\"");
        if (!q)
            break;
        *sum += strtod(q + 2, NULL);
        n++;
    }
    free(json);
    return n;
}

#endif
