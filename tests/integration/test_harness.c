/*
 * Tests of the integration-test harness itself: children never outlive the
 * test binary (abort or exit), a stop escalates to SIGKILL, waits time out
 * instead of hanging, spawned programs get their env and have their output
 * captured, and a redis-server with AOF keeps its data across a crash.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

/* Self-test modes: the binary re-runs itself as a "test" that starts a
 * child and then dies without any teardown. */
#define MODE_ENV "OPSTREAM_HARNESS_SELFTEST"
#define PIDFILE_ENV "OPSTREAM_HARNESS_PIDFILE"

/* Still reachable at exit, so LeakSanitizer does not count it as a leak. */
static harness_proc_t *volatile g_selftest_proc;

static int selftest_child(const char *mode) {
    const char *argv[] = {"sleep", "60", NULL};
    const char *pidfile = getenv(PIDFILE_ENV);
    harness_proc_t *p;
    char buf[32];

    if (pidfile == NULL || harness_init() != 0)
        return 1;
    p = g_selftest_proc = harness_spawn(argv, NULL, 0);
    if (p == NULL)
        return 1;
    snprintf(buf, sizeof(buf), "%d\n", (int)p->pid);
    if (harness_write_file(pidfile, buf, (size_t)-1) != 0)
        return 1;
    if (strcmp(mode, "abort") == 0)
        abort(); /* no atexit: PR_SET_PDEATHSIG must take the child down */
    exit(3);     /* atexit: kills the child and removes the temp dir */
}

/* True when pid is gone (or a zombie nobody has reaped yet). */
static bool pid_gone(void *arg) {
    pid_t pid = *(pid_t *)arg;
    char path[64];
    char *stat;
    bool gone;

    if (kill(pid, 0) != 0 && errno == ESRCH)
        return true;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    stat = harness_read_file(path, NULL);
    if (stat == NULL)
        return true;
    gone = strstr(stat, ") Z") != NULL;
    free(stat);
    return gone;
}

typedef struct selftest {
    char tmpdir[HARNESS_PATH_MAX]; /* its TMPDIR, "<mode>-tmp" under ours */
    int code;                      /* its exit code */
    pid_t pid;                     /* the child it started */
} selftest_t;

/* Runs this binary in `mode` with its own TMPDIR under ours. */
static selftest_t run_selftest(const char *mode) {
    selftest_t t = {.code = -1};
    char name[64];
    char pidfile[HARNESS_PATH_MAX], env_mode[64], env_pid[HARNESS_PATH_MAX + 32],
        env_tmp[HARNESS_PATH_MAX + 16];
    const char *argv[] = {NULL, NULL};
    /* OPSTREAM_KEEP_TMP unset: the self-test removes its temp dir at exit
     * even when the runner keeps the temp dirs of the test binaries. */
    const char *env[] = {env_mode, env_pid, env_tmp, "OPSTREAM_KEEP_TMP", NULL};
    harness_proc_t *p;
    char exe[HARNESS_PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    char *text;

    assert_true(n > 0);
    exe[n] = '\0';
    argv[0] = exe;
    snprintf(name, sizeof(name), "%s-tmp", mode);
    assert_int_equal(harness_path(t.tmpdir, sizeof(t.tmpdir), name), 0);
    assert_int_equal(mkdir(t.tmpdir, 0755), 0);
    assert_int_equal(harness_path(pidfile, sizeof(pidfile), "selftest.pid"), 0);
    snprintf(env_mode, sizeof(env_mode), "%s=%s", MODE_ENV, mode);
    snprintf(env_pid, sizeof(env_pid), "%s=%s", PIDFILE_ENV, pidfile);
    snprintf(env_tmp, sizeof(env_tmp), "TMPDIR=%s", t.tmpdir);
    p = harness_spawn(argv, env, 0);
    assert_non_null(p);
    assert_int_equal(harness_proc_wait(p, 20000), 0);
    t.code = harness_proc_exit_code(p);
    harness_proc_free(p);
    text = harness_read_file(pidfile, NULL);
    assert_non_null(text);
    t.pid = (pid_t)atoi(text);
    free(text);
    assert_true(t.pid > 0);
    return t;
}

static void test_children_die_when_the_test_binary_aborts(void **state) {
    (void)state;
    selftest_t t = run_selftest("abort");
    assert_int_equal(t.code, 128 + SIGABRT);
    assert_int_equal(harness_wait_until(pid_gone, &t.pid, 5000), 0);
}

static void test_exit_kills_children_and_removes_the_temp_dir(void **state) {
    (void)state;
    selftest_t t = run_selftest("exit");
    assert_int_equal(t.code, 3);
    assert_true(pid_gone(&t.pid));
    /* Its opstream-test.* dir was removed by the atexit handler: only the
     * empty TMPDIR we gave it is left, so rmdir succeeds. */
    assert_int_equal(rmdir(t.tmpdir), 0);
}

static void test_stop_escalates_to_sigkill_when_sigterm_is_ignored(void **state) {
    const char *argv[] = {"sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done", NULL};
    harness_proc_t *p;
    char line[64];

    (void)state;
    p = harness_spawn(argv, NULL, HARNESS_STDOUT_PIPE);
    assert_non_null(p);
    assert_int_equal(harness_proc_read_line(p, line, sizeof(line), 10000), 0);
    assert_string_equal(line, "ready");
    assert_int_equal(harness_proc_stop(p, 300), 128 + SIGKILL);
    assert_false(harness_proc_running(p));
    harness_proc_free(p);
}

static void test_spawn_sets_env_and_captures_stdout_stderr_and_exit_code(void **state) {
    const char *argv[] = {"sh", "-c", "echo \"$OPS_T1\"; echo \"${OPS_T2-unset}\" >&2; exit 7",
                          NULL};
    const char *env[] = {"OPS_T1=Flash-Weka", "OPS_T2", NULL};
    harness_proc_t *p;
    char *out, *err;

    (void)state;
    setenv("OPS_T2", "inherited", 1);
    p = harness_spawn(argv, env, 0);
    unsetenv("OPS_T2");
    assert_non_null(p);
    assert_int_equal(harness_proc_wait(p, 10000), 0);
    assert_int_equal(harness_proc_exit_code(p), 7);
    out = harness_proc_stdout(p);
    err = harness_proc_stderr(p);
    assert_string_equal(out, "Flash-Weka\n");
    assert_string_equal(err, "unset\n");
    free(out);
    free(err);
    harness_proc_free(p);
}

static void test_spawn_of_a_missing_program_exits_127_saying_so(void **state) {
    const char *argv[] = {"opstream-no-such-program", NULL};
    harness_proc_t *p;
    char *err;

    (void)state;
    p = harness_spawn(argv, NULL, 0);
    assert_non_null(p);
    assert_int_equal(harness_proc_wait(p, 10000), 0);
    assert_int_equal(harness_proc_exit_code(p), 127);
    err = harness_proc_stderr(p);
    assert_non_null(strstr(err, "cannot execute opstream-no-such-program"));
    free(err);
    harness_proc_free(p);
}

static void test_read_line_times_out_instead_of_hanging(void **state) {
    const char *argv[] = {"sleep", "30", NULL};
    harness_proc_t *p;
    char line[64];

    (void)state;
    p = harness_spawn(argv, NULL, HARNESS_STDOUT_PIPE);
    assert_non_null(p);
    assert_int_equal(harness_proc_read_line(p, line, sizeof(line), 200), -1);
    assert_true(harness_proc_running(p));
    harness_proc_free(p);
}

static bool never(void *arg) {
    (*(int *)arg)++;
    return false;
}

static void test_wait_until_gives_up_after_its_timeout(void **state) {
    int calls = 0;

    (void)state;
    assert_int_equal(harness_wait_until(never, &calls, 200), -1);
    assert_true(calls >= 2);
}

static void test_redis_with_aof_keeps_writes_across_a_crash_and_restart(void **state) {
    harness_redis_t *r;
    redisReply *reply;
    int port;

    (void)state;
    r = harness_redis_start(true);
    assert_non_null(r);
    port = r->port;
    reply = harness_redis_command(r, "HINCRBY opstream:{FLASH-WEKA}:total arrests %d", 1062);
    assert_non_null(reply);
    assert_int_equal(reply->type, REDIS_REPLY_INTEGER);
    freeReplyObject(reply);
    assert_int_equal(harness_redis_kill(r), 0);
    assert_null(harness_redis_connect(r));
    assert_int_equal(harness_redis_restart(r), 0);
    assert_int_equal(r->port, port);
    reply = harness_redis_command(r, "HGET opstream:{FLASH-WEKA}:total arrests");
    assert_non_null(reply);
    assert_int_equal(reply->type, REDIS_REPLY_STRING);
    assert_string_equal(reply->str, "1062");
    freeReplyObject(reply);
    harness_redis_free(r);
}

int main(void) {
    const char *mode = getenv(MODE_ENV);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_children_die_when_the_test_binary_aborts),
        cmocka_unit_test(test_exit_kills_children_and_removes_the_temp_dir),
        cmocka_unit_test(test_stop_escalates_to_sigkill_when_sigterm_is_ignored),
        cmocka_unit_test(test_spawn_sets_env_and_captures_stdout_stderr_and_exit_code),
        cmocka_unit_test(test_spawn_of_a_missing_program_exits_127_saying_so),
        cmocka_unit_test(test_read_line_times_out_instead_of_hanging),
        cmocka_unit_test(test_wait_until_gives_up_after_its_timeout),
        cmocka_unit_test(test_redis_with_aof_keeps_writes_across_a_crash_and_restart),
    };

    if (mode != NULL)
        return selftest_child(mode);
    return cmocka_run_group_tests(tests, harness_group_setup, harness_group_teardown);
}
