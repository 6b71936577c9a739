/*
 * A minimal HTTP/1.1 client for tests of the metrics endpoint: raw sockets
 * to 127.0.0.1, one request per connection, the whole answer read until
 * the server closes. Static functions, included by the tests that use it.
 */
#ifndef OPSTREAM_TEST_HTTP_CLIENT_H
#define OPSTREAM_TEST_HTTP_CLIENT_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct http_answer {
    int status;      /* -1: no answer */
    char head[4096]; /* status line and headers */
    char *body;      /* malloc'd, NUL-terminated; NULL when no answer */
    size_t body_len;
} http_answer_t;

static inline void http_answer_free(http_answer_t *a) {
    free(a->body);
    a->body = NULL;
}

/* Sends raw (len bytes) to 127.0.0.1:port and reads the answer until the
 * server closes the connection or timeout_ms passes without data. 0 when
 * a status line came back. */
static inline int http_raw(int port, const char *raw, size_t len, int timeout_ms,
                           http_answer_t *a) {
    struct sockaddr_in sa = {0};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    char *buf = NULL;
    size_t n = 0, cap = 0;
    size_t sent = 0;

    memset(a, 0, sizeof *a);
    a->status = -1;
    if (fd < 0)
        return -1;
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    /* The server may answer and close before it has read everything (a
     * refused upload): a failed send is not the end. */
    while (sent < len) {
        ssize_t w = send(fd, raw + sent, len - sent, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        sent += (size_t)w;
    }
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, timeout_ms);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            break;
        if (n + 4097 > cap) {
            cap = cap ? cap * 2 : 16384;
            char *nb = realloc(buf, cap);
            if (!nb)
                break;
            buf = nb;
        }
        ssize_t r = recv(fd, buf + n, cap - n - 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (!buf)
        return -1;
    buf[n] = '\0';
    char *end = strstr(buf, "\r\n\r\n");
    if (strncmp(buf, "HTTP/1.", 7) != 0 || !end) {
        free(buf);
        return -1;
    }
    a->status = atoi(buf + 9);
    size_t hl = (size_t)(end - buf);
    if (hl >= sizeof a->head)
        hl = sizeof a->head - 1;
    memcpy(a->head, buf, hl);
    a->head[hl] = '\0';
    a->body_len = n - (size_t)(end + 4 - buf);
    a->body = malloc(a->body_len + 1);
    if (a->body) {
        memcpy(a->body, end + 4, a->body_len);
        a->body[a->body_len] = '\0';
    }
    free(buf);
    return 0;
}

/* METHOD path with Connection: close. */
static inline int http_request(int port, const char *method, const char *path, http_answer_t *a) {
    char req[1024];
    int len =
        snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                 method, path);
    return http_raw(port, req, (size_t)len, 5000, a);
}

/* The value of sample `series` (the whole text before the value, e.g.
 * "opstream_consumer_lag_sum{group=\"g\"}") in exposition text; -1 when
 * absent. */
static inline double http_sample(const char *text, const char *series) {
    size_t sl = strlen(series);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, series, sl) == 0 && p[sl] == ' ')
            return strtod(p + sl + 1, NULL);
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return -1;
}

#endif
