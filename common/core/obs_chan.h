/*
 * obs_chan.h -- hand messages from any thread to a libevent loop.
 *
 * A channel is a locked queue plus an eventfd registered on the loop. obs_chan_send() may be
 * called from any thread; the callback runs on the loop thread, once per message, in order.
 * Used to pass finished gRPC calls from the completion-queue thread to the owning loop.
 */
#ifndef OBS_CHAN_H
#define OBS_CHAN_H

struct event_base;
struct obs_chan;

typedef void (*obs_chan_fn)(void *msg, void *arg);

/* Create a channel on base; fn(msg, arg) runs on the loop thread. NULL on failure. */
struct obs_chan *obs_chan_new(struct event_base *base, obs_chan_fn fn, void *arg);
/* Queue msg (ownership passes to the callback). Thread-safe. Returns 0 or OBS_ENOMEM. */
int obs_chan_send(struct obs_chan *ch, void *msg);
/* Free the channel; messages still queued are passed to fn first. Loop thread only. */
void obs_chan_free(struct obs_chan *ch);

#endif
