/*
 * opstream integration-test harness (see harness.h): temp dir, child
 * processes that cannot outlive the test binary, the embedded broker, a real
 * redis-server on a free port, and small Kafka helpers built on librdkafka.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CHILDREN 256

static char g_tmpdir[1024]; /* short enough that every path below fits */
static bool g_inited;
static bool g_atexit_registered;
static pid_t g_owner; /* the test binary; forked children must not clean up */
static pid_t g_children[MAX_CHILDREN];
static unsigned g_spawn_seq;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One line on stderr, prefixed, so a failing test says why. */
static void say(const char *fmt, ...) {
    va_list ap;

    fputs("harness: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

static void sleep_ms(int ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int64_t harness_now_ms(void) {
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- child registry --------------------------------------------------- */

static void children_add(pid_t pid) {
    size_t i;

    for (i = 0; i < MAX_CHILDREN; i++) {
        if (g_children[i] == 0) {
            g_children[i] = pid;
            return;
        }
    }
    say("more than %d live children; pid %d is not tracked", MAX_CHILDREN, (int)pid);
}

static void children_remove(pid_t pid) {
    size_t i;

    for (i = 0; i < MAX_CHILDREN; i++) {
        if (g_children[i] == pid)
            g_children[i] = 0;
    }
}

/* Kills every tracked child's process group. reap: also wait for them. */
static void children_kill_all(bool reap) {
    size_t i;

    for (i = 0; i < MAX_CHILDREN; i++) {
        if (g_children[i] == 0)
            continue;
        kill(-g_children[i], SIGKILL);
        kill(g_children[i], SIGKILL);
        if (reap)
            waitpid(g_children[i], NULL, 0);
        g_children[i] = 0;
    }
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* The atexit handler: nothing the test started may survive it, even when
 * a test aborts early through exit(). Only the test binary itself acts. */
static void harness_atexit(void) {
    if (getpid() != g_owner)
        return;
    harness_cleanup();
}

/* ---- life cycle ------------------------------------------------------- */

int harness_init(void) {
    const char *base = getenv("TMPDIR");

    if (g_inited)
        return 0;
    if (base == NULL || base[0] == '\0')
        base = "/tmp";
    if (snprintf(g_tmpdir, sizeof(g_tmpdir), "%s/opstream-test.XXXXXX", base) >=
        (int)sizeof(g_tmpdir)) {
        say("TMPDIR too long");
        return -1;
    }
    if (mkdtemp(g_tmpdir) == NULL) {
        say("mkdtemp %s failed: %s", g_tmpdir, strerror(errno));
        g_tmpdir[0] = '\0';
        return -1;
    }
    g_owner = getpid();
    /* A write to a child that died must fail with EPIPE, not kill the test. */
    signal(SIGPIPE, SIG_IGN);
    if (!g_atexit_registered) {
        atexit(harness_atexit);
        g_atexit_registered = true;
    }
    g_inited = true;
    return 0;
}

void harness_cleanup(void) {
    const char *keep = getenv("OPSTREAM_KEEP_TMP");

    children_kill_all(true);
    if (!g_inited)
        return;
    if (keep != NULL && strcmp(keep, "1") == 0)
        say("kept temp dir %s", g_tmpdir);
    else
        nftw(g_tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    g_inited = false;
    g_tmpdir[0] = '\0';
}

int harness_group_setup(void **state) {
    (void)state;
    return harness_init();
}

int harness_group_teardown(void **state) {
    (void)state;
    harness_cleanup();
    return 0;
}

int harness_group_setup_redis(void **state, harness_redis_t **redis) {
    if (harness_group_setup(state) != 0)
        return -1;
    *redis = harness_redis_start(false);
    return *redis != NULL ? 0 : -1;
}

int harness_group_teardown_redis(void **state, harness_redis_t **redis) {
    harness_redis_free(*redis);
    *redis = NULL;
    return harness_group_teardown(state);
}

const char *harness_tmpdir(void) {
    if (harness_init() != 0)
        return "/nonexistent";
    return g_tmpdir;
}

int harness_path(char *buf, size_t size, const char *name) {
    if (harness_init() != 0)
        return -1;
    if (snprintf(buf, size, "%s/%s", g_tmpdir, name) >= (int)size) {
        say("path %s/%s too long", g_tmpdir, name);
        return -1;
    }
    return 0;
}

const char *harness_bin_dir(void) {
    const char *d = getenv("OPSTREAM_BIN_DIR");

    return d != NULL && d[0] != '\0' ? d : "bin";
}

const char *harness_src_dir(void) {
    const char *d = getenv("OPSTREAM_SRC_DIR");

    return d != NULL && d[0] != '\0' ? d : ".";
}

int harness_wait_until(harness_pred_fn pred, void *arg, int timeout_ms) {
    int64_t deadline = harness_now_ms() + timeout_ms;

    for (;;) {
        if (pred(arg))
            return 0;
        if (harness_now_ms() >= deadline)
            break;
        sleep_ms(20);
    }
    say("wait_until: condition still false after %d ms", timeout_ms);
    return -1;
}

/* ---- files ------------------------------------------------------------ */

char *harness_read_file(const char *path, size_t *lenp) {
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0;
    size_t cap = 0;

    if (f == NULL)
        return NULL;
    for (;;) {
        size_t n;

        if (cap - len < 4096) {
            char *nb = realloc(buf, cap + 65536);

            if (nb == NULL) {
                free(buf);
                buf = NULL;
                goto cleanup;
            }
            buf = nb;
            cap += 65536;
        }
        n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        free(buf);
        buf = NULL;
        goto cleanup;
    }
    buf[len] = '\0';
    if (lenp != NULL)
        *lenp = len;
cleanup:
    fclose(f);
    return buf;
}

int harness_write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    int rc = -1;

    if (len == (size_t)-1)
        len = strlen(data);
    if (f == NULL) {
        say("cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    if (fwrite(data, 1, len, f) == len)
        rc = 0;
    if (fclose(f) != 0)
        rc = -1;
    if (rc != 0)
        say("cannot write %s: %s", path, strerror(errno));
    return rc;
}

/* ---- processes -------------------------------------------------------- */

static int set_cloexec(int fd) {
    int fl = fcntl(fd, F_GETFD);

    return fl < 0 ? -1 : fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
}

/* Length of the NAME part of "NAME=value" (or of "NAME"). */
static size_t env_name_len(const char *entry) {
    const char *eq = strchr(entry, '=');

    return eq != NULL ? (size_t)(eq - entry) : strlen(entry);
}

/* True when env (the additions) names the variable of entry. */
static bool env_overrides(const char *const env[], const char *entry) {
    size_t n = env_name_len(entry);
    size_t i;

    for (i = 0; env != NULL && env[i] != NULL; i++) {
        if (env_name_len(env[i]) == n && strncmp(env[i], entry, n) == 0)
            return true;
    }
    return false;
}

/* The child's environment, built before fork so that the child only calls
 * async-signal-safe functions (librdkafka threads may be running): the
 * inherited variables not named in env, then env's "NAME=value" entries
 * ("NAME" alone: unset). The strings are not copied; free the array only. */
static char **env_build(const char *const env[]) {
    extern char **environ;
    size_t n_inh = 0, n_add = 0, k = 0, i;
    char **out;

    while (environ[n_inh] != NULL)
        n_inh++;
    while (env != NULL && env[n_add] != NULL)
        n_add++;
    out = calloc(n_inh + n_add + 1, sizeof(*out));
    if (out == NULL)
        return NULL;
    for (i = 0; i < n_inh; i++) {
        if (!env_overrides(env, environ[i]))
            out[k++] = environ[i];
    }
    for (i = 0; i < n_add; i++) {
        if (strchr(env[i], '=') != NULL)
            out[k++] = (char *)env[i];
    }
    out[k] = NULL;
    return out;
}

/* In the child after fork: become our own process group, die with the
 * parent, wire stdio, exec with envp. Never returns. */
static void child_exec(const char *const argv[], char **envp, const char *path, int in_fd,
                       int out_fd, int err_fd, pid_t parent) {
    extern char **environ;
    sigset_t none;

    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127); /* the parent died before prctl took effect */
    /* Ignored signals and the mask survive exec: give the child defaults. */
    signal(SIGPIPE, SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (dup2(in_fd, STDIN_FILENO) < 0 || dup2(out_fd, STDOUT_FILENO) < 0 ||
        dup2(err_fd, STDERR_FILENO) < 0)
        _exit(127);
    if (path != NULL) {
        execve(path, (char *const *)argv, envp);
    } else {
        environ = envp; /* execvp searches PATH and passes environ */
        execvp(argv[0], (char *const *)argv);
    }
    {
        const char *what = path != NULL ? path : argv[0];
        static const char msg[] = "harness: cannot execute ";

        /* write(2) only: async-signal-safe after fork. */
        if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0 ||
            write(STDERR_FILENO, what, strlen(what)) < 0 || write(STDERR_FILENO, "\n", 1) < 0)
            _exit(127);
    }
    _exit(127);
}

harness_proc_t *harness_spawn(const char *const argv[], const char *const env[], unsigned flags) {
    harness_proc_t *p = NULL;
    char path[HARNESS_PATH_MAX];
    const char *exec_path = NULL;
    const char *base;
    int in_pipe[2] = {-1, -1};
    int out_pipe[2] = {-1, -1};
    int in_fd = -1, out_fd = -1, err_fd = -1;
    pid_t parent = getpid();
    char **envp = NULL;
    pid_t pid;
    bool ok = false;

    if (harness_init() != 0 || argv == NULL || argv[0] == NULL)
        return NULL;
    p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->stdin_fd = -1;
    p->stdout_fd = -1;
    p->pid = -1;

    base = strrchr(argv[0], '/');
    base = base != NULL ? base + 1 : argv[0];
    snprintf(p->name, sizeof(p->name), "%s", base);
    if (strchr(argv[0], '/') != NULL) {
        exec_path = argv[0];
    } else if (snprintf(path, sizeof(path), "%s/%s", harness_bin_dir(), argv[0]) <
                   (int)sizeof(path) &&
               access(path, X_OK) == 0) {
        exec_path = path;
    }

    g_spawn_seq++;
    if (flags & HARNESS_STDIN_PIPE) {
        if (pipe(in_pipe) != 0 || set_cloexec(in_pipe[1]) != 0)
            goto cleanup;
        in_fd = in_pipe[0];
    } else {
        in_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    if (flags & HARNESS_STDOUT_PIPE) {
        if (pipe(out_pipe) != 0 || set_cloexec(out_pipe[0]) != 0)
            goto cleanup;
        out_fd = out_pipe[1];
    } else {
        snprintf(p->out_path, sizeof(p->out_path), "%s/%s.%u.out", g_tmpdir, p->name, g_spawn_seq);
        out_fd = open(p->out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    }
    snprintf(p->err_path, sizeof(p->err_path), "%s/%s.%u.err", g_tmpdir, p->name, g_spawn_seq);
    err_fd = open(p->err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    envp = env_build(env);
    if (in_fd < 0 || out_fd < 0 || err_fd < 0 || envp == NULL)
        goto cleanup;

    fflush(NULL);
    pid = fork();
    if (pid < 0)
        goto cleanup;
    if (pid == 0)
        child_exec(argv, envp, exec_path, in_fd, out_fd, err_fd, parent);
    setpgid(pid, pid); /* also here, so a kill(-pid) right away works */
    p->pid = pid;
    children_add(pid);
    if (flags & HARNESS_STDIN_PIPE) {
        p->stdin_fd = in_pipe[1];
        in_pipe[1] = -1;
    }
    if (flags & HARNESS_STDOUT_PIPE) {
        p->stdout_fd = out_pipe[0];
        out_pipe[0] = -1;
    }
    ok = true;

cleanup:
    if (!ok)
        say("spawn %s failed: %s", argv[0], strerror(errno));
    /* The child's ends (and our unused ends) are closed in the parent. */
    if (in_fd >= 0)
        close(in_fd);
    if (out_fd >= 0)
        close(out_fd);
    if (err_fd >= 0)
        close(err_fd);
    if (in_pipe[1] >= 0)
        close(in_pipe[1]);
    if (out_pipe[0] >= 0)
        close(out_pipe[0]);
    free(envp);
    if (!ok) {
        free(p);
        p = NULL;
    }
    return p;
}

/* Reaps the child if it has exited. blocking: wait for it. */
static void proc_reap(harness_proc_t *p, bool blocking) {
    int status;
    pid_t r;

    if (p->exited || p->pid <= 0)
        return;
    do {
        r = waitpid(p->pid, &status, blocking ? 0 : WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == p->pid || (r < 0 && errno == ECHILD)) {
        p->exited = true;
        p->status = r == p->pid ? status : 0;
        children_remove(p->pid);
    }
}

int harness_proc_wait(harness_proc_t *p, int timeout_ms) {
    int64_t deadline = harness_now_ms() + timeout_ms;

    for (;;) {
        proc_reap(p, false);
        if (p->exited)
            return 0;
        if (harness_now_ms() >= deadline)
            return -1;
        sleep_ms(10);
    }
}

bool harness_proc_running(harness_proc_t *p) {
    proc_reap(p, false);
    return !p->exited;
}

int harness_proc_exit_code(const harness_proc_t *p) {
    if (!p->exited)
        return -1;
    if (WIFEXITED(p->status))
        return WEXITSTATUS(p->status);
    if (WIFSIGNALED(p->status))
        return 128 + WTERMSIG(p->status);
    return -1;
}

int harness_proc_signal(harness_proc_t *p, int sig) {
    proc_reap(p, false);
    if (p->exited)
        return -1;
    return kill(p->pid, sig) == 0 ? 0 : -1;
}

int harness_proc_kill(harness_proc_t *p) {
    proc_reap(p, false);
    if (!p->exited) {
        kill(-p->pid, SIGKILL);
        kill(p->pid, SIGKILL);
        proc_reap(p, true);
    }
    return 0;
}

int harness_proc_stop(harness_proc_t *p, int timeout_ms) {
    if (harness_proc_signal(p, SIGTERM) == 0 && harness_proc_wait(p, timeout_ms) != 0) {
        say("%s (pid %d) still running %d ms after SIGTERM: SIGKILL", p->name, (int)p->pid,
            timeout_ms);
        harness_proc_kill(p);
    }
    proc_reap(p, true);
    return harness_proc_exit_code(p);
}

void harness_proc_free(harness_proc_t *p) {
    if (p == NULL)
        return;
    harness_proc_kill(p);
    if (p->stdin_fd >= 0)
        close(p->stdin_fd);
    if (p->stdout_fd >= 0)
        close(p->stdout_fd);
    free(p);
}

int harness_proc_read_line(harness_proc_t *p, char *buf, size_t size, int timeout_ms) {
    int64_t deadline = harness_now_ms() + timeout_ms;

    if (p->stdout_fd < 0) {
        say("read_line: stdout of %s is not a pipe", p->name);
        return -1;
    }
    for (;;) {
        char *nl = memchr(p->rbuf, '\n', p->rlen);
        struct pollfd pfd = {.fd = p->stdout_fd, .events = POLLIN, .revents = 0};
        int64_t left;
        ssize_t n;

        if (nl != NULL) {
            size_t linelen = (size_t)(nl - p->rbuf);
            size_t copy = linelen < size - 1 ? linelen : size - 1;

            memcpy(buf, p->rbuf, copy);
            buf[copy] = '\0';
            p->rlen -= linelen + 1;
            memmove(p->rbuf, nl + 1, p->rlen);
            return 0;
        }
        if (p->rlen == sizeof(p->rbuf)) {
            say("read_line: line from %s longer than %zu bytes", p->name, sizeof(p->rbuf));
            return -1;
        }
        left = deadline - harness_now_ms();
        if (left <= 0) {
            say("read_line: no line from %s within %d ms", p->name, timeout_ms);
            return -1;
        }
        if (poll(&pfd, 1, (int)left) <= 0)
            continue;
        n = read(p->stdout_fd, p->rbuf + p->rlen, sizeof(p->rbuf) - p->rlen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            say("read_line: %s closed its stdout", p->name);
            return -1;
        }
        p->rlen += (size_t)n;
    }
}

int harness_proc_write(harness_proc_t *p, const char *s) {
    size_t len = strlen(s);
    size_t off = 0;

    if (p->stdin_fd < 0) {
        say("write: stdin of %s is not a pipe", p->name);
        return -1;
    }
    while (off < len) {
        ssize_t n = write(p->stdin_fd, s + off, len - off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            say("write to %s failed: %s", p->name, strerror(errno));
            return -1;
        }
        off += (size_t)n;
    }
    return 0;
}

static char *read_or_empty(const char *path) {
    char *s = path[0] != '\0' ? harness_read_file(path, NULL) : NULL;

    return s != NULL ? s : strdup("");
}

char *harness_proc_stdout(const harness_proc_t *p) {
    return read_or_empty(p->out_path);
}

char *harness_proc_stderr(const harness_proc_t *p) {
    return read_or_empty(p->err_path);
}

bool harness_proc_stderr_has(const harness_proc_t *p, const char *text) {
    char *err = harness_proc_stderr(p);
    bool yes = err != NULL && strstr(err, text) != NULL;

    free(err);
    return yes;
}

int harness_proc_stderr_count(const harness_proc_t *p, const char *text) {
    char *err = harness_proc_stderr(p);
    int n = 0;

    for (const char *at = err; at != NULL && (at = strstr(at, text)) != NULL; at++)
        n++;
    free(err);
    return n;
}

/* Prints a child's stderr, so a start failure explains itself. */
static void say_stderr_of(const harness_proc_t *p) {
    char *err = harness_proc_stderr(p);

    if (err != NULL && err[0] != '\0')
        say("stderr of %s:\n%s", p->name, err);
    free(err);
}

/* ---- embedded broker -------------------------------------------------- */

harness_broker_t *harness_broker_start(const char *const extra_args[]) {
    const char *argv[64] = {"opstream-broker", "--brokers", "3", "--partitions", "6"};
    size_t n = 5;
    size_t i;
    harness_broker_t *b = calloc(1, sizeof(*b));

    if (b == NULL)
        return NULL;
    for (i = 0; extra_args != NULL && extra_args[i] != NULL && n < 63; i++)
        argv[n++] = extra_args[i];
    argv[n] = NULL;
    b->proc = harness_spawn(argv, NULL, HARNESS_STDIN_PIPE | HARNESS_STDOUT_PIPE);
    if (b->proc == NULL)
        goto fail;
    if (harness_proc_read_line(b->proc, b->bootstrap, sizeof(b->bootstrap), 15000) != 0 ||
        strchr(b->bootstrap, ':') == NULL) {
        say("opstream-broker gave no bootstrap line (got '%s')", b->bootstrap);
        harness_proc_wait(b->proc, 1000);
        say_stderr_of(b->proc);
        goto fail;
    }
    return b;
fail:
    harness_broker_free(b);
    return NULL;
}

int harness_broker_command(harness_broker_t *b, const char *command, char *answer,
                           size_t answer_size) {
    char line[1024];

    line[0] = '\0';
    if (harness_proc_write(b->proc, command) != 0 || harness_proc_write(b->proc, "\n") != 0 ||
        harness_proc_read_line(b->proc, line, sizeof(line), 10000) != 0) {
        snprintf(line, sizeof(line), "error: no answer from opstream-broker");
    }
    if (answer != NULL && answer_size > 0)
        snprintf(answer, answer_size, "%s", line);
    if (strcmp(line, "ok") != 0) {
        say("broker command '%s': %s", command, line);
        return -1;
    }
    return 0;
}

int harness_broker_rtt(harness_broker_t *b, int ms) {
    char cmd[64];
    int brokers = 1; /* one address per broker in the bootstrap line */

    for (const char *c = b->bootstrap; (c = strchr(c, ',')) != NULL; c++)
        brokers++;
    for (int id = 1; id <= brokers; id++) {
        snprintf(cmd, sizeof(cmd), "rtt %d %d", id, ms);
        if (harness_broker_command(b, cmd, NULL, 0) != 0)
            return -1;
    }
    return 0;
}

int harness_broker_stop(harness_broker_t *b) {
    return harness_proc_stop(b->proc, 15000);
}

void harness_broker_free(harness_broker_t *b) {
    if (b == NULL)
        return;
    if (b->proc != NULL && harness_proc_running(b->proc))
        harness_proc_stop(b->proc, 15000);
    harness_proc_free(b->proc);
    free(b);
}

/* ---- redis-server ----------------------------------------------------- */

/* A port nobody listens on now: bind port 0 and ask which one we got. */
int harness_free_port(void) {
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int port = -1;

    if (fd < 0)
        return -1;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* True once redis answers PING with PONG (not LOADING, not refused). */
static bool redis_pongs(void *arg) {
    harness_redis_t *r = arg;
    redisContext *c = harness_redis_connect(r);
    redisReply *reply;
    bool ok = false;

    if (c == NULL)
        return false;
    reply = redisCommand(c, "PING");
    ok = reply != NULL && reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "PONG") == 0;
    if (reply != NULL)
        freeReplyObject(reply);
    redisFree(c);
    return ok;
}

/* Spawns redis-server for r (port, dir, appendonly) and waits for PING. */
static int redis_launch(harness_redis_t *r) {
    char port[16], logfile[HARNESS_PATH_MAX + 16];
    const char *argv[] = {"redis-server",
                          "--port",
                          port,
                          "--bind",
                          "127.0.0.1",
                          "--dir",
                          r->dir,
                          "--save",
                          "",
                          "--appendonly",
                          r->appendonly ? "yes" : "no",
                          "--appendfsync",
                          "always",
                          "--daemonize",
                          "no",
                          "--logfile",
                          logfile,
                          NULL};
    int64_t deadline = harness_now_ms() + 10000;

    snprintf(port, sizeof(port), "%d", r->port);
    snprintf(logfile, sizeof(logfile), "%s/redis.log", r->dir);
    r->proc = harness_spawn(argv, NULL, 0);
    if (r->proc == NULL)
        return -1;
    while (!redis_pongs(r)) {
        if (!harness_proc_running(r->proc) || harness_now_ms() >= deadline) {
            char *log = harness_read_file(logfile, NULL);

            say("redis-server on port %d did not answer PING (exit %d); log:\n%s", r->port,
                harness_proc_exit_code(r->proc), log != NULL ? log : "(none)");
            free(log);
            harness_proc_free(r->proc);
            r->proc = NULL;
            return -1;
        }
        sleep_ms(20);
    }
    return 0;
}

harness_redis_t *harness_redis_start(bool appendonly) {
    harness_redis_t *r;
    int attempt;

    if (harness_init() != 0)
        return NULL;
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->appendonly = appendonly;
    /* Another process may take the free port before redis binds it: retry. */
    for (attempt = 0; attempt < 3; attempt++) {
        r->port = harness_free_port();
        if (r->port <= 0)
            continue;
        snprintf(r->dir, sizeof(r->dir), "%s/redis-%d", g_tmpdir, r->port);
        snprintf(r->url, sizeof(r->url), "redis://127.0.0.1:%d/0", r->port);
        if (mkdir(r->dir, 0755) != 0 && errno != EEXIST) {
            say("mkdir %s failed: %s", r->dir, strerror(errno));
            break;
        }
        if (redis_launch(r) == 0)
            return r;
    }
    free(r);
    return NULL;
}

int harness_redis_stop(harness_redis_t *r) {
    int rc;

    if (r->proc == NULL)
        return 0;
    rc = harness_proc_stop(r->proc, 10000);
    harness_proc_free(r->proc);
    r->proc = NULL;
    return rc == 0 ? 0 : -1;
}

int harness_redis_kill(harness_redis_t *r) {
    if (r->proc != NULL) {
        harness_proc_kill(r->proc);
        harness_proc_free(r->proc);
        r->proc = NULL;
    }
    return 0;
}

int harness_redis_restart(harness_redis_t *r) {
    int64_t deadline = harness_now_ms() + 10000;

    if (r->proc != NULL)
        harness_redis_stop(r);
    /* The port may linger in the kernel for a moment after a kill. */
    for (;;) {
        if (redis_launch(r) == 0)
            return 0;
        if (harness_now_ms() >= deadline)
            return -1;
        sleep_ms(200);
    }
}

redisContext *harness_redis_connect(const harness_redis_t *r) {
    struct timeval tv = {.tv_sec = 2, .tv_usec = 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);

    if (c == NULL)
        return NULL;
    if (c->err) {
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    return c;
}

redisReply *harness_redis_command(const harness_redis_t *r, const char *fmt, ...) {
    redisContext *c = harness_redis_connect(r);
    redisReply *reply;
    va_list ap;

    if (c == NULL) {
        say("cannot connect to redis on port %d", r->port);
        return NULL;
    }
    va_start(ap, fmt);
    reply = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (reply == NULL)
        say("redis command '%s' failed: %s", fmt, c->errstr);
    redisFree(c);
    return reply;
}

int harness_redis_held_back(const harness_redis_t *r, const char *cmd) {
    redisReply *reply = harness_redis_command(r, "CLIENT LIST");
    char want[64];
    int n = 0;

    if (reply == NULL || reply->type != REDIS_REPLY_STRING) {
        if (reply != NULL)
            freeReplyObject(reply);
        return -1;
    }
    snprintf(want, sizeof(want), " cmd=%s ", cmd != NULL ? cmd : "");
    for (char *line = reply->str; line != NULL;) {
        char *next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        const char *flags = strstr(line, " flags=");
        const char *end = flags != NULL ? strchr(flags + 7, ' ') : NULL;
        if (end != NULL && memchr(flags + 7, 'b', (size_t)(end - (flags + 7))) != NULL &&
            (cmd == NULL || strstr(line, want) != NULL))
            n++;
        line = next;
    }
    freeReplyObject(reply);
    return n;
}

long long harness_redis_kill_clients(const harness_redis_t *r) {
    redisReply *reply = harness_redis_command(r, "CLIENT KILL TYPE normal");
    long long n = reply != NULL && reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1;

    if (reply != NULL)
        freeReplyObject(reply);
    return n;
}

void harness_redis_free(harness_redis_t *r) {
    if (r == NULL)
        return;
    harness_redis_stop(r);
    free(r);
}

/* ---- Kafka helpers ---------------------------------------------------- */

/* A bare librdkafka client for the helpers below (no opstream config). */
static rd_kafka_t *kafka_client(rd_kafka_type_t type, const char *bootstrap) {
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    const char *props[][2] = {
        {"bootstrap.servers", bootstrap},
        {"socket.nagle.disable", "true"},
        {type == RD_KAFKA_CONSUMER ? "group.id" : "message.timeout.ms",
         type == RD_KAFKA_CONSUMER ? "opstream-harness" : "10000"},
        {type == RD_KAFKA_CONSUMER ? "enable.auto.commit" : "acks",
         type == RD_KAFKA_CONSUMER ? "false" : "all"},
    };
    size_t i;

    for (i = 0; i < sizeof(props) / sizeof(props[0]); i++) {
        if (rd_kafka_conf_set(conf, props[i][0], props[i][1], errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK) {
            say("kafka conf %s: %s", props[i][0], errstr);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        say("rd_kafka_new: %s", errstr);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

/* Number of partitions of topic from the cluster's metadata, or -1. */
static int topic_partitions(rd_kafka_t *rk, const char *topic, int timeout_ms) {
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err;
    int n = -1;

    if (rkt == NULL)
        return -1;
    err = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
        say("metadata for %s: %s", topic, rd_kafka_err2str(err));
    else if (md->topic_cnt != 1 || md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR)
        say("metadata for %s: %s", topic,
            md->topic_cnt == 1 ? rd_kafka_err2str(md->topics[0].err) : "topic missing");
    else
        n = md->topics[0].partition_cnt;
    if (md != NULL)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return n;
}

static void produce_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    rd_kafka_resp_err_t *errp = m->_private;

    (void)rk;
    (void)opaque;
    *errp = m->err;
}

int harness_produce(const char *bootstrap, const char *topic, int32_t partition, const void *key,
                    size_t key_len, const void *value, size_t value_len,
                    const char *const headers[]) {
    char errstr[512];
    rd_kafka_conf_t *conf = NULL;
    rd_kafka_t *rk = NULL;
    rd_kafka_headers_t *hdrs = NULL;
    rd_kafka_resp_err_t dr_err = RD_KAFKA_RESP_ERR__IN_PROGRESS;
    rd_kafka_resp_err_t err;
    int64_t deadline;
    size_t i;
    int rc = -1;

    if (harness_init() != 0)
        return -1;
    conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "socket.nagle.disable", "true", errstr, sizeof(errstr)) ||
        rd_kafka_conf_set(conf, "message.timeout.ms", "10000", errstr, sizeof(errstr))) {
        say("produce conf: %s", errstr);
        goto cleanup;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, produce_dr);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        say("rd_kafka_new: %s", errstr);
        goto cleanup;
    }
    conf = NULL; /* now owned by rk */
    if (headers != NULL) {
        hdrs = rd_kafka_headers_new(8);
        for (i = 0; headers[i] != NULL && headers[i + 1] != NULL; i += 2)
            rd_kafka_header_add(hdrs, headers[i], -1, headers[i + 1], -1);
    }
    err = rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition), RD_KAFKA_V_KEY(key, key_len),
        RD_KAFKA_V_VALUE((void *)value, value_len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(&dr_err), RD_KAFKA_V_END);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        say("produce to %s: %s", topic, rd_kafka_err2str(err));
        goto cleanup;
    }
    hdrs = NULL; /* now owned by the message */
    deadline = harness_now_ms() + 12000;
    while (dr_err == RD_KAFKA_RESP_ERR__IN_PROGRESS && harness_now_ms() < deadline)
        rd_kafka_poll(rk, 50);
    if (dr_err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        say("produce to %s: %s", topic,
            dr_err == RD_KAFKA_RESP_ERR__IN_PROGRESS ? "no delivery report"
                                                     : rd_kafka_err2str(dr_err));
        goto cleanup;
    }
    rc = 0;
cleanup:
    if (hdrs != NULL)
        rd_kafka_headers_destroy(hdrs);
    if (rk != NULL) {
        rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(rk, 1000);
        rd_kafka_destroy(rk);
    }
    if (conf != NULL)
        rd_kafka_conf_destroy(conf);
    return rc;
}

/* A NUL-terminated copy of len bytes (NUL extra, for printing); NULL stays
 * NULL. Returns -1 when out of memory. */
static int dup_bytes(const void *src, size_t len, void **dst, size_t *dst_len) {
    if (src == NULL)
        return 0;
    *dst = malloc(len + 1);
    if (*dst == NULL)
        return -1;
    memcpy(*dst, src, len);
    ((char *)*dst)[len] = '\0';
    *dst_len = len;
    return 0;
}

/* Copies a consumed message out of librdkafka's buffers, taking its headers. */
static int msg_copy(harness_msg_t *dst, rd_kafka_message_t *m) {
    memset(dst, 0, sizeof(*dst));
    dst->partition = m->partition;
    dst->offset = m->offset;
    dst->timestamp = rd_kafka_message_timestamp(m, NULL);
    if (dup_bytes(m->key, m->key_len, &dst->key, &dst->key_len) != 0 ||
        dup_bytes(m->payload, m->len, &dst->value, &dst->value_len) != 0)
        return -1;
    if (rd_kafka_message_detach_headers(m, &dst->headers) != RD_KAFKA_RESP_ERR_NO_ERROR)
        dst->headers = NULL;
    return 0;
}

static int msg_cmp(const void *a, const void *b) {
    const harness_msg_t *x = a, *y = b;

    if (x->partition != y->partition)
        return x->partition < y->partition ? -1 : 1;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int msgs_push(harness_msgs_t *out, size_t *cap, rd_kafka_message_t *m) {
    if (out->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        harness_msg_t *nv = realloc(out->v, nc * sizeof(*nv));

        if (nv == NULL)
            return -1;
        out->v = nv;
        *cap = nc;
    }
    if (msg_copy(&out->v[out->n], m) != 0) {
        free(out->v[out->n].key);
        free(out->v[out->n].value);
        return -1;
    }
    out->n++;
    return 0;
}

/* The high watermarks of every partition are taken first, so "everything"
 * has a fixed meaning; the idle period then also picks up what arrives
 * meanwhile. assign() rather than subscribe(): no group, no rebalance. */
int harness_consume_all(const char *bootstrap, const char *topic, int idle_ms, int timeout_ms,
                        harness_msgs_t *out) {
    rd_kafka_t *rk = NULL;
    rd_kafka_topic_partition_list_t *parts = NULL;
    int64_t *pos = NULL, *high = NULL;
    int64_t deadline = harness_now_ms() + timeout_ms;
    int64_t last_activity;
    size_t cap = 0;
    int n_parts, p;
    int rc = -1;

    out->v = NULL;
    out->n = 0;
    if (harness_init() != 0)
        return -1;
    rk = kafka_client(RD_KAFKA_CONSUMER, bootstrap);
    if (rk == NULL)
        goto cleanup;
    n_parts = topic_partitions(rk, topic, timeout_ms);
    if (n_parts <= 0)
        goto cleanup;
    pos = calloc((size_t)n_parts, sizeof(*pos));
    high = calloc((size_t)n_parts, sizeof(*high));
    parts = rd_kafka_topic_partition_list_new(n_parts);
    if (pos == NULL || high == NULL || parts == NULL)
        goto cleanup;
    for (p = 0; p < n_parts; p++) {
        rd_kafka_resp_err_t err;
        int left = (int)(deadline - harness_now_ms());

        err =
            rd_kafka_query_watermark_offsets(rk, topic, p, &pos[p], &high[p], left > 0 ? left : 1);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            say("watermarks of %s [%d]: %s", topic, p, rd_kafka_err2str(err));
            goto cleanup;
        }
        rd_kafka_topic_partition_list_add(parts, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    if (rd_kafka_assign(rk, parts) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        say("assign %s failed", topic);
        goto cleanup;
    }
    last_activity = harness_now_ms();
    for (;;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 50);
        int64_t now = harness_now_ms();
        bool caught_up = true;

        if (m != NULL) {
            if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
                if (m->partition >= 0 && m->partition < n_parts)
                    pos[m->partition] = m->offset + 1;
                if (msgs_push(out, &cap, m) != 0) {
                    rd_kafka_message_destroy(m);
                    say("out of memory");
                    goto cleanup;
                }
                last_activity = now;
            } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                say("consume %s: %s (retrying)", topic, rd_kafka_message_errstr(m));
            }
            rd_kafka_message_destroy(m);
        }
        for (p = 0; p < n_parts; p++)
            caught_up = caught_up && pos[p] >= high[p];
        if (caught_up && now - last_activity >= idle_ms)
            break;
        if (now >= deadline) {
            say("consume_all %s: timed out after %d ms with %zu messages", topic, timeout_ms,
                out->n);
            goto cleanup;
        }
    }
    qsort(out->v, out->n, sizeof(*out->v), msg_cmp);
    rc = 0;
cleanup:
    if (rc != 0)
        harness_msgs_free(out);
    if (parts != NULL)
        rd_kafka_topic_partition_list_destroy(parts);
    free(pos);
    free(high);
    if (rk != NULL) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    return rc;
}

void harness_msgs_free(harness_msgs_t *m) {
    size_t i;

    if (m == NULL)
        return;
    for (i = 0; i < m->n; i++) {
        free(m->v[i].key);
        free(m->v[i].value);
        if (m->v[i].headers != NULL)
            rd_kafka_headers_destroy(m->v[i].headers);
    }
    free(m->v);
    m->v = NULL;
    m->n = 0;
}

int harness_msg_header(const harness_msg_t *m, const char *name, char *buf, size_t size) {
    const void *val = NULL;
    size_t len = 0;

    if (m->headers == NULL ||
        rd_kafka_header_get_last(m->headers, name, &val, &len) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return -1;
    if (size == 0)
        return -1;
    if (len >= size)
        len = size - 1;
    if (len > 0)
        memcpy(buf, val, len);
    buf[len] = '\0';
    return 0;
}

int64_t harness_topic_count(const char *bootstrap, const char *topic, int timeout_ms) {
    rd_kafka_t *rk = kafka_client(RD_KAFKA_PRODUCER, bootstrap);
    int64_t total = 0;
    int n_parts, p;

    if (rk == NULL)
        return -1;
    n_parts = topic_partitions(rk, topic, timeout_ms);
    if (n_parts <= 0)
        total = -1;
    for (p = 0; p < n_parts && total >= 0; p++) {
        int64_t lo = 0, hi = 0;

        if (rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, timeout_ms) !=
            RD_KAFKA_RESP_ERR_NO_ERROR)
            total = -1;
        else
            total += hi;
    }
    rd_kafka_destroy(rk);
    return total;
}
