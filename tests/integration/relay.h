/*
 * A TCP relay for the integration tests: a program is pointed at the relay
 * instead of at a server (redis-server here), and the relay passes the
 * bytes both ways, so that a test can lose a server's reply on purpose.
 * Armed with a text, the relay watches what programs send: the first reply
 * the server sends on a connection after a request holding that text is
 * dropped, and that connection closed at both ends. The server ran the
 * request; the program never hears of it, as when a connection dies
 * between a command and its reply. Held (relay_hold), it passes nothing
 * from the server on (a replica that stops hearing from its primary);
 * relay_drop closes every connection, held bytes lost. One thread,
 * poll(2); header only.
 */
#ifndef OPSTREAM_TEST_RELAY_H
#define OPSTREAM_TEST_RELAY_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#define RELAY_PAIRS 64
#define RELAY_HELPER __attribute__((unused)) static

typedef struct relay_pair {
    int from, to; /* the program's end, the server's end; -1 when unused */
    bool cut;     /* drop the server's next bytes and close */
} relay_pair_t;

typedef struct relay {
    int port, target_port;
    int lfd, wake[2];
    pthread_t thread;
    pthread_mutex_t mu;
    char armed[128]; /* "" when not armed */
    int cuts;
    bool hold, drop, stop; /* under mu; each change is written to wake */
    relay_pair_t pairs[RELAY_PAIRS];
} relay_t;

static int relay_write_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static bool relay_holds(const char *buf, size_t n, const char *text) {
    size_t t = strlen(text);

    for (size_t i = 0; t > 0 && i + t <= n; i++)
        if (memcmp(buf + i, text, t) == 0)
            return true;
    return false;
}

static void relay_close(relay_pair_t *p) {
    if (p->from >= 0)
        close(p->from);
    if (p->to >= 0)
        close(p->to);
    p->from = p->to = -1;
    p->cut = false;
}

static int relay_connect_target(int port) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void relay_accept(relay_t *r) {
    int fd = accept(r->lfd, NULL, NULL), one = 1;

    if (fd < 0)
        return;
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    for (int i = 0; i < RELAY_PAIRS; i++)
        if (r->pairs[i].from < 0) {
            r->pairs[i].from = fd;
            r->pairs[i].to = relay_connect_target(r->target_port);
            if (r->pairs[i].to < 0)
                relay_close(&r->pairs[i]);
            return;
        }
    close(fd);
}

/* Bytes ready on one end of pair p (to_server: the program's end). */
static void relay_pass(relay_t *r, relay_pair_t *p, bool to_server) {
    static char buf[65536];
    ssize_t n = read(to_server ? p->from : p->to, buf, sizeof buf);

    if (n <= 0) {
        relay_close(p);
        return;
    }
    pthread_mutex_lock(&r->mu);
    if (to_server && relay_holds(buf, (size_t)n, r->armed)) {
        p->cut = true;
        r->armed[0] = '\0';
    }
    bool cut = !to_server && p->cut;
    if (cut)
        r->cuts++;
    pthread_mutex_unlock(&r->mu);
    if (cut || relay_write_all(to_server ? p->to : p->from, buf, (size_t)n) != 0)
        relay_close(p);
}

static void *relay_main(void *arg) {
    relay_t *r = arg;
    struct pollfd fds[2 + 2 * RELAY_PAIRS];

    for (;;) {
        nfds_t n = 0;
        int idx[2 * RELAY_PAIRS];
        pthread_mutex_lock(&r->mu);
        bool hold = r->hold, drop = r->drop, stop = r->stop;
        r->drop = false;
        pthread_mutex_unlock(&r->mu);
        if (stop)
            break;
        for (int i = 0; drop && i < RELAY_PAIRS; i++)
            relay_close(&r->pairs[i]);
        fds[n++] = (struct pollfd){.fd = r->wake[0], .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = r->lfd, .events = POLLIN};
        for (int i = 0; i < RELAY_PAIRS; i++) {
            if (r->pairs[i].from < 0)
                continue;
            idx[n - 2] = i;
            fds[n++] = (struct pollfd){.fd = r->pairs[i].from, .events = POLLIN};
            if (hold)
                continue;
            idx[n - 2] = i;
            fds[n++] = (struct pollfd){.fd = r->pairs[i].to, .events = POLLIN};
        }
        if (poll(fds, n, 1000) < 0 && errno != EINTR)
            break;
        if (fds[0].revents != 0) {
            char b[16];
            (void)!read(r->wake[0], b, sizeof b);
            continue;
        }
        if (fds[1].revents & POLLIN)
            relay_accept(r);
        for (nfds_t k = 2; k < n; k++) {
            relay_pair_t *p = &r->pairs[idx[k - 2]];
            if (fds[k].revents == 0 || p->from < 0)
                continue;
            relay_pass(r, p, fds[k].fd == p->from);
        }
    }
    return NULL;
}

/* A relay on a free 127.0.0.1 port to 127.0.0.1:target_port, or NULL. */
RELAY_HELPER relay_t *relay_start(int target_port) {
    relay_t *r = calloc(1, sizeof *r);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof sa;

    if (r == NULL)
        return NULL;
    r->target_port = target_port;
    r->wake[0] = r->wake[1] = -1;
    for (int i = 0; i < RELAY_PAIRS; i++)
        r->pairs[i].from = r->pairs[i].to = -1;
    pthread_mutex_init(&r->mu, NULL);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (r->lfd < 0 || bind(r->lfd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        listen(r->lfd, 16) != 0 || getsockname(r->lfd, (struct sockaddr *)&sa, &len) != 0 ||
        pipe(r->wake) != 0 || pthread_create(&r->thread, NULL, relay_main, r) != 0) {
        if (r->lfd >= 0)
            close(r->lfd);
        if (r->wake[0] >= 0) {
            close(r->wake[0]);
            close(r->wake[1]);
        }
        pthread_mutex_destroy(&r->mu);
        free(r);
        return NULL;
    }
    fcntl(r->wake[0], F_SETFD, FD_CLOEXEC);
    fcntl(r->wake[1], F_SETFD, FD_CLOEXEC);
    r->port = ntohs(sa.sin_port);
    return r;
}

/* Arms the relay with text (see the top of this file). */
RELAY_HELPER void relay_cut_after(relay_t *r, const char *text) {
    pthread_mutex_lock(&r->mu);
    snprintf(r->armed, sizeof r->armed, "%s", text);
    pthread_mutex_unlock(&r->mu);
}

/* Sets what the relay's thread reads under mu, and wakes it. */
static void relay_tell(relay_t *r, bool *flag, bool on) {
    pthread_mutex_lock(&r->mu);
    *flag = on;
    pthread_mutex_unlock(&r->mu);
    (void)!write(r->wake[1], "x", 1);
}

/* Holds back (on) or passes on again what the server sends. */
RELAY_HELPER void relay_hold(relay_t *r, bool on) {
    relay_tell(r, &r->hold, on);
}

/* Closes every connection; bytes held back are lost. */
RELAY_HELPER void relay_drop(relay_t *r) {
    relay_tell(r, &r->drop, true);
}

/* Connections cut so far. */
RELAY_HELPER int relay_cuts(relay_t *r) {
    pthread_mutex_lock(&r->mu);
    int n = r->cuts;
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* Stops the thread and closes every connection. Accepts NULL. */
RELAY_HELPER void relay_free(relay_t *r) {
    if (r == NULL)
        return;
    relay_tell(r, &r->stop, true);
    pthread_join(r->thread, NULL);
    for (int i = 0; i < RELAY_PAIRS; i++)
        relay_close(&r->pairs[i]);
    close(r->lfd);
    close(r->wake[0]);
    close(r->wake[1]);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

#endif
