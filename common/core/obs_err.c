/*
 * obs_err.c -- error detail helpers (see obs_err.h).
 */
#include "core/obs_err.h"

#include <stdio.h>
#include <string.h>

int obs_err_set(struct obs_err *err, int code, const char *fmt, ...)
{
    if (err == NULL)
        return code;
    va_list ap;
    va_start(ap, fmt);
    err->code = code;
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

int obs_err_setpos(struct obs_err *err, int code, const char *file, int line, int col,
                   const char *fmt, ...)
{
    if (err == NULL)
        return code;
    va_list ap;
    va_start(ap, fmt);
    err->code = code;
    err->file = file;
    err->line = line;
    err->col = col;
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return code;
}

void obs_err_clear(struct obs_err *err)
{
    if (err == NULL)
        return;
    memset(err, 0, sizeof(*err));
}

const char *obs_rc_str(int code)
{
    switch (code) {
    case OBS_OK: return "OK";
    case OBS_ENOMEM: return "ENOMEM";
    case OBS_EINVAL: return "EINVAL";
    case OBS_EIO: return "EIO";
    case OBS_ENOENT: return "ENOENT";
    case OBS_EAGAIN: return "EAGAIN";
    case OBS_ERETRY: return "ERETRY";
    case OBS_EFATAL: return "EFATAL";
    case OBS_ELIMIT: return "ELIMIT";
    case OBS_ECORRUPT: return "ECORRUPT";
    case OBS_EEXIST: return "EEXIST";
    case OBS_ERANGE: return "ERANGE";
    }
    return "EUNKNOWN";
}
