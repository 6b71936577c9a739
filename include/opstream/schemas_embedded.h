/*
 * opstream embedded schema registry: the schemas/ directory compiled into the
 * library by mk/embed-schemas.sh, so no Schema Registry server is needed.
 * Internal to the codec; ids follow schemas/schema-ids.txt.
 */
#ifndef OPSTREAM_SCHEMAS_EMBEDDED_H
#define OPSTREAM_SCHEMAS_EMBEDDED_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One schema of the id file. All strings are static and owned by the table. */
typedef struct ops_schema_embedded {
    int32_t id;          /* Confluent schema id, stable forever */
    const char *subject; /* "opstream.rescues-value" */
    int version;         /* version within the subject, from 1 */
    const char *topic;   /* topic suffix: "arrests", ..., "alerts" */
    const char *file;    /* "rescue-v2.avsc" */
    const char *json;    /* the schema text */
} ops_schema_embedded_t;

extern const ops_schema_embedded_t ops_schemas_embedded[];
extern const size_t ops_schemas_embedded_count;

#ifdef __cplusplus
}
#endif
#endif
