/*
 * Unit tests for lib/health.c and the listen-address parser of
 * lib/endpoint.c: when /healthz and /readyz say yes, and which HOST:PORT
 * forms --metrics takes (table-driven).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "opstream/endpoint.h"
#include "opstream/health.h"

static void a_loop_silent_longer_than_the_limit_is_not_alive(void **state) {
    char why[256] = "";
    (void)state;
    assert_true(ops_health_check_live(1000, 1000, 30000, why, sizeof why));
    assert_true(ops_health_check_live(1000, 31000, 30000, why, sizeof why));
    assert_string_equal(why, "");
    assert_false(ops_health_check_live(1000, 31001, 30000, why, sizeof why));
    assert_string_equal(why, "the main loop has not run for 30001 ms (limit 30000 ms)");
    /* A program that waits on its input: never stalled. */
    assert_true(ops_health_check_live(1000, 999999999, -1, why, sizeof why));
}

static void ready_only_once_the_program_says_so_and_with_its_reason(void **state) {
    char why[OPS_HEALTH_REASON_MAX];
    ops_health_t *h = ops_health_new(0);
    (void)state;
    assert_non_null(h);
    assert_true(ops_health_live(h, why, sizeof why));
    assert_false(ops_health_ready(h, why, sizeof why));
    assert_string_equal(why, "starting");
    ops_health_set_ready(h, "no partitions assigned");
    assert_false(ops_health_ready(h, why, sizeof why));
    assert_string_equal(why, "no partitions assigned");
    ops_health_set_ready(h, NULL);
    assert_true(ops_health_ready(h, why, sizeof why));
    ops_health_set_ready(h, "Redis unreachable: Connection refused");
    assert_false(ops_health_ready(h, why, sizeof why));
    assert_string_equal(why, "Redis unreachable: Connection refused");
    ops_health_set_ready(h, "");
    ops_health_beat(h);
    assert_true(ops_health_ready(h, why, sizeof why));
    ops_health_destroy(h);
    /* No health state: always yes (an endpoint without a loop to watch). */
    assert_true(ops_health_live(NULL, why, sizeof why));
    assert_true(ops_health_ready(NULL, why, sizeof why));
    ops_health_destroy(NULL);
}

static void listen_addresses_parse_or_say_what_is_wrong(void **state) {
    static const struct {
        const char *in;
        const char *host; /* NULL: refused */
        int port;
        const char *err;
    } rows[] = {
        {"127.0.0.1:9100", "127.0.0.1", 9100, NULL},
        {"localhost:0", "localhost", 0, NULL},
        {":9464", "", 9464, NULL},
        {"[::1]:65535", "::1", 65535, NULL},
        {"0.0.0.0:1", "0.0.0.0", 1, NULL},
        {"", NULL, 0, "empty address (expected HOST:PORT)"},
        {"9100", NULL, 0, "'9100': expected HOST:PORT"},
        {"host:", NULL, 0, "'host:': no port after ':'"},
        {"host:65536", NULL, 0, "'host:65536': port is not a number in 0..65535"},
        {"host:99999999999999999999", NULL, 0,
         "'host:99999999999999999999': port is not a number in 0..65535"},
        {"host:-1", NULL, 0, "'host:-1': port is not a number in 0..65535"},
        {"host:80x", NULL, 0, "'host:80x': port is not a number in 0..65535"},
        {"::1:9100", NULL, 0, "'::1:9100': an IPv6 address goes in brackets: [ADDRESS]:PORT"},
        {"[::1]9100", NULL, 0, "'[::1]9100': expected [IPV6]:PORT"},
        {"[]:9100", NULL, 0, "'[]:9100': empty IPv6 address"},
        {"a b:9100", NULL, 0, "'a b:9100': not a host name"},
        {"http://x:9100", NULL, 0,
         "'http://x:9100': an IPv6 address goes in brackets: "
         "[ADDRESS]:PORT"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char host[OPS_ENDPOINT_HOST_MAX] = "unset", err[256] = "";
        int port = -7;
        int rc = ops_endpoint_parse_listen(rows[i].in, host, sizeof host, &port, err, sizeof err);
        if (rows[i].host) {
            assert_int_equal(rc, 0);
            assert_string_equal(host, rows[i].host);
            assert_int_equal(port, rows[i].port);
        } else {
            assert_int_equal(rc, -1);
            assert_string_equal(err, rows[i].err);
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_loop_silent_longer_than_the_limit_is_not_alive),
        cmocka_unit_test(ready_only_once_the_program_says_so_and_with_its_reason),
        cmocka_unit_test(listen_addresses_parse_or_say_what_is_wrong),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
