/*
 * A small terminal for tests that drive a program under a pseudo-terminal:
 * bytes from the pty are applied to a ROWS x COLS screen the way a terminal
 * would (carriage return, newline with scrolling, ESC[K, ESC[J, ESC[H), so
 * a test asserts what a person would see. ASCII only. Static functions,
 * included by the tests that use it.
 */
#ifndef OPSTREAM_TEST_PTY_SCREEN_H
#define OPSTREAM_TEST_PTY_SCREEN_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define PTY_ROWS 24
#define PTY_COLS 80

typedef struct pty_screen {
    char cell[PTY_ROWS][PTY_COLS];
    int row, col;
    int esc; /* 0: text, 1: after ESC, 2: inside ESC[ */
    int scrolled;
} pty_screen_t;

static inline void pty_screen_init(pty_screen_t *s) {
    memset(s, 0, sizeof(*s));
    memset(s->cell, ' ', sizeof(s->cell));
}

static inline void pty_clear_from(pty_screen_t *s, int r, int c) {
    if (c < PTY_COLS)
        memset(&s->cell[r][c], ' ', (size_t)(PTY_COLS - c));
}

static inline void pty_feed(pty_screen_t *s, const char *buf, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)buf[i];
        if (s->esc == 1) {
            s->esc = ch == '[' ? 2 : 0;
            continue;
        }
        if (s->esc == 2) {
            if (ch >= 0x40 && ch <= 0x7e) {
                s->esc = 0;
                if (ch == 'K') {
                    pty_clear_from(s, s->row, s->col);
                } else if (ch == 'J') {
                    pty_clear_from(s, s->row, s->col);
                    for (int r = s->row + 1; r < PTY_ROWS; r++)
                        pty_clear_from(s, r, 0);
                } else if (ch == 'H') {
                    s->row = s->col = 0;
                }
            }
            continue;
        }
        if (ch == 0x1b) {
            s->esc = 1;
        } else if (ch == '\r') {
            s->col = 0;
        } else if (ch == '\n') {
            /* The pty's output processing turns "\n" into "\r\n". */
            s->col = 0;
            if (s->row == PTY_ROWS - 1) {
                memmove(s->cell[0], s->cell[1], sizeof(s->cell[0]) * (PTY_ROWS - 1));
                pty_clear_from(s, PTY_ROWS - 1, 0);
                s->scrolled++;
            } else {
                s->row++;
            }
        } else if (ch >= 0x20 && ch < 0x7f && s->col < PTY_COLS) {
            s->cell[s->row][s->col++] = (char)ch;
        }
    }
}

/* Row r as text, trailing blanks cut. */
static inline const char *pty_row(const pty_screen_t *s, int r, char *out, size_t size) {
    size_t n = PTY_COLS < size - 1 ? PTY_COLS : size - 1;
    memcpy(out, s->cell[r], n);
    while (n > 0 && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
    return out;
}

/* The first row holding text, or -1. */
static inline int pty_find(const pty_screen_t *s, const char *text) {
    char line[PTY_COLS + 1];
    for (int r = 0; r < PTY_ROWS; r++)
        if (strstr(pty_row(s, r, line, sizeof line), text) != NULL)
            return r;
    return -1;
}

/* How many rows hold text. */
static inline int pty_count(const pty_screen_t *s, const char *text) {
    char line[PTY_COLS + 1];
    int n = 0;
    for (int r = 0; r < PTY_ROWS; r++)
        if (strstr(pty_row(s, r, line, sizeof line), text) != NULL)
            n++;
    return n;
}

static inline void pty_dump(const pty_screen_t *s) {
    char line[PTY_COLS + 1];
    for (int r = 0; r < PTY_ROWS; r++)
        fprintf(stderr, "%2d|%s\n", r, pty_row(s, r, line, sizeof line));
}

/* Reads what the pty has for up to ms (less when it closes). Returns
 * false once the pty is closed (the program exited). */
static inline bool pty_pump(pty_screen_t *s, int fd, int ms) {
    int64_t until = harness_now_ms() + ms;
    char buf[4096];
    do {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int left = (int)(until - harness_now_ms());
        if (poll(&pfd, 1, left > 0 ? left : 0) <= 0)
            continue;
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0)
            return false;
        pty_feed(s, buf, (size_t)n);
    } while (harness_now_ms() < until);
    return true;
}

#endif
