/*
 * Internal view of the configuration store for the adapters in lib/: lets
 * kafka.c walk the Kafka and topic properties in the order they were set.
 * Not installed; programs use the getters in opstream/config.h.
 */
#ifndef OPSTREAM_CONFIG_PRIV_H
#define OPSTREAM_CONFIG_PRIV_H

#include "opstream/config.h"

/* Where a property was routed by ops_config_set. */
typedef enum ops_config_class {
    OPS_CONFIG_APP = 0, /* opstream.* */
    OPS_CONFIG_KAFKA,   /* handed to librdkafka's global conf */
    OPS_CONFIG_TOPIC    /* topic.* with the prefix stripped */
} ops_config_class_t;

/* Calls fn for each property of class cls, oldest first (a key set twice
 * appears once, at the position of its last setting). Stops at the first
 * non-zero return of fn and returns it; 0 when all were visited. The strings
 * belong to cfg. */
int ops_config_foreach(const ops_config_t *cfg, ops_config_class_t cls,
                       int (*fn)(const char *key, const char *value, void *opaque), void *opaque);

#endif
