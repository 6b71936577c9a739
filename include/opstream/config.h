/*
 * opstream configuration: one store fed by properties files (-c), -X
 * prop=value and the environment, routed the way kcat does it: our own keys
 * ("opstream.*") are ours, "topic.*" keys are topic properties, everything
 * else is handed to librdkafka and checked by it at set time. Never prints,
 * never exits.
 */
#ifndef OPSTREAM_CONFIG_H
#define OPSTREAM_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ops_config ops_config_t;

/* Application keys and their defaults (see config.c for the table):
 *   opstream.topic.prefix          "opstream."
 *   opstream.redis.url             "redis://127.0.0.1:6379/0"
 *   opstream.redis.password.file   ""   (password read from this file)
 *   opstream.max.message.bytes     1048576
 *   opstream.dedupe.window.s       604800   (7 days)
 *   opstream.bucket.minute.ttl.s   172800   (48 h)
 *   opstream.bucket.hour.ttl.s     3024000  (35 days)
 *   opstream.metrics.listen        ""   (HOST:PORT of /metrics; empty: off)
 *   opstream.redis.wait.replicas   0    (WAIT after each counter step; 0: off)
 *   opstream.redis.wait.ms         0    (WAIT's timeout; 0: 1000)
 * An unknown opstream.* key is an error that names it. */

ops_config_t *ops_config_new(void);
void ops_config_destroy(ops_config_t *cfg); /* accepts NULL */

/* Sets one property, routed as above. Returns 0, or -1 with errstr (unknown
 * opstream key, bad value, or librdkafka's own message for its keys). */
int ops_config_set(ops_config_t *cfg, const char *key, const char *value, char *errstr,
                   size_t errstr_size);

/* "-X prop=value": splits at the first '=' and calls ops_config_set. */
int ops_config_set_kv(ops_config_t *cfg, const char *kv, char *errstr, size_t errstr_size);

/* Loads a properties file: "key=value" lines, '#' and '!' comments, blank
 * lines ignored, whitespace around key and value trimmed. Errors name the
 * file and line: "rules.conf:12: unknown property 'foo'". */
int ops_config_load_file(ops_config_t *cfg, const char *path, char *errstr, size_t errstr_size);

/* Applies the environment: OPSTREAM_BROKERS -> bootstrap.servers,
 * OPSTREAM_REDIS -> opstream.redis.url, OPSTREAM_REDIS_PASSWORD_FILE ->
 * opstream.redis.password.file, OPSTREAM_CONFIG -> a properties file loaded
 * first. Call it before the command line so that options win. */
int ops_config_load_env(ops_config_t *cfg, char *errstr, size_t errstr_size);

/* The value of a key: application keys fall back to their default; Kafka
 * keys return what was set, or NULL. */
const char *ops_config_get(const ops_config_t *cfg, const char *key);
/* Integer application keys; returns the default when unset. */
int64_t ops_config_get_int(const ops_config_t *cfg, const char *key);

/* The Kafka client roles that ops_kafka_*_new set defaults for. */
typedef enum ops_kafka_role {
    OPS_KAFKA_PRODUCER = 0,
    OPS_KAFKA_CONSUMER
} ops_kafka_role_t;

#ifdef __cplusplus
}
#endif
#endif
