/*
 * opstream integration-test harness: a temp dir per test binary, the embedded
 * broker (opstream-broker) and a real redis-server as child processes, program
 * spawning with captured output, and Kafka/Redis helpers. Every child dies
 * with the test binary (PR_SET_PDEATHSIG, own process group, killed at
 * teardown and at exit); every wait has a timeout.
 *
 * Conventions: functions returning int give 0 on success and -1 on failure;
 * functions returning a pointer give NULL on failure. On failure the harness
 * prints one line "harness: <what> failed: <why>" on stderr, so a test only
 * needs assert_int_equal(..., 0) / assert_non_null(...).
 *
 * Typical use (cmocka):
 *
 *   static int group_setup(void **state) {
 *       if (harness_group_setup(state) != 0) return -1;
 *       g_broker = harness_broker_start(NULL);     // 3 brokers, 6 partitions
 *       g_redis  = harness_redis_start(0);         // no AOF
 *       return g_broker && g_redis ? 0 : -1;
 *   }
 *   static int group_teardown(void **state) {
 *       harness_broker_free(g_broker);
 *       harness_redis_free(g_redis);
 *       return harness_group_teardown(state);
 *   }
 *   ...
 *   const char *argv[] = {"opstream-count", "-b", g_broker->bootstrap,
 *                         "--redis", g_redis->url, NULL};
 *   harness_proc_t *p = harness_spawn(argv, NULL, 0);
 *   assert_int_equal(harness_wait_until(counted_all, NULL, 20000), 0);
 *   assert_int_equal(harness_proc_stop(p, 10000), 0);    // exit code 0
 *   harness_proc_free(p);
 */
#ifndef OPSTREAM_HARNESS_H
#define OPSTREAM_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HARNESS_PATH_MAX 4096

/* ---- life cycle ------------------------------------------------------- */

/* Creates the temp dir (mkdtemp "$TMPDIR/opstream-test.XXXXXX", /tmp when
 * TMPDIR is unset) and registers the atexit handler that kills every child
 * still alive. Idempotent; every other harness function calls it. */
int harness_init(void);

/* Kills (SIGKILL to the process group) and reaps every child still running,
 * then removes the temp dir with everything in it. Safe to call twice. Set
 * OPSTREAM_KEEP_TMP=1 to keep the dir for post-mortem (its path is printed). */
void harness_cleanup(void);

/* cmocka group setup/teardown: harness_init / harness_cleanup. They ignore
 * and do not touch *state, so a test file may chain its own. */
int harness_group_setup(void **state);
int harness_group_teardown(void **state);

/* The temp dir ("/tmp/opstream-test.AbC123"). */
const char *harness_tmpdir(void);
/* Writes "<tmpdir>/<name>" into buf. name may contain '/', nothing is created. */
int harness_path(char *buf, size_t size, const char *name);
/* $OPSTREAM_BIN_DIR (default "bin") and $OPSTREAM_SRC_DIR (default "."). */
const char *harness_bin_dir(void);
const char *harness_src_dir(void);

/* Milliseconds of a monotonic clock. */
int64_t harness_now_ms(void);

/* Calls pred(arg) every 20 ms until it returns true (0) or timeout_ms
 * passes (-1, with a "timed out" line on stderr). */
typedef bool (*harness_pred_fn)(void *arg);
int harness_wait_until(harness_pred_fn pred, void *arg, int timeout_ms);

/* ---- files ------------------------------------------------------------ */

/* Reads a whole file. Returns a malloc'd, NUL-terminated buffer (the caller
 * frees it) and its length in *lenp (may be NULL); NULL when unreadable. */
char *harness_read_file(const char *path, size_t *lenp);
/* Writes data (len bytes; len (size_t)-1 means strlen) to path, replacing it. */
int harness_write_file(const char *path, const void *data, size_t len);

/* ---- processes -------------------------------------------------------- */

/* harness_spawn flags. By default stdin is /dev/null and stdout/stderr go to
 * files "<tmpdir>/<prog>.<n>.out" and ".err" (paths in the proc). */
#define HARNESS_STDIN_PIPE 0x1u  /* proc->stdin_fd is a pipe to the child's stdin */
#define HARNESS_STDOUT_PIPE 0x2u /* stdout is a pipe: read with harness_proc_read_line */

typedef struct harness_proc {
    pid_t pid;                       /* also the process group id */
    char name[64];                   /* basename of argv[0] */
    int stdin_fd;                    /* -1 unless HARNESS_STDIN_PIPE */
    int stdout_fd;                   /* -1 unless HARNESS_STDOUT_PIPE */
    char out_path[HARNESS_PATH_MAX]; /* "" when stdout is a pipe */
    char err_path[HARNESS_PATH_MAX];
    bool exited; /* reaped; status valid */
    int status;  /* raw wait status */
    /* line buffer for harness_proc_read_line (internal) */
    char rbuf[8192];
    size_t rlen;
} harness_proc_t;

/* Starts argv[0] with argv (NULL-terminated). argv[0] without '/' is looked
 * up in harness_bin_dir() first, then in PATH. env (may be NULL) is a
 * NULL-terminated list of "NAME=value" set in the child on top of the
 * inherited environment ("NAME=" sets it empty; "NAME" alone unsets it). The
 * child gets its own process group and PR_SET_PDEATHSIG(SIGKILL). Free with
 * harness_proc_free(). */
harness_proc_t *harness_spawn(const char *const argv[], const char *const env[], unsigned flags);

/* Waits up to timeout_ms for the child to exit. 0 when it has exited
 * (proc->exited, proc->status), -1 on timeout (the child keeps running). */
int harness_proc_wait(harness_proc_t *p, int timeout_ms);
/* Non-blocking: true when the child is still running (reaps it otherwise). */
bool harness_proc_running(harness_proc_t *p);
/* Exit code of an exited child; 128+signal when a signal ended it; -1 while
 * it is still running. */
int harness_proc_exit_code(const harness_proc_t *p);
/* Sends sig to the child (its pid, not the group). 0, or -1 when it exited. */
int harness_proc_signal(harness_proc_t *p, int sig);
/* SIGTERM, wait up to timeout_ms, then SIGKILL to the group and reap.
 * Returns the exit code (harness_proc_exit_code): 0 means a clean stop; a
 * child that needed SIGKILL gives 128+9 and a line on stderr. */
int harness_proc_stop(harness_proc_t *p, int timeout_ms);
/* SIGKILL to the group (a crash, "kill -9"), reaped. Returns 0. */
int harness_proc_kill(harness_proc_t *p);
/* Kills the child if still running, reaps it, closes pipes, frees p.
 * Accepts NULL. */
void harness_proc_free(harness_proc_t *p);

/* Reads one line from a HARNESS_STDOUT_PIPE child's stdout into buf, without
 * the newline. 0, or -1 on timeout, EOF or error. */
int harness_proc_read_line(harness_proc_t *p, char *buf, size_t size, int timeout_ms);
/* Writes a string to a HARNESS_STDIN_PIPE child's stdin. */
int harness_proc_write(harness_proc_t *p, const char *s);
/* The child's captured stdout / stderr so far (malloc'd, caller frees;
 * "" when not captured to a file). Never NULL unless out of memory. */
char *harness_proc_stdout(const harness_proc_t *p);
char *harness_proc_stderr(const harness_proc_t *p);
/* Whether the child's captured stderr so far holds text. */
bool harness_proc_stderr_has(const harness_proc_t *p, const char *text);
/* How many times the child's captured stderr so far holds text. */
int harness_proc_stderr_count(const harness_proc_t *p, const char *text);

/* ---- embedded broker (opstream-broker) -------------------------------- */

typedef struct harness_broker {
    harness_proc_t *proc; /* stdin/stdout are pipes: the control channel */
    char bootstrap[1024]; /* first stdout line: "127.0.0.1:p1,127.0.0.1:p2,..." */
} harness_broker_t;

/* Starts opstream-broker with extra_args (NULL-terminated, may be NULL:
 * defaults --brokers 3 --partitions 6) and waits up to 15 s for the
 * bootstrap line. The topics opstream.{arrests,rescues,migrants,seizures,
 * alerts,dlq} exist when it returns. */
harness_broker_t *harness_broker_start(const char *const extra_args[]);

/* Sends one control command ("broker-down 2", "leader opstream.arrests 0 1",
 * "push-errors Produce 3 NOT_LEADER_FOR_PARTITION ...") and reads the answer
 * line into answer (may be NULL). Returns 0 when the answer is "ok", -1
 * otherwise (the answer says why). See `opstream-broker --help`. */
int harness_broker_command(harness_broker_t *b, const char *command, char *answer,
                           size_t answer_size);

/* Note: injected request errors ("push-errors") are per cluster, not per
 * client; the harness's own Kafka helpers (harness_produce,
 * harness_consume_all, harness_topic_count) send Metadata, ListOffsets,
 * Fetch, FindCoordinator and Produce requests too, so inject errors after
 * using them, or drain with "clear-errors API" afterwards. */

/* Every broker of the cluster answers ms later ("rtt ID ms" for each; 0:
 * at once again). 0, or -1 when a broker refused. */
int harness_broker_rtt(harness_broker_t *b, int ms);

/* SIGTERM and wait; returns the broker's exit code (0 = clean stop). */
int harness_broker_stop(harness_broker_t *b);
/* Stops (if running) and frees. Accepts NULL. */
void harness_broker_free(harness_broker_t *b);

/* ---- redis-server ----------------------------------------------------- */

/* A 127.0.0.1 TCP port nobody listens on now (bind port 0), or -1. Another
 * process may take it before the caller binds it: retry on failure. */
int harness_free_port(void);

typedef struct harness_redis {
    harness_proc_t *proc; /* NULL while stopped */
    int port;
    bool appendonly;
    char dir[HARNESS_PATH_MAX]; /* "<tmpdir>/redis-<port>": data, AOF, log */
    char url[64];               /* "redis://127.0.0.1:<port>/0" */
} harness_redis_t;

/* Starts redis-server on a free 127.0.0.1 port in its own dir under the
 * temp dir (--save "", --daemonize no, logfile in dir). appendonly: AOF with
 * appendfsync always, for restart tests. Waits up to 10 s for PING. */
harness_redis_t *harness_redis_start(bool appendonly);

/* cmocka group setup/teardown of a binary that needs one redis-server (no
 * AOF) and no broker: harness_group_setup plus the server, kept in *redis;
 * the teardown frees it and sets *redis to NULL. */
int harness_group_setup_redis(void **state, harness_redis_t **redis);
int harness_group_teardown_redis(void **state, harness_redis_t **redis);

/* SIGTERM (then SIGKILL after 10 s); the port and dir are kept. */
int harness_redis_stop(harness_redis_t *r);
/* SIGKILL: a crash. What was fsynced to the AOF survives. */
int harness_redis_kill(harness_redis_t *r);
/* Starts it again on the same port with the same dir (after stop or kill,
 * or stops it first), and waits for PING. */
int harness_redis_restart(harness_redis_t *r);
/* A new hiredis connection (2 s timeouts), or NULL. Caller redisFree()s it. */
redisContext *harness_redis_connect(const harness_redis_t *r);
/* Runs one command on a fresh connection and returns the reply (caller
 * freeReplyObject()s it), or NULL on a connection error. */
redisReply *harness_redis_command(const harness_redis_t *r, const char *fmt, ...);
/* How many clients of r wait on a command that CLIENT PAUSE holds back
 * (flag b in CLIENT LIST): on command cmd ("evalsha"), or on any when cmd
 * is NULL. -1 when r does not answer. */
int harness_redis_held_back(const harness_redis_t *r, const char *cmd);
/* Closes every normal client connection of r but the one asking (CLIENT
 * KILL TYPE normal); the commands CLIENT PAUSE held back on them are
 * dropped, never run. How many were closed, -1 when r does not answer. */
long long harness_redis_kill_clients(const harness_redis_t *r);
/* Stops (if running) and frees. Accepts NULL. */
void harness_redis_free(harness_redis_t *r);

/* ---- Kafka helpers ---------------------------------------------------- */

/* Produces one message and waits up to 10 s for its delivery report.
 * partition RD_KAFKA_PARTITION_UA lets the partitioner choose (by key).
 * headers (may be NULL): NULL-terminated "name", "value" pairs. */
int harness_produce(const char *bootstrap, const char *topic, int32_t partition, const void *key,
                    size_t key_len, const void *value, size_t value_len,
                    const char *const headers[]);

/* One consumed message, copied out of librdkafka. */
typedef struct harness_msg {
    int32_t partition;
    int64_t offset;
    int64_t timestamp; /* ms, -1 when none */
    void *key;         /* NULL when the key is null */
    size_t key_len;
    void *value; /* NULL when the value is null */
    size_t value_len;
    rd_kafka_headers_t *headers; /* NULL when none; owned by the msg */
} harness_msg_t;

typedef struct harness_msgs {
    harness_msg_t *v;
    size_t n;
} harness_msgs_t;

/* Reads every message of topic from the beginning of every partition (a
 * consumer with assign(), no group, no commits) until each partition has
 * reached the high watermark seen at the start and nothing new arrived for
 * idle_ms. Messages are ordered by partition, then offset. Fails (-1) after
 * timeout_ms. Free with harness_msgs_free. */
int harness_consume_all(const char *bootstrap, const char *topic, int idle_ms, int timeout_ms,
                        harness_msgs_t *out);
void harness_msgs_free(harness_msgs_t *m); /* accepts NULL; leaves m empty */

/* The value of the last header `name` of a message as a NUL-terminated
 * string in buf; -1 when absent. */
int harness_msg_header(const harness_msg_t *m, const char *name, char *buf, size_t size);

/* Sum of the high watermarks of all partitions of topic, or -1. */
int64_t harness_topic_count(const char *bootstrap, const char *topic, int timeout_ms);

#ifdef __cplusplus
}
#endif
#endif
