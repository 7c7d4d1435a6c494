/* Unit tests of the commit rule and bad input (docs/checkpoint-stream.md §7,
 * docs/helper-protocol.md §4) with real helpers and fake VMs: a checkpoint cut
 * mid-stream is never applied; one completely received is applied even if the
 * primary dies right after (or before) the ACK; failover finishes a load in
 * progress; a corrupt stream from a hand-made primary is rejected with nothing
 * applied and the reason sent back. */
#include <netinet/in.h>

#include "checkpoint/stream.h"
#include "tests/unit/test_repl_vm.h"

#define MIB (1ull << 20)

/* ---- timed actions --------------------------------------------------------------- */

struct later {
	int kill_pid, cont_pid;
};

static int64_t later_cb(struct loop *loop, uint64_t id, void *arg)
{
	struct later *l = arg;
	if (l->kill_pid > 0)
		kill(l->kill_pid, SIGKILL);
	if (l->cont_pid > 0)
		kill(l->cont_pid, SIGCONT);
	return LOOP_TIMER_DONE;
}

static struct later the_later;

static void kill_then_cont(struct pair *p, int kill_pid, int cont_pid, int ms)
{
	uint64_t id;
	the_later = (struct later){ .kill_pid = kill_pid, .cont_pid = cont_pid };
	REQUIRE(loop_timer_add(p->loop, ms, later_cb, &the_later, &id) == 0);
}

static void wait_synced(struct pair *p)
{
	RUN_UNTIL(p->loop, (p->pri.commits && p->sec.commits) || p->pri.failed || p->sec.failed,
		  20000);
	REQUIRE(p->pri.commits == 1 && p->sec.commits == 1);
}

/* ---- cut mid-stream ---------------------------------------------------------------- */

static uint8_t *snapshot;

static void snap_secondary(struct pair *p, struct side *s)
{
	const uint8_t *ram = vm_map(&s->vm);
	memcpy(snapshot, ram, s->vm.size);
	munmap((void *)ram, s->vm.size);
}

/* The primary dirties every page, and the secondary's helper is frozen so the
 * checkpoint (larger than both socket buffers) cannot all be in flight. */
static void dirty_all_freeze_secondary(struct pair *p, struct side *s)
{
	vm_cmd(&s->vm, G_WRITE, 4 * s->vm.size / VM_PS, 99);
	kill(repl_helper_pid(p->sec.r), SIGSTOP);
}

static void cut_soon(struct pair *p, struct side *s)
{
	kill_then_cont(p, repl_helper_pid(p->pri.r), repl_helper_pid(p->sec.r), 100);
}

static void test_checkpoint_cut_mid_stream_is_never_applied(void)
{
	struct pair p;
	pair_start(&p, 96 * MIB, 100);
	snapshot = malloc(96 * MIB);
	REQUIRE(snapshot);
	wait_synced(&p);
	p.sec.on_suspend_hook = snap_secondary;
	p.pri.on_suspend_hook = dirty_all_freeze_secondary;
	p.pri.on_resume_hook = cut_soon;
	CHECK_EQ(repl_checkpoint(p.pri.r), 0);
	RUN_UNTIL(p.loop, p.sec.failed && p.pri.failed, 20000);
	fprintf(stderr, "    secondary: %s\n    primary: %s\n", p.sec.reason, p.pri.reason);
	CHECK_EQ(p.sec.failed, 1);
	CHECK_EQ(p.sec.why, REPL_BROKEN_CHANNEL);
	CHECK(strstr(p.sec.reason, "nothing of it applied") != NULL);
	CHECK_EQ(p.sec.loads, 1);   /* only the initial sync */
	CHECK_EQ(p.sec.commits, 1);
	CHECK_EQ(p.pri.why, REPL_LOCAL_ERROR);
	const uint8_t *ram = vm_map(&p.sec.vm);
	CHECK(memcmp(ram, snapshot, 96 * MIB) == 0); /* not a byte applied */
	munmap((void *)ram, 96 * MIB);
	free(snapshot);
	pair_stop(&p);
}

/* ---- the commit rule: acknowledged means applied ------------------------------------- */

static void kill_primary_defer_load(struct pair *p, struct side *s)
{
	if (s->loads != 2)
		return;
	kill(repl_helper_pid(p->pri.r), SIGKILL);
	s->load_deferred = true;
}

static void test_acked_checkpoint_is_applied_after_the_primary_dies(void)
{
	struct pair p;
	pair_start(&p, 8 * MIB, 500);
	wait_synced(&p);
	p.sec.on_load_hook = kill_primary_defer_load;
	CHECK_EQ(repl_checkpoint(p.pri.r), 0);
	RUN_UNTIL(p.loop, p.sec.loads == 2, 10000);
	REQUIRE(p.sec.loads == 2);
	/* The link is gone but the load is owed: nothing is reported until it is done. */
	RUN_UNTIL(p.loop, p.sec.failed, 300);
	CHECK_EQ(p.sec.failed, 0);
	side_load_finish(&p);
	RUN_UNTIL(p.loop, p.sec.failed, 5000);
	CHECK_EQ(p.sec.commits, 2);
	CHECK_EQ(p.sec.commits_at_fail, 2); /* COMMITTED, then FAILED */
	CHECK_EQ(p.sec.why, REPL_BROKEN_CHANNEL);
	CHECK_EQ(p.diffs, 0);
	CHECK_EQ(p.compares, 2);
	pair_stop(&p);
}

static void test_failover_finishes_the_load_in_progress(void)
{
	struct pair p;
	pair_start(&p, 8 * MIB, 500);
	wait_synced(&p);
	p.sec.on_load_hook = kill_primary_defer_load;
	CHECK_EQ(repl_checkpoint(p.pri.r), 0);
	RUN_UNTIL(p.loop, p.sec.loads == 2, 10000);
	REQUIRE(p.sec.loads == 2);
	RUN_UNTIL(p.loop, false, 100); /* let the helper see the link go */
	CHECK_EQ(repl_failover(p.sec.r), 0);
	CHECK_EQ(repl_failover(p.sec.r), -EALREADY);
	side_load_finish(&p);
	RUN_UNTIL(p.loop, p.sec.failovers || p.sec.failed, 5000);
	CHECK_EQ(p.sec.failovers, 1);
	CHECK_EQ(p.sec.failed, 0);
	CHECK_EQ(p.sec.commits_at_failover, 2);
	CHECK_EQ(p.diffs, 0);
	pair_stop(&p);
}

/* The checkpoint is complete in the secondary's socket when the primary dies; the
 * ACK never leaves. Complete and verified: applied all the same. */
static void freeze_secondary(struct pair *p, struct side *s)
{
	kill(repl_helper_pid(p->sec.r), SIGSTOP);
}

static void test_complete_checkpoint_is_applied_when_the_ack_cannot_leave(void)
{
	struct pair p;
	pair_start(&p, 8 * MIB, 500);
	wait_synced(&p);
	p.pri.on_suspend_hook = freeze_secondary;
	p.pri.on_resume_hook = cut_soon;
	CHECK_EQ(repl_checkpoint(p.pri.r), 0);
	RUN_UNTIL(p.loop, p.sec.failed, 10000);
	CHECK_EQ(p.sec.loads, 2);
	CHECK_EQ(p.sec.commits, 2);
	CHECK_EQ(p.sec.commits_at_fail, 2);
	CHECK_EQ(p.sec.why, REPL_BROKEN_CHANNEL);
	CHECK_EQ(p.diffs, 0);
	CHECK_EQ(p.compares, 2);
	pair_stop(&p);
}

/* Failover between checkpoints, the primary hung (its link still open): nothing
 * pending, ready at once. */
static void test_failover_when_idle(void)
{
	struct pair p;
	pair_start(&p, 4 * MIB, 100);
	wait_synced(&p);
	kill(repl_helper_pid(p.pri.r), SIGSTOP);
	CHECK_EQ(repl_failover(p.sec.r), 0);
	RUN_UNTIL(p.loop, p.sec.failovers || p.sec.failed, 5000);
	CHECK_EQ(p.sec.failovers, 1);
	CHECK_EQ(p.sec.failed, 0);
	CHECK_EQ(p.sec.loads, 1);
	CHECK_EQ(repl_failover(p.sec.r), -ENOTCONN);
	pair_stop(&p);
}

/* ---- a hand-made primary ------------------------------------------------------------ */

enum bad { BAD_NONE, BAD_CHECKSUM, BAD_PFN, BAD_SEQ, BAD_MAGIC, BAD_RAM_SIZE, BAD_TRUNCATED };

#define HAND_PAGES 4u
#define OFF_BEGIN_SEQ (40 + 8)
#define OFF_PFN0 (40 + 24 + 8 + 8)
#define OFF_DATA (OFF_PFN0 + 8 * HAND_PAGES)

/* Checkpoint 1 (PRECOPY): pages 0..3 with bytes 0xa1; checkpoint 2 (PRECOPY): pages
 * 4..7 with 0xb2, spoiled as asked. Returns the first one's length in *first. */
static void hand_stream(struct wr *out, enum bad bad, uint64_t ram_size, size_t *first)
{
	struct stream_ident id = { .backend = STREAM_BACKEND_QEMU, .page_size = VM_PS,
				   .ram_size = bad == BAD_RAM_SIZE ? 2 * ram_size : ram_size,
				   .config_hash = 0x5eed };
	static uint8_t ram[8 * VM_PS];
	uint64_t pfns[2][HAND_PAGES] = { { 0, 1, 2, 3 }, { 4, 5, 6, 7 } };
	struct stream_enc *e = stream_enc_new(&id, STREAM_PRIMARY);
	memset(ram, 0xa1, 4 * VM_PS);
	memset(ram + 4 * VM_PS, 0xb2, 4 * VM_PS);
	REQUIRE(e);
	REQUIRE(stream_enc_header(e) == 0);
	for (int k = 0; k < 2; k++) {
		REQUIRE(stream_enc_begin(e, (uint64_t)k + 1, STREAM_CKPT_PRECOPY) == 0);
		REQUIRE(stream_enc_pages(e, pfns[k], HAND_PAGES, ram) == 0);
		REQUIRE(stream_enc_end(e) == 0);
		if (k == 0)
			*first = stream_enc_pending(e);
	}
	REQUIRE(stream_enc_drain(e, out) == 0);
	stream_enc_free(e);
	uint8_t *second = out->buf + *first - 40; /* offsets below are of a whole stream */
	if (bad == BAD_CHECKSUM)
		second[OFF_DATA + 100] ^= 1;
	else if (bad == BAD_PFN)
		second[OFF_PFN0 + 2] = 0x40; /* pfn 2^46 */
	else if (bad == BAD_SEQ)
		second[OFF_BEGIN_SEQ + 7] = 3;
	else if (bad == BAD_MAGIC)
		out->buf[0] = 'X';
	else if (bad == BAD_TRUNCATED)
		out->len -= 100;
}

static int connect_to(uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	for (int i = 0; i < 200; i++) {
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
		usleep(10000);
	}
	return -1;
}

/* Read the secondary's reply: its header and, if it rejected us, its ERROR code. */
static uint32_t read_error(struct pair *p, int fd, uint64_t ram_size)
{
	struct stream_ident id = { .backend = STREAM_BACKEND_QEMU, .page_size = VM_PS,
				   .ram_size = ram_size, .config_hash = 0x5eed };
	struct stream_dec *d = stream_dec_new(&id, STREAM_PRIMARY);
	uint8_t buf[4096];
	uint32_t code = 0;
	ssize_t n;
	while (!code && (n = recv(fd, buf, sizeof(buf), 0)) > 0) {
		size_t pos = 0, used;
		struct stream_rec rec;
		while (pos < (size_t)n) {
			int rc = stream_dec_feed(d, buf + pos, (size_t)n - pos, &used, &rec);
			pos += used;
			if (rc == 1 && rec.type == STREAM_REC_ERROR) {
				code = rec.error.code;
				fprintf(stderr, "    ERROR %s: %s\n", stream_err_name(code), rec.error.reason);
			}
			if (rc < 0)
				break;
		}
	}
	stream_dec_free(d);
	return code;
}

static bool page_is(const uint8_t *ram, uint64_t pfn, uint8_t v)
{
	for (size_t i = 0; i < VM_PS; i++)
		if (ram[pfn * VM_PS + i] != v)
			return false;
	return true;
}

static void hand_case(enum bad bad, enum repl_failure why, uint32_t code)
{
	struct pair p;
	struct wr w;
	size_t first = 0;
	pair_init(&p, 4 * MIB, 10);
	REQUIRE(side_start(&p, &p.sec, p.config_hash) == 0);
	wr_init(&w);
	hand_stream(&w, bad, 4 * MIB, &first);
	int fd = connect_to(p.port);
	REQUIRE(fd >= 0);
	REQUIRE(write(fd, w.buf, w.len) == (ssize_t)w.len);
	if (bad == BAD_TRUNCATED)
		shutdown(fd, SHUT_WR);
	RUN_UNTIL(p.loop, p.sec.failed, 5000);
	fprintf(stderr, "    secondary: %s\n", p.sec.reason);
	CHECK_EQ(p.sec.failed, 1);
	CHECK_EQ(p.sec.why, why);
	if (code)
		CHECK_EQ(read_error(&p, fd, 4 * MIB), code);
	const uint8_t *ram = vm_map(&p.sec.vm);
	bool first_ok = bad != BAD_MAGIC && bad != BAD_RAM_SIZE;
	CHECK_EQ(page_is(ram, 0, 0xa1) && page_is(ram, 3, 0xa1), first_ok);
	CHECK(!page_is(ram, 4, 0xb2) && !page_is(ram, 7, 0xb2)); /* the bad one: never */
	munmap((void *)ram, 4 * MIB);
	close(fd);
	wr_free(&w);
	pair_stop(&p);
}

static void test_bad_checksum_rejected(void)
{
	hand_case(BAD_CHECKSUM, REPL_CORRUPT_STREAM, STREAM_ERR_CHECKSUM);
}

static void test_pfn_beyond_ram_rejected(void)
{
	hand_case(BAD_PFN, REPL_CORRUPT_STREAM, STREAM_ERR_PFN_RANGE);
}

static void test_skipped_sequence_rejected(void)
{
	hand_case(BAD_SEQ, REPL_CORRUPT_STREAM, STREAM_ERR_SEQUENCE);
}

static void test_bad_magic_refused(void)
{
	hand_case(BAD_MAGIC, REPL_REFUSED, STREAM_ERR_BAD_MAGIC);
}

static void test_other_ram_size_refused(void)
{
	hand_case(BAD_RAM_SIZE, REPL_REFUSED, STREAM_ERR_IDENTITY);
}

static void test_truncated_stream_is_a_broken_channel(void)
{
	hand_case(BAD_TRUNCATED, REPL_BROKEN_CHANNEL, 0);
}

static const struct test tests[] = {
	TEST(test_checkpoint_cut_mid_stream_is_never_applied),
	TEST(test_acked_checkpoint_is_applied_after_the_primary_dies),
	TEST(test_failover_finishes_the_load_in_progress),
	TEST(test_complete_checkpoint_is_applied_when_the_ack_cannot_leave),
	TEST(test_failover_when_idle),
	TEST(test_bad_checksum_rejected),
	TEST(test_pfn_beyond_ram_rejected),
	TEST(test_skipped_sequence_rejected),
	TEST(test_bad_magic_refused),
	TEST(test_other_ram_size_refused),
	TEST(test_truncated_stream_is_a_broken_channel),
	{ 0 },
};
TEST_MAIN(tests)
