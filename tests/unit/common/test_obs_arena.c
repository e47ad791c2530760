/*
 * test_obs_arena.c -- obs_arena: alignment, chunk growth, oversized allocations, string
 * helpers, cleanup callbacks (order, and that they run before memory is released), and
 * allocation failure when built with OBS_FAULT_INJECT. Run under ASan to catch overruns
 * between bump allocations.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/obs_arena.h"
#include "core/obs_err.h"
#include "core/obs_mem.h"

START_TEST(alloc_aligned)
{
    struct obs_arena *a = obs_arena_new(0);
    ck_assert_ptr_nonnull(a);
    for (size_t n = 0; n < 200; n++) {
        unsigned char *p = obs_arena_alloc(a, n);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq((uintptr_t)p % 16, 0);
        memset(p, 0xab, n); /* ASan: must be writable in full */
    }
    obs_arena_free(a);
}
END_TEST

START_TEST(distinct_and_stable)
{
    /* Many allocations across many small chunks keep their contents. */
    struct obs_arena *a = obs_arena_new(256);
    uint32_t *ptrs[2000];
    for (uint32_t i = 0; i < 2000; i++) {
        ptrs[i] = obs_arena_alloc(a, 4 + (i % 50));
        ck_assert_ptr_nonnull(ptrs[i]);
        *ptrs[i] = i;
    }
    for (uint32_t i = 0; i < 2000; i++)
        ck_assert_uint_eq(*ptrs[i], i);
    for (uint32_t i = 1; i < 2000; i++)
        ck_assert_ptr_ne(ptrs[i], ptrs[i - 1]);
    obs_arena_free(a);
}
END_TEST

START_TEST(oversized)
{
    struct obs_arena *a = obs_arena_new(1024);
    char *small1 = obs_arena_alloc(a, 16);
    char *big = obs_arena_alloc(a, 1 << 20);
    ck_assert_ptr_nonnull(big);
    memset(big, 1, 1 << 20);
    char *small2 = obs_arena_alloc(a, 16);
    /* The big block did not displace the current chunk: small2 follows small1. */
    ck_assert_ptr_eq(small2, small1 + 16);
    ck_assert_ptr_null(obs_arena_alloc(a, SIZE_MAX));
    obs_arena_free(a);
}
END_TEST

START_TEST(calloc_zeroed)
{
    struct obs_arena *a = obs_arena_new(64);
    for (int i = 0; i < 100; i++) {
        unsigned char *p = obs_arena_alloc(a, 48);
        memset(p, 0xff, 48);
    }
    unsigned char *z = obs_arena_calloc(a, 1000);
    ck_assert_ptr_nonnull(z);
    for (int i = 0; i < 1000; i++)
        ck_assert_uint_eq(z[i], 0);
    obs_arena_free(a);
}
END_TEST

START_TEST(strings)
{
    struct obs_arena *a = obs_arena_new(0);
    ck_assert_str_eq(obs_arena_strdup(a, "hello"), "hello");
    ck_assert_ptr_null(obs_arena_strdup(a, NULL));
    ck_assert_str_eq(obs_arena_strndup(a, "hello world", 5), "hello");
    ck_assert_str_eq(obs_arena_strndup(a, "", 0), "");
    ck_assert_str_eq(obs_arena_printf(a, "%s=%d", "x", 42), "x=42");
    /* A printf result longer than a chunk. */
    char *long_s = obs_arena_printf(a, "%09000d", 7);
    ck_assert_uint_eq(strlen(long_s), 9000);
    ck_assert_int_eq(long_s[8999], '7');
    obs_arena_free(a);
}
END_TEST

static char order[16];
static int order_n;
static void mark(void *arg)
{
    order[order_n++] = *(char *)arg;
}

/* The cleanup reads arena memory: it must run before the chunks are freed (ASan checks). */
static void read_arena(void *arg)
{
    ck_assert_str_eq((char *)arg, "still here");
    order[order_n++] = 'R';
}

START_TEST(cleanup)
{
    order_n = 0;
    memset(order, 0, sizeof(order));
    struct obs_arena *a = obs_arena_new(64);
    static char x = 'x', y = 'y', z = 'z';
    ck_assert_int_eq(obs_arena_on_free(a, mark, &x), 0);
    char *s = obs_arena_strdup(a, "still here");
    ck_assert_int_eq(obs_arena_on_free(a, read_arena, s), 0);
    ck_assert_int_eq(obs_arena_on_free(a, mark, &y), 0);
    for (int i = 0; i < 50; i++)
        obs_arena_alloc(a, 40); /* push more chunks in between */
    ck_assert_int_eq(obs_arena_on_free(a, mark, &z), 0);
    ck_assert_int_eq(order_n, 0);
    obs_arena_free(a);
    ck_assert_str_eq(order, "zyRx"); /* newest first */
    obs_arena_free(NULL);
}
END_TEST

START_TEST(oom)
{
#ifdef OBS_FAULT_INJECT
    struct obs_arena *a = obs_arena_new(64);
    ck_assert_ptr_nonnull(a);
    obs_mem_fail_after(0);
    ck_assert_ptr_null(obs_arena_alloc(a, 32));
    ck_assert_ptr_nonnull(obs_arena_alloc(a, 32)); /* next one works */
    obs_mem_fail_after(0);
    ck_assert_ptr_null(obs_arena_alloc(a, 1000));
    obs_mem_fail_after(-1);
    obs_arena_free(a);
    obs_mem_fail_after(0);
    ck_assert_ptr_null(obs_arena_new(0));
    obs_mem_fail_after(-1);
#else
    /* Without fault injection, the only failure we can force is a size overflow. */
    struct obs_arena *a = obs_arena_new(64);
    ck_assert_ptr_null(obs_arena_alloc(a, SIZE_MAX - 8));
    ck_assert_ptr_null(obs_arena_strndup(a, "x", SIZE_MAX));
    ck_assert_ptr_nonnull(obs_arena_alloc(a, 8)); /* still usable */
    obs_arena_free(a);
#endif
}
END_TEST

static Suite *arena_suite(void)
{
    Suite *s = suite_create("obs_arena");
    struct {
        const char *name;
        const TTest *t;
    } cases[] = {
        {"alloc_aligned", alloc_aligned}, {"distinct_and_stable", distinct_and_stable},
        {"oversized", oversized},         {"calloc_zeroed", calloc_zeroed},
        {"strings", strings},             {"cleanup", cleanup},
        {"oom", oom},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_add_test(tc, cases[i].t);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(arena_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
