/*
 * opstream-produce's progress line as a person sees it: run under a
 * pseudo-terminal (80x24) with records arriving on stdin, the line
 * "read N, delivered N, rejected N, failed N" shows on its own and is
 * rewritten in place; a rejected record's report appears on a line of its
 * own above it, never mixed with it; at the end the summary replaces it.
 * With --no-progress, or when stderr is no terminal, only the summary.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pty.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "pty_screen.h"
#include "test_produce_common.h"

typedef struct tty_proc {
    pid_t pid;
    int pty;   /* master side: what the terminal shows */
    int input; /* the program's stdin */
} tty_proc_t;

/* Starts opstream-produce with stdout and stderr on a new 80x24 terminal
 * and stdin on a pipe. */
static void tty_start(tty_proc_t *t, const char *extra) {
    char path[HARNESS_PATH_MAX];
    struct winsize ws = {.ws_row = SCR_ROWS, .ws_col = SCR_COLS};
    int in[2];
    snprintf(path, sizeof path, "%s/opstream-produce", harness_bin_dir());
    assert_int_equal(pipe(in), 0);
    t->pid = forkpty(&t->pty, NULL, NULL, &ws);
    assert_true(t->pid >= 0);
    if (t->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(in[0], STDIN_FILENO);
        close(in[0]);
        close(in[1]);
        setenv("TERM", "xterm", 1);
        execl(path, "opstream-produce", "-b", g_broker->bootstrap, "--format", "jsonl",
              "--operation", "PTY-OP", "--country", "SL", extra /* may end the list */,
              (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    t->input = in[1];
}

static void send_line(tty_proc_t *t, const char *line) {
    size_t n = strlen(line);
    assert_int_equal(write(t->input, line, n), (ssize_t)n);
}

static void send_good(tty_proc_t *t, int i) {
    char line[512];
    snprintf(line, sizeof line,
             "{\"kind\": \"arrest\", \"occurred_at\": \"2023-05-23T05:30:00Z\", \"source_ref\": "
             "\"PTY-%d\", \"persons\": 1, \"offence\": \"HUMAN_TRAFFICKING\"}\n",
             i);
    send_line(t, line);
}

/* Parses the progress/summary text of row r; true when it has that form. */
static bool row_counts(const screen_t *s, int r, unsigned *rd, unsigned *dl, unsigned *rj,
                       unsigned *fl) {
    char line[SCR_COLS * 4 + 1], tail;
    scr_row(s, r, line, sizeof line);
    return sscanf(line, "read %u, delivered %u, rejected %u, failed %u%c", rd, dl, rj, fl, &tail) ==
           4;
}

/* Ends the input and waits for the exit; the pty is read to its end. */
static int tty_finish(tty_proc_t *t, screen_t *s) {
    int status = 0;
    close(t->input);
    scr_read_to_close(s, t->pty, 30000);
    if (waitpid(t->pid, &status, 0) != t->pid)
        return -1;
    close(t->pty);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void progress_line_is_rewritten_in_place_and_reports_stay_above_it(void **state) {
    screen_t s;
    tty_proc_t t;
    unsigned rd = 0, dl = 0, rj = 0, fl = 0;
    int i = 0;
    (void)state;
    scr_init(&s);
    tty_start(&t, NULL); /* no option: on by default on a terminal */

    /* Records arrive one at a time until the line shows deliveries. */
    int64_t until = harness_now_ms() + 30000;
    while (!(row_counts(&s, 0, &rd, &dl, &rj, &fl) && dl >= 3) && harness_now_ms() < until) {
        send_good(&t, i++);
        scr_pump(&s, t.pty, 150);
    }
    if (!row_counts(&s, 0, &rd, &dl, &rj, &fl) || dl < 3) {
        scr_dump(&s);
        fail_msg("no progress line with deliveries on the first row");
    }
    /* Rewritten in place: one row, nothing scrolled, nothing below it. */
    assert_int_equal(scr_count(&s, "read "), 1);
    assert_int_equal(s.scrolled, 0);
    assert_int_equal(s.row, 0);
    assert_int_equal(rj, 0);
    assert_int_equal(fl, 0);
    assert_true(rd >= dl);

    /* A bad record: its report takes the first row whole, the progress
     * line comes back below it. */
    send_line(&t, "{\"kind\":\"arrest\",\"source_ref\":\"X\",persons:2}\n");
    int bad_line = i + 1;
    until = harness_now_ms() + 30000;
    while (!(row_counts(&s, 1, &rd, &dl, &rj, &fl) && rj == 1) && harness_now_ms() < until) {
        send_good(&t, i++);
        scr_pump(&s, t.pty, 150);
    }
    char line[SCR_COLS * 4 + 1], want[64];
    snprintf(want, sizeof want, "stdin:%d: ", bad_line);
    scr_row(&s, 0, line, sizeof line);
    if (strncmp(line, want, strlen(want)) != 0 || strstr(line, "read ") != NULL ||
        !row_counts(&s, 1, &rd, &dl, &rj, &fl) || rj != 1) {
        scr_dump(&s);
        fail_msg("the report is not alone on the first row with the progress below it");
    }

    /* End of input: the summary replaces the progress line. */
    assert_int_equal(tty_finish(&t, &s), 1); /* some records rejected */
    if (!row_counts(&s, 1, &rd, &dl, &rj, &fl) || rd != (unsigned)i + 1 || dl != (unsigned)i ||
        rj != 1 || fl != 0 || scr_count(&s, "read ") != 1 || s.row != 2) {
        scr_dump(&s);
        fail_msg("the summary is not the last line, alone, with every record accounted for");
    }
}

static void no_progress_line_with_no_progress(void **state) {
    screen_t s;
    tty_proc_t t;
    unsigned rd, dl, rj, fl;
    (void)state;
    scr_init(&s);
    tty_start(&t, "--no-progress");
    for (int i = 0; i < 20; i++) {
        send_good(&t, 1000 + i);
        scr_pump(&s, t.pty, 100);
    }
    /* Nothing on the terminal until the end. */
    assert_int_equal(scr_count(&s, "read "), 0);
    assert_int_equal(tty_finish(&t, &s), 0);
    assert_true(row_counts(&s, 0, &rd, &dl, &rj, &fl));
    assert_int_equal(rd, 20);
    assert_int_equal(dl, 20);
    assert_int_equal(s.row, 1);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN); /* a child that exited closes its stdin */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(progress_line_is_rewritten_in_place_and_reports_stay_above_it),
        cmocka_unit_test(no_progress_line_with_no_progress),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
