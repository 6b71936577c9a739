/*
 * A terminal for tests that drive a program under a pseudo-terminal: the
 * bytes the program writes are applied to a 24x80 screen as a terminal
 * would (enough of VT100 for opstream's programs), so that a test asserts
 * what a person sees. Static functions, included by the tests that use
 * them after cmocka.h (opstream-stats --watch, opstream-produce's progress
 * line).
 */
#ifndef OPSTREAM_TEST_PTY_SCREEN_H
#define OPSTREAM_TEST_PTY_SCREEN_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

/* A terminal of rows x cols fed the bytes a program writes: enough of VT100
 * for what opstream-stats sends (cursor home, clear to end of line and of
 * screen, CR, LF, printable UTF-8). A LF on the last row scrolls: counted,
 * since a scroll is a line added to the scrollback. */
#define SCR_ROWS 24
#define SCR_COLS 80
typedef struct screen {
    char cell[SCR_ROWS][SCR_COLS][4]; /* one UTF-8 character per cell */
    int row, col, scrolled, frames;
    int esc;       /* 0 none, 1 after ESC, 2 in CSI */
    int utf8_left; /* continuation bytes still to come */
} screen_t;

static inline void scr_clear_line(screen_t *s, int row, int from) {
    for (int c = from; c < SCR_COLS; c++)
        strcpy(s->cell[row][c], " ");
}

static inline void scr_feed(screen_t *s, const char *buf, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)buf[i];
        if (s->esc == 1) {
            s->esc = ch == '[' ? 2 : 0;
            continue;
        }
        if (s->esc == 2) {
            if (ch >= 0x40 && ch <= 0x7e) {
                s->esc = 0;
                if (ch == 'H') {
                    s->row = s->col = 0;
                    s->frames++;
                } else if (ch == 'K') {
                    scr_clear_line(s, s->row, s->col);
                } else if (ch == 'J') {
                    scr_clear_line(s, s->row, s->col);
                    for (int r = s->row + 1; r < SCR_ROWS; r++)
                        scr_clear_line(s, r, 0);
                }
            }
            continue;
        }
        if (ch == 0x1b) {
            s->esc = 1;
        } else if (ch == '\r') {
            s->col = 0;
        } else if (ch == '\n') {
            s->col = 0;
            if (s->row == SCR_ROWS - 1) {
                memmove(s->cell[0], s->cell[1], sizeof(s->cell[0]) * (SCR_ROWS - 1));
                scr_clear_line(s, SCR_ROWS - 1, 0);
                s->scrolled++;
            } else {
                s->row++;
            }
        } else if (s->utf8_left > 0 && (ch & 0xC0) == 0x80) {
            size_t l = strlen(s->cell[s->row][s->col - 1]);
            if (l < 3)
                s->cell[s->row][s->col - 1][l] = (char)ch, s->cell[s->row][s->col - 1][l + 1] = 0;
            s->utf8_left--;
        } else if (ch >= 0x20) {
            if (s->col >= SCR_COLS)
                continue; /* past the edge: the program must cut its lines */
            s->cell[s->row][s->col][0] = (char)ch;
            s->cell[s->row][s->col][1] = '\0';
            s->utf8_left = ch >= 0xF0 ? 3 : ch >= 0xE0 ? 2 : ch >= 0xC0 ? 1 : 0;
            s->col++;
        }
    }
}

/* Row r of the screen as text, trailing blanks cut. */
static inline void scr_row(const screen_t *s, int r, char *out, size_t size) {
    size_t o = 0;
    out[0] = '\0';
    for (int c = 0; c < SCR_COLS; c++) {
        size_t l = strlen(s->cell[r][c]);
        if (o + l + 1 > size)
            break;
        memcpy(out + o, s->cell[r][c], l);
        o += l;
    }
    while (o > 0 && out[o - 1] == ' ')
        o--;
    out[o] = '\0';
}

static inline int scr_find(const screen_t *s, const char *text) {
    char line[SCR_COLS * 4 + 1];
    for (int r = 0; r < SCR_ROWS; r++) {
        scr_row(s, r, line, sizeof(line));
        if (strstr(line, text) != NULL)
            return r;
    }
    return -1;
}

static inline void scr_dump(const screen_t *s) {
    char line[SCR_COLS * 4 + 1];
    for (int r = 0; r < SCR_ROWS; r++) {
        scr_row(s, r, line, sizeof(line));
        print_error("%2d|%s\n", r, line);
    }
}

/* A fresh, blank screen. */
static inline void scr_init(screen_t *s) {
    memset(s, 0, sizeof(*s));
    for (int r = 0; r < SCR_ROWS; r++)
        scr_clear_line(s, r, 0);
}

/* How many rows hold text. */
static inline int scr_count(const screen_t *s, const char *text) {
    char line[SCR_COLS * 4 + 1];
    int n = 0;
    for (int r = 0; r < SCR_ROWS; r++) {
        scr_row(s, r, line, sizeof(line));
        n += strstr(line, text) != NULL;
    }
    return n;
}

/* Reads the pty into the screen until the program closes it (it exited)
 * or timeout_ms passes. 0 when it was closed. */
static inline int scr_read_to_close(screen_t *s, int fd, int timeout_ms) {
    int64_t until = harness_now_ms() + timeout_ms;
    char buf[4096];
    while (harness_now_ms() < until) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN, .revents = 0};
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0)
            return 0;
        scr_feed(s, buf, (size_t)n);
    }
    return -1;
}

/* Reads the pty into the screen for ms (less when it closes). */
static inline void scr_pump(screen_t *s, int fd, int ms) {
    (void)scr_read_to_close(s, fd, ms);
}

#endif
