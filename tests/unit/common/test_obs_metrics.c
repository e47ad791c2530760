/*
 * test_obs_metrics.c -- unit tests for common/metrics/obs_metrics.c (text format 0.0.4 output).
 */
#include "metrics/obs_metrics.h"

#include <check.h>
#include <pthread.h>
#include <string.h>

static double seven(void *arg) { (void)arg; return 7; }

START_TEST(test_counter_gauge_render)
{
    struct obs_metrics *m = obs_metrics_new();
    struct obs_mfamily *f = obs_metrics_family(m, OBS_MCOUNTER, "req_total", "Requests.",
                                               "method,code", NULL, 0);
    obs_mchild_add(obs_mfamily_with(f, "GET", "200"), 2);
    obs_mchild_add(obs_mfamily_with(f, "GET", "200"), 1);
    obs_mchild_add(obs_mfamily_with(f, "POST", "a\"b"), 1);
    obs_mchild_set(obs_metrics_gauge(m, "g", "A gauge."), 1.5);
    obs_metrics_gauge_fn(m, "fn_gauge", "From a function.", seven, NULL);
    /* same name, other type -> refused */
    ck_assert_ptr_null(obs_metrics_family(m, OBS_MGAUGE, "req_total", "", NULL, NULL, 0));
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    ck_assert_int_eq(obs_metrics_render(m, &b), 0);
    ck_assert_str_eq(b.p, "# HELP fn_gauge From a function.\n# TYPE fn_gauge gauge\nfn_gauge 7\n"
                          "# HELP g A gauge.\n# TYPE g gauge\ng 1.5\n"
                          "# HELP req_total Requests.\n# TYPE req_total counter\n"
                          "req_total{method=\"GET\",code=\"200\"} 3\n"
                          "req_total{method=\"POST\",code=\"a\\\"b\"} 1\n");
    obs_sbuf_deinit(&b);
    obs_metrics_free(m);
}
END_TEST

START_TEST(test_histogram)
{
    struct obs_metrics *m = obs_metrics_new();
    double bk[] = {0.1, 1};
    struct obs_mfamily *f = obs_metrics_family(m, OBS_MHISTOGRAM, "lat_seconds", "Latency.",
                                               "op", bk, 2);
    struct obs_mchild *c = obs_mfamily_with(f, "x");
    obs_mchild_observe(c, 0.05);
    obs_mchild_observe(c, 0.1);
    obs_mchild_observe(c, 0.5);
    obs_mchild_observe(c, 5);
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    obs_metrics_render(m, &b);
    ck_assert_msg(strstr(b.p, "lat_seconds_bucket{op=\"x\",le=\"0.1\"} 2\n") != NULL, "%s", b.p);
    ck_assert_msg(strstr(b.p, "lat_seconds_bucket{op=\"x\",le=\"1\"} 3\n") != NULL, "%s", b.p);
    ck_assert_msg(strstr(b.p, "lat_seconds_bucket{op=\"x\",le=\"+Inf\"} 4\n") != NULL, "%s", b.p);
    ck_assert_msg(strstr(b.p, "lat_seconds_sum{op=\"x\"} 5.65\n") != NULL, "%s", b.p);
    ck_assert_msg(strstr(b.p, "lat_seconds_count{op=\"x\"} 4\n") != NULL, "%s", b.p);
    obs_sbuf_deinit(&b);
    obs_metrics_free(m);
}
END_TEST

static struct obs_mchild *shared;
static void *adder(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100000; i++)
        obs_mchild_add(shared, 1);
    return NULL;
}

START_TEST(test_concurrent_adds)
{
    struct obs_metrics *m = obs_metrics_new();
    shared = obs_metrics_counter(m, "c_total", "c");
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, adder, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    ck_assert_double_eq(obs_mchild_value(shared), 400000);
    obs_metrics_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("obs_metrics");
    TCase *tc = tcase_create("render");
    tcase_add_test(tc, test_counter_gauge_render);
    tcase_add_test(tc, test_histogram);
    suite_add_tcase(s, tc);
    tc = tcase_create("concurrency");
    tcase_add_test(tc, test_concurrent_adds);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
