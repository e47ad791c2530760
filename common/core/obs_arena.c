/*
 * obs_arena.c -- region allocator for one request or batch (see obs_arena.h).
 *
 * Design: a singly linked list of chunks, newest first. Allocation bumps an offset inside the
 * newest chunk; when it does not fit, a new chunk is pushed (sized chunk_bytes, or larger for
 * a big request, so one oversized allocation never wastes a whole run of chunks). Nothing is
 * freed individually: obs_arena_free() runs the cleanup callbacks (newest first, the reverse
 * of registration, so later resources that depend on earlier ones go first) and then releases
 * every chunk. Cleanup records live in the arena's own memory.
 */
#include "core/obs_arena.h"
#include "core/obs_err.h"
#include "core/obs_mem.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define ARENA_ALIGN 16
#define ARENA_DEFAULT_CHUNK 8192

struct chunk {
    struct chunk *next;
    size_t cap;  /* usable bytes in data[] */
    size_t used; /* bytes handed out (rounded to alignment) */
    /* data follows, starting ARENA_ALIGN-aligned */
    _Alignas(ARENA_ALIGN) unsigned char data[];
};

struct cleanup {
    struct cleanup *next;
    void (*fn)(void *);
    void *arg;
};

struct obs_arena {
    struct chunk *head;       /* newest chunk first */
    struct cleanup *cleanups; /* newest first */
    size_t chunk_bytes;
};

static size_t align_up(size_t n) { return (n + (ARENA_ALIGN - 1)) & ~(size_t)(ARENA_ALIGN - 1); }

/*
 * Create an arena whose chunks hold chunk_bytes (0 = 8 KiB). Returns NULL on OOM.
 * The arena owns all memory it hands out; release with obs_arena_free().
 */
struct obs_arena *obs_arena_new(size_t chunk_bytes)
{
    struct obs_arena *a = obs_calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    a->chunk_bytes = chunk_bytes ? align_up(chunk_bytes) : ARENA_DEFAULT_CHUNK;
    return a;
}

/* Run cleanups (newest first), then free all chunks and the arena. NULL is a no-op. */
void obs_arena_free(struct obs_arena *a)
{
    if (a == NULL)
        return;
    /* Cleanup records live in the chunks, so run them all before releasing any chunk. */
    for (struct cleanup *c = a->cleanups; c != NULL; c = c->next)
        c->fn(c->arg);
    struct chunk *ch = a->head;
    while (ch != NULL) {
        struct chunk *next = ch->next;
        obs_free(ch);
        ch = next;
    }
    obs_free(a);
}

/*
 * Bump-allocate n bytes, 16-byte aligned. Returns NULL on OOM or size overflow. The memory
 * stays valid until obs_arena_free(). n == 0 returns a valid unique-ish pointer.
 */
void *obs_arena_alloc(struct obs_arena *a, size_t n)
{
    if (a == NULL || n > SIZE_MAX / 2)
        return NULL;
    size_t need = align_up(n ? n : 1);
    struct chunk *ch = a->head;
    if (ch == NULL || ch->cap - ch->used < need) {
        size_t cap = need > a->chunk_bytes ? need : a->chunk_bytes;
        struct chunk *nc = obs_malloc(sizeof(*nc) + cap);
        if (nc == NULL)
            return NULL;
        nc->cap = cap;
        nc->used = 0;
        if (ch != NULL && need > a->chunk_bytes) {
            /* Oversized block: keep it behind the current chunk so the current chunk's
             * free space stays usable for later small allocations. */
            nc->next = ch->next;
            ch->next = nc;
            nc->used = need;
            return nc->data;
        }
        nc->next = ch;
        a->head = nc;
        ch = nc;
    }
    void *p = ch->data + ch->used;
    ch->used += need;
    return p;
}

/* Zeroed allocation; see obs_arena_alloc. */
void *obs_arena_calloc(struct obs_arena *a, size_t n)
{
    void *p = obs_arena_alloc(a, n);
    if (p != NULL)
        memset(p, 0, n);
    return p;
}

/* Copy of the first n bytes of s plus a NUL, in the arena. NULL on OOM. */
char *obs_arena_strndup(struct obs_arena *a, const char *s, size_t n)
{
    if (n == SIZE_MAX)
        return NULL;
    char *d = obs_arena_alloc(a, n + 1);
    if (d == NULL)
        return NULL;
    if (n)
        memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* NUL-terminated copy of s in the arena; NULL in -> NULL out. */
char *obs_arena_strdup(struct obs_arena *a, const char *s)
{
    if (s == NULL)
        return NULL;
    return obs_arena_strndup(a, s, strlen(s));
}

/* printf into arena memory. NULL on OOM or format error. */
char *obs_arena_printf(struct obs_arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *d = obs_arena_alloc(a, (size_t)n + 1);
    if (d == NULL)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(d, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return d;
}

/*
 * Register fn(arg) to run when the arena is freed (before its memory is released).
 * Callbacks run newest first. Returns 0 or OBS_ENOMEM (fn is then NOT registered; the caller
 * still owns the resource).
 */
int obs_arena_on_free(struct obs_arena *a, void (*fn)(void *), void *arg)
{
    struct cleanup *c = obs_arena_alloc(a, sizeof(*c));
    if (c == NULL)
        return OBS_ENOMEM;
    c->fn = fn;
    c->arg = arg;
    c->next = a->cleanups;
    a->cleanups = c;
    return OBS_OK;
}
