/* test_xen_repl.c - the Xen helper end to end against the STAND-IN libxenguest
 * (tests/xen-standin/; not evidence that Xen works): both agents' replicators exec
 * build/tests/colo-xen-helper-standin; the stand-in drives libxenguest 4.17's COLO
 * callbacks over synthetic domains. Checks: memory identical after every commit,
 * device states and input marks delivered, the callback order, logdirty, and the
 * commit rule when the link breaks mid-checkpoint or a runner fails. */
#include "tests/unit/test_xen_pair.h"

static void test_sync_and_checkpoints_are_identical(void)
{
	struct xpair p = { .max_ckpts = 5, .pri_writes = 40, .sec_writes = 20 };
	xp_start(&p, NULL);
	XP_RUN_UNTIL(&p, p.sec.commits >= 6 || p.pri.failed || p.sec.failed, 20000);
	if (p.pri.failed || p.sec.failed)
		fprintf(stderr, "    failed: primary %s / secondary %s\n", p.pri.reason, p.sec.reason);
	CHECK_EQ(p.pri.failed + p.sec.failed, 0);
	CHECK_EQ(p.sec.commits, 6);
	XP_RUN_UNTIL(&p, p.pri.commits >= 6, 5000);
	CHECK_EQ(p.pri.commits, 6);
	CHECK_EQ(p.compares, 6);
	CHECK_EQ(p.diffs, 0);
	CHECK_EQ(p.dev_mismatch, 0);
	for (int k = 0; k < 6; k++)
		CHECK_EQ(p.sec.marks[k], 1000 + k);
	CHECK_EQ(p.pri.logdirty_on, 1);
	CHECK_EQ(p.sec.suspends, 5); /* the secondary stops for each checkpoint after the sync */
	CHECK(xp_no_violation(&p, XP_PRI_DOM));
	CHECK(xp_no_violation(&p, XP_SEC_DOM));
	xp_stop(&p);
}

/* 24 MiB of guest memory: the live pre-copy leaves as several PRECOPY checkpoints
 * (8 MiB of libxc bytes each), then the usual checkpoints. */
static void test_large_initial_sync(void)
{
	xp_pages = 6144;
	struct xpair p = { .max_ckpts = 2, .pri_writes = 500, .sec_writes = 50 };
	xp_start(&p, NULL);
	XP_RUN_UNTIL(&p, p.sec.commits >= 3 || p.pri.failed || p.sec.failed, 30000);
	if (p.pri.failed || p.sec.failed)
		fprintf(stderr, "    failed: primary %s / secondary %s\n", p.pri.reason, p.sec.reason);
	CHECK_EQ(p.sec.commits, 3);
	CHECK_EQ(p.compares, 3);
	CHECK_EQ(p.diffs, 0);
	CHECK_EQ(p.dev_mismatch, 0);
	xp_stop(&p);
}

/* libxenguest 4.17's order (xg_sr_save.c save(), xg_sr_restore.c
 * handle_checkpoint()), as the stand-in records it and our runner answers it. */
static void test_callback_order(void)
{
	struct xpair p = { .max_ckpts = 2, .pri_writes = 5, .sec_writes = 3 };
	char pri[4096], sec[4096];
	xp_start(&p, NULL);
	XP_RUN_UNTIL(&p, p.pri.commits >= 3 || p.pri.failed || p.sec.failed, 20000);
	REQUIRE(p.pri.commits == 3);
	XP_RUN_UNTIL(&p, p.sec.commits >= 3, 5000);
	xp_trace(&p, XP_PRI_DOM, pri, sizeof(pri));
	xp_trace(&p, XP_SEC_DOM, sec, sizeof(sec));
	/* The primary: Xen suspends the domain before QEMU stops (inside `suspend`);
	 * after the ACK QEMU runs first, then xc_domain_resume(fast=0). */
	const char *want_pri = "switch_qemu_logdirty 1\n"
			       "suspend\nxen suspend (was running)\ncheckpoint\npostcopy\n"
			       "resume fast=0\nwait_checkpoint\n"
			       "suspend\nxen suspend (was running)\npeer dirty ";
	/* The secondary: checkpoint 1 lands in the paused, never-run domain; its
	 * postcopy (LOAD) turns log-dirty on and unpauses it; suspend stops Xen's
	 * domain before QEMU; later postcopies resume it (fast=0). */
	const char *want_sec = "checkpoint\nrestore_results\npostcopy\nshadow op 2\nunpause\n"
			       "wait_checkpoint\nsuspend\nxen suspend (was running)\ndirty ";
	const char *want_sec2 = "checkpoint\nrestore_results\npostcopy\nresume fast=0\n"
				"wait_checkpoint\nsuspend\nxen suspend (was running)\ndirty ";
	const char *s1 = strstr(sec, "checkpoint\n");
	bool ok = !strncmp(pri, want_pri, strlen(want_pri)) && s1 &&
		  !strncmp(s1, want_sec, strlen(want_sec)) && strstr(sec, want_sec2) &&
		  !strncmp(sec, "restore store evtchn", 20);
	if (!ok)
		fprintf(stderr, "    primary trace:\n%s    secondary trace:\n%s", pri, sec);
	CHECK(strncmp(pri, want_pri, strlen(want_pri)) == 0);
	CHECK(s1 && strncmp(s1, want_sec, strlen(want_sec)) == 0);
	CHECK(strstr(sec, want_sec2) != NULL);
	CHECK_EQ(p.sec.logdirty_on, 1); /* the secondary's device model logs too */
	/* START's Xen tail reached xc_domain_restore */
	CHECK(strstr(sec, "restore store evtchn 17 domid 0 console evtchn 18 domid 0\n") == sec);
	CHECK(xp_no_violation(&p, XP_PRI_DOM));
	CHECK(xp_no_violation(&p, XP_SEC_DOM));
	/* The secondary's own writes reach the primary's merge on the back channel. */
	CHECK(strstr(pri, "peer dirty 0\n") == NULL);
	xp_stop(&p);
}

/* The primary's helper dies with half of checkpoint 2's libxc bytes on the wire:
 * the secondary applies nothing of it, keeps checkpoint 1 (acked and loaded), and
 * is ready to fail over. */
static void test_broken_channel_mid_checkpoint(void)
{
	char fault[32];
	struct xpair p = { .max_ckpts = 5, .pri_writes = 200, .sec_writes = 0 };
	snprintf(fault, sizeof(fault), "%u:cut:3", XP_PRI_DOM); /* agent checkpoint 2 */
	xp_start(&p, fault);
	XP_RUN_UNTIL(&p, p.pri.failed, 20000);
	REQUIRE(p.pri.failed);
	CHECK_EQ(p.pri.why, REPL_LOCAL_ERROR); /* its helper was killed */
	int rc = repl_failover(p.sec.r);
	CHECK(rc == 0 || rc == -ENOTCONN);
	XP_RUN_UNTIL(&p, p.sec.failovers || p.sec.failed, 15000);
	if (rc == 0)
		CHECK_EQ(p.sec.failovers, 1);
	else
		CHECK(p.sec.failed && p.sec.why == REPL_BROKEN_CHANNEL);
	CHECK_EQ(p.sec.commits, 2);
	CHECK_EQ(p.sec.loads, 2);
	CHECK_EQ(p.diffs, 0);
	/* Its memory is checkpoint 1's, not a page of checkpoint 2's. */
	REQUIRE(p.snap[1]);
	CHECK(memcmp(p.snap[1], p.sec.mem, xp_pages * XP_PS) == 0);
	REQUIRE(p.snap[2]);
	CHECK(memcmp(p.snap[2], p.sec.mem, xp_pages * XP_PS) != 0);
	if (rc == 0) { /* failover from the suspended state: the runner resumed the domain */
		char sec[8192];
		xp_trace(&p, XP_SEC_DOM, sec, sizeof(sec));
		const char *f = strstr(sec, "failover\n");
		CHECK(f && strstr(f, "resume fast=0\n"));
	}
	CHECK(xp_no_violation(&p, XP_SEC_DOM));
	xp_stop(&p);
}

/* The primary's helper dies right after checkpoint 2 was acknowledged: the
 * secondary still applies and loads it (the commit rule), then fails over. */
static void test_acked_checkpoint_is_applied_after_the_link_breaks(void)
{
	char fault[32];
	struct xpair p = { .max_ckpts = 5, .pri_writes = 200, .sec_writes = 10 };
	snprintf(fault, sizeof(fault), "%u:acked:3", XP_PRI_DOM);
	xp_start(&p, fault);
	XP_RUN_UNTIL(&p, p.pri.failed, 20000);
	REQUIRE(p.pri.failed);
	int rc = repl_failover(p.sec.r);
	CHECK(rc == 0 || rc == -ENOTCONN);
	XP_RUN_UNTIL(&p, p.sec.failovers || p.sec.failed, 15000);
	CHECK(p.sec.failovers == 1 || (p.sec.failed && p.sec.why == REPL_BROKEN_CHANNEL));
	CHECK_EQ(p.sec.commits, 3);
	CHECK_EQ(p.sec.loads, 3);
	CHECK_EQ(p.compares, 3);
	CHECK_EQ(p.diffs, 0); /* compared with checkpoint 2 inside its LOAD */
	xp_stop(&p);
}

/* The heartbeat says the primary is gone while the link still looks fine: the
 * secondary's libxenguest is told to fail over (wait_checkpoint answers 2), and
 * the agent hears FAILOVER_READY with every committed checkpoint in place. */
static void test_failover_while_idle(void)
{
	struct xpair p = { .max_ckpts = 2, .pri_writes = 30, .sec_writes = 5 };
	xp_start(&p, NULL);
	XP_RUN_UNTIL(&p, (p.sec.commits >= 3 && p.pri.commits >= 3) || p.pri.failed || p.sec.failed,
		     20000);
	REQUIRE(p.sec.commits == 3);
	CHECK_EQ(repl_failover(p.sec.r), 0);
	XP_RUN_UNTIL(&p, p.sec.failovers || p.sec.failed, 15000);
	CHECK_EQ(p.sec.failovers, 1);
	CHECK_EQ(p.sec.failed, 0);
	CHECK_EQ(p.diffs, 0);
	char sec[4096];
	xp_trace(&p, XP_SEC_DOM, sec, sizeof(sec));
	CHECK(strstr(sec, "failover") != NULL); /* libxenguest's COLO failover path */
	XP_RUN_UNTIL(&p, p.pri.failed, 5000);
	CHECK(p.pri.failed && p.pri.why == REPL_BROKEN_CHANNEL);
	xp_stop(&p);
}

/* The secondary dies while the primary's domain and QEMU are stopped for
 * checkpoint 2: libxenguest's save fails, the runner resumes the domain, the
 * helper has the agent resume QEMU, then reports the broken channel. */
static void test_primary_runs_on_when_the_secondary_dies(void)
{
	struct xpair p = { .max_ckpts = 5, .pri_writes = 10, .kill_sec_at = 2 };
	xp_start(&p, NULL);
	XP_RUN_UNTIL(&p, p.pri.failed, 20000);
	CHECK_EQ(p.pri.failed, 1);
	CHECK_EQ(p.pri.why, REPL_BROKEN_CHANNEL);
	CHECK_EQ(p.pri.suspends, 3);
	CHECK_EQ(p.pri.resumes, 3); /* QEMU runs again */
	CHECK_EQ(p.pri.commits, 2);
	char pri[4096];
	xp_trace(&p, XP_PRI_DOM, pri, sizeof(pri));
	/* The save unwound (libxc's cleanup) somewhere in checkpoint 3 (where depends
	 * on how far the secondary's dirty list and the link got before its helper
	 * died), with the domain suspended; then QEMU ran again (the stand-in refuses
	 * a resume while it is stopped) and the runner resumed the domain. */
	const char *tail = "switch_qemu_logdirty 0\nresume fast=0\n";
	CHECK(xp_no_violation(&p, XP_PRI_DOM));
	size_t n = strlen(pri), t = strlen(tail);
	const char *last_suspend = strstr(pri, "xen suspend"), *r;
	for (const char *k = last_suspend; k && (k = strstr(k + 1, "xen suspend"));)
		last_suspend = k;
	r = last_suspend ? strstr(last_suspend, "resume fast=0") : NULL;
	bool ok = n >= t && !strcmp(pri + n - t, tail) && r == pri + n - strlen("resume fast=0\n");
	if (!ok)
		fprintf(stderr, "    primary trace:\n%s", pri);
	CHECK(ok); /* nothing resumed the domain between its last suspend and the end */
	xp_stop(&p);
}

/* The secondary's runner dies before checkpoint 1's callback: no valid replica. */
static void test_runner_crash_is_a_local_error(void)
{
	char fault[32];
	struct xpair p = { .max_ckpts = 5, .pri_writes = 10 };
	snprintf(fault, sizeof(fault), "%u:crash:2", XP_SEC_DOM);
	xp_start(&p, fault);
	XP_RUN_UNTIL(&p, p.sec.failed && p.pri.failed, 20000);
	CHECK_EQ(p.sec.failed, 1);
	CHECK_EQ(p.sec.why, REPL_LOCAL_ERROR);
	CHECK(strstr(p.sec.reason, "runner") != NULL);
	CHECK_EQ(p.sec.commits, 1);
	CHECK_EQ(p.pri.failed, 1); /* the link closed under it */
	xp_stop(&p);
}

/* libxenguest's suspend callback fails (the domain would not suspend): the
 * primary's save ends, the agent hears a local error, QEMU is not left stopped. */
static void test_callback_error_stops_the_primary(void)
{
	char fault[32];
	struct xpair p = { .max_ckpts = 5, .pri_writes = 10 };
	snprintf(fault, sizeof(fault), "%u:shutdown:2", XP_PRI_DOM);
	xp_start(&p, fault);
	XP_RUN_UNTIL(&p, p.pri.failed, 20000);
	CHECK_EQ(p.pri.failed, 1);
	CHECK_EQ(p.pri.why, REPL_LOCAL_ERROR);
	CHECK_EQ(p.pri.commits, 1);
	CHECK_EQ(p.pri.suspends, p.pri.resumes);
	CHECK_EQ(p.pri.logdirty_off, 1); /* libxenguest's cleanup turns QEMU's log off */
	xp_stop(&p);
}

/* A 40 MiB domain, a fast primary and a slow restore (20 ms per PAGE_DATA batch):
 * the initial sync's PRECOPY checkpoints pile up on the secondary. They do not
 * count against the queue of checkpoints libxenguest holds; the helper stops
 * reading the link while over 32 MiB wait (back-pressure) instead. */
static void test_slow_restore_initial_sync(void)
{
	char fault[32];
	size_t pages = xp_pages;
	xp_pages = 10240;
	struct xpair p = { .max_ckpts = 1, .pri_writes = 50, .sec_writes = 5 };
	snprintf(fault, sizeof(fault), "%u:slow:0", XP_SEC_DOM);
	xp_start(&p, fault);
	XP_RUN_UNTIL(&p, p.sec.commits >= 2 || p.pri.failed || p.sec.failed, 60000);
	if (p.pri.failed || p.sec.failed)
		fprintf(stderr, "    failed: primary %s / secondary %s\n", p.pri.reason, p.sec.reason);
	CHECK_EQ(p.pri.failed + p.sec.failed, 0);
	CHECK_EQ(p.sec.commits, 2);
	CHECK_EQ(p.diffs, 0);
	CHECK(xp_no_violation(&p, XP_SEC_DOM));
	xp_stop(&p);
	xp_pages = pages;
}

/* The primary's helper dies while the secondary's libxenguest writes a 16 MiB
 * dirty-pfn list to its back channel: the helper keeps reading (and dropping) it,
 * so libxenguest's write returns, it fails over, and the secondary is ready long
 * before the runner's 10 s grace (a helper that stopped reading deadlocked here). */
static void test_failover_with_a_large_dirty_list(void)
{
	char fault[32];
	struct xpair p = { .max_ckpts = 5, .pri_writes = 10, .sec_writes = 5, .kill_pri_at = 2 };
	snprintf(fault, sizeof(fault), "%u:bigdirty:2", XP_SEC_DOM);
	xp_start(&p, fault);
	XP_RUN_UNTIL(&p, p.pri.failed, 20000);
	REQUIRE(p.pri.failed);
	int rc = repl_failover(p.sec.r);
	CHECK(rc == 0 || rc == -ENOTCONN);
	uint64_t t0 = mono_ms();
	XP_RUN_UNTIL(&p, p.sec.failovers || p.sec.failed, 15000);
	CHECK(mono_ms() - t0 < 5000);
	if (p.sec.failed)
		fprintf(stderr, "    secondary: %s\n", p.sec.reason);
	CHECK(p.sec.failovers == 1 || (p.sec.failed && p.sec.why == REPL_BROKEN_CHANNEL));
	CHECK_EQ(p.sec.commits, 2);
	char sec[8192];
	xp_trace(&p, XP_SEC_DOM, sec, sizeof(sec));
	CHECK(strstr(sec, "failover\n") != NULL); /* libxenguest's own failover path */
	xp_stop(&p);
}

/* The device model cannot log its dirty pages: libxenguest's save stops before
 * any stream, and (as xg_sr_save.c) does not switch off what never went on. */
static void test_logdirty_refused_stops_the_save(void)
{
	struct xpair p = { .max_ckpts = 2, .logdirty_err = -EIO };
	xp_start(&p, NULL);
	XP_RUN_UNTIL(&p, p.pri.failed, 20000);
	CHECK_EQ(p.pri.failed, 1);
	CHECK_EQ(p.pri.why, REPL_LOCAL_ERROR);
	CHECK_EQ(p.pri.logdirty_on, 1);
	CHECK_EQ(p.pri.logdirty_off, 0);
	CHECK_EQ(p.pri.suspends, 0);
	xp_stop(&p);
}

/* A secondary domain already built (xl create -p: memory populated) is refused
 * before libxc's restore touches it. */
static void test_built_secondary_is_refused(void)
{
	char built[16];
	struct xpair p = { .max_ckpts = 2, .pri_writes = 5 };
	snprintf(built, sizeof(built), "%u", XP_SEC_DOM);
	setenv("COLO_XEN_STANDIN_BUILT", built, 1);
	xp_start(&p, NULL);
	XP_RUN_UNTIL(&p, p.sec.failed && p.pri.failed, 20000);
	unsetenv("COLO_XEN_STANDIN_BUILT");
	CHECK_EQ(p.sec.failed, 1);
	CHECK_EQ(p.sec.why, REPL_LOCAL_ERROR);
	CHECK(strstr(p.sec.reason, "already built") != NULL);
	CHECK_EQ(p.sec.commits, 0);
	char sec[4096];
	xp_trace(&p, XP_SEC_DOM, sec, sizeof(sec));
	CHECK(strstr(sec, "restore") == NULL); /* xc_domain_restore never ran */
	xp_stop(&p);
}

/* An HVM guest with PV drivers (HVM_PARAM_CALLBACK_IRQ set): replication still
 * runs, every resume is the slow one (fast=1 would corrupt vCPU0's rax). */
static void test_pv_driver_guest_never_fast_resumed(void)
{
	struct xpair p = { .max_ckpts = 3, .pri_writes = 10, .sec_writes = 3 };
	setenv("COLO_XEN_STANDIN_CALLBACK_IRQ", "0x0200000000000001", 1);
	xp_start(&p, NULL);
	XP_RUN_UNTIL(&p, p.sec.commits >= 4 || p.pri.failed || p.sec.failed, 20000);
	unsetenv("COLO_XEN_STANDIN_CALLBACK_IRQ");
	CHECK_EQ(p.sec.commits, 4);
	char t[8192];
	xp_trace(&p, XP_PRI_DOM, t, sizeof(t));
	CHECK(strstr(t, "resume fast=0") != NULL);
	CHECK(strstr(t, "fast=1") == NULL);
	xp_trace(&p, XP_SEC_DOM, t, sizeof(t));
	CHECK(strstr(t, "fast=1") == NULL);
	CHECK(xp_no_violation(&p, XP_PRI_DOM));
	CHECK(xp_no_violation(&p, XP_SEC_DOM));
	xp_stop(&p);
}

static const struct test tests[] = {
	TEST(test_sync_and_checkpoints_are_identical),
	TEST(test_large_initial_sync),
	TEST(test_callback_order),
	TEST(test_broken_channel_mid_checkpoint),
	TEST(test_acked_checkpoint_is_applied_after_the_link_breaks),
	TEST(test_failover_while_idle),
	TEST(test_primary_runs_on_when_the_secondary_dies),
	TEST(test_runner_crash_is_a_local_error),
	TEST(test_callback_error_stops_the_primary),
	TEST(test_slow_restore_initial_sync),
	TEST(test_failover_with_a_large_dirty_list),
	TEST(test_logdirty_refused_stops_the_save),
	TEST(test_built_secondary_is_refused),
	TEST(test_pv_driver_guest_never_fast_resumed),
	{ 0 },
};

TEST_MAIN(tests)
