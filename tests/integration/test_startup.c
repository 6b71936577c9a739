/*
 * The start-up every program shares (startup/): --help and --version exit 0
 * on stdout; an unknown option, a bad value, a bad -X property, a bad
 * environment and an unexpected argument exit 2 with "PROGRAM: reason" and
 * "Try 'PROGRAM --help'." on stderr. Each row is one program; no broker or
 * Redis is needed, since nothing here gets past the command line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

typedef struct program {
    const char *name;
    bool config;          /* reads -X, -c and the environment */
    bool kafka;           /* talks to Kafka (takes librdkafka properties) */
    bool takes_arguments; /* positional arguments are its input (no "unexpected") */
    const char *bad[3];   /* a bad value of one of its own options (NULL-padded) */
    const char *bad_says; /* what the error names */
} program_t;

static const program_t programs[] = {
    {"opstream-produce", true, true, true, {"--kind", "boat"}, "--kind: 'boat' is not arrest"},
    {"opstream-simulate", true, true, false, {"--rate", "fast"}, "--rate: 'fast' is not a number"},
    {"opstream-count", true, true, false, {"--batch", "0"}, "--batch: '0' is not a whole number"},
    {"opstream-alert", true, true, false, {"--lookback", "x"}, "--lookback: 'x' is not a whole"},
    {"opstream-alerts", true, true, false, {"--min-severity", "LOUD"}, "--min-severity: 'LOUD'"},
    {"opstream-stats", true, false, true, {"--window", "7d", "OP"}, "--window: '7d'"},
    {"opstream-broker", false, false, false, {"--brokers", "0"}, "--brokers: '0' is not a whole"},
};

#define N_PROGRAMS (sizeof(programs) / sizeof(programs[0]))

/* Runs name with up to three arguments (NULL ends them) and env; returns the
 * exit code, with stdout and stderr in *outp and *errp (caller frees). */
static int run(const char *name, const char *const args[3], const char *const env[], char **outp,
               char **errp) {
    const char *argv[5] = {name, NULL, NULL, NULL, NULL};
    for (int i = 0; i < 3 && args[i] != NULL; i++)
        argv[i + 1] = args[i];
    harness_proc_t *p = harness_spawn(argv, env, 0);
    assert_non_null(p);
    assert_int_equal(harness_proc_wait(p, 20000), 0);
    int code = harness_proc_exit_code(p);
    *outp = harness_proc_stdout(p);
    *errp = harness_proc_stderr(p);
    harness_proc_free(p);
    return code;
}

/* A usage error: exit 2, nothing on stdout, "NAME: what" then the hint. */
static void expect_usage_error(const program_t *pr, const char *const args[3],
                               const char *const env[], const char *what) {
    char *out, *err, want[256], hint[128];
    int code = run(pr->name, args, env, &out, &err);
    snprintf(want, sizeof(want), "%s: %s", pr->name, what);
    snprintf(hint, sizeof(hint), "Try '%s --help'.\n", pr->name);
    if (code != 2 || out[0] != '\0' || strstr(err, want) == NULL || strstr(err, hint) == NULL)
        fail_msg("%s %s: exit %d, stdout \"%s\", stderr \"%s\"; wanted exit 2 with \"%s\"",
                 pr->name, args[0], code, out, err, want);
    free(out);
    free(err);
}

static void help_and_version_exit_0_on_stdout(void **state) {
    (void)state;
    for (size_t i = 0; i < N_PROGRAMS; i++) {
        const program_t *pr = &programs[i];
        const char *help[3] = {"--help"}, *version[3] = {"--version"};
        char *out, *err, want[128];

        assert_int_equal(run(pr->name, help, NULL, &out, &err), 0);
        snprintf(want, sizeof(want), "Usage: %s ", pr->name);
        if (strncmp(out, want, strlen(want)) != 0 || strstr(out, "Exit codes:") == NULL)
            fail_msg("%s --help printed \"%.80s\"", pr->name, out);
        assert_string_equal(err, "");
        free(out);
        free(err);

        assert_int_equal(run(pr->name, version, NULL, &out, &err), 0);
        snprintf(want, sizeof(want), "%s %s (librdkafka ", pr->name, OPS_VERSION);
        if (strncmp(out, want, strlen(want)) != 0)
            fail_msg("%s --version printed \"%s\"", pr->name, out);
        free(out);
        free(err);
    }
}

static void unknown_options_and_bad_values_are_usage_errors(void **state) {
    (void)state;
    for (size_t i = 0; i < N_PROGRAMS; i++) {
        const program_t *pr = &programs[i];
        const char *unknown[3] = {"--no-such-option"};
        expect_usage_error(pr, unknown, NULL, "unrecognized option '--no-such-option'");
        expect_usage_error(pr, pr->bad, NULL, pr->bad_says);
        if (!pr->takes_arguments) {
            const char *extra[3] = {"extra"};
            expect_usage_error(pr, extra, NULL, "unexpected argument 'extra'");
        }
    }
}

/* -X and the environment go through the same configuration store: an
 * unknown property and an unreadable OPSTREAM_CONFIG are usage errors that
 * name where the value came from. */
static void bad_properties_and_environment_are_usage_errors(void **state) {
    (void)state;
    for (size_t i = 0; i < N_PROGRAMS; i++) {
        const program_t *pr = &programs[i];
        if (!pr->config)
            continue;
        const char *prop[3] = {"-X", "no.such.property=1", pr->takes_arguments ? "OP" : NULL};
        expect_usage_error(pr, prop, NULL,
                           pr->kafka ? "-X: No such configuration property"
                                     : "-X: this program does not use Kafka");
        const char *app[3] = {"-X", "opstream.no.such=1", pr->takes_arguments ? "OP" : NULL};
        expect_usage_error(pr, app, NULL, "-X: ");
        const char *none[3] = {pr->takes_arguments ? "OP" : NULL};
        const char *env[] = {"OPSTREAM_CONFIG=/nonexistent/opstream.properties", NULL};
        expect_usage_error(pr, none, env,
                           "environment: OPSTREAM_CONFIG: /nonexistent/opstream.properties: No "
                           "such file or directory");
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(help_and_version_exit_0_on_stdout),
        cmocka_unit_test(unknown_options_and_bad_values_are_usage_errors),
        cmocka_unit_test(bad_properties_and_environment_are_usage_errors),
    };
    return cmocka_run_group_tests(tests, harness_group_setup, harness_group_teardown);
}
