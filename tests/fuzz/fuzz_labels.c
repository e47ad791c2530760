/*
 * fuzz_labels.c -- fuzz target for label matcher parsing (common/labels/obs_labels.h):
 * obs_matchers_parse, obs_selector_parse and obs_go_unquote.
 *
 * Input: selector text, optionally "\n--\n" and a label value. The text is given with its
 * exact length and no terminating NUL, so any read past len is caught by ASan. Every parsed
 * matcher is evaluated against the value (or the empty string). Invariants: *consumed never
 * exceeds len; unquoting returns a string and consumes at least the two quotes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/obs_err.h"
#include "core/obs_mem.h"
#include "labels/obs_labels.h"
#include "fuzz.h"

static void eval(struct obs_matcher *v, size_t n, const char *value)
{
    for (size_t i = 0; i < n; i++) {
        obs_matcher_matches(&v[i], value);
        obs_matcher_matches(&v[i], NULL);
        obs_matcher_matches_empty(&v[i]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    const uint8_t *sel, *val;
    size_t nsel, nval;
    fuzz_split(data, size, &sel, &nsel, &val, &nval);
    char *value = val ? fuzz_cstr(val, nval) : NULL;
    /* An exact-size copy: the parsers must not read sel[nsel]. */
    char *s = malloc(nsel ? nsel : 1);
    if (s == NULL) {
        free(value);
        return 0;
    }
    if (nsel)
        memcpy(s, sel, nsel);

    struct obs_err err = {0};
    struct obs_matcher *v = NULL;
    size_t n = 0, used = 0;
    if (nsel && s[0] == '{' && obs_matchers_parse(s, nsel, &v, &n, &used, &err) == 0) {
        if (used > nsel)
            abort();
        eval(v, n, value ? value : "");
        obs_matchers_free(v, n);
    }
    v = NULL;
    n = 0;
    if (obs_selector_parse(s, nsel, &v, &n, &err) == 0) {
        eval(v, n, value ? value : "");
        obs_matchers_free(v, n);
    }

    char *out = NULL;
    if (nsel && obs_go_unquote(s, nsel, &out, &used) == 0) {
        if (out == NULL || used < 2 || used > nsel)
            abort();
        obs_free(out);
    }
    /* The value part is also a candidate literal. */
    if (value && nval && obs_go_unquote(value, nval, &out, &used) == 0)
        obs_free(out);
    free(s);
    free(value);
    return 0;
}
