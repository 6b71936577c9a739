/*
 * opstream Kafka adapter: librdkafka producers and consumers built from an
 * ops_config_t, with the defaults the delivery and exactly-once guarantees
 * rely on, and the user's properties applied on top (the user wins).
 */
#include "opstream/kafka.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config_priv.h"
#include "secret_priv.h"

typedef struct kv {
    const char *key, *value;
} kv_t;

/* Producer: a record counts as sent only on its delivery report, so the
 * producer must neither duplicate nor reorder on retry (idempotence, which
 * needs acks=all). message.timeout.ms keeps librdkafka's default. */
static const kv_t producer_defaults[] = {
    {"client.id", "opstream"}, {"enable.idempotence", "true"},
    {"acks", "all"},           {"socket.nagle.disable", "true"},
    {"linger.ms", "5"},        {"compression.codec", "none"},
};

/* Consumer: offsets live in Redis next to the counters, so Kafka commits
 * and the local offset store stay off. The partition assignment strategy
 * stays librdkafka's eager default: a full revoke before each assignment
 * makes "flush, then let go" simple. */
static const kv_t consumer_defaults[] = {
    {"client.id", "opstream"},
    {"enable.auto.commit", "false"},
    {"enable.auto.offset.store", "false"},
    {"auto.offset.reset", "earliest"},
    {"socket.nagle.disable", "true"},
    {"fetch.wait.max.ms", "10"},
};

/* Consumer group settings on the embedded broker (opstream-broker, which
 * is librdkafka's mock cluster). Its group coordinator waits
 * session.timeout.ms - 1 s in every rebalance that starts from a stable
 * group, also when the last member has left with a LeaveGroup: a member
 * that joins after a clean close gets its partitions only when that wait
 * is over (44 s with librdkafka's default of 45 s), where a real broker
 * empties the group at once. The wait follows the session timeout of the
 * group's members and nothing else, so on that broker the consumers use a
 * short one; a member that dies is then also replaced within seconds. The
 * user's properties still win. docs/embedded-broker.md tells the story. */
static const kv_t embedded_group_defaults[] = {
    {"session.timeout.ms", "3000"},
    {"heartbeat.interval.ms", "300"},
    /* The embedded broker answers a fetch that finds nothing new only
     * after its full fetch.wait.max.ms, even when records arrive in the
     * meantime (a real broker answers as soon as they do): that wait is
     * latency for every event, so it is short there. */
    {"fetch.wait.max.ms", "2"},
};

/* The cluster id librdkafka's mock cluster reports. */
#define MOCK_CLUSTER_ID_PREFIX "mockCluster"
#define EMBEDDED_PROBE_TIMEOUT_MS 2000

typedef struct apply_ctx {
    rd_kafka_conf_t *conf;
    rd_kafka_topic_conf_t *tconf;
    char *errstr;
    size_t errstr_size;
} apply_ctx_t;

static int apply_kafka(const char *key, const char *value, void *opaque) {
    apply_ctx_t *ctx = opaque;
    char kerr[512];
    if (rd_kafka_conf_set(ctx->conf, key, value, kerr, sizeof(kerr)) != RD_KAFKA_CONF_OK) {
        snprintf(ctx->errstr, ctx->errstr_size, "%s", kerr);
        return -1;
    }
    return 0;
}

static int apply_topic(const char *key, const char *value, void *opaque) {
    apply_ctx_t *ctx = opaque;
    char kerr[512];
    if (rd_kafka_topic_conf_set(ctx->tconf, key, value, kerr, sizeof(kerr)) != RD_KAFKA_CONF_OK) {
        snprintf(ctx->errstr, ctx->errstr_size, "topic.%s: %s", key, kerr);
        return -1;
    }
    return 0;
}

/* sasl.password from opstream.sasl.password.file, read now (when a client
 * is built) so that the password is never in argv or a properties file. The
 * file wins over a sasl.password set elsewhere. The copy on the stack is
 * wiped. */
static int apply_sasl_password_file(const ops_config_t *cfg, rd_kafka_conf_t *conf, char *errstr,
                                    size_t errstr_size) {
    const char *path = ops_config_get(cfg, "opstream.sasl.password.file");
    char pass[1024], kerr[512];
    int rc = -1;

    if (path == NULL || *path == '\0')
        return 0;
    if (ops_secret_read_file("sasl password file", path, pass, sizeof(pass), errstr, errstr_size) !=
        0)
        goto cleanup;
    if (rd_kafka_conf_set(conf, "sasl.password", pass, kerr, sizeof(kerr)) != RD_KAFKA_CONF_OK) {
        snprintf(errstr, errstr_size, "sasl password file '%s': %s", path, kerr);
        goto cleanup;
    }
    rc = 0;
cleanup:
    memset(pass, 0, sizeof(pass));
    return rc;
}

/* 127.0.0.1:PORT of the first entry of a bootstrap list whose entries are
 * all on the loopback interface (127.x.y.z, localhost, an optional
 * "PLAINTEXT://"); 0 otherwise. The embedded broker listens only there. */
static int loopback_bootstrap_port(const char *list) {
    char buf[1024];
    int first_port = 0;

    if (list == NULL || snprintf(buf, sizeof buf, "%s", list) >= (int)sizeof buf)
        return 0;
    for (char *save = NULL, *e = strtok_r(buf, ",", &save); e != NULL;
         e = strtok_r(NULL, ",", &save)) {
        char *colon;
        long port;

        while (*e == ' ')
            e++;
        if (strncmp(e, "PLAINTEXT://", 12) == 0)
            e += 12;
        colon = strrchr(e, ':');
        if (colon == NULL)
            return 0;
        *colon = '\0';
        if (strcmp(e, "localhost") != 0 && strncmp(e, "127.", 4) != 0)
            return 0;
        port = strtol(colon + 1, NULL, 10);
        if (port <= 0 || port > 65535)
            return 0;
        if (first_port == 0)
            first_port = (int)port;
    }
    return first_port;
}

/* True when something accepts connections on 127.0.0.1:port now (a quick
 * check, so that an unreachable local broker costs no probe timeout). */
static bool loopback_listening(int port) {
    struct sockaddr_in a;
    struct pollfd pfd;
    int err = 0, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    socklen_t len = sizeof err;
    bool ok = false;

    if (fd < 0)
        return false;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        ok = true;
    } else {
        pfd.fd = fd;
        pfd.events = POLLOUT;
        pfd.revents = 0;
        ok = poll(&pfd, 1, 1000) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 &&
             err == 0;
    }
    close(fd);
    return ok;
}

static const char *bootstrap_of(const ops_config_t *cfg) {
    const char *b = ops_config_get(cfg, "bootstrap.servers");
    return b != NULL ? b : ops_config_get(cfg, "metadata.broker.list");
}

/* True when bootstrap.servers is the embedded broker: a local listener
 * whose cluster id is the mock cluster's. Asks with a client of its own
 * that has nothing but the bootstrap list (the mock has no TLS or SASL). */
static bool is_embedded_broker(const char *bootstrap) {
    char kerr[512];
    rd_kafka_conf_t *conf;
    rd_kafka_t *rk;
    char *id;
    bool yes;
    int port = loopback_bootstrap_port(bootstrap);

    if (port == 0 || !loopback_listening(port))
        return false;
    conf = rd_kafka_conf_new();
    if (conf == NULL)
        return false;
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, kerr, sizeof kerr) !=
            RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "client.id", "opstream-probe", kerr, sizeof kerr) !=
            RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "log_level", "0", kerr, sizeof kerr) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        return false;
    }
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, kerr, sizeof kerr);
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        return false;
    }
    id = rd_kafka_clusterid(rk, EMBEDDED_PROBE_TIMEOUT_MS);
    yes = id != NULL && strncmp(id, MOCK_CLUSTER_ID_PREFIX, strlen(MOCK_CLUSTER_ID_PREFIX)) == 0;
    if (id != NULL)
        rd_kafka_mem_free(rk, id);
    rd_kafka_destroy(rk);
    return yes;
}

/* Defaults first (for a consumer of the embedded broker also its group
 * settings), then the user's Kafka properties in the order they were
 * set, then the SASL password file, then topic.* on the default topic conf. The default topic conf
 * that librdkafka created for topic-level defaults such as acks is kept and added to, not replaced.
 */
rd_kafka_conf_t *ops_kafka_conf_new(const ops_config_t *cfg, ops_kafka_role_t role, char *errstr,
                                    size_t errstr_size) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_topic_conf_t *tconf = NULL;
    const kv_t *defs = role == OPS_KAFKA_PRODUCER ? producer_defaults : consumer_defaults;
    size_t ndefs = role == OPS_KAFKA_PRODUCER
                       ? sizeof(producer_defaults) / sizeof(producer_defaults[0])
                       : sizeof(consumer_defaults) / sizeof(consumer_defaults[0]);
    apply_ctx_t ctx = {conf, NULL, errstr, errstr_size};
    int ok = 0;

    if (!conf) {
        snprintf(errstr, errstr_size, "out of memory");
        goto cleanup;
    }
    for (size_t i = 0; i < ndefs; i++)
        if (apply_kafka(defs[i].key, defs[i].value, &ctx) != 0)
            goto cleanup;
    if (role == OPS_KAFKA_CONSUMER && is_embedded_broker(bootstrap_of(cfg)))
        for (size_t i = 0; i < sizeof(embedded_group_defaults) / sizeof(embedded_group_defaults[0]);
             i++)
            if (apply_kafka(embedded_group_defaults[i].key, embedded_group_defaults[i].value,
                            &ctx) != 0)
                goto cleanup;
    /* A broker that does not answer is given up on (and retried) after
     * opstream.connect.timeout.s, so that programs can say so early. */
    {
        char ms[32];
        snprintf(ms, sizeof(ms), "%lld",
                 (long long)ops_config_get_int(cfg, "opstream.connect.timeout.s") * 1000);
        if (apply_kafka("socket.connection.setup.timeout.ms", ms, &ctx) != 0)
            goto cleanup;
    }
    if (ops_config_foreach(cfg, OPS_CONFIG_KAFKA, apply_kafka, &ctx) != 0)
        goto cleanup;
    if (apply_sasl_password_file(cfg, conf, errstr, errstr_size) != 0)
        goto cleanup;

    ctx.tconf = rd_kafka_conf_get_default_topic_conf(conf);
    if (!ctx.tconf) {
        if (!(tconf = rd_kafka_topic_conf_new())) {
            snprintf(errstr, errstr_size, "out of memory");
            goto cleanup;
        }
        rd_kafka_conf_set_default_topic_conf(conf, tconf);
        ctx.tconf = tconf;
        tconf = NULL; /* now owned by conf */
    }
    if (ops_config_foreach(cfg, OPS_CONFIG_TOPIC, apply_topic, &ctx) != 0)
        goto cleanup;
    ok = 1;
cleanup:
    if (tconf)
        rd_kafka_topic_conf_destroy(tconf);
    if (!ok && conf) {
        rd_kafka_conf_destroy(conf);
        conf = NULL;
    }
    return conf;
}

/* bootstrap.servers (alias metadata.broker.list) must be set unless
 * librdkafka is asked to run its own mock cluster. */
static int check_brokers(rd_kafka_conf_t *conf, char *errstr, size_t errstr_size) {
    char buf[16] = "";
    size_t sz = sizeof(buf);
    if (rd_kafka_conf_get(conf, "bootstrap.servers", buf, &sz) == RD_KAFKA_CONF_OK && sz > 1)
        return 0;
    sz = sizeof(buf);
    if (rd_kafka_conf_get(conf, "test.mock.num.brokers", buf, &sz) == RD_KAFKA_CONF_OK && sz > 1 &&
        strcmp(buf, "0") != 0)
        return 0;
    snprintf(errstr, errstr_size, "no brokers: use -b, OPSTREAM_BROKERS or bootstrap.servers");
    return -1;
}

/* Creates the client; conf is consumed on success and destroyed here on
 * failure, so the caller never frees it. */
static rd_kafka_t *new_client(rd_kafka_type_t type, rd_kafka_conf_t *conf, char *errstr,
                              size_t errstr_size) {
    char kerr[512];
    rd_kafka_t *rk = NULL;
    if (check_brokers(conf, errstr, errstr_size) != 0)
        goto cleanup;
    rk = rd_kafka_new(type, conf, kerr, sizeof(kerr));
    if (!rk) {
        snprintf(errstr, errstr_size, "cannot create Kafka %s: %s",
                 type == RD_KAFKA_PRODUCER ? "producer" : "consumer", kerr);
        goto cleanup;
    }
    conf = NULL; /* now owned by rk */
cleanup:
    if (conf)
        rd_kafka_conf_destroy(conf);
    return rk;
}

rd_kafka_t *ops_kafka_producer_new(const ops_config_t *cfg,
                                   void (*dr_msg_cb)(rd_kafka_t *, const rd_kafka_message_t *,
                                                     void *),
                                   void *opaque, char *errstr, size_t errstr_size) {
    rd_kafka_conf_t *conf = ops_kafka_conf_new(cfg, OPS_KAFKA_PRODUCER, errstr, errstr_size);
    if (!conf)
        return NULL;
    if (dr_msg_cb)
        rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
    rd_kafka_conf_set_opaque(conf, opaque);
    return new_client(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
}

/* key := value (a number) on conf unless the user set key; value 0: left
 * to librdkafka. */
static int default_unless_set(rd_kafka_conf_t *conf, const ops_config_t *cfg, const char *key,
                              size_t value, char *errstr, size_t errstr_size) {
    char n[32], kerr[512];

    if (value == 0 || ops_config_get(cfg, key) != NULL)
        return 0;
    snprintf(n, sizeof n, "%zu", value);
    if (rd_kafka_conf_set(conf, key, n, kerr, sizeof(kerr)) != RD_KAFKA_CONF_OK) {
        snprintf(errstr, errstr_size, "%s: %s", key, kerr);
        return -1;
    }
    return 0;
}

/* A numeric property as conf holds it (librdkafka's own reading of the
 * user's text, or its default); 0 when it has none. */
static size_t conf_number(const rd_kafka_conf_t *conf, const char *key) {
    char v[32] = "";
    size_t sz = sizeof v;

    return rd_kafka_conf_get(conf, key, v, &sz) == RD_KAFKA_CONF_OK
               ? (size_t)strtoull(v, NULL, 10)
               : 0;
}

/* The group comes from the options, else from group.id; a consumer with
 * no group cannot subscribe, so that is an error here rather than later.
 * The one way opstream builds a Kafka consumer. */
rd_kafka_t *ops_kafka_consumer_build(const ops_config_t *cfg, const ops_kafka_consumer_opts_t *o,
                                     char *errstr, size_t errstr_size) {
    char kerr[512];
    rd_kafka_t *rk = NULL;
    rd_kafka_conf_t *conf = ops_kafka_conf_new(cfg, OPS_KAFKA_CONSUMER, errstr, errstr_size);
    if (!conf)
        goto cleanup;
    if (o->group && *o->group &&
        rd_kafka_conf_set(conf, "group.id", o->group, kerr, sizeof(kerr)) != RD_KAFKA_CONF_OK) {
        snprintf(errstr, errstr_size, "group.id: %s", kerr);
        goto cleanup;
    }
    if (o->partition_eof && rd_kafka_conf_set(conf, "enable.partition.eof", "true", kerr,
                                              sizeof(kerr)) != RD_KAFKA_CONF_OK) {
        snprintf(errstr, errstr_size, "enable.partition.eof: %s", kerr);
        goto cleanup;
    }
    char buf[8] = "";
    size_t sz = sizeof(buf);
    rd_kafka_conf_res_t res = rd_kafka_conf_get(conf, "group.id", buf, &sz);
    if (res != RD_KAFKA_CONF_OK || sz <= 1) {
        snprintf(errstr, errstr_size, "no consumer group: use -g GROUP or -X group.id=GROUP");
        goto cleanup;
    }
    size_t fetch_bytes = o->fetch_bytes, mmb = conf_number(conf, "message.max.bytes");
    if (fetch_bytes > 0 && mmb > fetch_bytes)
        fetch_bytes = mmb; /* librdkafka wants fetch.max.bytes >= message.max.bytes */
    if (default_unless_set(conf, cfg, "queued.min.messages", o->prefetch_messages, errstr,
                           errstr_size) != 0 ||
        default_unless_set(conf, cfg, "fetch.max.bytes", fetch_bytes, errstr, errstr_size) != 0)
        goto cleanup;
    if (o->prefetch_given != NULL)
        *o->prefetch_given = conf_number(conf, "queued.min.messages");
    if (o->rebalance_cb)
        rd_kafka_conf_set_rebalance_cb(conf, o->rebalance_cb);
    if (o->error_cb)
        rd_kafka_conf_set_error_cb(conf, o->error_cb);
    if (o->log_cb)
        rd_kafka_conf_set_log_cb(conf, o->log_cb);
    rd_kafka_conf_set_opaque(conf, o->opaque);
    rk = new_client(RD_KAFKA_CONSUMER, conf, errstr, errstr_size);
    conf = NULL; /* consumed by new_client either way */
    if (!rk)
        goto cleanup;
    rd_kafka_resp_err_t err = rd_kafka_poll_set_consumer(rk);
    if (err) {
        snprintf(errstr, errstr_size, "cannot redirect the poll queue: %s", rd_kafka_err2str(err));
        rd_kafka_destroy(rk);
        rk = NULL;
    }
cleanup:
    if (conf)
        rd_kafka_conf_destroy(conf);
    return rk;
}

rd_kafka_t *ops_kafka_consumer_new(const ops_config_t *cfg, const char *group,
                                   void (*rebalance_cb)(rd_kafka_t *, rd_kafka_resp_err_t,
                                                        rd_kafka_topic_partition_list_t *, void *),
                                   void *opaque, char *errstr, size_t errstr_size) {
    ops_kafka_consumer_opts_t o = {.group = group, .rebalance_cb = rebalance_cb, .opaque = opaque};
    return ops_kafka_consumer_build(cfg, &o, errstr, errstr_size);
}

bool ops_kafka_wake_fetchers(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts,
                             rd_kafka_resp_err_t *errp) {
    rd_kafka_resp_err_t err;

    for (int i = 0; i < parts->cnt; i++)
        parts->elems[i].offset = RD_KAFKA_OFFSET_END;
    /* _TIMED_OUT: the requests went out and their answers are not waited
     * for; another error (e.g. _UNKNOWN_PARTITION) means none was sent */
    err = rd_kafka_offsets_for_times(rk, parts, 0);
    if (errp != NULL)
        *errp = err;
    return err == RD_KAFKA_RESP_ERR__TIMED_OUT;
}
