/*
 * obs_mem.c -- allocation wrappers (see obs_mem.h).
 */
#include "core/obs_mem.h"

#include <stdlib.h>
#include <string.h>

#ifdef OBS_FAULT_INJECT
static _Atomic long fail_countdown = -1;
static int should_fail(void)
{
    long v = fail_countdown;
    if (v < 0)
        return 0;
    fail_countdown = v - 1;
    return v == 0;
}
void obs_mem_fail_after(long n) { fail_countdown = n; }
#else
static inline int should_fail(void) { return 0; }
void obs_mem_fail_after(long n) { (void)n; }
#endif

void *obs_malloc(size_t n)
{
    if (should_fail())
        return NULL;
    return malloc(n ? n : 1);
}

void *obs_calloc(size_t nmemb, size_t size)
{
    if (should_fail())
        return NULL;
    return calloc(nmemb ? nmemb : 1, size ? size : 1);
}

void *obs_realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    return realloc(p, n ? n : 1);
}

void obs_free(void *p) { free(p); }

char *obs_strdup(const char *s)
{
    if (s == NULL)
        return NULL;
    return obs_strndup(s, strlen(s));
}

char *obs_strndup(const char *s, size_t n)
{
    char *d = obs_malloc(n + 1);
    if (d == NULL)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}
