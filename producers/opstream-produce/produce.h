/*
 * opstream-produce internals shared by its files: the options the command
 * line gave (options.c) and the state of one run over the input files
 * (input.c), driven by main.c.
 */
#ifndef OPSTREAM_PRODUCE_PROGRAM_H
#define OPSTREAM_PRODUCE_PROGRAM_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "opstream/cli.h"
#include "opstream/config.h"
#include "opstream/observe.h"
#include "opstream/produce.h"
#include "opstream/validate.h"
#include "opstream/record.h"

/* Exit codes, documented in --help. */
#define EXIT_ALL_DELIVERED 0
#define EXIT_SOME_REJECTED 1
#define EXIT_USAGE 2
#define EXIT_DELIVERY 3

typedef enum input_format { FORMAT_AUTO = 0, FORMAT_CSV, FORMAT_JSONL } input_format_t;

typedef struct prod_opts {
    ops_config_t *cfg;
    ops_cli_common_t common;
    const char *operation; /* --operation, NULL when not given */
    const char *country;   /* --country */
    int kind;              /* --kind, -1 when not given */
    input_format_t format; /* --format */
    const char *rejects;   /* --rejects FILE */
    int dry_run;
    int timeout_s; /* --timeout, 0: leave message.timeout.ms alone */
    int progress;  /* -1 auto (a terminal), 0 off, 1 on */
    char **files;  /* FILE operands; "-" is stdin */
    int n_files;
} prod_opts_t;

/* Creates o->cfg (environment first) and parses argv into o. Returns -1 to
 * run, or the exit code once --help or --version was served or a usage
 * error reported (o->cfg may be set either way; the caller destroys it). */
int prod_parse_options(int argc, char **argv, prod_opts_t *o);

/* One run over the inputs. */
typedef struct prod_run {
    const prod_opts_t *o;
    ops_produce_t *producer; /* NULL in --dry-run */
    FILE *rejects;
    const char *rejects_header_of; /* input whose CSV header was last copied */
    int64_t now_ms;
    ops_event_limits_t limits; /* opstream.event.time.* */
    uint64_t read, rejected, valid;
    int progress_shown;
    int64_t progress_at; /* monotonic ms of the last progress line */
    const volatile sig_atomic_t *stop;
    const char *stopped_at_file; /* where reading stopped on a signal */
    long stopped_at_line;
    ops_observe_t obs;                    /* metrics, health, the --metrics endpoint */
    ops_metrics_series_t *rejected_total; /* opstream_produced_total{result="rejected"} */
    int ready;                            /* /readyz said ready (a broker answered) */
} prod_run_t;

/* Display name of an input operand ("-" is "stdin"). */
const char *prod_input_name(const char *path);

/* Checks the CSV header of every named CSV file before anything is sent, so
 * a wrong column is a usage error with nothing half-sent. Returns 0 or -1
 * (message on stderr). */
int prod_check_headers(const prod_opts_t *o);

/* Reads one input and sends its good records. Returns 0, or -1 on a usage
 * error (an unusable header, an unreadable file) already reported. */
int prod_run_input(prod_run_t *run, const char *path);

/* Clears a progress line before another message goes to stderr. */
void prod_progress_clear(prod_run_t *run);
void prod_progress(prod_run_t *run, int force);

#endif
