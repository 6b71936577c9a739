/*
 * Unit tests for lib/cli.c: the common option handler driven through a real
 * getopt_long loop the way programs use it, the help text and the version
 * line. No servers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>

#include "opstream/cli.h"

enum { OPT_GROUP = OPS_CLI_OPT_FIRST_PROGRAM };

/* A program's option loop: common options first, its own -g after.
 * Returns 0, or -1 with errstr; *group gets -g's argument. */
static int parse(int argc, char **argv, ops_config_t *cfg, ops_cli_common_t *common,
                 const char **group, char *errstr, size_t errstr_size) {
    static const struct option longopts[] = {
        OPS_CLI_COMMON_LONG, {"group", required_argument, NULL, 'g'}, {NULL, 0, NULL, 0}};
    int opt;
    optind = 0; /* glibc: full reset between runs */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, OPS_CLI_COMMON_SHORT "g:", longopts, NULL)) != -1) {
        int rc = ops_cli_common_option(cfg, common, opt, optarg, errstr, errstr_size);
        if (rc < 0)
            return -1;
        if (rc == 1)
            continue;
        if (opt == 'g') {
            *group = optarg;
            continue;
        }
        snprintf(errstr, errstr_size, "unknown option");
        return -1;
    }
    return 0;
}

static void common_options_set_configuration_in_order(void **state) {
    char err[512] = "";
    const char *group = NULL;
    ops_cli_common_t common = {0};
    ops_config_t *cfg = ops_config_new();
    char *argv[] = {"opstream-count",
                    "-b",
                    "k1:9092",
                    "--redis",
                    "redis://:pw@127.0.0.1:6390/3",
                    "-X",
                    "linger.ms=20",
                    "-X",
                    "topic.message.timeout.ms=9000",
                    "-vv",
                    "--brokers=k2:9092",
                    "-g",
                    "counters",
                    "--verbose",
                    NULL};
    (void)state;
    assert_non_null(cfg);
    if (parse(14, argv, cfg, &common, &group, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_string_equal(ops_config_get(cfg, "bootstrap.servers"), "k2:9092"); /* last wins */
    assert_string_equal(ops_config_get(cfg, "opstream.redis.url"), "redis://:pw@127.0.0.1:6390/3");
    assert_string_equal(ops_config_get(cfg, "linger.ms"), "20");
    assert_string_equal(ops_config_get(cfg, "topic.message.timeout.ms"), "9000");
    assert_string_equal(group, "counters"); /* the program's own option still reached it */
    assert_int_equal(common.verbose, 3);
    assert_int_equal(common.want_help, 0);
    assert_int_equal(common.want_version, 0);
    ops_config_destroy(cfg);
}

static void help_and_version_are_flags(void **state) {
    char err[512] = "";
    const char *group = NULL;
    ops_cli_common_t common = {0};
    ops_config_t *cfg = ops_config_new();
    char *argv[] = {"opstream-stats", "--version", "-h", NULL};
    (void)state;
    assert_int_equal(parse(3, argv, cfg, &common, &group, err, sizeof err), 0);
    assert_int_equal(common.want_help, 1);
    assert_int_equal(common.want_version, 1);
    ops_config_destroy(cfg);
}

static void bad_option_values_name_the_option(void **state) {
    static const struct {
        int opt;
        const char *arg;
        const char *prefix;
        const char *reason;
    } rows[] = {
        {'X', "linger.ms", "-X: ", "expected property=value"},
        {'X', "no.such.prop=1", "-X: ", "No such configuration property"},
        {'X', "opstream.nope=1", "-X: ", "unknown property 'opstream.nope'"},
        {'c', "/nonexistent/opstream.properties", "-c: ", "/nonexistent/opstream.properties"},
        {OPS_CLI_OPT_REDIS, "localhost:6379", "--redis: ", "expected redis://"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char err[512] = "";
        ops_cli_common_t common = {0};
        ops_config_t *cfg = ops_config_new();
        assert_non_null(cfg);
        int rc = ops_cli_common_option(cfg, &common, rows[i].opt, rows[i].arg, err, sizeof err);
        ops_config_destroy(cfg);
        if (rc != -1)
            fail_msg("row %zu (%s) was accepted", i, rows[i].arg);
        if (strncmp(err, rows[i].prefix, strlen(rows[i].prefix)) != 0 ||
            !strstr(err, rows[i].reason))
            fail_msg("row %zu: error '%s', expected '%s...%s'", i, err, rows[i].prefix,
                     rows[i].reason);
    }
}

static void options_outside_the_common_set_are_left_to_the_program(void **state) {
    char err[64] = "";
    ops_cli_common_t common = {0};
    ops_config_t *cfg = ops_config_new();
    (void)state;
    assert_int_equal(ops_cli_common_option(cfg, &common, 'g', "x", err, sizeof err), 0);
    assert_int_equal(ops_cli_common_option(cfg, &common, OPT_GROUP, "x", err, sizeof err), 0);
    assert_int_equal(ops_cli_common_option(cfg, &common, '?', NULL, err, sizeof err), 0);
    assert_null(ops_config_get(cfg, "bootstrap.servers"));
    ops_config_destroy(cfg);
}

static void config_file_option_loads_the_file(void **state) {
    char path[] = "/tmp/opstream-test-cli.XXXXXX";
    char err[512] = "";
    ops_cli_common_t common = {0};
    ops_config_t *cfg = ops_config_new();
    (void)state;
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "bootstrap.servers=k9:9092\nopstream.topic.prefix=liberterra.\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    int rc = ops_cli_common_option(cfg, &common, 'c', path, err, sizeof err);
    unlink(path);
    if (rc != 1)
        fail_msg("%s", err);
    assert_string_equal(ops_config_get(cfg, "bootstrap.servers"), "k9:9092");
    assert_string_equal(ops_config_get(cfg, "opstream.topic.prefix"), "liberterra.");
    ops_config_destroy(cfg);
}

static void help_lists_every_common_option_and_variable(void **state) {
    static const char *const must[] = {
        "-b, --brokers",   "-X PROP=VALUE",
        "-c, --config",    "--redis URL",
        "-v, --verbose",   "--help",
        "--version",       "OPSTREAM_BROKERS",
        "OPSTREAM_REDIS ", "OPSTREAM_REDIS_PASSWORD_FILE",
        "OPSTREAM_CONFIG", "redis://127.0.0.1:6379/0",
    };
    const char *help = ops_cli_common_help();
    (void)state;
    assert_non_null(help);
    for (size_t i = 0; i < sizeof(must) / sizeof(must[0]); i++)
        if (!strstr(help, must[i]))
            fail_msg("help does not mention '%s'", must[i]);
}

static void version_names_program_and_librdkafka(void **state) {
    char buf[256];
    char expect[128];
    (void)state;
    ops_cli_version_string("opstream-count", buf, sizeof buf);
    snprintf(expect, sizeof expect, "librdkafka %s", rd_kafka_version_str());
    assert_true(strncmp(buf, "opstream-count ", 15) == 0);
    assert_non_null(strstr(buf, expect));
    assert_non_null(strstr(buf, "hiredis 0.14"));
    /* A small buffer is truncated, never overrun. */
    char small[8];
    ops_cli_version_string("opstream-count", small, sizeof small);
    assert_string_equal(small, "opstrea");
}

/* Integer option values: whole decimal numbers within the bounds, with the
 * option, the value and the range named when refused. */
static void integer_options_are_whole_numbers_in_range(void **state) {
    (void)state;
    static const struct {
        const char *arg;
        long min, max;
        int rc;
        long want;
    } rows[] = {
        {"1", 1, 10, 0, 1},
        {"10", 1, 10, 0, 10},
        {"0", 0, 5, 0, 0},
        {"-3", -5, 5, 0, -3},
        {"0", 1, 10, -1, 0},
        {"11", 1, 10, -1, 0},
        {"", 1, 10, -1, 0},
        {"5x", 1, 10, -1, 0},
        {" 5", 1, 10, 0, 5}, /* strtol skips leading blanks, as getopt users expect */
        {"5 ", 1, 10, -1, 0},
        {"1.5", 1, 10, -1, 0},
        {"99999999999999999999999", 0, 100, -1, 0},
        {"-99999999999999999999999", -100, 100, -1, 0},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char err[128] = "";
        long v = 12345;
        int rc = ops_cli_parse_long("--batch", rows[i].arg, rows[i].min, rows[i].max, &v, err,
                                    sizeof(err));
        if (rc != rows[i].rc)
            fail_msg("row %zu ('%s'): rc %d, want %d", i, rows[i].arg, rc, rows[i].rc);
        if (rc == 0) {
            assert_int_equal(v, rows[i].want);
        } else {
            assert_int_equal(v, 12345); /* untouched on error */
            assert_non_null(strstr(err, "--batch"));
            assert_non_null(strstr(err, rows[i].arg));
        }
    }
    char err[128];
    long v;
    assert_int_equal(ops_cli_parse_long("--alerts", NULL, 0, 1, &v, err, sizeof(err)), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(common_options_set_configuration_in_order),
        cmocka_unit_test(help_and_version_are_flags),
        cmocka_unit_test(bad_option_values_name_the_option),
        cmocka_unit_test(options_outside_the_common_set_are_left_to_the_program),
        cmocka_unit_test(config_file_option_loads_the_file),
        cmocka_unit_test(help_lists_every_common_option_and_variable),
        cmocka_unit_test(version_names_program_and_librdkafka),
        cmocka_unit_test(integer_options_are_whole_numbers_in_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
