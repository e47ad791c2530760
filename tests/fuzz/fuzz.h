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

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

#endif
