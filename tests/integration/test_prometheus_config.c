/*
 * The shipped monitoring files are valid for the tools that read them:
 * `promtool check config` and `promtool check rules` pass on
 * config/prometheus.yml and config/prometheus-rules.yml, the rules' unit
 * tests (tests/prometheus/rules_test.yml: each alert fires on trouble and
 * stays quiet otherwise) pass under `promtool test rules`, and the Grafana
 * dashboard is JSON whose every panel queries the provisioned data source.
 * promtool comes with Debian's prometheus package (a test dependency,
 * installed by make test through mk/deps.sh).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

/* Runs argv to its end; returns the exit code, and its stdout and stderr
 * joined in *outp (caller frees). */
static int run(const char *const argv[], char **outp) {
    harness_proc_t *p = harness_spawn(argv, NULL, 0);
    int code;
    assert_non_null(p);
    assert_int_equal(harness_proc_wait(p, 60000), 0);
    code = harness_proc_exit_code(p);
    char *out = harness_proc_stdout(p), *err = harness_proc_stderr(p);
    size_t n = strlen(out) + strlen(err) + 2;
    *outp = malloc(n);
    snprintf(*outp, n, "%s\n%s", out, err);
    free(out);
    free(err);
    harness_proc_free(p);
    if (code != 0)
        fprintf(stderr, "%s exited %d:\n%s\n", argv[0], code, *outp);
    return code;
}

static void src(char *buf, size_t size, const char *rel) {
    snprintf(buf, size, "%s/%s", harness_src_dir(), rel);
}

static int setup(void **state) {
    if (harness_group_setup(state) != 0)
        return -1;
    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        fprintf(stderr, "promtool is missing: it comes with Debian's prometheus package, which "
                        "`make test` installs (OPSTREAM_TEST_DEPS=1 sh mk/deps.sh)\n");
        return -1;
    }
    return 0;
}

static void promtool_accepts_the_shipped_config_and_rules(void **state) {
    char cfg[HARNESS_PATH_MAX], rules[HARNESS_PATH_MAX];
    char *out = NULL;
    (void)state;
    src(cfg, sizeof cfg, "config/prometheus.yml");
    src(rules, sizeof rules, "config/prometheus-rules.yml");
    const char *check_config[] = {"promtool", "check", "config", cfg, NULL};
    assert_int_equal(run(check_config, &out), 0);
    assert_non_null(strstr(out, "SUCCESS: 1 rule files found"));
    free(out);
    const char *check_rules[] = {"promtool", "check", "rules", rules, NULL};
    assert_int_equal(run(check_rules, &out), 0);
    assert_non_null(strstr(out, "SUCCESS: 7 rules found"));
    free(out);
}

static void every_alert_rule_fires_on_trouble_and_not_otherwise(void **state) {
    char tests[HARNESS_PATH_MAX];
    char *out = NULL;
    (void)state;
    src(tests, sizeof tests, "tests/prometheus/rules_test.yml");
    const char *argv[] = {"promtool", "test", "rules", tests, NULL};
    assert_int_equal(run(argv, &out), 0);
    assert_non_null(strstr(out, "SUCCESS"));
    free(out);
}

/* A rules file that is wrong is refused: the check can fail. */
static void promtool_refuses_a_broken_rules_file(void **state) {
    char path[HARNESS_PATH_MAX];
    char *out = NULL;
    (void)state;
    assert_int_equal(harness_path(path, sizeof path, "broken-rules.yml"), 0);
    assert_int_equal(harness_write_file(path,
                                        "groups:\n  - name: x\n    rules:\n"
                                        "      - alert: Broken\n        expr: rate(x[5m] > 0\n",
                                        (size_t)-1),
                     0);
    const char *argv[] = {"promtool", "check", "rules", path, NULL};
    assert_int_not_equal(run(argv, &out), 0);
    free(out);
}

static void the_dashboard_is_json_and_queries_the_provisioned_data_source(void **state) {
    char dash[HARNESS_PATH_MAX], prov[HARNESS_PATH_MAX];
    char *out = NULL;
    (void)state;
    src(dash, sizeof dash, "config/grafana/opstream.json");
    src(prov, sizeof prov, "config/grafana/provisioning/datasources/prometheus.yml");
    /* jq -e: exit 0 only when the last value is true. */
    const char *argv[] = {
        "jq", "-e",
        "(.uid == \"opstream\") and ([.panels[] | select(.type != \"row\")] | length >= 8) and "
        "([.panels[] | select(.type != \"row\") | .datasource.uid] | unique == "
        "[\"opstream-prometheus\"]) and "
        "([.panels[] | select(.type != \"row\") | .targets[] | .expr | length > 0] | all)",
        dash, NULL};
    assert_int_equal(run(argv, &out), 0);
    free(out);
    char *p = harness_read_file(prov, NULL);
    assert_non_null(p);
    assert_non_null(strstr(p, "uid: opstream-prometheus"));
    free(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(promtool_accepts_the_shipped_config_and_rules),
        cmocka_unit_test(every_alert_rule_fires_on_trouble_and_not_otherwise),
        cmocka_unit_test(promtool_refuses_a_broken_rules_file),
        cmocka_unit_test(the_dashboard_is_json_and_queries_the_provisioned_data_source),
    };
    return cmocka_run_group_tests(tests, setup, harness_group_teardown);
}
