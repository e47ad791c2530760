/*
 * obs_arena.h -- region allocator for one request or batch.
 *
 * Allocations are bump-pointer from chunks and freed all at once with obs_arena_free().
 * Cleanup callbacks registered with obs_arena_on_free run first (fds, external objects).
 * Not thread-safe: an arena belongs to one request on one thread.
 */
#ifndef OBS_ARENA_H
#define OBS_ARENA_H

#include <stddef.h>

struct obs_arena;

struct obs_arena *obs_arena_new(size_t chunk_bytes); /* 0 = 8 KiB chunks */
void obs_arena_free(struct obs_arena *a);            /* NULL is fine */
/* 16-byte aligned allocation, or NULL. */
void *obs_arena_alloc(struct obs_arena *a, size_t n);
void *obs_arena_calloc(struct obs_arena *a, size_t n);
char *obs_arena_strndup(struct obs_arena *a, const char *s, size_t n);
char *obs_arena_strdup(struct obs_arena *a, const char *s);
char *obs_arena_printf(struct obs_arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Run fn(arg) when the arena is freed. Returns 0 or OBS_ENOMEM. */
int obs_arena_on_free(struct obs_arena *a, void (*fn)(void *), void *arg);

#endif
