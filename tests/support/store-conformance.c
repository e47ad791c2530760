/*
 * store-conformance.c -- run the shared object-store conformance cases
 * (tests/support/store_cases.h) against one backend, as a Check suite.
 *
 *   store-conformance [--cases a,b] fs DIR
 *   store-conformance [--cases a,b] s3 ENDPOINT BUCKET [--lookup path|virtual-hosted]
 *       [--region R] [--part-size BYTES] [--list-max-keys N] [--max-retries N]
 *       [--upload-concurrency N] [--faults]
 *
 * The s3 store is opened through obs_store_open() from a generated YAML config (backend: s3),
 * with the credentials taken from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
 * AWS_SESSION_TOKEN. Each case runs in a fresh key prefix ("conf-<pid>-<n>/") of the bucket;
 * for fs, in a fresh directory under DIR. --faults adds the s3-only cases that need the
 * fault-injecting mode of tests/support/sigv4-proxy.js (retries on 503 SlowDown and dropped
 * connections, bounded attempts on a persistent 500, multipart abort). --cases limits the
 * run to the named cases. Exit status 0 when every case passed.
 *
 * Run by tests/integration/test_store_s3.py against s3rver behind the strict SigV4 proxy.
 */
#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/obs_cf.h"
#include "store/obs_store.h"
#include "tests/support/store_cases.h"

static const char *mode;       /* "fs" or "s3" */
static const char *fs_dir;     /* fs: parent directory */
static const char *s3_ep, *s3_bucket, *s3_lookup = "path", *s3_region, *s3_part = "5MiB";
static int s3_max_keys = 1000, s3_max_retries = 3, s3_conc = 4, faults;
static const char *only_cases; /* comma-separated, or NULL for all */
static char case_dir[512];
static int case_seq;

static struct obs_store *open_yaml(const char *yaml)
{
    struct obs_err err = {0};
    struct obs_cf_node *cf = obs_cf_load_string(yaml, strlen(yaml), "conformance.yaml", 0, &err);
    ck_assert_msg(cf != NULL, "yaml: %s", err.msg);
    struct obs_store *s = obs_store_open(cf, "unused", &err);
    ck_assert_msg(s != NULL, "open: %s", err.msg);
    obs_cf_free(cf);
    return s;
}

static void setup(void)
{
    char yaml[2048];
    case_seq++;
    if (strcmp(mode, "fs") == 0) {
        snprintf(case_dir, sizeof(case_dir), "%s/case-%ld-%d", fs_dir, (long)getpid(), case_seq);
        snprintf(yaml, sizeof(yaml), "backend: filesystem\nfilesystem:\n  dir: \"%s\"\n",
                 case_dir);
    } else {
        int n = snprintf(yaml, sizeof(yaml),
                         "backend: s3\ns3:\n  endpoint: \"%s\"\n  bucket_name: \"%s\"\n"
                         "  insecure: true\n  bucket_lookup_type: %s\n"
                         "  prefix: \"conf-%ld-%d\"\n  part_size: %s\n  list_max_keys: %d\n"
                         "  max_retries: %d\n  request_timeout: 60s\n"
                         "  upload_concurrency: %d\n",
                         s3_ep, s3_bucket, s3_lookup, (long)getpid(), case_seq, s3_part,
                         s3_max_keys, s3_max_retries, s3_conc);
        if (s3_region != NULL)
            snprintf(yaml + n, sizeof(yaml) - (size_t)n, "  region: \"%s\"\n", s3_region);
    }
    sc_st = open_yaml(yaml);
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb, (void)flag, (void)f;
    return remove(p);
}

static void teardown(void)
{
    obs_store_close(sc_st);
    sc_st = NULL;
    if (strcmp(mode, "fs") == 0)
        nftw(case_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    /* s3: the test script throws the whole bucket directory away */
}

/* --- s3-only cases: they need the proxy's --faults mode ---------------------------------- */

START_TEST(retry_slowdown)
{
    /* The proxy answers 503 SlowDown twice for each distinct request on such keys. */
    sc_put("fault-503-a", "survived");
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    struct obs_err err = {0};
    ck_assert_int_eq(obs_store_get(sc_st, "fault-503-a", 0, 0, &b, &err), 0);
    ck_assert_str_eq(b.p, "survived");
    obs_sbuf_deinit(&b);
}
END_TEST

START_TEST(retry_dropped_connection)
{
    /* The proxy closes the connection without an answer on the first attempt. */
    sc_put("fault-drop-b", "survived");
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    ck_assert_int_eq(obs_store_get(sc_st, "fault-drop-b", 0, 0, &b, NULL), 0);
    ck_assert_str_eq(b.p, "survived");
    uint64_t sz = 0;
    ck_assert_int_eq(obs_store_head(sc_st, "fault-drop-b", &sz, NULL), 0);
    ck_assert_uint_eq(sz, 8);
    obs_sbuf_deinit(&b);
}
END_TEST

START_TEST(retry_bounded)
{
    /* A persistent 500: max_retries + 1 attempts, then the S3 error is reported. */
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    struct obs_err err = {0};
    ck_assert_int_eq(obs_store_get(sc_st, "fault-always500-c", 0, 0, &b, &err), OBS_EIO);
    char want[64];
    snprintf(want, sizeof(want), "500 InternalError: injected failure #%d", s3_max_retries + 1);
    ck_assert_msg(strstr(err.msg, want) != NULL, "'%s' lacks '%s'", err.msg, want);
    ck_assert_uint_eq(b.len, 0);
    obs_sbuf_deinit(&b);
}
END_TEST

START_TEST(multipart_slowdown)
{
    /* Every multipart step (create, parts, complete) meets two 503s first. */
    size_t n = 6u * 1024 * 1024 + 123;
    char *data = malloc(n);
    ck_assert_ptr_nonnull(data);
    for (size_t i = 0; i < n; i++)
        data[i] = (char)(i * 31 + (i >> 12));
    struct obs_err err = {0};
    int rc = obs_store_put(sc_st, "fault-503-mp", data, n, &err);
    ck_assert_msg(rc == 0, "put: %s", err.msg);
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    ck_assert_int_eq(obs_store_get(sc_st, "fault-503-mp", 0, 0, &b, &err), 0);
    ck_assert_uint_eq(b.len, n);
    ck_assert_int_eq(memcmp(b.p, data, n), 0);
    obs_sbuf_deinit(&b);
    free(data);
}
END_TEST

START_TEST(multipart_abort)
{
    /* Part 2 always fails: the upload is aborted and no object appears. */
    size_t n = 6u * 1024 * 1024;
    char *data = calloc(1, n);
    ck_assert_ptr_nonnull(data);
    struct obs_err err = {0};
    int rc = obs_store_put(sc_st, "fault-partfail-x", data, n, &err);
    ck_assert_int_eq(rc, OBS_EIO);
    ck_assert_msg(strstr(err.msg, "UPLOAD-PART") != NULL, "%s", err.msg);
    uint64_t sz;
    ck_assert_int_eq(obs_store_head(sc_st, "fault-partfail-x", &sz, NULL), OBS_ENOENT);
    struct sc_keys ks;
    ck_assert_str_eq(sc_list("", NULL, &ks), "");
    free(data);
}
END_TEST

static int wanted(const char *name)
{
    if (only_cases == NULL)
        return 1;
    size_t l = strlen(name);
    for (const char *p = only_cases; *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == l && memcmp(p, name, l) == 0)
            return 1;
        p += n + (e != NULL);
    }
    return 0;
}

static int usage(void)
{
    fprintf(stderr,
            "usage: store-conformance [--cases a,b] fs DIR\n"
            "       store-conformance [--cases a,b] s3 ENDPOINT BUCKET [--lookup path|"
            "virtual-hosted]\n"
            "           [--region R] [--part-size 5MiB] [--list-max-keys N] [--max-retries N]\n"
            "           [--upload-concurrency N] [--faults]\n"
            "credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY [, AWS_SESSION_TOKEN]\n");
    return 2;
}

int main(int argc, char **argv)
{
    int i = 1;
    if (i + 1 < argc && strcmp(argv[i], "--cases") == 0) {
        only_cases = argv[i + 1];
        i += 2;
    }
    if (i >= argc)
        return usage();
    mode = argv[i++];
    if (strcmp(mode, "fs") == 0) {
        if (i + 1 != argc)
            return usage();
        fs_dir = argv[i];
    } else if (strcmp(mode, "s3") == 0) {
        if (i + 2 > argc)
            return usage();
        s3_ep = argv[i++];
        s3_bucket = argv[i++];
        for (; i < argc; i++) {
            const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
            if (strcmp(a, "--faults") == 0) {
                faults = 1;
                continue;
            }
            if (v == NULL)
                return usage();
            i++;
            if (strcmp(a, "--lookup") == 0)
                s3_lookup = v;
            else if (strcmp(a, "--region") == 0)
                s3_region = v;
            else if (strcmp(a, "--part-size") == 0)
                s3_part = v;
            else if (strcmp(a, "--list-max-keys") == 0)
                s3_max_keys = atoi(v);
            else if (strcmp(a, "--upload-concurrency") == 0)
                s3_conc = atoi(v);
            else if (strcmp(a, "--max-retries") == 0)
                s3_max_retries = atoi(v);
            else
                return usage();
        }
    } else {
        return usage();
    }

    Suite *s = suite_create(strcmp(mode, "fs") == 0 ? "store-conformance-fs"
                                                    : "store-conformance-s3");
    int added = sc_add_cases(s, setup, teardown, 300, wanted);
    const struct {
        const char *name;
        const TTest *t;
    } s3cases[] = {
        {"retry_slowdown", retry_slowdown},
        {"retry_dropped_connection", retry_dropped_connection},
        {"retry_bounded", retry_bounded},
        {"multipart_slowdown", multipart_slowdown},
        {"multipart_abort", multipart_abort},
    };
    for (size_t k = 0; k < sizeof(s3cases) / sizeof(s3cases[0]); k++) {
        if (!faults || strcmp(mode, "s3") != 0 || !wanted(s3cases[k].name))
            continue;
        TCase *tc = tcase_create(s3cases[k].name);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 300);
        tcase_add_test(tc, s3cases[k].t);
        suite_add_tcase(s, tc);
        added++;
    }
    if (added == 0) {
        fprintf(stderr, "store-conformance: no case matches --cases %s\n",
                only_cases ? only_cases : "(all)");
        return 2;
    }
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_VERBOSE);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
