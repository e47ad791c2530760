/*
 * obs_time.h -- clocks and the time/duration formats the anchors use.
 */
#ifndef OBS_TIME_H
#define OBS_TIME_H

#include <stdint.h>

/* Wall clock in milliseconds / nanoseconds since the Unix epoch. Thread-safe. */
int64_t obs_now_ms(void);
int64_t obs_now_ns(void);
/* Monotonic clock in nanoseconds (for measuring elapsed time). */
int64_t obs_mono_ns(void);

/* Parse a Prometheus duration ("1h30m", "5m", "90s", "250ms", "2d", "1w", "1y") or a plain
 * number of seconds ("30", "1.5") into milliseconds. Returns 0 or OBS_EINVAL. */
int obs_duration_parse_ms(const char *s, int64_t *out_ms);
/* Format milliseconds as a Prometheus duration ("1m30s", "2h", "0s"). Returns length. */
int obs_duration_format(char *out, unsigned cap, int64_t ms);

/* Parse an API timestamp: RFC3339 ("2026-11-22T10:00:00Z", with fraction/offset) or float
 * Unix seconds ("1700000000.123"). Output in milliseconds. Returns 0 or OBS_EINVAL. */
int obs_time_parse_ms(const char *s, int64_t *out_ms);
/* Same but for Loki/Tempo: RFC3339, or Unix nanoseconds when the integer is large
 * (> 1e14 treated as ns, else seconds, floats as seconds). Output in nanoseconds. */
int obs_time_parse_ns(const char *s, int64_t *out_ns);
/* RFC3339 with milliseconds, UTC ("2026-11-22T10:00:00.123Z"). Returns length. */
int obs_time_format_rfc3339(char *out, unsigned cap, int64_t ms);

#endif
