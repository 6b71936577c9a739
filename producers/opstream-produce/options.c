/*
 * opstream-produce command line: the common options of cli.h plus the
 * producer's own, checked here so that a bad value is a usage error (exit 2)
 * before any input is read.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opstream/validate.h"
#include "produce.h"
#include "startup.h"

enum {
    OPT_OPERATION = OPS_CLI_OPT_FIRST_PROGRAM,
    OPT_COUNTRY,
    OPT_KIND,
    OPT_FORMAT,
    OPT_REJECTS,
    OPT_DRY_RUN,
    OPT_TIMEOUT,
    OPT_PROGRESS,
    OPT_NO_PROGRESS
};

static void usage(FILE *out) {
    fprintf(out,
            "Usage: opstream-produce -b BROKERS [--operation OP] [--country CC] [--kind KIND]\n"
            "                        [--format csv|jsonl] [--rejects FILE] [--dry-run]\n"
            "                        [--timeout S] [FILE|-]...\n"
            "\n"
            "A country's producer: reads a national export (CSV with a header row, or JSON\n"
            "Lines), validates every record and produces each good one as an Avro event to\n"
            "its kind's topic (opstream.arrests, .rescues, .migrants, .seizures), keyed by\n"
            "country, with an idempotent producer and acks=all. A record counts as sent only\n"
            "when its delivery report confirms it. With no FILE, or FILE '-', reads stdin.\n"
            "\n"
            "Input: columns (CSV) or keys (JSON) are the Avro field names plus 'kind':\n"
            "  kind event_id operation country occurred_at reported_at source_ref location\n"
            "  persons offence suspect_nationalities (arrest)\n"
            "  victims minors referred exploitation site victim_nationalities (rescue)\n"
            "  migrants minors nationalities (migrant)   items category (seizure)\n"
            "  Timestamps: ISO 8601 with a zone (2024-09-30T14:05:00Z) or epoch ms.\n"
            "  occurred_at and reported_at must lie between opstream.event.time.min\n"
            "  (default 2000-01-01) and now + opstream.event.time.max.future.s (default\n"
            "  1 day); the consumers apply the same rules and send what breaks them to\n"
            "  opstream.dlq.\n"
            "  CSV lists are ';'-separated (NG;GH); JSON lists are arrays of strings.\n"
            "  reported_at defaults to now; event_id to an id derived from operation,\n"
            "  country, kind and source_ref, so re-sending a file gives the same ids.\n"
            "  A CSV header with an unknown column is a usage error naming it. Empty\n"
            "  cells past the last column (spreadsheets add them) are ignored; a value\n"
            "  there, or a missing column, rejects the row.\n"
            "\n"
            "Options:\n"
            "      --operation OP      operation code for records without one; a record\n"
            "                          naming another operation is rejected\n"
            "      --country CC        reporting country (ISO 3166-1 alpha-2) for records\n"
            "                          without one; a record of another country is rejected\n"
            "      --kind KIND         arrest, rescue, migrant or seizure, for records\n"
            "                          without one; a record of another kind is rejected\n"
            "      --format FMT        csv or jsonl (default: from the file name: .csv,\n"
            "                          .jsonl, .ndjson; required for stdin)\n"
            "      --rejects FILE      append every rejected record to FILE, verbatim (CSV:\n"
            "                          after its file's header row), to fix and re-send\n"
            "      --dry-run           validate only; no broker needed, nothing is sent\n"
            "      --timeout S         give up on a record not confirmed within S seconds\n"
            "                          (sets message.timeout.ms; default librdkafka's 300 s)\n"
            "      --progress          progress line on stderr (default: when stderr is a\n"
            "                          terminal); --no-progress turns it off\n" OPS_CLI_METRICS_HELP
            "                             (/readyz: ready once a broker answered)\n"
            "\n"
            "%s"
            "\n"
            "Reports: every bad record as 'FILE:LINE: field: reason' on stderr; every record\n"
            "whose delivery failed as 'FILE:LINE: delivery failed: reason (event_id ...)';\n"
            "at the end one line 'read N, delivered N, rejected N, failed N'. Brokers that\n"
            "do not answer within opstream.connect.timeout.s (default 10 s) are named once;\n"
            "every record then fails at once with its FILE:LINE (exit 3). librdkafka's own\n"
            "log lines only with -v.\n"
            "SIGINT/SIGTERM: stop reading, wait up to 1 s for what was sent to be\n"
            "confirmed, report; what is unconfirmed then is reported failed (exit 3). A\n"
            "second signal stops waiting at once.\n"
            "A producer that fails fatally (idempotence lost) is recreated (up to 3 times)\n"
            "and its unconfirmed records are sent again with the same event_id; consumers\n"
            "count an event_id once within opstream.dedupe.window.s, so such a resend\n"
            "never double-counts.\n"
            "\n"
            "Exit codes:\n"
            "  0  every record read was delivered (--dry-run: every record is valid)\n"
            "  1  some records were rejected; every valid one was delivered\n"
            "  2  usage or configuration error (nothing sent from a file with a bad header;\n"
            "     a --metrics address that is busy or invalid)\n"
            "  3  delivery failed for some records (each is reported), e.g. the brokers\n"
            "     could not be reached, or a signal came before they were confirmed\n"
            "After a signal the codes refer to the records read before it.\n",
            ops_cli_help_for(OPS_CLI_USES_KAFKA));
}

/* The producer's own options; a bad value is a usage error. */
static int prod_option(void *opaque, int opt, const char *arg, char *err, size_t err_size) {
    prod_opts_t *o = opaque;
    switch (opt) {
    case OPT_OPERATION:
        return startup_operation_option(arg, &o->operation, err, err_size);
    case OPT_COUNTRY:
        if (!ops_valid_country(arg)) {
            snprintf(err, err_size, "--country: '%s' is not an ISO 3166-1 alpha-2 code", arg);
            return -1;
        }
        o->country = arg;
        return 0;
    case OPT_KIND:
        o->kind = ops_kind_from_name(arg);
        if (o->kind < 0) {
            snprintf(err, err_size, "--kind: '%s' is not arrest, rescue, migrant or seizure", arg);
            return -1;
        }
        return 0;
    case OPT_FORMAT:
        if (strcmp(arg, "csv") == 0)
            o->format = FORMAT_CSV;
        else if (strcmp(arg, "jsonl") == 0 || strcmp(arg, "ndjson") == 0)
            o->format = FORMAT_JSONL;
        else {
            snprintf(err, err_size, "--format: '%s' is not csv or jsonl", arg);
            return -1;
        }
        return 0;
    case OPT_REJECTS:
        o->rejects = arg;
        return 0;
    case OPT_DRY_RUN:
        o->dry_run = 1;
        return 0;
    case OPT_TIMEOUT: {
        long s;
        if (ops_cli_parse_long("--timeout", arg, 1, 86400, &s, err, err_size) != 0) {
            size_t n = strlen(err);
            snprintf(err + n, err_size - n, " (seconds)");
            return -1;
        }
        o->timeout_s = (int)s;
        return 0;
    }
    case OPT_PROGRESS:
        o->progress = 1;
        return 0;
    case OPT_NO_PROGRESS:
        o->progress = 0;
        return 0;
    default:
        return startup_unknown_option(opt, err, err_size);
    }
}

int prod_parse_options(int argc, char **argv, prod_opts_t *o) {
    static const struct option longopts[] = {
        OPS_CLI_COMMON_LONG,
        {"operation", required_argument, NULL, OPT_OPERATION},
        {"country", required_argument, NULL, OPT_COUNTRY},
        {"kind", required_argument, NULL, OPT_KIND},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"rejects", required_argument, NULL, OPT_REJECTS},
        {"dry-run", no_argument, NULL, OPT_DRY_RUN},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"progress", no_argument, NULL, OPT_PROGRESS},
        {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
        OPS_CLI_METRICS_LONG,
        {NULL, 0, NULL, 0},
    };
    startup_t start = {.name = "opstream-produce",
                       .short_opts = OPS_CLI_COMMON_SHORT,
                       .long_opts = longopts,
                       .usage = usage,
                       .option = prod_option,
                       .opaque = o,
                       .max_args = -1,
                       .exit_fatal = EXIT_USAGE,
                       .uses = OPS_CLI_USES_KAFKA};
    char err[512];

    o->kind = -1;
    o->progress = -1;
    int rc = startup_parse(&start, argc, argv);
    o->cfg = start.cfg;
    o->common = start.common;
    if (rc >= 0)
        return rc;
    if (o->timeout_s > 0) {
        char ms[32];
        snprintf(ms, sizeof(ms), "%d", o->timeout_s * 1000);
        if (ops_config_set(o->cfg, "message.timeout.ms", ms, err, sizeof(err)) != 0)
            return startup_usage_error(&start, "--timeout: %s", err);
    }
    o->files = argv + start.argi;
    o->n_files = argc - start.argi;
    int n_stdin = 0;
    for (int i = 0; i < o->n_files; i++)
        n_stdin += strcmp(o->files[i], "-") == 0;
    if (n_stdin > 1)
        return startup_usage_error(&start, "%s", "stdin ('-') can be read only once");
    return -1;
}
