/*
 * fuzz.h -- shared helpers for the fuzz targets in tests/fuzz/ (STYLE.md rule 18).
 *
 * Every tests/fuzz/fuzz_<name>.c defines LLVMFuzzerTestOneInput() and nothing else that is
 * exported. It is built two ways (see the "fuzz" block of the Makefile):
 *   - with gcc + driver.c (a main() that replays tests/fuzz/corpus/<name>/ under
 *     ASan+UBSan; `make fuzz-replay`, part of `make test`);
 *   - with clang -fsanitize=fuzzer,address,undefined (libFuzzer supplies main; `make fuzz`).
 * A target must be deterministic, must not leak (LSan runs at exit), must bound its own work
 * (inputs may be large), and must free everything it allocates before returning.
 * Fault injection (the first input byte choosing a malloc-failure schedule) is not wired in
 * yet: the build has no OBS_FAULT_INJECT hooks.
 */
#ifndef OBS_FUZZ_H
#define OBS_FUZZ_H

#include <dirent.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/obs_log.h"
#include "core/obs_mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Silence the logger once: parsers may log warnings for every bad input. */
static inline void fuzz_quiet(void)
{
    static int done;
    if (!done) {
        obs_log_set_level_name("error");
        done = 1;
    }
}

/* FUZZ_SKIP_KNOWN=1 in the environment makes targets step around bugs already reported (each
 * has a crash-* reproducer in its corpus), so a libFuzzer run can look past them. Replay
 * (`make fuzz-replay`) never sets it. */
static inline int fuzz_skip_known(void)
{
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("FUZZ_SKIP_KNOWN");
        v = e != NULL && e[0] == '1';
    }
    return v;
}

/* NUL-terminated malloc'd copy of data (the parsers that take C strings need one). Returns
 * NULL on OOM; free with free(). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        return NULL;
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* Split the input at the first "\n--\n" (or not at all): lets one input carry two parts, e.g.
 * a query and its second argument. *b is NULL when there is no separator. */
static inline void fuzz_split(const uint8_t *data, size_t size, const uint8_t **a, size_t *na,
                              const uint8_t **b, size_t *nb)
{
    *a = data;
    *na = size;
    *b = NULL;
    *nb = 0;
    for (size_t i = 0; i + 4 <= size; i++) {
        if (memcmp(data + i, "\n--\n", 4) == 0) {
            *na = i;
            *b = data + i + 4;
            *nb = size - i - 4;
            return;
        }
    }
}

/* --- a private temp dir for targets that need files (one per process) --- */

static char fuzz_dir_path[64];

/* Remove every plain file in the temp dir (targets keep no subdirectories there). */
static inline void fuzz_dir_clean(void)
{
    DIR *d = opendir(fuzz_dir_path);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char p[512];
        if (e->d_name[0] == '.')
            continue;
        snprintf(p, sizeof p, "%s/%s", fuzz_dir_path, e->d_name);
        unlink(p);
    }
    closedir(d);
}

static inline void fuzz_dir_remove(void)
{
    fuzz_dir_clean();
    rmdir(fuzz_dir_path);
}

/* The temp dir (created on first use, emptied now, removed at exit). Aborts on failure. */
static inline const char *fuzz_dir(void)
{
    if (fuzz_dir_path[0] == '\0') {
        snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "/tmp/obs-fuzz-XXXXXX");
        if (mkdtemp(fuzz_dir_path) == NULL)
            abort();
        atexit(fuzz_dir_remove);
    }
    fuzz_dir_clean();
    return fuzz_dir_path;
}

/* Write len bytes to <fuzz dir>/name. Returns 0 or -1. */
static inline int fuzz_write_file(const char *name, const void *p, size_t len)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", fuzz_dir_path, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return -1;
    int rc = write(fd, p, len) == (ssize_t)len ? 0 : -1;
    close(fd);
    return rc;
}

#endif
