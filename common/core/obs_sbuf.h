/*
 * obs_sbuf.h -- growable byte/string buffer.
 *
 * An embedded object (obs_sbuf_init/obs_sbuf_deinit). The content is always NUL-terminated
 * after a successful append, so p can be used as a C string when only text was appended.
 * Appends return 0 or OBS_ENOMEM; after a failure the buffer keeps its previous content and
 * the `oom` flag stays set so a caller may check once at the end. Not thread-safe.
 */
#ifndef OBS_SBUF_H
#define OBS_SBUF_H

#include <stddef.h>
#include <stdint.h>

struct obs_sbuf {
    char *p;
    size_t len;
    size_t cap;
    int oom;
};

void obs_sbuf_init(struct obs_sbuf *b);
void obs_sbuf_deinit(struct obs_sbuf *b);
void obs_sbuf_reset(struct obs_sbuf *b); /* len = 0, keeps memory */
int obs_sbuf_reserve(struct obs_sbuf *b, size_t extra);
int obs_sbuf_append(struct obs_sbuf *b, const void *data, size_t n);
int obs_sbuf_puts(struct obs_sbuf *b, const char *s);
int obs_sbuf_putc(struct obs_sbuf *b, char c);
int obs_sbuf_printf(struct obs_sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append s (n bytes) as a JSON string literal with quotes and escapes; bytes that are not
 * well-formed UTF-8 become \ufffd (as Go's encoding/json does). */
int obs_sbuf_json_str(struct obs_sbuf *b, const char *s, size_t n);
/* Append a double the way Prometheus formats sample values ("NaN", "+Inf", "-Inf", shortest
 * round-trip decimal otherwise). */
int obs_sbuf_prom_float(struct obs_sbuf *b, double v);
/* Append an unsigned LEB128 varint / zigzag varint. */
int obs_sbuf_uvarint(struct obs_sbuf *b, uint64_t v);
int obs_sbuf_varint(struct obs_sbuf *b, int64_t v);
/* Take the buffer's memory; the sbuf is reset to empty. Caller frees with obs_free. */
char *obs_sbuf_take(struct obs_sbuf *b, size_t *len);

/* Decode a uvarint from p..end; returns bytes used or 0 on truncation/overflow. */
size_t obs_uvarint_decode(const uint8_t *p, const uint8_t *end, uint64_t *out);
size_t obs_varint_decode(const uint8_t *p, const uint8_t *end, int64_t *out);

/* Format a double like Prometheus/Go strconv.FormatFloat(v, 'f', -1, 64) -- shortest
 * representation that round-trips; NaN/+Inf/-Inf as Prometheus prints them. Returns length. */
int obs_fmt_float(char *out, size_t cap, double v);

#endif
