/* Unit tests of replication (checkpoint/repl.c + the helper) end to end without
 * QEMU: both helpers run for real over local TCP, each tracking a fake VM
 * (tests/unit/test_repl_vm.h) through PAGEMAP_SCAN as it would track QEMU. */
#include "tests/unit/test_repl_vm.h"

#define MIB (1ull << 20)

/* After the initial sync and N checkpoints, with both guests writing random pages
 * in between, the secondary's RAM equals the primary's at every checkpoint. */
static void test_sync_and_checkpoints_are_byte_identical(void)
{
	struct pair p;
	pair_start(&p, 16 * MIB, 3000);
	p.max_ckpts = 20;
	vm_run(&p.pri.vm, 5); /* the primary runs during pre-copy */
	RUN_UNTIL(p.loop, p.pri.commits > p.max_ckpts || p.pri.failed || p.sec.failed, 40000);
	RUN_UNTIL(p.loop, p.sec.commits > p.max_ckpts || p.sec.failed, 5000);
	if (p.pri.failed || p.sec.failed)
		fprintf(stderr, "    failed: primary %s / secondary %s\n", p.pri.reason, p.sec.reason);
	CHECK_EQ(p.pri.failed + p.sec.failed, 0);
	CHECK_EQ(p.pri.commits, p.max_ckpts + 1);
	CHECK_EQ(p.sec.commits, p.max_ckpts + 1);
	CHECK_EQ(p.compares, p.max_ckpts + 1);
	CHECK_EQ(p.diffs, 0);
	CHECK_EQ(p.dev_mismatch, 0);
	for (int i = 0; i <= p.max_ckpts; i++)
		CHECK_EQ(p.sec.marks[i], MARK_BASE + (uint64_t)i);
	/* the primary's figures of the last checkpoint: every field measured */
	const struct repl_stats *s = &p.pri.last;
	CHECK_EQ(s->seq, (uint64_t)p.max_ckpts);
	CHECK(s->dirty_pages_local > 0);
	CHECK(s->dirty_pages_peer > 0);
	CHECK(s->pages_sent + s->zero_pages >= s->dirty_pages_local);
	CHECK_EQ(s->device_state_bytes, DEV_STATE_LEN);
	CHECK(s->bytes_sent > s->pages_sent * VM_PS);
	CHECK(s->pause_us >= s->suspend_us && s->pause_us > 0);
	CHECK(s->transfer_us > 0);
	CHECK(p.sec.last.dirty_pages_local > 0);
	CHECK_EQ(p.sec.last.pages_sent, s->pages_sent);
	CHECK_EQ(p.sec.last.bytes_sent, s->bytes_sent);
	pair_stop(&p);
}

/* The same with the copy overlapping the device save (repl_suspend_stopped). */
static void test_capture_overlapping_the_save_is_byte_identical(void)
{
	struct pair p;
	pair_start(&p, 16 * MIB, 3000);
	p.use_stopped = true;
	p.max_ckpts = 20;
	vm_run(&p.pri.vm, 6);
	RUN_UNTIL(p.loop, p.sec.commits > p.max_ckpts || p.pri.failed || p.sec.failed, 40000);
	CHECK_EQ(p.pri.failed + p.sec.failed, 0);
	CHECK_EQ(p.compares, p.max_ckpts + 1);
	CHECK_EQ(p.diffs, 0);
	CHECK_EQ(p.dev_mismatch, 0);
	CHECK(p.pri.last.capture_us > 0);
	pair_stop(&p);
}

/* Pages written after the early copy, while "QEMU saves", are in the checkpoint. */
static void test_pages_written_during_the_save_are_not_lost(void)
{
	struct pair p;
	pair_start(&p, 8 * MIB, 1000);
	p.use_stopped = true;
	p.save_writes = 7;
	p.max_ckpts = 5;
	RUN_UNTIL(p.loop, p.sec.commits > p.max_ckpts || p.pri.failed || p.sec.failed, 20000);
	CHECK_EQ(p.pri.failed + p.sec.failed, 0);
	CHECK_EQ(p.compares, p.max_ckpts + 1);
	CHECK_EQ(p.diffs, 0);
	CHECK(p.pri.last.dirty_pages_local >= 7);
	pair_stop(&p);
}

/* The primary VM runs again before the checkpoint is streamed; with a primary that
 * resumes at once (the real agent) the pair keeps checkpointing. */
static void test_primary_resumes_before_the_ack(void)
{
	struct pair p;
	pair_start(&p, 8 * MIB, 1000);
	p.compare = false;
	p.keep_primary_stopped = false;
	p.max_ckpts = 10;
	RUN_UNTIL(p.loop, p.pri.commits > p.max_ckpts || p.pri.failed || p.sec.failed, 30000);
	CHECK_EQ(p.pri.failed + p.sec.failed, 0);
	CHECK_EQ(p.pri.commits, p.max_ckpts + 1);
	CHECK_EQ(p.pri.resumes, p.max_ckpts + 1);
	pair_stop(&p);
}

static void test_identity_mismatch_is_refused_by_both(void)
{
	struct pair p;
	pair_init(&p, 4 * MIB, 10);
	REQUIRE(side_start(&p, &p.sec, 0x1111) == 0);
	REQUIRE(side_start(&p, &p.pri, 0x2222) == 0);
	RUN_UNTIL(p.loop, p.pri.failed && p.sec.failed, 10000);
	fprintf(stderr, "    primary: %s\n    secondary: %s\n", p.pri.reason, p.sec.reason);
	CHECK_EQ(p.pri.why, REPL_REFUSED);
	CHECK_EQ(p.sec.why, REPL_REFUSED);
	CHECK(strstr(p.pri.reason, "configuration hash") != NULL);
	CHECK(strstr(p.sec.reason, "configuration hash") != NULL);
	CHECK_EQ(p.sec.loads, 0);
	pair_stop(&p);
}

static void test_second_primary_is_refused(void)
{
	struct pair p;
	struct side intruder;
	pair_start(&p, 4 * MIB, 100);
	RUN_UNTIL(p.loop, p.pri.commits && p.sec.commits, 10000);
	REQUIRE(p.pri.commits == 1);
	intruder = (struct side){ .pair = &p, .role = REPL_PRIMARY };
	vm_start(&intruder.vm, 4 * MIB, 10, 9);
	REQUIRE(side_start(&p, &intruder, p.config_hash) == 0);
	RUN_UNTIL(p.loop, intruder.failed, 10000);
	fprintf(stderr, "    intruder: %s\n", intruder.reason);
	CHECK_EQ(intruder.why, REPL_REFUSED);
	CHECK(strstr(intruder.reason, "refusing a second primary") != NULL);
	/* the first pair carries on */
	p.max_ckpts = 3;
	CHECK_EQ(repl_checkpoint(p.pri.r), 0);
	RUN_UNTIL(p.loop, p.pri.commits > p.max_ckpts || p.pri.failed, 10000);
	CHECK_EQ(p.pri.commits, p.max_ckpts + 1);
	CHECK_EQ(p.diffs, 0);
	CHECK_EQ(p.pri.failed + p.sec.failed, 0);
	repl_free(intruder.r);
	vm_stop(&intruder.vm);
	pair_stop(&p);
}

static void test_verbs_refused_in_the_wrong_state(void)
{
	struct pair p;
	pair_start(&p, 4 * MIB, 10);
	CHECK_EQ(repl_checkpoint(p.sec.r), -EINVAL);
	CHECK_EQ(repl_failover(p.pri.r), -EINVAL);
	CHECK_EQ(repl_checkpoint(p.pri.r), -EBUSY);    /* still syncing */
	CHECK_EQ(repl_failover(p.sec.r), -EINVAL);     /* nothing consistent yet */
	RUN_UNTIL(p.loop, p.pri.commits && p.sec.commits, 10000);
	REQUIRE(p.pri.commits == 1);
	CHECK_EQ(repl_checkpoint(p.pri.r), 0);
	CHECK_EQ(repl_checkpoint(p.pri.r), -EBUSY);    /* one at a time */
	RUN_UNTIL(p.loop, p.pri.commits == 2, 10000);
	CHECK_EQ(p.pri.commits, 2);
	pair_stop(&p);
}

/* The secondary's helper dies: its agent hears LOCAL_ERROR with the signal; the
 * primary hears BROKEN_CHANNEL. */
static void test_helper_death_is_reported(void)
{
	struct pair p;
	pair_start(&p, 4 * MIB, 100);
	RUN_UNTIL(p.loop, p.pri.commits && p.sec.commits, 10000);
	REQUIRE(p.sec.commits == 1);
	kill(repl_helper_pid(p.sec.r), SIGKILL);
	RUN_UNTIL(p.loop, p.sec.failed, 5000);
	CHECK_EQ(p.sec.failed, 1);
	CHECK_EQ(p.sec.why, REPL_LOCAL_ERROR);
	CHECK(strstr(p.sec.reason, "killed by signal 9") != NULL);
	fprintf(stderr, "    secondary: %s\n", p.sec.reason);
	RUN_UNTIL(p.loop, p.pri.failed, 5000);
	CHECK_EQ(p.pri.why, REPL_BROKEN_CHANNEL);
	CHECK_EQ(repl_checkpoint(p.pri.r), -ENOTCONN);
	fprintf(stderr, "    primary: %s\n", p.pri.reason);
	pair_stop(&p);
}

/* The agent dies: PR_SET_PDEATHSIG takes its helper along. */
static void test_agent_death_kills_the_helper(void)
{
	int pfd[2], pid = 0;
	REQUIRE(pipe(pfd) == 0);
	pid_t agent = fork();
	REQUIRE(agent >= 0);
	if (agent == 0) {
		struct pair p;
		pair_start(&p, 4 * MIB, 10);
		int hp = repl_helper_pid(p.sec.r);
		if (write(pfd[1], &hp, sizeof(hp)) != sizeof(hp))
			_exit(1);
		unlink(p.pri.vm.path); /* the files are ours to remove; the mappings stay */
		unlink(p.sec.vm.path);
		_exit(0); /* no repl_free: the agent just dies */
	}
	REQUIRE(read(pfd[0], &pid, sizeof(pid)) == sizeof(pid));
	waitpid(agent, NULL, 0);
	uint64_t until = mono_ms() + 3000;
	while (!pid_gone(pid) && mono_ms() < until)
		usleep(10000);
	CHECK(pid_gone(pid));
	close(pfd[0]);
	close(pfd[1]);
}

static void test_free_stops_the_helper(void)
{
	struct pair p;
	pair_start(&p, 4 * MIB, 10);
	int a = repl_helper_pid(p.pri.r), b = repl_helper_pid(p.sec.r);
	repl_free(p.pri.r);
	repl_free(p.sec.r);
	p.pri.r = p.sec.r = NULL;
	CHECK(pid_gone(a));
	CHECK(pid_gone(b));
	RUN_UNTIL(p.loop, false, 100); /* no callback after free */
	CHECK_EQ(p.pri.failed + p.sec.failed, 0);
	pair_stop(&p);
}

static const struct test tests[] = {
	TEST(test_sync_and_checkpoints_are_byte_identical),
	TEST(test_capture_overlapping_the_save_is_byte_identical),
	TEST(test_pages_written_during_the_save_are_not_lost),
	TEST(test_primary_resumes_before_the_ack),
	TEST(test_identity_mismatch_is_refused_by_both),
	TEST(test_second_primary_is_refused),
	TEST(test_verbs_refused_in_the_wrong_state),
	TEST(test_helper_death_is_reported),
	TEST(test_agent_death_kills_the_helper),
	TEST(test_free_stops_the_helper),
	{ 0 },
};
TEST_MAIN(tests)
