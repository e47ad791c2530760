/*
 * test_mtd_head_collision.c -- the head's series table when two different label sets share
 * one 64-bit hash (forced here, since XXH3 collisions cannot be produced on demand): both
 * series must exist separately, keep their own samples, and be found again by their labels.
 * Includes head.c to reach its static helpers (STYLE 16: sparingly).
 */
#include <check.h>

#include "../../../metricsd/head.c"

/* The head's one-shot label hash equals obs_labels_hash (storage.h promises that value). */
START_TEST(test_labels_hash_equal)
{
    struct obs_label a[] = {{"__name__", "m"}, {"job", "a"}, {"x", ""}};
    ck_assert_uint_eq(labels_hash(a, 3), obs_labels_hash(a, 3));
    ck_assert_uint_eq(labels_hash(a, 0), obs_labels_hash(a, 0));
    static char big[3000];
    memset(big, 'v', sizeof big - 1);
    struct obs_label b[] = {{"__name__", "m"}, {"long", big}};
    ck_assert_uint_eq(labels_hash(b, 2), obs_labels_hash(b, 2));
}
END_TEST

START_TEST(test_forced_collision)
{
    struct mtd_head *h = mtd_head_open(NULL, NULL);
    struct tenant *t = tenant_get(h, "anonymous", 1);
    ck_assert_ptr_nonnull(t);
    struct obs_label a[] = {{"__name__", "m"}, {"job", "a"}};
    struct obs_label b[] = {{"__name__", "m"}, {"job", "b"}};
    const uint64_t same = 0x1234;
    struct mseries *sa = series_create(h, t, same, a, 2, 0);
    ck_assert_ptr_nonnull(sa);
    ck_assert_ptr_null(series_lookup(t, same, b, 2)); /* same hash, other labels: not found */
    struct mseries *sb = series_create(h, t, same, b, 2, 0);
    ck_assert_ptr_nonnull(sb);
    ck_assert_ptr_ne(sa, sb);
    ck_assert_ptr_eq(series_lookup(t, same, a, 2), sa);
    ck_assert_ptr_eq(series_lookup(t, same, b, 2), sb);
    ck_assert_int_eq(series_push(h, sa, 1000, 1.0), 0);
    ck_assert_int_eq(series_push(h, sb, 1000, 2.0), 0);

    /* both are selectable and keep their own samples */
    struct obs_matcher m;
    obs_matcher_init(&m, OBS_MATCH_EQ, "__name__", "m", NULL);
    struct mtd_select_opts o = {.mint = INT64_MIN, .maxt = INT64_MAX};
    struct mtd_series_set *set = NULL;
    ck_assert_int_eq(mtd_storage_select(mtd_head_storage(h), "anonymous", &m, 1, &o, &set,
                                        NULL), 0);
    ck_assert_uint_eq(set->nseries, 2);
    ck_assert_str_eq(set->series[0].labels[1].value, "a");
    ck_assert_double_eq(set->series[0].samples[0].v, 1.0);
    ck_assert_str_eq(set->series[1].labels[1].value, "b");
    ck_assert_double_eq(set->series[1].samples[0].v, 2.0);
    mtd_series_set_free(set);
    obs_matcher_deinit(&m);
    mtd_head_close(h);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("mtd_head_collision");
    TCase *tc = tcase_create("collision");
    tcase_add_test(tc, test_forced_collision);
    tcase_add_test(tc, test_labels_hash_equal);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_tap(sr, "/dev/stdout");
    srunner_run_all(sr, CK_SILENT);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
