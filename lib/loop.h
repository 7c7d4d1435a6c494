/* loop.h - the one event loop of a colo process: epoll fds + millisecond timers.
 *
 * Lifecycle: loop_new() -> add fds/timers -> loop_run() (until loop_stop()) -> loop_free().
 * Callbacks run on the loop's thread only; there are no hidden threads.
 * A callback may add or delete any fd or timer, including its own: an fd deleted
 * during a dispatch round receives no further events from that round.
 */
#ifndef COLO_LIB_LOOP_H
#define COLO_LIB_LOOP_H

#include <stdint.h>

struct loop;

/* events: EPOLLIN/EPOLLOUT/EPOLLERR/EPOLLHUP bits as returned by epoll. */
typedef void (*loop_fd_cb)(struct loop *loop, int fd, uint32_t events, void *arg);

/* Return the delay in ms until the timer should fire again, or LOOP_TIMER_DONE. */
#define LOOP_TIMER_DONE (-1)
typedef int64_t (*loop_timer_cb)(struct loop *loop, uint64_t timer_id, void *arg);

int loop_new(struct loop **out);
void loop_free(struct loop *loop);

/* Register fd for events (EPOLLIN and/or EPOLLOUT). The loop does not own fd. */
int loop_add_fd(struct loop *loop, int fd, uint32_t events, loop_fd_cb cb, void *arg);
int loop_mod_fd(struct loop *loop, int fd, uint32_t events);
/* Safe to call on an fd that is not registered. Call before close(fd). */
void loop_del_fd(struct loop *loop, int fd);

/* Arm a timer firing after delay_ms; returns its id (> 0) in *id. */
int loop_timer_add(struct loop *loop, int64_t delay_ms, loop_timer_cb cb, void *arg,
                   uint64_t *id);
/* Cancelling an id that already fired or was cancelled is a no-op. */
void loop_timer_cancel(struct loop *loop, uint64_t id);

/* Run one round: wait up to timeout_ms (-1: until the next timer), dispatch. */
int loop_run_once(struct loop *loop, int timeout_ms);
/* Run rounds until loop_stop(); returns 0, or a negative errno from epoll. */
int loop_run(struct loop *loop);
void loop_stop(struct loop *loop);

/* CLOCK_MONOTONIC in nanoseconds and milliseconds. */
uint64_t mono_ns(void);
uint64_t mono_ms(void);

#endif
