/*
 * test_positions.c -- agentd/positions.c: the positions file (load, set, atomic sync).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agentd/agd.h"

static char dir[64];
static char file[128];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/agd-pos-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(file, sizeof file, "%s/positions.yaml", dir);
}

static void teardown(void)
{
    unlink(file);
    rmdir(dir);
}

START_TEST(test_missing_file_is_empty)
{
    struct obs_err err = {0};
    struct agd_positions *p = agd_positions_open(file, &err);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(agd_positions_count(p), 0);
    struct agd_pos pos;
    ck_assert_int_eq(agd_positions_get(p, "/x", &pos), OBS_ENOENT);
    ck_assert_int_eq(agd_positions_sync(p, &err), 0); /* nothing dirty: no file */
    ck_assert_int_ne(access(file, F_OK), 0);
    agd_positions_free(p);
}
END_TEST

START_TEST(test_roundtrip)
{
    struct obs_err err = {0};
    struct agd_positions *p = agd_positions_open(file, &err);
    struct agd_pos a = {1234, 2049, 777}, b = {0, 1, 2}, got;
    const char *odd = "/var/log/we\"ird\\name\n.log";
    ck_assert_int_eq(agd_positions_set(p, "/var/log/a.log", &a), 0);
    ck_assert_int_eq(agd_positions_set(p, odd, &b), 0);
    ck_assert_int_eq(agd_positions_sync(p, &err), 0);
    agd_positions_free(p);

    p = agd_positions_open(file, &err);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(agd_positions_count(p), 2);
    ck_assert_int_eq(agd_positions_get(p, "/var/log/a.log", &got), 0);
    ck_assert_int_eq(got.offset, 1234);
    ck_assert_uint_eq(got.dev, 2049);
    ck_assert_uint_eq(got.ino, 777);
    ck_assert_int_eq(agd_positions_get(p, odd, &got), 0);
    ck_assert_uint_eq(got.ino, 2);
    /* update + remove survive another round */
    a.offset = 99999;
    agd_positions_set(p, "/var/log/a.log", &a);
    agd_positions_remove(p, odd);
    ck_assert_int_eq(agd_positions_sync(p, &err), 0);
    agd_positions_free(p);
    p = agd_positions_open(file, &err);
    ck_assert_uint_eq(agd_positions_count(p), 1);
    ck_assert_int_eq(agd_positions_get(p, "/var/log/a.log", &got), 0);
    ck_assert_int_eq(got.offset, 99999);
    agd_positions_free(p);
    /* no temp file left behind */
    char tmp[160];
    snprintf(tmp, sizeof tmp, "%s.tmp", file);
    ck_assert_int_ne(access(tmp, F_OK), 0);
}
END_TEST

START_TEST(test_promtail_format)
{
    FILE *f = fopen(file, "w");
    fputs("positions:\n  /var/log/syslog: \"4096\"\n  \"/q/x.log\": \"7\"\n", f);
    fclose(f);
    struct obs_err err = {0};
    struct agd_positions *p = agd_positions_open(file, &err);
    ck_assert_ptr_nonnull(p);
    struct agd_pos got;
    ck_assert_int_eq(agd_positions_get(p, "/var/log/syslog", &got), 0);
    ck_assert_int_eq(got.offset, 4096);
    ck_assert_uint_eq(got.ino, 0); /* identity unknown */
    ck_assert_int_eq(agd_positions_get(p, "/q/x.log", &got), 0);
    ck_assert_int_eq(got.offset, 7);
    agd_positions_free(p);
}
END_TEST

START_TEST(test_malformed)
{
    FILE *f = fopen(file, "w");
    fputs("positions:\n  \"/a\": \"12x\"\n", f);
    fclose(f);
    struct obs_err err = {0};
    ck_assert_ptr_null(agd_positions_open(file, &err));
    ck_assert_int_eq(err.code, OBS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, ":2:"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("positions");
    TCase *tc = tcase_create("file");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_missing_file_is_empty);
    tcase_add_test(tc, test_roundtrip);
    tcase_add_test(tc, test_promtail_format);
    tcase_add_test(tc, test_malformed);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_tap(sr, "-");
    srunner_run_all(sr, CK_ENV);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? 1 : 0;
}
