/*
 * opstream configuration store: (key, value) pairs from properties files,
 * -X options and the environment, routed kcat-style into application keys
 * (opstream.*, checked against the table below), topic properties (topic.*)
 * and librdkafka properties (checked by librdkafka itself at set time).
 */
#include "opstream/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "config_priv.h"
#include "opstream/endpoint.h"
#include "opstream/redis.h"
#include "opstream/redis_cluster.h"
#include "opstream/validate.h"

/* ------------------------------------------------------------------------
 * Application keys. Add a row to add a key: name, type, default, range for
 * integers (inclusive), optional extra check for strings, and one line of
 * help (config/opstream.properties.example documents every row too).
 * ------------------------------------------------------------------------ */

typedef enum ops_config_type {
    OPS_CONFIG_STRING = 0,
    OPS_CONFIG_INT,  /* decimal, min..max */
    OPS_CONFIG_BOOL, /* true/false, yes/no, on/off, 1/0; stored as "true"/"false" */
} ops_config_type_t;

typedef struct ops_config_key {
    const char *name;
    ops_config_type_t type;
    const char *def;
    int64_t min, max;
    /* Extra check for strings: 0, or -1 with errstr. NULL: any value. */
    int (*check)(const char *value, char *errstr, size_t errstr_size);
    const char *help;
} ops_config_key_t;

static int check_redis_url(const char *value, char *errstr, size_t errstr_size);
static int check_listen(const char *value, char *errstr, size_t errstr_size);
static int check_time_min(const char *value, char *errstr, size_t errstr_size);

static const ops_config_key_t ops_config_keys[] = {
    {"opstream.topic.prefix", OPS_CONFIG_STRING, "opstream.", 0, 0, NULL,
     "prefix of every topic name (opstream.arrests, opstream.dlq, ...)"},
    {"opstream.redis.url", OPS_CONFIG_STRING, "redis://127.0.0.1:6379/0", 0, 0, check_redis_url,
     "Redis server: redis://[user:pass@]host[:port][/db] or unix:///path[?db=N]"},
    {"opstream.redis.password.file", OPS_CONFIG_STRING, "", 0, 0, NULL,
     "file whose first line is the Redis password (overrides the URL's)"},
    {"opstream.sasl.password.file", OPS_CONFIG_STRING, "", 0, 0, NULL,
     "file whose first line is the SASL password (sets sasl.password when a Kafka client is "
     "built)"},
    {"opstream.max.message.bytes", OPS_CONFIG_INT, "1048576", 64, 1000000000, NULL,
     "largest Kafka value accepted; larger ones go to the DLQ"},
    {"opstream.dedupe.window.s", OPS_CONFIG_INT, "604800", 0, 31622400, NULL,
     "seconds an event_id is remembered so that a re-sent event counts once; 0 turns dedupe off "
     "(then only the offsets stored with the counts keep them exact)"},
    {"opstream.bucket.minute.ttl.s", OPS_CONFIG_INT, "172800", 60, 31622400, NULL,
     "TTL of the per-minute Redis buckets"},
    {"opstream.bucket.hour.ttl.s", OPS_CONFIG_INT, "3024000", 3600, 316224000, NULL,
     "TTL of the per-hour Redis buckets"},
    {"opstream.metrics.listen", OPS_CONFIG_STRING, "", 0, 0, check_listen,
     "HOST:PORT of the HTTP endpoint for /metrics, /healthz and /readyz (empty: off)"},
    {"opstream.event.time.min", OPS_CONFIG_STRING, "2000-01-01T00:00:00Z", 0, 0, check_time_min,
     "earliest accepted occurred_at/reported_at (ISO 8601 with a zone, or epoch ms); earlier "
     "events are rejected by producers and sent to the DLQ by consumers"},
    {"opstream.event.time.max.future.s", OPS_CONFIG_INT, "86400", 0, 31622400, NULL,
     "how far past now an occurred_at/reported_at may lie (seconds); later events are rejected "
     "by producers and sent to the DLQ by consumers"},
    {"opstream.redis.wait.replicas", OPS_CONFIG_INT, "0", 0, 100, NULL,
     "replicas the counter's step waits for (Redis WAIT) after writing its offsets; 0: no WAIT; "
     "fewer acknowledging is logged, not an error"},
    {"opstream.redis.wait.ms", OPS_CONFIG_INT, "0", 0, 60000, NULL,
     "longest that WAIT blocks, in milliseconds (0: 1000)"},
    {"opstream.connect.timeout.s", OPS_CONFIG_INT, "10", 1, 86400, NULL,
     "seconds to reach a broker or Redis before a program names it unreachable"},
};

#define OPS_CONFIG_NKEYS (sizeof(ops_config_keys) / sizeof(ops_config_keys[0]))

static int check_redis_url(const char *value, char *errstr, size_t errstr_size) {
    if (ops_redis_cluster_url_is(value)) {
        ops_redis_cluster_url_t cu;
        int rc = ops_redis_cluster_url_parse(value, &cu, errstr, errstr_size);
        memset(&cu, 0, sizeof(cu)); /* may hold a password */
        return rc;
    }
    ops_redis_url_t url;
    int rc = ops_redis_url_parse(value, &url, errstr, errstr_size);
    memset(&url, 0, sizeof(url)); /* may hold a password */
    return rc;
}

static int check_listen(const char *value, char *errstr, size_t errstr_size) {
    char host[OPS_ENDPOINT_HOST_MAX];
    int port;
    if (!*value)
        return 0; /* off */
    return ops_endpoint_parse_listen(value, host, sizeof host, &port, errstr, errstr_size);
}

static int check_time_min(const char *value, char *errstr, size_t errstr_size) {
    int64_t ms;

    if (ops_validate_parse_timestamp(value, &ms, errstr, errstr_size) != 0)
        return -1;
    if (ms < 0) {
        snprintf(errstr, errstr_size, "'%.40s' is before 1970-01-01", value);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */

typedef struct ops_config_entry {
    ops_config_class_t cls;
    char *key; /* topic properties: without "topic." */
    char *value;
} ops_config_entry_t;

struct ops_config {
    ops_config_entry_t *entries; /* in order of (last) setting */
    size_t n, cap;
    rd_kafka_conf_t *scratch;        /* validates Kafka properties */
    rd_kafka_topic_conf_t *tscratch; /* validates topic properties */
};

#define TOPIC_PREFIX "topic."
#define APP_PREFIX "opstream."

static const ops_config_key_t *find_app_key(const char *name) {
    for (size_t i = 0; i < OPS_CONFIG_NKEYS; i++)
        if (strcmp(ops_config_keys[i].name, name) == 0)
            return &ops_config_keys[i];
    return NULL;
}

ops_config_t *ops_config_new(void) {
    return calloc(1, sizeof(ops_config_t));
}

void ops_config_destroy(ops_config_t *cfg) {
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n; i++) {
        free(cfg->entries[i].key);
        free(cfg->entries[i].value);
    }
    free(cfg->entries);
    if (cfg->scratch)
        rd_kafka_conf_destroy(cfg->scratch);
    if (cfg->tscratch)
        rd_kafka_topic_conf_destroy(cfg->tscratch);
    free(cfg);
}

static ops_config_entry_t *find_entry(const ops_config_t *cfg, ops_config_class_t cls,
                                      const char *key) {
    if (!cfg)
        return NULL;
    for (size_t i = 0; i < cfg->n; i++)
        if (cfg->entries[i].cls == cls && strcmp(cfg->entries[i].key, key) == 0)
            return &cfg->entries[i];
    return NULL;
}

/* Stores (cls, key) = value. A key set again moves to the end, so that
 * applying the entries in order reproduces "the last setting wins" even
 * for librdkafka properties that alias or depend on each other. */
static int store(ops_config_t *cfg, ops_config_class_t cls, const char *key, const char *value,
                 char *errstr, size_t errstr_size) {
    int rc = -1;
    char *k = strdup(key);
    char *v = strdup(value);
    if (!k || !v)
        goto cleanup;
    ops_config_entry_t *old = find_entry(cfg, cls, key);
    if (old) {
        size_t idx = (size_t)(old - cfg->entries);
        free(old->key);
        free(old->value);
        memmove(&cfg->entries[idx], &cfg->entries[idx + 1],
                (cfg->n - idx - 1) * sizeof(cfg->entries[0]));
        cfg->n--;
    }
    if (cfg->n == cfg->cap) {
        size_t ncap = cfg->cap ? cfg->cap * 2 : 16;
        ops_config_entry_t *ne = realloc(cfg->entries, ncap * sizeof(*ne));
        if (!ne)
            goto cleanup;
        cfg->entries = ne;
        cfg->cap = ncap;
    }
    cfg->entries[cfg->n].cls = cls;
    cfg->entries[cfg->n].key = k;
    cfg->entries[cfg->n].value = v;
    cfg->n++;
    k = v = NULL; /* now owned by cfg */
    rc = 0;
cleanup:
    if (rc != 0)
        snprintf(errstr, errstr_size, "%s: out of memory", key);
    free(k);
    free(v);
    return rc;
}

/* Parses a whole decimal integer (optional sign, surrounding nothing). */
static int parse_int64(const char *s, int64_t *out) {
    char *end = NULL;
    if (!*s || isspace((unsigned char)*s))
        return -1;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = (int64_t)v;
    return 0;
}

static int parse_bool(const char *s, int *out) {
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

/* Checks an application value against its table row and stores it in
 * canonical form. */
static int set_app(ops_config_t *cfg, const ops_config_key_t *k, const char *value, char *errstr,
                   size_t errstr_size) {
    char inner[256];
    char canon[32];
    int64_t iv;
    int bv;
    switch (k->type) {
    case OPS_CONFIG_INT:
        if (parse_int64(value, &iv) != 0) {
            snprintf(errstr, errstr_size, "%s: '%s' is not an integer", k->name, value);
            return -1;
        }
        if (iv < k->min || iv > k->max) {
            snprintf(errstr, errstr_size, "%s: %lld is out of range %lld..%lld", k->name,
                     (long long)iv, (long long)k->min, (long long)k->max);
            return -1;
        }
        snprintf(canon, sizeof(canon), "%lld", (long long)iv);
        return store(cfg, OPS_CONFIG_APP, k->name, canon, errstr, errstr_size);
    case OPS_CONFIG_BOOL:
        if (parse_bool(value, &bv) != 0) {
            snprintf(errstr, errstr_size, "%s: '%s' is not a boolean (true or false)", k->name,
                     value);
            return -1;
        }
        return store(cfg, OPS_CONFIG_APP, k->name, bv ? "true" : "false", errstr, errstr_size);
    case OPS_CONFIG_STRING:
    default:
        if (k->check && k->check(value, inner, sizeof(inner)) != 0) {
            snprintf(errstr, errstr_size, "%s: %s", k->name, inner);
            return -1;
        }
        return store(cfg, OPS_CONFIG_APP, k->name, value, errstr, errstr_size);
    }
}

/* librdkafka's message, prefixed with the key as the user wrote it unless
 * the message already names it (it names aliases by their canonical name:
 * "linger.ms" fails as "queue.buffering.max.ms"). Returns -1. */
static int kafka_error(const char *key, const char *kerr, char *errstr, size_t errstr_size) {
    if (strstr(kerr, key))
        snprintf(errstr, errstr_size, "%s", kerr);
    else
        snprintf(errstr, errstr_size, "%s: %s", key, kerr);
    return -1;
}

/* Routes one property (see config.h). librdkafka keys are tried on a
 * scratch conf so that a typo fails here, with librdkafka's own message,
 * and not later when a client is created. */
int ops_config_set(ops_config_t *cfg, const char *key, const char *value, char *errstr,
                   size_t errstr_size) {
    char kerr[512];
    if (!cfg || !key || !value) {
        snprintf(errstr, errstr_size, "invalid argument");
        return -1;
    }
    if (!*key) {
        snprintf(errstr, errstr_size, "empty property name");
        return -1;
    }
    if (strncmp(key, APP_PREFIX, strlen(APP_PREFIX)) == 0) {
        const ops_config_key_t *k = find_app_key(key);
        if (!k) {
            snprintf(errstr, errstr_size, "unknown property '%s'", key);
            return -1;
        }
        return set_app(cfg, k, value, errstr, errstr_size);
    }
    if (strncmp(key, TOPIC_PREFIX, strlen(TOPIC_PREFIX)) == 0) {
        const char *tkey = key + strlen(TOPIC_PREFIX);
        if (!cfg->tscratch && !(cfg->tscratch = rd_kafka_topic_conf_new())) {
            snprintf(errstr, errstr_size, "%s: out of memory", key);
            return -1;
        }
        if (rd_kafka_topic_conf_set(cfg->tscratch, tkey, value, kerr, sizeof(kerr)) !=
            RD_KAFKA_CONF_OK)
            return kafka_error(key, kerr, errstr, errstr_size);
        return store(cfg, OPS_CONFIG_TOPIC, tkey, value, errstr, errstr_size);
    }
    if (!cfg->scratch && !(cfg->scratch = rd_kafka_conf_new())) {
        snprintf(errstr, errstr_size, "%s: out of memory", key);
        return -1;
    }
    if (rd_kafka_conf_set(cfg->scratch, key, value, kerr, sizeof(kerr)) != RD_KAFKA_CONF_OK)
        return kafka_error(key, kerr, errstr, errstr_size);
    return store(cfg, OPS_CONFIG_KAFKA, key, value, errstr, errstr_size);
}

int ops_config_set_kv(ops_config_t *cfg, const char *kv, char *errstr, size_t errstr_size) {
    int rc = -1;
    char *copy = NULL;
    const char *eq = kv ? strchr(kv, '=') : NULL;
    if (!eq) {
        snprintf(errstr, errstr_size, "'%s': expected property=value", kv ? kv : "");
        goto cleanup;
    }
    if (eq == kv) {
        snprintf(errstr, errstr_size, "'%s': empty property name", kv);
        goto cleanup;
    }
    if (!(copy = strdup(kv))) {
        snprintf(errstr, errstr_size, "out of memory");
        goto cleanup;
    }
    copy[eq - kv] = '\0';
    rc = ops_config_set(cfg, copy, copy + (eq - kv) + 1, errstr, errstr_size);
cleanup:
    free(copy);
    return rc;
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* Reads "key=value" lines. Every error is prefixed with FILE:LINE so the
 * user can go straight to the line; nothing after a bad line is applied.
 * Not libinih: it would split "a:b=c" at the ':', take indented lines as
 * continuations, cut a value at " ;", end a line at a NUL byte without a
 * word and cap lines at 200 bytes (a librdkafka value such as
 * sasl.jaas.config may be longer); turning those off goes through globals
 * only Debian's build of inih has. */
int ops_config_load_file(ops_config_t *cfg, const char *path, char *errstr, size_t errstr_size) {
    int rc = -1;
    FILE *fp = NULL;
    char *line = NULL;
    size_t linecap = 0;
    unsigned long lineno = 0;
    char inner[512];

    if (!(fp = fopen(path, "r"))) {
        snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
        goto cleanup;
    }
    for (;;) {
        errno = 0;
        ssize_t len = getline(&line, &linecap, fp);
        if (len < 0) {
            if (ferror(fp) && errno == EISDIR) {
                snprintf(errstr, errstr_size, "%s: is a directory, not a properties file", path);
                goto cleanup;
            }
            if (ferror(fp)) {
                snprintf(errstr, errstr_size, "%s:%lu: %s", path, lineno + 1,
                         strerror(errno ? errno : EIO));
                goto cleanup;
            }
            break;
        }
        lineno++;
        if ((size_t)len != strlen(line)) {
            snprintf(errstr, errstr_size, "%s:%lu: NUL byte in line", path, lineno);
            goto cleanup;
        }
        char *s = trim(line);
        if (*s == '\0' || *s == '#' || *s == '!')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(errstr, errstr_size, "%s:%lu: missing '=' (expected key=value)", path, lineno);
            goto cleanup;
        }
        *eq = '\0';
        char *key = trim(s);
        char *value = trim(eq + 1);
        if (*key == '\0') {
            snprintf(errstr, errstr_size, "%s:%lu: empty key before '='", path, lineno);
            goto cleanup;
        }
        if (ops_config_set(cfg, key, value, inner, sizeof(inner)) != 0) {
            snprintf(errstr, errstr_size, "%s:%lu: %s", path, lineno, inner);
            goto cleanup;
        }
    }
    rc = 0;
cleanup:
    free(line);
    if (fp)
        fclose(fp);
    return rc;
}

/* The environment variables that map onto a single property. */
static const struct {
    const char *var;
    const char *key;
} ops_config_env[] = {
    {"OPSTREAM_BROKERS", "bootstrap.servers"},
    {"OPSTREAM_REDIS", "opstream.redis.url"},
    {"OPSTREAM_REDIS_PASSWORD_FILE", "opstream.redis.password.file"},
    {"OPSTREAM_SASL_PASSWORD_FILE", "opstream.sasl.password.file"},
};

/* OPSTREAM_CONFIG first, so that the single-property variables override
 * the file; empty variables count as unset. */
int ops_config_load_env(ops_config_t *cfg, char *errstr, size_t errstr_size) {
    char inner[512];
    const char *file = getenv("OPSTREAM_CONFIG");
    if (file && *file && ops_config_load_file(cfg, file, inner, sizeof(inner)) != 0) {
        snprintf(errstr, errstr_size, "OPSTREAM_CONFIG: %s", inner);
        return -1;
    }
    for (size_t i = 0; i < sizeof(ops_config_env) / sizeof(ops_config_env[0]); i++) {
        const char *v = getenv(ops_config_env[i].var);
        if (!v || !*v)
            continue;
        if (ops_config_set(cfg, ops_config_env[i].key, v, inner, sizeof(inner)) != 0) {
            snprintf(errstr, errstr_size, "%s: %s", ops_config_env[i].var, inner);
            return -1;
        }
    }
    return 0;
}

const char *ops_config_get(const ops_config_t *cfg, const char *key) {
    const ops_config_entry_t *e;
    if (!key)
        return NULL;
    if (strncmp(key, APP_PREFIX, strlen(APP_PREFIX)) == 0) {
        const ops_config_key_t *k = find_app_key(key);
        if (!k)
            return NULL;
        e = find_entry(cfg, OPS_CONFIG_APP, key);
        return e ? e->value : k->def;
    }
    if (strncmp(key, TOPIC_PREFIX, strlen(TOPIC_PREFIX)) == 0) {
        e = find_entry(cfg, OPS_CONFIG_TOPIC, key + strlen(TOPIC_PREFIX));
        return e ? e->value : NULL;
    }
    e = find_entry(cfg, OPS_CONFIG_KAFKA, key);
    return e ? e->value : NULL;
}

/* Values were checked when set, so parsing cannot fail for integer keys;
 * a bool reads as 0/1 and any other key as 0. */
int64_t ops_config_get_int(const ops_config_t *cfg, const char *key) {
    const ops_config_key_t *k = key ? find_app_key(key) : NULL;
    const char *v = ops_config_get(cfg, key);
    int64_t iv = 0;
    int bv = 0;
    if (!k || !v)
        return 0;
    if (k->type == OPS_CONFIG_BOOL)
        return parse_bool(v, &bv) == 0 ? bv : 0;
    if (k->type == OPS_CONFIG_INT && parse_int64(v, &iv) == 0)
        return iv;
    return 0;
}

int ops_config_foreach(const ops_config_t *cfg, ops_config_class_t cls,
                       int (*fn)(const char *key, const char *value, void *opaque), void *opaque) {
    if (!cfg)
        return 0;
    for (size_t i = 0; i < cfg->n; i++) {
        if (cfg->entries[i].cls != cls)
            continue;
        int rc = fn(cfg->entries[i].key, cfg->entries[i].value, opaque);
        if (rc != 0)
            return rc;
    }
    return 0;
}
