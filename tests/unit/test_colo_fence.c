/* colo/fence.c: the fence command's outcomes, its timeout killing the whole session,
 * its environment, and that the loop keeps running while it does. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "colo/fence.h"
#include "lib/loop.h"
#include "tests/harness/test.h"

struct outcome {
	bool done;
	int ok;
	char why[128];
	bool free_in_cb;
};

static void on_done(struct fence *f, int ok, const char *why, void *arg)
{
	struct outcome *o = arg;
	o->done = true;
	o->ok = ok;
	snprintf(o->why, sizeof(o->why), "%s", why);
	if (o->free_in_cb)
		fence_free(f);
}

static int ticks;
static int64_t tick(struct loop *loop, uint64_t id, void *arg)
{
	ticks++;
	return 10;
}

static struct outcome run(const char *cmd, unsigned timeout_ms, char *const env[])
{
	struct loop *loop;
	REQUIRE(loop_new(&loop) == 0);
	struct outcome o = { .free_in_cb = true };
	struct fence *f;
	REQUIRE(fence_run(loop, cmd, timeout_ms, env, on_done, &o, &f) == 0);
	CHECK(!o.done);
	uint64_t t0 = mono_ms();
	while (!o.done && mono_ms() - t0 < 10000)
		loop_run_once(loop, 50);
	REQUIRE(o.done);
	loop_free(loop);
	return o;
}

static void test_outcomes(void)
{
	struct outcome o = run("true", 5000, NULL);
	CHECK(o.ok);
	o = run("exit 3", 5000, NULL);
	CHECK(!o.ok);
	CHECK(!strcmp(o.why, "exited with status 3"));
	o = run("kill -KILL $$", 5000, NULL);
	CHECK(!o.ok);
	CHECK(!strcmp(o.why, "killed by signal 9"));
	o = run("/nonexistent/fence-agent", 5000, NULL);
	CHECK(!o.ok);
	CHECK(!strcmp(o.why, "exited with status 127"));
	char *env[] = { "COLO_PEER=10.77.0.1:7701", NULL };
	o = run("test \"$COLO_PEER\" = 10.77.0.1:7701 && read x; test -z \"$x\"", 5000, env);
	CHECK(o.ok); /* got the environment, and stdin is /dev/null (read hits EOF) */
}

/* Gone, or a zombie waiting for whoever reaps orphans. */
static bool dead(int pid)
{
	char path[64], state = 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return true;
	int r = fscanf(f, "%*d %*s %c", &state);
	fclose(f);
	return r == 1 && (state == 'Z' || state == 'X');
}

static void test_timeout_kills_the_session_and_loop_runs(void)
{
	char pidfile[] = "/tmp/colo-fence-XXXXXX";
	int fd = mkstemp(pidfile);
	REQUIRE(fd >= 0);
	close(fd);
	char cmd[256];
	/* A grandchild in the background: the timeout must kill it too. */
	snprintf(cmd, sizeof(cmd), "sleep 30 & echo $! > %s; wait", pidfile);
	struct loop *loop;
	REQUIRE(loop_new(&loop) == 0);
	REQUIRE(loop_timer_add(loop, 10, tick, NULL, NULL) == 0);
	struct outcome o = { 0 };
	struct fence *f;
	uint64_t t0 = mono_ms();
	REQUIRE(fence_run(loop, cmd, 300, NULL, on_done, &o, &f) == 0);
	while (!o.done && mono_ms() - t0 < 5000)
		loop_run_once(loop, -1);
	uint64_t took = mono_ms() - t0;
	REQUIRE(o.done);
	CHECK(!o.ok);
	CHECK(strstr(o.why, "timed out after 300 ms") != NULL);
	CHECK(took >= 300 && took < 1500);
	CHECK(ticks >= 15); /* the loop was never blocked */
	fence_free(f);
	FILE *p = fopen(pidfile, "r");
	int gc = 0;
	REQUIRE(p && fscanf(p, "%d", &gc) == 1);
	fclose(p);
	unlink(pidfile);
	usleep(50000);
	CHECK(dead(gc));
	loop_free(loop);
}

static void test_free_while_running(void)
{
	struct loop *loop;
	REQUIRE(loop_new(&loop) == 0);
	struct outcome o = { 0 };
	struct fence *f;
	REQUIRE(fence_run(loop, "sleep 30", 60000, NULL, on_done, &o, &f) == 0);
	loop_run_once(loop, 20);
	uint64_t t0 = mono_ms();
	fence_free(f);
	CHECK(mono_ms() - t0 < 1000);
	CHECK(!o.done); /* no callback after free */
	loop_run_once(loop, 20);
	CHECK(!o.done);
	loop_free(loop);
}

static const struct test tests[] = {
	TEST(test_outcomes),
	TEST(test_timeout_kills_the_session_and_loop_runs),
	TEST(test_free_while_running),
	{ 0 },
};
TEST_MAIN(tests)
