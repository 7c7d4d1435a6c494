/* loop.c - epoll + timer list. Few timers live at once (heartbeat, checkpoint,
 * comparator, qmp timeouts), so a linear scan beats a heap in code size. */
#include "loop.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define LOOP_MAX_EVENTS 64

struct fd_slot {
	loop_fd_cb cb;
	void *arg;
	uint32_t gen; /* bumped on every add/del so stale epoll events are dropped */
	bool used;
};

struct timer {
	uint64_t id;
	uint64_t due_ms;
	loop_timer_cb cb;
	void *arg;
};

struct loop {
	int epfd;
	struct fd_slot *fds;
	size_t nfds;
	struct timer *timers;
	size_t ntimers, cap_timers;
	uint64_t next_timer_id;
	bool stop;
};

uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t mono_ms(void)
{
	return mono_ns() / 1000000ull;
}

int loop_new(struct loop **out)
{
	struct loop *loop = calloc(1, sizeof(*loop));
	if (!loop)
		return -ENOMEM;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		int r = -errno;
		free(loop);
		return r;
	}
	*out = loop;
	return 0;
}

void loop_free(struct loop *loop)
{
	if (!loop)
		return;
	close(loop->epfd);
	free(loop->fds);
	free(loop->timers);
	free(loop);
}

static int grow_fds(struct loop *loop, int fd)
{
	size_t n = loop->nfds ? loop->nfds : 64;
	while (n <= (size_t)fd)
		n *= 2;
	if (n == loop->nfds)
		return 0;
	struct fd_slot *p = realloc(loop->fds, n * sizeof(*p));
	if (!p)
		return -ENOMEM;
	memset(p + loop->nfds, 0, (n - loop->nfds) * sizeof(*p));
	loop->fds = p;
	loop->nfds = n;
	return 0;
}

static uint64_t slot_key(int fd, uint32_t gen)
{
	return ((uint64_t)gen << 32) | (uint32_t)fd;
}

int loop_add_fd(struct loop *loop, int fd, uint32_t events, loop_fd_cb cb, void *arg)
{
	if (fd < 0 || !cb)
		return -EINVAL;
	int r = grow_fds(loop, fd);
	if (r < 0)
		return r;
	struct fd_slot *s = &loop->fds[fd];
	if (s->used)
		return -EEXIST;
	s->gen++;
	struct epoll_event ev = { .events = events, .data.u64 = slot_key(fd, s->gen) };
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	s->cb = cb;
	s->arg = arg;
	s->used = true;
	return 0;
}

int loop_mod_fd(struct loop *loop, int fd, uint32_t events)
{
	if (fd < 0 || (size_t)fd >= loop->nfds || !loop->fds[fd].used)
		return -ENOENT;
	struct epoll_event ev = { .events = events,
				  .data.u64 = slot_key(fd, loop->fds[fd].gen) };
	if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return -errno;
	return 0;
}

void loop_del_fd(struct loop *loop, int fd)
{
	if (fd < 0 || (size_t)fd >= loop->nfds || !loop->fds[fd].used)
		return;
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
	loop->fds[fd].used = false;
	loop->fds[fd].gen++;
}

static struct timer *timer_push(struct loop *loop)
{
	if (loop->ntimers == loop->cap_timers) {
		size_t n = loop->cap_timers ? loop->cap_timers * 2 : 16;
		struct timer *p = realloc(loop->timers, n * sizeof(*p));
		if (!p)
			return NULL;
		loop->timers = p;
		loop->cap_timers = n;
	}
	return &loop->timers[loop->ntimers++];
}

int loop_timer_add(struct loop *loop, int64_t delay_ms, loop_timer_cb cb, void *arg,
		   uint64_t *id)
{
	if (!cb || delay_ms < 0)
		return -EINVAL;
	struct timer *t = timer_push(loop);
	if (!t)
		return -ENOMEM;
	t->id = ++loop->next_timer_id;
	t->due_ms = mono_ms() + (uint64_t)delay_ms;
	t->cb = cb;
	t->arg = arg;
	if (id)
		*id = t->id;
	return 0;
}

static ssize_t timer_index(struct loop *loop, uint64_t id)
{
	for (size_t i = 0; i < loop->ntimers; i++)
		if (loop->timers[i].id == id)
			return (ssize_t)i;
	return -1;
}

void loop_timer_cancel(struct loop *loop, uint64_t id)
{
	ssize_t i = timer_index(loop, id);
	if (i < 0)
		return;
	loop->timers[i] = loop->timers[--loop->ntimers];
}

static int next_timeout(struct loop *loop, int timeout_ms)
{
	if (loop->ntimers == 0)
		return timeout_ms;
	uint64_t now = mono_ms(), first = UINT64_MAX;
	for (size_t i = 0; i < loop->ntimers; i++)
		if (loop->timers[i].due_ms < first)
			first = loop->timers[i].due_ms;
	int64_t wait = first > now ? (int64_t)(first - now) : 0;
	if (timeout_ms >= 0 && timeout_ms < wait)
		return timeout_ms;
	return wait > 1000000 ? 1000000 : (int)wait;
}

static void run_timers(struct loop *loop)
{
	uint64_t now = mono_ms();
	/* Only timers that existed and were due at the start of this pass fire, so a
	 * callback re-arming itself with delay 0 cannot spin the loop forever. */
	uint64_t last_id = loop->next_timer_id;
	for (;;) {
		ssize_t due = -1;
		for (size_t i = 0; i < loop->ntimers; i++) {
			struct timer *t = &loop->timers[i];
			if (t->id <= last_id && t->due_ms <= now &&
			    (due < 0 || t->due_ms < loop->timers[due].due_ms))
				due = (ssize_t)i;
		}
		if (due < 0)
			return;
		struct timer t = loop->timers[due];
		loop->timers[due] = loop->timers[--loop->ntimers];
		int64_t again = t.cb(loop, t.id, t.arg);
		if (again >= 0) {
			/* Re-arm under the same id, so the owner's handle stays valid. */
			struct timer *n = timer_push(loop);
			if (!n)
				abort(); /* out of memory: a silently lost timer would stop heartbeats */
			*n = t;
			n->due_ms = mono_ms() + (uint64_t)again;
		}
	}
}

int loop_run_once(struct loop *loop, int timeout_ms)
{
	struct epoll_event evs[LOOP_MAX_EVENTS];
	int n = epoll_wait(loop->epfd, evs, LOOP_MAX_EVENTS, next_timeout(loop, timeout_ms));
	if (n < 0) {
		if (errno == EINTR)
			return 0;
		return -errno;
	}
	for (int i = 0; i < n; i++) {
		int fd = (int)(uint32_t)evs[i].data.u64;
		uint32_t gen = (uint32_t)(evs[i].data.u64 >> 32);
		if ((size_t)fd >= loop->nfds)
			continue;
		struct fd_slot *s = &loop->fds[fd];
		if (!s->used || s->gen != gen)
			continue; /* deleted (or replaced) earlier in this round */
		s->cb(loop, fd, evs[i].events, s->arg);
	}
	run_timers(loop);
	return 0;
}

int loop_run(struct loop *loop)
{
	loop->stop = false;
	while (!loop->stop) {
		int r = loop_run_once(loop, -1);
		if (r < 0)
			return r;
	}
	return 0;
}

void loop_stop(struct loop *loop)
{
	loop->stop = true;
}
