#include <errno.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "lib/loop.h"
#include "tests/harness/test.h"

struct order {
	int seen[8];
	int n;
};

static int64_t record(struct loop *loop, uint64_t id, void *arg)
{
	struct order *o = arg;
	o->seen[o->n++] = (int)id;
	if (o->n == 3)
		loop_stop(loop);
	return LOOP_TIMER_DONE;
}

static void test_timers_fire_in_due_order(void)
{
	struct loop *loop;
	REQUIRE(loop_new(&loop) == 0);
	struct order o = { 0 };
	uint64_t a, b, c;
	REQUIRE(loop_timer_add(loop, 30, record, &o, &a) == 0);
	REQUIRE(loop_timer_add(loop, 10, record, &o, &b) == 0);
	REQUIRE(loop_timer_add(loop, 20, record, &o, &c) == 0);
	uint64_t t0 = mono_ms();
	REQUIRE(loop_run(loop) == 0);
	CHECK(mono_ms() - t0 >= 30);
	CHECK_EQ(o.seen[0], b);
	CHECK_EQ(o.seen[1], c);
	CHECK_EQ(o.seen[2], a);
	loop_free(loop);
}

static int64_t periodic(struct loop *loop, uint64_t id, void *arg)
{
	int *count = arg;
	if (++*count == 5) {
		loop_stop(loop);
		return LOOP_TIMER_DONE;
	}
	return 1;
}

static int64_t never(struct loop *loop, uint64_t id, void *arg)
{
	*(int *)arg = 1;
	return LOOP_TIMER_DONE;
}

static void test_periodic_and_cancel(void)
{
	struct loop *loop;
	REQUIRE(loop_new(&loop) == 0);
	int count = 0, fired = 0;
	uint64_t id;
	REQUIRE(loop_timer_add(loop, 1, periodic, &count, NULL) == 0);
	REQUIRE(loop_timer_add(loop, 2, never, &fired, &id) == 0);
	loop_timer_cancel(loop, id);
	loop_timer_cancel(loop, id); /* second cancel is a no-op */
	REQUIRE(loop_run(loop) == 0);
	CHECK_EQ(count, 5);
	CHECK_EQ(fired, 0);
	loop_free(loop);
}

struct pipes {
	int a[2], b[2];
	int calls;
};

/* The first readable fd's callback deletes the other: it must not be called. */
static void on_readable(struct loop *loop, int fd, uint32_t ev, void *arg)
{
	struct pipes *p = arg;
	p->calls++;
	int other = fd == p->a[0] ? p->b[0] : p->a[0];
	loop_del_fd(loop, other);
	loop_del_fd(loop, fd);
	loop_stop(loop);
}

static void test_fd_deleted_mid_round_gets_no_event(void)
{
	struct loop *loop;
	REQUIRE(loop_new(&loop) == 0);
	struct pipes p = { 0 };
	REQUIRE(pipe(p.a) == 0 && pipe(p.b) == 0);
	REQUIRE(loop_add_fd(loop, p.a[0], EPOLLIN, on_readable, &p) == 0);
	REQUIRE(loop_add_fd(loop, p.b[0], EPOLLIN, on_readable, &p) == 0);
	CHECK_EQ(loop_add_fd(loop, p.b[0], EPOLLIN, on_readable, &p), -EEXIST);
	REQUIRE(write(p.a[1], "x", 1) == 1 && write(p.b[1], "y", 1) == 1);
	REQUIRE(loop_run(loop) == 0);
	CHECK_EQ(p.calls, 1);
	loop_free(loop);
	close(p.a[0]), close(p.a[1]), close(p.b[0]), close(p.b[1]);
}

static const struct test tests[] = {
	TEST(test_timers_fire_in_due_order),
	TEST(test_periodic_and_cancel),
	TEST(test_fd_deleted_mid_round_gets_no_event),
	{ 0 },
};
TEST_MAIN(tests)
