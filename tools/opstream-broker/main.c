/*
 * opstream-broker: the embedded development broker. Hosts librdkafka's mock
 * cluster (real Kafka protocol, in memory) with opstream's topics, prints its
 * bootstrap list and serves until SIGINT/SIGTERM. For demos, tests and
 * development when no Kafka is configured; optionally driven over stdin.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "control.h"
#include "opstream/cli.h"
#include "startup.h"

#define EXIT_STOPPED 0
#define EXIT_FAILED 1
#define EXIT_USAGE 2

enum {
    OPT_BOOTSTRAP_FILE = OPS_CLI_OPT_FIRST_PROGRAM,
    OPT_TOPIC_PREFIX,
    OPT_PARTITIONS,
    OPT_BROKERS,
    OPT_WAIT,
    OPT_TIMEOUT
};

/* What the command line asked for. */
typedef struct broker_opts {
    int brokers;
    int partitions;
    const char *bootstrap_file; /* NULL: none */
    const char *topic_prefix;
    const char *wait_file; /* --wait FILE: wait for a broker, do not run one */
    int timeout_s;         /* --timeout for --wait */
} broker_opts_t;

/* The topic suffixes created at start, in the order of DESIGN.md. */
static const char *const topic_suffixes[] = {"arrests",  "rescues", "migrants",
                                             "seizures", "alerts",  "dlq"};

static volatile sig_atomic_t stop_signal = 0;

static void usage(FILE *out) {
    fprintf(out,
            "Usage: opstream-broker [--brokers N] [--partitions P] [--bootstrap-file FILE]\n"
            "                       [--topic-prefix PREFIX]\n"
            "       opstream-broker --wait FILE [--timeout S]\n"
            "\n"
            "Embedded development Kafka broker (librdkafka's mock cluster). It keeps data in\n"
            "memory only, each partition keeps only its newest 5 MiB, no TLS/SASL: for demos,\n"
            "tests and development, not production. It creates the topics PREFIX{arrests,\n"
            "rescues,migrants,seizures,alerts,dlq}, prints the bootstrap list as the first\n"
            "line on stdout and runs until SIGINT or SIGTERM.\n"
            "\n"
            "Options:\n"
            "  --brokers N            number of brokers (default 3)\n"
            "  --partitions P         partitions per topic (default 6); the replication\n"
            "                         factor is min(3, N)\n"
            "  --bootstrap-file FILE  also write the bootstrap list to FILE (atomically:\n"
            "                         FILE.tmp then rename); a FILE left by an earlier run\n"
            "                         is removed at start, and FILE is removed at exit\n"
            "  --wait FILE            run no broker: wait until FILE names a broker that\n"
            "                         accepts connections, print its bootstrap list and\n"
            "                         exit 0 (for scripts: B=$(opstream-broker --wait F))\n"
            "  --timeout S            how long --wait waits (default 10 s)\n"
            "  --topic-prefix PREFIX  topic name prefix (default \"opstream.\")\n"
            "  -h, --help             this help\n"
            "      --version          version\n"
            "\n"
            "%s"
            "\n"
            "Environment: none read (librdkafka's own logging goes to stderr).\n"
            "\n"
            "Exit codes:\n"
            "  0  stopped by SIGINT/SIGTERM (--wait: a broker answers)\n"
            "  1  failed to start (mock cluster, topics or bootstrap file); --wait: no\n"
            "     broker answered within --timeout, or SIGINT/SIGTERM came first\n"
            "  2  usage error\n",
            broker_control_help());
}

/* A positive int option value in [1, max], or -1 with err. */
static int parse_count(const char *opt, const char *s, int max, int *out, char *err,
                       size_t err_size) {
    long v;
    if (ops_cli_parse_long(opt, s, 1, max, &v, err, err_size) != 0)
        return -1;
    *out = (int)v;
    return 0;
}

static int broker_option(void *opaque, int opt, const char *arg, char *err, size_t err_size) {
    broker_opts_t *o = opaque;
    switch (opt) {
    case OPT_BROKERS:
        return parse_count("--brokers", arg, 64, &o->brokers, err, err_size);
    case OPT_PARTITIONS:
        return parse_count("--partitions", arg, 1000, &o->partitions, err, err_size);
    case OPT_BOOTSTRAP_FILE:
        o->bootstrap_file = arg;
        return 0;
    case OPT_TOPIC_PREFIX:
        o->topic_prefix = arg;
        return 0;
    case OPT_WAIT:
        o->wait_file = arg;
        return 0;
    case OPT_TIMEOUT:
        return parse_count("--timeout", arg, 86400, &o->timeout_s, err, err_size);
    default:
        return startup_unknown_option(opt, err, err_size);
    }
}

/* Returns -1 to run, or the exit code once --help or --version was served
 * or a usage error reported. The broker reads no configuration. */
static int parse_args(int argc, char **argv, broker_opts_t *o) {
    static const struct option longopts[] = {
        {"brokers", required_argument, NULL, OPT_BROKERS},
        {"partitions", required_argument, NULL, OPT_PARTITIONS},
        {"bootstrap-file", required_argument, NULL, OPT_BOOTSTRAP_FILE},
        {"topic-prefix", required_argument, NULL, OPT_TOPIC_PREFIX},
        {"wait", required_argument, NULL, OPT_WAIT},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPS_CLI_OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    startup_t start = {.name = "opstream-broker",
                       .short_opts = "h",
                       .long_opts = longopts,
                       .usage = usage,
                       .option = broker_option,
                       .opaque = o,
                       .max_args = 0,
                       .exit_fatal = EXIT_FAILED,
                       .no_config = true};

    o->brokers = 3;
    o->partitions = 6;
    o->bootstrap_file = NULL;
    o->topic_prefix = "opstream.";
    o->wait_file = NULL;
    o->timeout_s = 10;
    return startup_parse(&start, argc, argv);
}

/* Writes the bootstrap list to path through path.tmp and rename(), so a
 * script polling for the file never reads half of it. */
static int write_bootstrap_file(const char *path, const char *bootstrap) {
    char tmp[PATH_MAX];
    FILE *f = NULL;
    int rc = -1;

    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
        fprintf(stderr, "opstream-broker: --bootstrap-file: path too long\n");
        goto cleanup;
    }
    f = fopen(tmp, "w");
    if (f == NULL || fprintf(f, "%s\n", bootstrap) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        fprintf(stderr, "opstream-broker: cannot write %s: %s\n", tmp, strerror(errno));
        goto cleanup;
    }
    if (fclose(f) != 0) {
        f = NULL;
        fprintf(stderr, "opstream-broker: cannot write %s: %s\n", tmp, strerror(errno));
        goto cleanup;
    }
    f = NULL;
    if (rename(tmp, path) != 0) {
        fprintf(stderr, "opstream-broker: cannot rename %s to %s: %s\n", tmp, path,
                strerror(errno));
        goto cleanup;
    }
    rc = 0;
cleanup:
    if (f != NULL)
        fclose(f);
    if (rc != 0)
        unlink(tmp);
    return rc;
}

/* Removes the bootstrap file at exit, unless another broker has written
 * its own list there since. */
static void remove_bootstrap_file(const char *path, const char *bootstrap) {
    char line[1024] = "";
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    if (fgets(line, sizeof(line), f) == NULL)
        line[0] = '\0';
    fclose(f);
    line[strcspn(line, "\n")] = '\0';
    if (strcmp(line, bootstrap) == 0)
        unlink(path);
}

/* Whether a TCP connection to host:port (the first entry of a bootstrap
 * list) is accepted. why gets the reason when not. */
static int broker_answers(const char *bootstrap, char *why, size_t why_size) {
    char host[256];
    const char *colon, *end = bootstrap + strcspn(bootstrap, ",\n");
    struct addrinfo hints, *ai = NULL;
    int fd = -1, ok = 0;

    colon = memchr(bootstrap, ':', (size_t)(end - bootstrap));
    if (colon == NULL || (size_t)(colon - bootstrap) >= sizeof(host)) {
        snprintf(why, why_size, "'%.*s' is not host:port", (int)(end - bootstrap), bootstrap);
        return 0;
    }
    memcpy(host, bootstrap, (size_t)(colon - bootstrap));
    host[colon - bootstrap] = '\0';
    char port[16];
    snprintf(port, sizeof(port), "%.*s", (int)(end - colon - 1), colon + 1);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &ai) != 0 || ai == NULL) {
        snprintf(why, why_size, "%s:%s: unknown host", host, port);
        return 0;
    }
    fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        ok = 1;
    else
        snprintf(why, why_size, "%s:%s: %s", host, port, strerror(errno));
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    return ok;
}

/* --wait FILE: polls until FILE holds a bootstrap list whose first broker
 * accepts connections (a file left by a broker that died points at closed
 * ports, so it is never taken for the new one), then prints the list. */
static int wait_for_broker(const broker_opts_t *o) {
    struct timespec start, now;
    char why[512] = "";

    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        char line[1024] = "";
        FILE *f = fopen(o->wait_file, "r");
        if (f != NULL) {
            if (fgets(line, sizeof(line), f) == NULL)
                line[0] = '\0';
            fclose(f);
            line[strcspn(line, "\n")] = '\0';
        }
        if (f == NULL)
            snprintf(why, sizeof(why), "%s: %s", o->wait_file, strerror(errno));
        else if (line[0] == '\0')
            snprintf(why, sizeof(why), "%s is empty", o->wait_file);
        else if (broker_answers(line, why, sizeof(why))) {
            printf("%s\n", line);
            fflush(stdout);
            return EXIT_STOPPED;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (stop_signal || now.tv_sec - start.tv_sec >= o->timeout_s)
            break;
        struct timespec nap = {0, 100 * 1000000L};
        nanosleep(&nap, NULL);
    }
    if (stop_signal)
        fprintf(stderr, "opstream-broker: --wait %s: interrupted\n", o->wait_file);
    else
        fprintf(stderr, "opstream-broker: --wait %s: no broker answered within %d s (%s)\n",
                o->wait_file, o->timeout_s, why);
    return EXIT_FAILED;
}

static int create_topics(rd_kafka_mock_cluster_t *mc, const broker_opts_t *o) {
    int replication = o->brokers < 3 ? o->brokers : 3;
    size_t i;

    for (i = 0; i < sizeof(topic_suffixes) / sizeof(topic_suffixes[0]); i++) {
        char topic[256];
        rd_kafka_resp_err_t err;

        if (snprintf(topic, sizeof(topic), "%s%s", o->topic_prefix, topic_suffixes[i]) >=
            (int)sizeof(topic)) {
            fprintf(stderr, "opstream-broker: --topic-prefix too long\n");
            return -1;
        }
        err = rd_kafka_mock_topic_create(mc, topic, o->partitions, replication);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(stderr, "opstream-broker: cannot create topic %s: %s\n", topic,
                    rd_kafka_err2str(err));
            return -1;
        }
    }
    return 0;
}

/* True when stdin is a pipe or socket: then it is the control channel. A
 * terminal or /dev/null is left alone. */
static int stdin_is_control(void) {
    struct stat st;

    if (fstat(STDIN_FILENO, &st) != 0)
        return 0;
    return S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode);
}

/* Control-channel reader state: bytes read but not yet a whole line. */
typedef struct control_in {
    char buf[8192];
    size_t len;
    int open;
} control_in_t;

/* Reads what stdin has and runs every complete line, answering each on
 * stdout. At EOF the channel closes but the broker keeps serving. */
static void control_read(control_in_t *in, rd_kafka_mock_cluster_t *mc) {
    ssize_t n;
    char *nl;

    n = read(STDIN_FILENO, in->buf + in->len, sizeof(in->buf) - 1 - in->len);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        in->open = 0;
        return;
    }
    in->len += (size_t)n;
    in->buf[in->len] = '\0';
    while ((nl = strchr(in->buf, '\n')) != NULL) {
        char answer[512];

        *nl = '\0';
        broker_control_run(mc, in->buf, answer, sizeof(answer));
        if (answer[0] != '\0') {
            printf("%s\n", answer);
            fflush(stdout);
        }
        in->len -= (size_t)(nl + 1 - in->buf);
        memmove(in->buf, nl + 1, in->len + 1);
    }
    if (in->len == sizeof(in->buf) - 1) {
        printf("error: line too long\n");
        fflush(stdout);
        in->len = 0;
    }
}

int main(int argc, char **argv) {
    broker_opts_t opts;
    char errstr[512];
    rd_kafka_conf_t *conf = NULL;
    rd_kafka_t *rk = NULL;
    rd_kafka_mock_cluster_t *mc = NULL;
    const char *bootstrap;
    control_in_t in;
    int rc = EXIT_FAILED;

    rc = parse_args(argc, argv, &opts);
    if (rc >= 0)
        return rc;
    rc = EXIT_FAILED;

    /* A signal interrupts poll() so we stop promptly. */
    startup_catch_stop_signals(&stop_signal, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (opts.wait_file != NULL)
        return wait_for_broker(&opts);
    /* A file left by an earlier run names dead ports: gone before anything
     * can read it as ours. */
    if (opts.bootstrap_file != NULL && unlink(opts.bootstrap_file) != 0 && errno != ENOENT) {
        fprintf(stderr, "opstream-broker: cannot remove %s: %s\n", opts.bootstrap_file,
                strerror(errno));
        goto cleanup;
    }

    /* The mock cluster lives inside a librdkafka handle; a producer created
     * only to host it. It dies with this handle. */
    conf = rd_kafka_conf_new();
    /* The host handle never connects anywhere: log_level 4 hides its notice
     * that no bootstrap.servers is set, warnings still show. */
    if (rd_kafka_conf_set(conf, "client.id", "opstream-broker", errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "log_level", "4", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "opstream-broker: %s\n", errstr);
        goto cleanup;
    }
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        fprintf(stderr, "opstream-broker: cannot create the host handle: %s\n", errstr);
        goto cleanup;
    }
    conf = NULL; /* now owned by rk */

    mc = rd_kafka_mock_cluster_new(rk, opts.brokers);
    if (mc == NULL) {
        fprintf(stderr, "opstream-broker: cannot create the mock cluster\n");
        goto cleanup;
    }
    if (create_topics(mc, &opts) != 0)
        goto cleanup;

    bootstrap = rd_kafka_mock_cluster_bootstraps(mc);
    if (opts.bootstrap_file != NULL && write_bootstrap_file(opts.bootstrap_file, bootstrap) != 0)
        goto cleanup;

    printf("%s\n", bootstrap);
    fflush(stdout);
    fprintf(stderr,
            "opstream-broker: %d broker(s), %d partition(s) per topic, topics %s*, at %s\n"
            "opstream-broker: NOTE: data is kept in memory only and each partition keeps only\n"
            "opstream-broker: its newest 5 MiB; for demos, tests and development, not "
            "production.\n",
            opts.brokers, opts.partitions, opts.topic_prefix, bootstrap);

    memset(&in, 0, sizeof(in));
    in.open = stdin_is_control();
    while (!stop_signal) {
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN, .revents = 0};

        /* With no control channel, poll nothing: a timed sleep that a signal
         * cuts short (pause() could miss a signal arriving just before). */
        if (poll(&pfd, in.open ? 1 : 0, 1000) > 0)
            control_read(&in, mc);
    }
    fprintf(stderr, "opstream-broker: stopping on signal %d\n", (int)stop_signal);
    if (opts.bootstrap_file != NULL)
        remove_bootstrap_file(opts.bootstrap_file, bootstrap);
    rc = EXIT_STOPPED;

cleanup:
    if (mc != NULL)
        rd_kafka_mock_cluster_destroy(mc);
    if (rk != NULL)
        rd_kafka_destroy(rk);
    if (conf != NULL)
        rd_kafka_conf_destroy(conf);
    rd_kafka_wait_destroyed(5000);
    return rc;
}
