/*
 * opstream-alert stores an offset only once the alerts of the events below
 * it are published: with the brokers answering slowly (an alert stays in
 * flight for a while after its event was read), the group's stored offsets
 * never pass a raid whose alert is not yet in the Redis mirror, which is
 * written only after the alert's delivery report; and in the end every
 * alert is on the topic once.
 */
#include <time.h>

#include "test_alert_common.h"

#define RAIDS 16
#define EVERY 25

typedef struct raid_pos {
    int32_t partition;
    int64_t offset;
} raid_pos_t;

/* Where each raid landed in opstream.rescues (source_ref "order-raid-R"). */
static void find_raids(raid_pos_t *pos) {
    harness_msgs_t msgs = {0};
    char err[512];
    for (int r = 0; r < RAIDS; r++)
        pos[r].offset = -1;
    assert_int_equal(
        harness_consume_all(g_broker->bootstrap, "opstream.rescues", 300, 30000, &msgs), 0);
    for (size_t i = 0; i < msgs.n; i++) {
        ops_event_t ev;
        assert_int_equal(ops_codec_decode_event(g_codec, msgs.v[i].value, msgs.v[i].value_len, &ev,
                                                err, sizeof(err)),
                         OPS_CODEC_OK);
        if (strncmp(ev.source_ref, "order-raid-", 11) != 0)
            continue;
        int r = atoi(ev.source_ref + 11);
        assert_true(r >= 0 && r < RAIDS);
        pos[r].partition = msgs.v[i].partition;
        pos[r].offset = msgs.v[i].offset;
    }
    harness_msgs_free(&msgs);
    for (int r = 0; r < RAIDS; r++)
        assert_true(pos[r].offset >= 0);
}

/* The group's stored offset of opstream.rescues [partition], -1 when none. */
static int64_t stored_of(redisReply *h, int32_t partition) {
    char field[64];
    snprintf(field, sizeof(field), "opstream.rescues:%d", (int)partition);
    for (size_t i = 0; i + 1 < h->elements; i += 2)
        if (strcmp(h->element[i]->str, field) == 0)
            return strtoll(h->element[i + 1]->str, NULL, 10);
    return -1;
}

/* One look: the offsets first, then the mirror (an alert mirrored after
 * the offsets were read is fine). Returns the raids passed so far. */
static int check_once(const char *group, const char *op, const raid_pos_t *pos,
                      char expected[][OPS_EVENT_ID_LEN + 1]) {
    static char ids[RAIDS * 4][OPS_EVENT_ID_LEN + 1];
    char key[OPS_KEY_MAX];
    ops_key_offsets(group, key, sizeof(key));
    redisReply *h = harness_redis_command(g_redis, "HGETALL %s", key);
    assert_non_null(h);
    assert_int_equal(h->type, REDIS_REPLY_ARRAY);
    size_t n = stream_ids(op, ids, RAIDS * 4);
    int passed = 0;
    for (int r = 0; r < RAIDS; r++) {
        if (stored_of(h, pos[r].partition) <= pos[r].offset)
            continue;
        passed++;
        bool found = false;
        for (size_t i = 0; i < n && !found; i++)
            found = strcmp(ids[i], expected[r]) == 0;
        if (!found)
            fail_msg("the stored offset of opstream.rescues [%d] passed raid %d (offset %lld) "
                     "before its alert %s was published",
                     (int)pos[r].partition, r, (long long)pos[r].offset, expected[r]);
    }
    freeReplyObject(h);
    return passed;
}

static void stored_offsets_never_pass_a_raid_whose_alert_is_not_yet_published(void **state) {
    (void)state;
    const char *op = "ORDER-OP";
    const char *group = "alert-order";
    static const char *const ccs[] = {"TH", "VN", "KH", "MY", "ID", "LA", "MM", "BD",
                                      "LK", "NP", "JP", "KR", "MN", "BT", "MV", "TL"};
    static ops_event_t steady[RAIDS * EVERY], evs[RAIDS * (EVERY + 1)];
    static char expected[RAIDS][OPS_EVENT_ID_LEN + 1];
    static raid_pos_t pos[RAIDS];
    gen_steady(op, 11, RAIDS * EVERY, T0, RAIDS * EVERY, steady);
    size_t n = add_raids(op, steady, RAIDS * EVERY, EVERY, ccs, "order-raid", 70, evs, expected);
    /* everything on the topics first, so that the raids' positions are known */
    produce(evs, n);
    find_raids(pos);

    static const char *const slow[] = {"-X", "session.timeout.ms=10000", NULL};
    set_rtt(150); /* an alert takes at least 150 ms to be confirmed */
    harness_proc_t *p = spawn_alert_with(group, slow); /* watched from its start */
    consumed_arg_t all = {group, events_on_topics()};
    int before_the_last = 0; /* looks while raids were still ahead of the stored offsets */
    int64_t deadline = harness_now_ms() + 90000;
    while (!consumed_all(&all) && harness_now_ms() < deadline) {
        if (check_once(group, op, pos, expected) < RAIDS)
            before_the_last++;
        nanosleep(&(struct timespec){0, 2000000L}, NULL);
    }
    set_rtt(0);
    assert_true(consumed_all(&all));
    assert_int_equal(check_once(group, op, pos, expected), RAIDS);
    stop_alert(p);
    assert_true(before_the_last > 0); /* it watched the offsets pass the raids */

    assert_each_published_once(op, expected, RAIDS);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stored_offsets_never_pass_a_raid_whose_alert_is_not_yet_published),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
