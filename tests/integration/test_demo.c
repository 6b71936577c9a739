/*
 * `make demo` as a newcomer runs it: with a short DEMO_SECONDS it must exit 0,
 * count every event the simulator delivered, raise the scam-centre raid
 * alert, and leave no process of its own running.
 */
#include <dirent.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

/* The process group of a process (field 5 of /proc/PID/stat), or -1. */
static long process_group(long pid) {
    char path[64], buf[1024];
    long pgid = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    size_t got = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[got] = '\0';
    const char *rp = strrchr(buf, ')'); /* the command name may hold spaces */
    char state;
    if (rp == NULL || sscanf(rp + 1, " %c %*d %ld", &state, &pgid) != 2)
        return -1;
    return pgid;
}

/* Counts the processes the demo left: those still in its process group
 * (make, its script and every program it started; none of them leaves the
 * group) and those whose command line names its temp dir. Other tests'
 * programs, running at the same time, are not the demo's. */
static int leftover_processes(long demo_pgid, char *names, size_t size) {
    const char *tmp = getenv("TMPDIR");
    char demo_dir[PATH_MAX];
    int n = 0;

    snprintf(demo_dir, sizeof(demo_dir), "%s/opstream-demo.", tmp != NULL && *tmp ? tmp : "/tmp");
    names[0] = '\0';
    DIR *d = opendir("/proc");
    if (d == NULL)
        return -1;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end != '\0' || pid <= 0 || pid == (long)getpid())
            continue;
        char path[64], cmd[4096] = "";
        snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
        FILE *f = fopen(path, "r");
        if (f != NULL) {
            size_t got = fread(cmd, 1, sizeof(cmd) - 1, f);
            fclose(f);
            for (size_t i = 0; i < got; i++)
                if (cmd[i] == '\0')
                    cmd[i] = ' ';
            cmd[got] = '\0';
        }
        bool ours = process_group(pid) == demo_pgid || strstr(cmd, demo_dir) != NULL;
        if (ours) {
            n++;
            size_t used = strlen(names);
            snprintf(names + used, size - used, " [%ld] %.80s", pid, cmd);
        }
    }
    closedir(d);
    return n;
}

/* Runs make demo with the build variables of the suite that runs this test,
 * so the ASan suite demonstrates the sanitized programs. */
static harness_proc_t *run_demo(const char *seconds) {
    static char vars[3][512];
    const char *mv = getenv("OPSTREAM_MAKE_VARS");
    const char *argv[12];
    int argc = 0;
    argv[argc++] = "make";
    argv[argc++] = "--no-print-directory";
    argv[argc++] = "-C";
    argv[argc++] = harness_src_dir();
    argv[argc++] = "demo";
    if (mv != NULL) {
        char copy[1536];
        snprintf(copy, sizeof(copy), "%s", mv);
        char *save = NULL;
        for (char *tok = strtok_r(copy, " ", &save); tok != NULL && argc < 8;
             tok = strtok_r(NULL, " ", &save)) {
            snprintf(vars[argc - 5], sizeof(vars[0]), "%s", tok);
            argv[argc] = vars[argc - 5];
            argc++;
        }
    }
    argv[argc] = NULL;
    char env_seconds[64];
    snprintf(env_seconds, sizeof(env_seconds), "DEMO_SECONDS=%s", seconds);
    const char *env[] = {env_seconds, "BROKERS=", "REDIS=", "NO_COLOR=1", NULL};
    return harness_spawn(argv, env, 0);
}

static void make_demo_counts_everything_raises_the_raid_alert_and_cleans_up(void **state) {
    (void)state;
    harness_proc_t *p = run_demo("12");
    assert_non_null(p);
    if (harness_proc_wait(p, 240000) != 0) {
        harness_proc_kill(p);
        fail_msg("make demo did not finish within 240 s");
    }
    char *out = harness_proc_stdout(p);
    char *err = harness_proc_stderr(p);
    assert_non_null(out);
    int rc = harness_proc_exit_code(p);
    if (rc != 0)
        print_error("make demo stdout:\n%s\nstderr:\n%s\n", out, err ? err : "");
    assert_int_equal(rc, 0);

    /* "[demo] N alerts raised, M of them WARNING or above (shown above);
     * counted X of Y events" with M <= N, X == Y > 0. */
    const char *line = strstr(out, "[demo] ");
    long raised = -1, shown = -1, counted = -1, delivered = -2;
    while (line != NULL &&
           sscanf(line,
                  "[demo] %ld alerts raised, %ld of them WARNING or above (shown above); "
                  "counted %ld of %ld events",
                  &raised, &shown, &counted, &delivered) != 4)
        line = strstr(line + 1, "[demo] ");
    assert_non_null(line);
    assert_true(shown >= 1); /* at least the raid */
    assert_true(shown <= raised);
    assert_true(counted > 0);
    assert_int_equal(counted, delivered);

    /* The raid reached a duty officer: opstream-alerts printed it. */
    assert_non_null(strstr(out, "CRITICAL"));
    assert_non_null(strstr(out, "raid"));
    assert_non_null(strstr(out, "SCAM_CENTRE"));

    /* No redis-cli commands for the demo's own Redis, which it stops. */
    assert_null(strstr(out, "redis-cli -p"));
    assert_null(strstr(out, "redis-cli -u"));

    char names[4096];
    int left = leftover_processes((long)p->pid, names, sizeof(names));
    if (left != 0)
        print_error("left running:%s\n", names);
    assert_int_equal(left, 0);
    free(out);
    free(err);
    harness_proc_free(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(make_demo_counts_everything_raises_the_raid_alert_and_cleans_up),
    };
    return cmocka_run_group_tests(tests, harness_group_setup, harness_group_teardown);
}
