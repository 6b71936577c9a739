/*
 * opstream-simulate: realistic traffic for one operation, from the seeded
 * generator of the core (lib/simulate.c), paced to a rate and produced
 * through the same produce path as opstream-produce; or printed as JSON
 * lines. Writes the totals of what was delivered so tests can check them.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "opstream/cli.h"
#include "opstream/observe.h"
#include "opstream/produce.h"
#include "opstream/record.h"
#include "opstream/simulate.h"
#include "opstream/validate.h"
#include "startup.h"

#define EXIT_OK 0
#define EXIT_USAGE 2
#define EXIT_DELIVERY 3

enum {
    OPT_OPERATION = OPS_CLI_OPT_FIRST_PROGRAM,
    OPT_COUNTRIES,
    OPT_RATE,
    OPT_EVENTS,
    OPT_DURATION,
    OPT_SEED,
    OPT_SCENARIO,
    OPT_SPAN_DAYS,
    OPT_BASE_TIME,
    OPT_TOTALS,
    OPT_PRINT,
    OPT_TIMEOUT,
    OPT_LIST
};

typedef struct sim_opts {
    ops_config_t *cfg;
    ops_cli_common_t common;
    ops_sim_options_t sim;
    double rate;       /* events per second; 0: as fast as possible */
    long long events;  /* -1: no limit */
    double duration_s; /* 0: no limit */
    int have_base_time;
    int64_t base_time_ms;
    const char *totals; /* FILE or "-" */
    int print;          /* JSON lines to stdout instead of Kafka */
    int timeout_s;
} sim_opts_t;

typedef struct sim_run {
    ops_sim_totals_t *totals; /* of what was delivered (or printed) */
    uint64_t generated;
    int progress;
    int64_t progress_at;
    ops_observe_t obs;              /* metrics, health, the --metrics endpoint */
    ops_metrics_series_t *rejected; /* opstream_produced_total{result="rejected"} */
    int ready;                      /* /readyz said ready (a broker answered) */
    ops_produce_t *producer;        /* for the progress line and failure reports */
    uint64_t unsent;                /* events failed because no broker answered */
    long unsent_first, unsent_last;
} sim_run_t;

/* First signal: stop generating and flush for at most FINAL_FLUSH_MS.
 * Second: stop waiting. */
#define FINAL_FLUSH_MS 1000
static volatile sig_atomic_t g_stop = 0;
static volatile sig_atomic_t g_abort = 0;

static void usage(FILE *out) {
    fprintf(out,
            "Usage: opstream-simulate -b BROKERS [--operation OP] [--countries N] [--rate EPS]\n"
            "                         [--events N | --duration S] [--seed N]\n"
            "                         [--scenario NAME] [--span-days D] [--base-time T]\n"
            "                         [--totals FILE|-] [--print]\n"
            "\n"
            "Realistic traffic for one operation: participating countries with a skewed share\n"
            "of events, arrests mostly of one to three persons, occasional raids (a scam\n"
            "centre freeing 100-300 people, a hotel freeing about 30), boats with 50-100\n"
            "migrants, seizures, and a few late reports. Events are produced exactly like\n"
            "opstream-produce does (same validation, encoding, keys and delivery\n"
            "accounting). The same seed gives the same events, at any rate.\n"
            "\n"
            "Options:\n"
            "      --operation OP     operation code (default: the scenario's)\n"
            "      --scenario NAME    flash-weka (54 countries, default), weka-ii (44),\n"
            "                         liberterra-ii (60); --list-scenarios shows them\n"
            "      --countries N      only the scenario's N most active countries\n"
            "      --rate EPS         events per second (default 10; 0: as fast as possible)\n"
            "      --events N         stop after N events\n"
            "      --duration S       stop after S seconds (default: run until a signal)\n"
            "      --seed N           random seed (default 1)\n"
            "      --span-days D      spread event times over the D days before the base\n"
            "                         time (default 0: live, minutes old, a few late\n"
            "                         reports hours old)\n"
            "      --base-time T      fixed reference time (ISO 8601 or epoch ms) instead of\n"
            "                         the clock: with it the same seed gives byte-identical\n"
            "                         events (event_ids are stable even without it)\n"
            "      --totals FILE|-    after delivery, write the totals of what was delivered\n"
            "                         as JSON (per metric overall and per country, events\n"
            "                         per kind)\n"
            "      --print, --dry-run write events as JSON lines on stdout (the input format\n"
            "                         of opstream-produce); no broker needed\n"
            "      --timeout S        give up on an event not confirmed within S seconds\n"
            "                         (sets message.timeout.ms)\n"
            "      --list-scenarios   list the scenarios and exit\n" OPS_CLI_METRICS_HELP
            "                             (/readyz: ready once a broker answered)\n"
            "\n"
            "%s"
            "\n"
            "At the end one line 'generated N, delivered N, failed N' on stderr. Brokers\n"
            "that do not answer within opstream.connect.timeout.s (default 10 s) are named\n"
            "once; generation stops and the run exits 3. librdkafka's own log lines only\n"
            "with -v.\n"
            "SIGINT/SIGTERM: stop generating, wait up to 1 s for what was sent to be\n"
            "confirmed, write the totals; what is unconfirmed then counts as failed (exit\n"
            "3). A second signal stops waiting at once.\n"
            "\n"
            "Exit codes:\n"
            "  0  every generated event was delivered (or printed)\n"
            "  2  usage or configuration error (also a --metrics address that is busy\n"
            "     or invalid)\n"
            "  3  delivery failed for some events (each is reported on stderr)\n",
            ops_cli_help_for(OPS_CLI_USES_KAFKA));
}

/* A number in lo..hi, or -1 with err. */
static int parse_number(const char *opt, const char *arg, double lo, double hi, double *out,
                        char *err, size_t err_size) {
    char *end;
    double v = strtod(arg, &end);
    if (end == arg || *end != '\0' || !(v >= lo && v <= hi)) {
        snprintf(err, err_size, "%s: '%s' is not a number in %g..%g", opt, arg, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static void list_scenarios(void) {
    for (size_t i = 0; i < ops_sim_scenario_count(); i++) {
        const ops_sim_scenario_t *sc = ops_sim_scenario_at(i);
        printf("%-14s %-14s %2zu countries, %2d days  %s\n", sc->name, sc->operation,
               sc->n_countries, sc->days, sc->description);
    }
}

/* The simulator's own options; --list-scenarios is served here. */
static int sim_option(void *opaque, int opt, const char *arg, char *err, size_t err_size) {
    sim_opts_t *o = opaque;
    double v;
    switch (opt) {
    case OPT_OPERATION:
        return startup_operation_option(arg, &o->sim.operation, err, err_size);
    case OPT_COUNTRIES:
        if (parse_number("--countries", arg, 1, 60, &v, err, err_size) != 0)
            return -1;
        o->sim.countries = (size_t)v;
        return 0;
    case OPT_RATE:
        return parse_number("--rate", arg, 0, 1e6, &o->rate, err, err_size);
    case OPT_EVENTS:
        if (parse_number("--events", arg, 0, 1e12, &v, err, err_size) != 0)
            return -1;
        o->events = (long long)v;
        return 0;
    case OPT_DURATION:
        return parse_number("--duration", arg, 0.001, 1e7, &o->duration_s, err, err_size);
    case OPT_SEED: {
        char *end;
        o->sim.seed = strtoull(arg, &end, 0);
        if (end == arg || *end != '\0') {
            snprintf(err, err_size, "--seed: '%s' is not a number", arg);
            return -1;
        }
        return 0;
    }
    case OPT_SCENARIO:
        if (ops_sim_scenario_find(arg) == NULL) {
            snprintf(err, err_size, "--scenario: unknown scenario '%s' (see --list-scenarios)",
                     arg);
            return -1;
        }
        o->sim.scenario = arg;
        return 0;
    case OPT_SPAN_DAYS:
        if (parse_number("--span-days", arg, 0, 366, &v, err, err_size) != 0)
            return -1;
        o->sim.span_days = (int)v;
        return 0;
    case OPT_BASE_TIME: {
        char why[256];
        if (ops_validate_parse_timestamp(arg, &o->base_time_ms, why, sizeof(why)) != 0) {
            snprintf(err, err_size, "--base-time: %s", why);
            return -1;
        }
        o->have_base_time = 1;
        return 0;
    }
    case OPT_TOTALS:
        o->totals = arg;
        return 0;
    case OPT_PRINT:
        o->print = 1;
        return 0;
    case OPT_TIMEOUT:
        if (parse_number("--timeout", arg, 1, 86400, &v, err, err_size) != 0)
            return -1;
        o->timeout_s = (int)v;
        return 0;
    case OPT_LIST:
        list_scenarios();
        return 1;
    default:
        return startup_unknown_option(opt, err, err_size);
    }
}

static const struct option sim_longopts[] = {
    OPS_CLI_COMMON_LONG,
    {"operation", required_argument, NULL, OPT_OPERATION},
    {"countries", required_argument, NULL, OPT_COUNTRIES},
    {"rate", required_argument, NULL, OPT_RATE},
    {"events", required_argument, NULL, OPT_EVENTS},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"seed", required_argument, NULL, OPT_SEED},
    {"scenario", required_argument, NULL, OPT_SCENARIO},
    {"span-days", required_argument, NULL, OPT_SPAN_DAYS},
    {"base-time", required_argument, NULL, OPT_BASE_TIME},
    {"totals", required_argument, NULL, OPT_TOTALS},
    {"print", no_argument, NULL, OPT_PRINT},
    {"dry-run", no_argument, NULL, OPT_PRINT},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"list-scenarios", no_argument, NULL, OPT_LIST},
    OPS_CLI_METRICS_LONG,
    {NULL, 0, NULL, 0},
};

/* Creates o->cfg and reads the command line. Returns -1 to run, or the
 * exit code once --help, --version or --list-scenarios was served or a
 * usage error reported. */
static int parse_options(startup_t *start, int argc, char **argv, sim_opts_t *o) {
    char err[512];

    o->rate = 10;
    o->events = -1;
    o->sim.seed = 1;
    int rc = startup_parse(start, argc, argv);
    o->cfg = start->cfg;
    o->common = start->common;
    if (rc >= 0)
        return rc;
    if (o->events >= 0 && o->duration_s > 0)
        return startup_usage_error(start, "%s", "give --events or --duration, not both");
    if (o->timeout_s > 0) {
        char ms[32];
        snprintf(ms, sizeof(ms), "%d", o->timeout_s * 1000);
        if (ops_config_set(o->cfg, "message.timeout.ms", ms, err, sizeof(err)) != 0)
            return startup_usage_error(start, "--timeout: %s", err);
    }
    return -1;
}

static int64_t clock_ms(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_delivered(void *opaque, const ops_event_t *ev) {
    sim_run_t *run = opaque;
    ops_sim_totals_add(run->totals, ev);
}

/* Events held when the brokers were found unreachable are counted and told
 * in one line at the end (the reason was already given once); any other
 * failure is told event by event. */
static void on_failed(void *opaque, const ops_event_t *ev, const char *file, long line,
                      const char *reason) {
    sim_run_t *run = opaque;
    (void)file;
    if (run->producer != NULL && ops_produce_unreachable(run->producer)) {
        if (run->unsent++ == 0)
            run->unsent_first = line;
        run->unsent_last = line;
        return;
    }
    fprintf(stderr, "event %ld: delivery failed: %s (event_id %s, source_ref %s)\n", line, reason,
            ev->event_id, ev->source_ref);
}

static void on_notice(void *opaque, const char *msg) {
    (void)opaque;
    fprintf(stderr, "opstream-simulate: %s\n", msg);
}

static int g_verbose;

/* librdkafka's own log lines with -v (critical ones always): without it a
 * broker problem is told once, in the simulator's words. */
static void on_log(void *opaque, int level, const char *facility, const char *msg) {
    (void)opaque;
    if (level <= 2 || g_verbose > 0)
        fprintf(stderr, "opstream-simulate: kafka %s: %s\n", facility, msg);
}

/* The loop is alive (/healthz), and ready (/readyz) once a broker answered. */
static void beat(sim_run_t *run, ops_produce_t *p) {
    ops_health_beat(run->obs.health);
    if (!run->ready && p != NULL && ops_produce_reached_broker(p)) {
        ops_health_set_ready(run->obs.health, NULL);
        run->ready = 1;
    }
}

/* Waits until the monotonic time `at`, serving delivery reports meanwhile
 * (a signal cuts the wait short). */
static void pace_until(sim_run_t *run, ops_produce_t *p, int64_t at) {
    for (;;) {
        beat(run, p);
        int64_t left = at - clock_ms(CLOCK_MONOTONIC);
        if (left <= 0 || g_stop)
            return;
        if (left > 100)
            left = 100;
        if (p != NULL) {
            ops_produce_poll(p, (int)left);
        } else {
            struct timespec ts = {0, (long)left * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
}

static void progress(sim_run_t *run, ops_produce_t *p, int force) {
    ops_produce_stats_t st = {0};
    int64_t now;
    beat(run, p);
    if (!run->progress)
        return;
    now = clock_ms(CLOCK_MONOTONIC);
    if (!force && now - run->progress_at < 1000)
        return;
    run->progress_at = now;
    if (p != NULL)
        ops_produce_stats(p, &st);
    fprintf(stderr, "\r\033[Kgenerated %llu, delivered %llu, failed %llu",
            (unsigned long long)run->generated, (unsigned long long)st.delivered,
            (unsigned long long)st.failed);
}

static void on_tick(void *opaque) {
    sim_run_t *run = opaque;
    progress(run, run->producer, 0);
}

static int write_totals(const sim_opts_t *o, const ops_sim_totals_t *t) {
    char *json = ops_sim_totals_json(t);
    FILE *fp;
    int rc = 0;
    if (json == NULL) {
        fprintf(stderr, "opstream-simulate: out of memory\n");
        return -1;
    }
    fp = strcmp(o->totals, "-") == 0 ? stdout : fopen(o->totals, "w");
    if (fp == NULL || fputs(json, fp) == EOF) {
        fprintf(stderr, "opstream-simulate: --totals %s: cannot write\n", o->totals);
        rc = -1;
    }
    if (fp != NULL && fp != stdout && fclose(fp) != 0)
        rc = -1;
    if (fp == stdout)
        fflush(stdout);
    free(json);
    return rc;
}

/* The metrics endpoint (--metrics): a busy or invalid address is a usage
 * error before anything is generated. */
static int start_metrics(sim_run_t *run, const sim_opts_t *o) {
    ops_metrics_produced_t m;
    char err[256];
    if (startup_observe("opstream-simulate", o->cfg, 0, &run->obs) != 0)
        return -1;
    if (ops_metrics_produced_init(run->obs.metrics, &m, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: %s\n", "opstream-simulate", err);
        return -1;
    }
    run->rejected = m.rejected;
    ops_health_set_ready(run->obs.health, o->print ? NULL : "no broker has answered yet");
    return 0;
}

/* The generation loop: event i goes out at start + i/rate. */
static void generate(const sim_opts_t *o, const ops_sim_t *sim, ops_produce_t *p, sim_run_t *run) {
    int64_t start = clock_ms(CLOCK_MONOTONIC);
    char err[512], line[OPS_RECORD_JSON_MAX];
    ops_event_t ev;

    for (uint64_t i = 0; !g_stop; i++) {
        if (o->events >= 0 && i >= (uint64_t)o->events)
            break;
        if (o->duration_s > 0 && clock_ms(CLOCK_MONOTONIC) - start >= o->duration_s * 1000)
            break;
        if (o->rate > 0)
            pace_until(run, p, start + (int64_t)((double)i * 1000.0 / o->rate));
        if (g_stop)
            break;
        int64_t ref = o->have_base_time ? o->base_time_ms : clock_ms(CLOCK_REALTIME);
        ops_sim_event(sim, i, ref, &ev);
        run->generated++;
        if (ops_validate_event(&ev, ref, NULL, err, sizeof(err)) != 0) {
            fprintf(stderr, "opstream-simulate: event %llu is invalid: %s\n", (unsigned long long)i,
                    err);
            ops_metrics_add(run->rejected, 1);
            continue;
        }
        if (p == NULL) {
            if (ops_record_format_json(&ev, line, sizeof(line)) > 0)
                puts(line);
            ops_sim_totals_add(run->totals, &ev);
        } else {
            /* the event number stands in for the line in reports */
            (void)ops_produce_send(p, &ev, "simulated", (long)i, err, sizeof(err));
            if (ops_produce_unreachable(p))
                break; /* said once; generating more would only fail more */
        }
        progress(run, p, 0);
    }
}

int main(int argc, char **argv) {
    sim_opts_t o = {0};
    sim_run_t run = {0};
    ops_sim_t *sim = NULL;
    ops_produce_t *p = NULL;
    ops_produce_stats_t st = {0};
    char err[512];
    int rc = EXIT_USAGE;

    startup_t start = {.name = "opstream-simulate",
                       .short_opts = OPS_CLI_COMMON_SHORT,
                       .long_opts = sim_longopts,
                       .usage = usage,
                       .option = sim_option,
                       .opaque = &o,
                       .max_args = 0,
                       .exit_fatal = EXIT_USAGE,
                       .uses = OPS_CLI_USES_KAFKA};

    run.totals = malloc(sizeof(*run.totals));
    if (run.totals == NULL) {
        fprintf(stderr, "opstream-simulate: out of memory\n");
        goto cleanup;
    }
    int prc = parse_options(&start, argc, argv, &o);
    if (prc >= 0) {
        rc = prc;
        goto cleanup;
    }
    g_verbose = o.common.verbose;
    sim = ops_sim_new(&o.sim, err, sizeof(err));
    if (sim == NULL) {
        rc = startup_usage_error(&start, "%s", err);
        goto cleanup;
    }
    const ops_sim_scenario_t *sc =
        ops_sim_scenario_find(o.sim.scenario ? o.sim.scenario : "flash-weka");
    ops_sim_totals_init(run.totals, o.sim.operation ? o.sim.operation : sc->operation);
    run.progress = !o.print && isatty(STDERR_FILENO);
    if (start_metrics(&run, &o) != 0)
        goto cleanup;

    startup_catch_stop_signals(&g_stop, &g_abort);

    if (!o.print) {
        ops_produce_options_t po = {
            .abort = &g_abort,
            .stop = &g_stop,
            .on_delivered = on_delivered,
            .on_failed = on_failed,
            .on_notice = on_notice,
            .on_log = on_log,
            .opaque = &run,
            .metrics = run.obs.metrics,
        };
        p = ops_produce_new(o.cfg, &po, err, sizeof(err));
        if (p == NULL) {
            fprintf(stderr, "opstream-simulate: %s\n", err);
            goto cleanup;
        }
        run.producer = p;
    }
    generate(&o, sim, p, &run);
    if (p != NULL) {
        ops_produce_finish(p, FINAL_FLUSH_MS, on_tick);
        ops_produce_stats(p, &st);
    }
    if (run.progress)
        fputs("\r\033[K", stderr);
    rc = EXIT_OK;
    if (o.totals != NULL && write_totals(&o, run.totals) != 0)
        rc = EXIT_USAGE;
    if (p != NULL) {
        if (run.unsent > 0)
            fprintf(stderr,
                    "opstream-simulate: events %ld to %ld (%llu) not sent: brokers not "
                    "reachable\n",
                    run.unsent_first, run.unsent_last, (unsigned long long)run.unsent);
        if (st.failed > 0 && !ops_produce_reached_broker(p) && !ops_produce_unreachable(p)) {
            const char *bs = ops_config_get(o.cfg, "bootstrap.servers");
            fprintf(stderr, "opstream-simulate: could not reach brokers %s (last error: %s)\n",
                    bs ? bs : "", ops_produce_last_error(p));
        }
        fprintf(stderr, "generated %llu, delivered %llu, failed %llu\n",
                (unsigned long long)run.generated, (unsigned long long)st.delivered,
                (unsigned long long)st.failed);
        if (st.failed > 0 || st.delivered != run.generated)
            rc = EXIT_DELIVERY;
    } else {
        fprintf(stderr, "generated %llu (printed, nothing sent)\n",
                (unsigned long long)run.generated);
    }
cleanup:
    ops_produce_destroy(p);
    ops_observe_stop(&run.obs);
    ops_sim_destroy(sim);
    free(run.totals);
    ops_config_destroy(o.cfg);
    return rc;
}
