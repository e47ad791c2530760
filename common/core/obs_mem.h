/*
 * obs_mem.h -- allocation wrappers.
 *
 * All allocation in the suite goes through these. They return NULL on failure and every
 * request-path caller handles it. Built with -DOBS_FAULT_INJECT, obs_mem_fail_after(n)
 * makes the n-th following allocation fail, so error paths can be tested.
 * Thread-safe (the fault counter is atomic).
 */
#ifndef OBS_MEM_H
#define OBS_MEM_H

#include <stddef.h>

void *obs_malloc(size_t n);
void *obs_calloc(size_t nmemb, size_t size);
void *obs_realloc(void *p, size_t n);
void obs_free(void *p);
/* NUL-terminated copy; NULL in -> NULL out. Caller frees with obs_free. */
char *obs_strdup(const char *s);
/* Copy of the first n bytes plus a NUL. */
char *obs_strndup(const char *s, size_t n);
/* Make the n-th next allocation fail (fault-injection builds only); -1 disables. */
void obs_mem_fail_after(long n);

#endif
