/*
 * driver.c -- corpus replayer for the fuzz targets when they are not built with libFuzzer.
 *
 * Usage: fuzz_<name> PATH...   where each PATH is a corpus directory (every regular file in
 * it, in name order, not recursive, dot files skipped) or a single input file.
 * Each input is read whole and passed to LLVMFuzzerTestOneInput() once. On success the
 * driver prints "fuzz_<name>: N inputs replayed" and exits 0. A crash is reported by the
 * sanitizer runtime (ASan/UBSan abort the process); a death callback first prints which input
 * was running, so the failing file is named in the log. Exit 2 on a usage or I/O error.
 * The -runs=/-max_total_time= style libFuzzer flags are ignored, so the same command line
 * works for both builds. Single-threaded.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUZZ_HAVE_SAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define FUZZ_HAVE_SAN 1
#endif

#ifdef FUZZ_HAVE_SAN
#include <sanitizer/common_interface_defs.h>
#endif

/* The input being replayed, for the death callback. */
static const char *current_input;

#ifdef FUZZ_HAVE_SAN
static void on_death(void)
{
    if (current_input)
        fprintf(stderr, "fuzz: crashed on input %s\n", current_input);
}
#endif

/* Read path whole into a malloc'd buffer. Returns 0 or -1 (errno set). */
static int read_file(const char *path, uint8_t **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap)
            break;
        uint8_t *nb = realloc(buf, cap * 2);
        if (nb == NULL) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    int bad = ferror(f) || buf == NULL;
    fclose(f);
    if (bad) {
        free(buf);
        errno = EIO;
        return -1;
    }
    *out = buf;
    *len = n;
    return 0;
}

static int run_one(const char *path, size_t *count)
{
    uint8_t *buf;
    size_t len;
    if (read_file(path, &buf, &len) != 0) {
        fprintf(stderr, "fuzz: %s: %s\n", path, strerror(errno));
        return -1;
    }
    current_input = path;
    if (getenv("FUZZ_VERBOSE"))
        fprintf(stderr, "fuzz: %s (%zu bytes)\n", path, len); /* the Makefile greps this */
    /* Copy into an exact-size buffer so ASan catches reads past the end of the input. */
    uint8_t *exact = malloc(len ? len : 1);
    if (exact == NULL) {
        free(buf);
        return -1;
    }
    memcpy(exact, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    current_input = NULL;
    (*count)++;
    return 0;
}

static int name_cmp(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int run_dir(const char *dir, size_t *count)
{
    struct dirent **ents;
    int n = scandir(dir, &ents, NULL, name_cmp);
    if (n < 0) {
        fprintf(stderr, "fuzz: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        if (rc == 0 && ents[i]->d_name[0] != '.' &&
            (size_t)snprintf(path, sizeof path, "%s/%s", dir, ents[i]->d_name) < sizeof path &&
            stat(path, &st) == 0 && S_ISREG(st.st_mode))
            rc = run_one(path, count);
        free(ents[i]);
    }
    free(ents);
    return rc;
}

int main(int argc, char **argv)
{
    const char *name = strrchr(argv[0], '/');
    name = name ? name + 1 : argv[0];
#ifdef FUZZ_HAVE_SAN
    __sanitizer_set_death_callback(on_death);
#endif
    size_t count = 0;
    int paths = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (argv[i][0] == '-')
            continue; /* libFuzzer-style flag */
        paths++;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "%s: %s: %s\n", name, argv[i], strerror(errno));
            return 2;
        }
        int rc = S_ISDIR(st.st_mode) ? run_dir(argv[i], &count) : run_one(argv[i], &count);
        if (rc != 0)
            return 2;
    }
    if (paths == 0) {
        fprintf(stderr, "usage: %s CORPUS_DIR|FILE...\n", name);
        return 2;
    }
    printf("%s: %zu inputs replayed\n", name, count);
    return 0;
}
