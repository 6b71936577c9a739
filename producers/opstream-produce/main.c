/*
 * opstream-produce: a country's producer. Parses options, reads each input
 * through the core's readers and record mapping, produces through the shared
 * produce path, and reports every record that was not delivered. The exit
 * code says whether everything went (see --help).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "opstream/validate.h"
#include "opstream/clock.h"
#include "produce.h"
#include "startup.h"

/* First signal: stop reading and flush for at most FINAL_FLUSH_MS.
 * Second: stop waiting. */
#define FINAL_FLUSH_MS 1000
static volatile sig_atomic_t g_stop = 0;
static volatile sig_atomic_t g_abort = 0;

/* Delivery failures: which record, where it came from, and why. */
static void on_failed(void *opaque, const ops_event_t *ev, const char *file, long line,
                      const char *reason) {
    prod_run_t *run = opaque;
    prod_progress_clear(run);
    fprintf(stderr, "%s:%ld: delivery failed: %s (event_id %s, source_ref %s)\n", file ? file : "?",
            line, reason, ev->event_id, ev->source_ref);
}

static void on_notice(void *opaque, const char *msg) {
    prod_run_t *run = opaque;
    prod_progress_clear(run);
    fprintf(stderr, "opstream-produce: %s\n", msg);
}

/* librdkafka's own log lines with -v (critical ones always): without it a
 * broker problem is told once, in the producer's words. */
static void on_log(void *opaque, int level, const char *facility, const char *msg) {
    const prod_run_t *run = opaque;
    if (level <= 2 || run->o->common.verbose > 0)
        fprintf(stderr, "opstream-produce: kafka %s: %s\n", facility, msg);
}

static void on_tick(void *opaque) {
    prod_progress(opaque, 0);
}

/* The metrics endpoint (--metrics): a busy or invalid address is a usage
 * error before anything is read. A producer waits on its input, so only
 * readiness is tracked: ready once a broker answered. */
static int start_metrics(prod_run_t *run, const prod_opts_t *o) {
    ops_metrics_produced_t m;
    char err[256];
    if (startup_observe("opstream-produce", o->cfg, -1, &run->obs) != 0)
        return -1;
    /* declared before a record is read, so every result shows from 0 */
    if (ops_metrics_produced_init(run->obs.metrics, &m, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s: %s\n", "opstream-produce", err);
        return -1;
    }
    run->rejected_total = m.rejected;
    ops_health_set_ready(run->obs.health, o->dry_run ? NULL : "no broker has answered yet");
    return 0;
}

static int summarize(prod_run_t *run, const prod_opts_t *o) {
    ops_produce_stats_t st = {0};
    if (run->producer != NULL)
        ops_produce_stats(run->producer, &st);
    prod_progress_clear(run);
    if (run->stopped_at_file != NULL)
        fprintf(stderr, "opstream-produce: interrupted: stopped reading at %s:%ld\n",
                run->stopped_at_file, run->stopped_at_line);
    if (o->dry_run) {
        fprintf(stderr, "read %llu, valid %llu, rejected %llu (dry run: nothing sent)\n",
                (unsigned long long)run->read, (unsigned long long)run->valid,
                (unsigned long long)run->rejected);
        return run->rejected ? EXIT_SOME_REJECTED : EXIT_ALL_DELIVERED;
    }
    if (st.failed > 0 && !ops_produce_reached_broker(run->producer) &&
        !ops_produce_unreachable(run->producer)) {
        const char *bs = ops_config_get(o->cfg, "bootstrap.servers");
        const char *last = ops_produce_last_error(run->producer);
        if (last[0] != '\0')
            fprintf(stderr, "opstream-produce: could not reach brokers %s (last error: %s)\n",
                    bs ? bs : "", last);
        else
            fprintf(stderr, "opstream-produce: could not reach brokers %s\n", bs ? bs : "");
    }
    fprintf(stderr, "read %llu, delivered %llu, rejected %llu, failed %llu\n",
            (unsigned long long)run->read, (unsigned long long)st.delivered,
            (unsigned long long)run->rejected, (unsigned long long)st.failed);
    if (st.delivered + st.failed != run->valid)
        fprintf(stderr, "opstream-produce: internal: %llu valid records but %llu accounted for\n",
                (unsigned long long)run->valid, (unsigned long long)(st.delivered + st.failed));
    if (st.failed > 0 || st.delivered + st.failed != run->valid)
        return EXIT_DELIVERY;
    return run->rejected ? EXIT_SOME_REJECTED : EXIT_ALL_DELIVERED;
}

int main(int argc, char **argv) {
    prod_opts_t o = {0};
    prod_run_t run = {0};
    char err[512];
    int rc = EXIT_USAGE;
    static char *stdin_only[] = {"-"};

    int prc = prod_parse_options(argc, argv, &o);
    if (prc >= 0) {
        rc = prc;
        goto cleanup;
    }
    if (o.n_files == 0) {
        o.files = stdin_only;
        o.n_files = 1;
    }
    if (o.progress < 0)
        o.progress = isatty(STDERR_FILENO) ? 1 : 0;
    if (prod_check_headers(&o) != 0)
        goto cleanup;

    run.o = &o;
    run.stop = &g_stop;
    run.now_ms = ops_clock_wall_ms();
    if (ops_event_limits_from_config(o.cfg, &run.limits, err, sizeof(err)) != 0) {
        fprintf(stderr, "opstream-produce: %s\n", err);
        goto cleanup;
    }
    if (o.rejects != NULL) {
        run.rejects = fopen(o.rejects, "ab");
        if (run.rejects == NULL) {
            fprintf(stderr, "opstream-produce: --rejects %s: cannot open\n", o.rejects);
            goto cleanup;
        }
    }
    if (start_metrics(&run, &o) != 0)
        goto cleanup;
    startup_catch_stop_signals(&g_stop, &g_abort); /* a blocked read of stdin returns */
    if (!o.dry_run) {
        ops_produce_options_t po = {
            .abort = &g_abort,
            .stop = &g_stop,
            .on_failed = on_failed,
            .on_notice = on_notice,
            .on_log = on_log,
            .opaque = &run,
            .metrics = run.obs.metrics,
        };
        run.producer = ops_produce_new(o.cfg, &po, err, sizeof(err));
        if (run.producer == NULL) {
            fprintf(stderr, "opstream-produce: %s\n", err);
            goto cleanup;
        }
    }
    int input_rc = 0;
    for (int i = 0; i < o.n_files && input_rc == 0; i++) {
        if (g_stop) {
            if (run.stopped_at_file == NULL) {
                run.stopped_at_file = prod_input_name(o.files[i]);
                run.stopped_at_line = 1;
            }
            break;
        }
        input_rc = prod_run_input(&run, o.files[i]);
    }
    if (run.producer != NULL)
        ops_produce_finish(run.producer, FINAL_FLUSH_MS, on_tick);
    rc = summarize(&run, &o);
    if (input_rc != 0 && rc != EXIT_DELIVERY)
        rc = EXIT_USAGE;
cleanup:
    ops_produce_destroy(run.producer);
    ops_observe_stop(&run.obs);
    if (run.rejects != NULL && fclose(run.rejects) != 0) {
        fprintf(stderr, "opstream-produce: --rejects %s: write failed\n", o.rejects);
        if (rc == EXIT_ALL_DELIVERED)
            rc = EXIT_SOME_REJECTED;
    }
    ops_config_destroy(o.cfg);
    return rc;
}
