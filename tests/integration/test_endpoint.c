/*
 * The metrics endpoint over real sockets (lib/endpoint.c on libmicrohttpd):
 * GET /metrics serves the registry's text with the 0.0.4 content type,
 * /healthz and /readyz answer 200 or 503 with the reason, any other method
 * is 405 and any other path 404, a GET with a body and an oversized request
 * are refused while the endpoint keeps serving, and a busy or invalid
 * address fails at start with the reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"
#include "http_client.h"
#include "opstream/endpoint.h"

typedef struct fixture {
    ops_metrics_t *reg;
    ops_health_t *health;
    ops_endpoint_t *ep;
    ops_metrics_series_t *served;
} fixture_t;

static int setup(void **state) {
    static fixture_t f;
    char err[256];
    ops_endpoint_options_t eo = {.listen = "127.0.0.1:0"};

    if (harness_init() != 0)
        return -1;
    memset(&f, 0, sizeof f);
    f.reg = ops_metrics_new();
    f.health = ops_health_new(0);
    f.served = ops_metrics_counter(f.reg, "test_served_total", "Requests.", err, sizeof err);
    eo.metrics = f.reg;
    eo.health = f.health;
    f.ep = ops_endpoint_start(&eo, err, sizeof err);
    if (!f.ep) {
        fprintf(stderr, "endpoint: %s\n", err);
        return -1;
    }
    *state = &f;
    return 0;
}

static int teardown(void **state) {
    fixture_t *f = *state;
    ops_endpoint_stop(f->ep);
    ops_health_destroy(f->health);
    ops_metrics_destroy(f->reg);
    harness_cleanup();
    return 0;
}

static void get_metrics_serves_the_registry_as_text_format_0_0_4(void **state) {
    fixture_t *f = *state;
    http_answer_t a;
    ops_metrics_add(f->served, 7);
    assert_true(ops_endpoint_port(f->ep) > 0);
    assert_int_equal(http_request(ops_endpoint_port(f->ep), "GET", "/metrics", &a), 0);
    assert_int_equal(a.status, 200);
    assert_non_null(strstr(a.head, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8"));
    assert_string_equal(a.body, "# HELP test_served_total Requests.\n"
                                "# TYPE test_served_total counter\n"
                                "test_served_total 7\n");
    http_answer_free(&a);
    /* A query string is not part of the path. */
    assert_int_equal(http_request(ops_endpoint_port(f->ep), "GET", "/metrics?x=1", &a), 0);
    assert_int_equal(a.status, 200);
    http_answer_free(&a);
}

static void health_and_readiness_answer_503_with_the_reason(void **state) {
    fixture_t *f = *state;
    int port = ops_endpoint_port(f->ep);
    http_answer_t a;

    assert_int_equal(http_request(port, "GET", "/healthz", &a), 0);
    assert_int_equal(a.status, 200);
    assert_string_equal(a.body, "ok\n");
    http_answer_free(&a);
    assert_int_equal(http_request(port, "GET", "/readyz", &a), 0);
    assert_int_equal(a.status, 503);
    assert_string_equal(a.body, "not ready: starting\n");
    http_answer_free(&a);
    ops_health_set_ready(f->health, "Redis unreachable: Connection refused");
    assert_int_equal(http_request(port, "GET", "/readyz", &a), 0);
    assert_int_equal(a.status, 503);
    assert_string_equal(a.body, "not ready: Redis unreachable: Connection refused\n");
    http_answer_free(&a);
    ops_health_set_ready(f->health, NULL);
    assert_int_equal(http_request(port, "GET", "/readyz", &a), 0);
    assert_int_equal(a.status, 200);
    assert_string_equal(a.body, "ready\n");
    http_answer_free(&a);
}

static void only_get_of_known_paths_is_served(void **state) {
    fixture_t *f = *state;
    int port = ops_endpoint_port(f->ep);
    static const struct {
        const char *method, *path;
        int status;
    } rows[] = {
        {"POST", "/metrics", 405},   {"PUT", "/metrics", 405},
        {"DELETE", "/healthz", 405}, {"HEAD", "/metrics", 405},
        {"OPTIONS", "/readyz", 405}, {"POST", "/nowhere", 405},
        {"GET", "/", 404},           {"GET", "/metrics/", 404},
        {"GET", "/Metrics", 404},    {"GET", "/../etc/passwd", 404},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        http_answer_t a;
        assert_int_equal(http_request(port, rows[i].method, rows[i].path, &a), 0);
        if (a.status != rows[i].status)
            fprintf(stderr, "%s %s: %d\n", rows[i].method, rows[i].path, a.status);
        assert_int_equal(a.status, rows[i].status);
        if (a.status == 405)
            assert_non_null(strstr(a.head, "\r\nAllow: GET"));
        http_answer_free(&a);
    }
}

static void bodies_and_oversized_requests_are_refused_and_serving_goes_on(void **state) {
    fixture_t *f = *state;
    int port = ops_endpoint_port(f->ep);
    http_answer_t a;
    const char *with_body = "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                            "Connection: close\r\n\r\nhello";
    assert_int_equal(http_raw(port, with_body, strlen(with_body), 5000, &a), 0);
    assert_int_equal(a.status, 413);
    http_answer_free(&a);

    /* 64 KiB of headers, far above the 8 KiB bound. */
    size_t big = 64 * 1024;
    char *req = malloc(big + 256);
    assert_non_null(req);
    int n = snprintf(req, 256, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Filler: ");
    memset(req + n, 'a', big);
    memcpy(req + n + big, "\r\n\r\n", 5);
    assert_int_equal(http_raw(port, req, strlen(req), 5000, &a), 0);
    assert_int_equal(a.status, 431); /* Request Header Fields Too Large */
    http_answer_free(&a);
    /* A long path too. */
    n = snprintf(req, 256, "GET /");
    memset(req + n, 'p', big);
    memcpy(req + n + big, " HTTP/1.1\r\n\r\n", 14);
    assert_int_equal(http_raw(port, req, strlen(req), 5000, &a), 0);
    assert_int_equal(a.status, 414); /* URI Too Long */
    http_answer_free(&a);
    free(req);
    /* Garbage is not a request: closed without an answer, or 400. */
    int rc = http_raw(port, "\x01\x02\r\n\r\n", 6, 2000, &a);
    assert_true(rc != 0 || a.status == 400);
    http_answer_free(&a);
    assert_int_equal(http_request(port, "GET", "/healthz", &a), 0);
    assert_int_equal(a.status, 200);
    http_answer_free(&a);
}

static void a_busy_or_invalid_address_fails_at_start_with_the_reason(void **state) {
    fixture_t *f = *state;
    char listen[64], err[256], want[128];
    ops_endpoint_options_t eo = {.metrics = f->reg};
    snprintf(listen, sizeof listen, "127.0.0.1:%d", ops_endpoint_port(f->ep));
    eo.listen = listen;
    assert_null(ops_endpoint_start(&eo, err, sizeof err));
    snprintf(want, sizeof want, "cannot listen on %s: Address already in use", listen);
    assert_string_equal(err, want);
    eo.listen = "127.0.0.1:http-alt";
    assert_null(ops_endpoint_start(&eo, err, sizeof err));
    assert_string_equal(err,
                        "metrics address '127.0.0.1:http-alt': port is not a number in 0..65535");
    eo.listen = "192.0.2.1:9100"; /* TEST-NET: not an address of this machine */
    assert_null(ops_endpoint_start(&eo, err, sizeof err));
    assert_string_equal(err, "cannot listen on 192.0.2.1:9100: Cannot assign requested address");
    eo.listen = "no-such-host.invalid:9100";
    assert_null(ops_endpoint_start(&eo, err, sizeof err));
    assert_non_null(strstr(err, "cannot listen on no-such-host.invalid:9100: "));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(get_metrics_serves_the_registry_as_text_format_0_0_4),
        cmocka_unit_test(health_and_readiness_answer_503_with_the_reason),
        cmocka_unit_test(only_get_of_known_paths_is_served),
        cmocka_unit_test(bodies_and_oversized_requests_are_refused_and_serving_goes_on),
        cmocka_unit_test(a_busy_or_invalid_address_fails_at_start_with_the_reason),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
