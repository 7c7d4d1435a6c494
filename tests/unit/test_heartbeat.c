/* colo/heartbeat.c and hb_wire.c: two heartbeats on localhost, a peer that goes
 * silent, a hung peer (SIGSTOP, in a child process), state changes sent at once,
 * round trips, and hostile datagrams dropped with a counter. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "colo/heartbeat.h"
#include "lib/loop.h"
#include "lib/wire.h"
#include "tests/harness/test.h"

struct events {
	int up, lost, states;
	uint8_t last_state, up_state;
	uint64_t up_ms, lost_ms, state_ms, silent_ms;
	bool free_on_lost;
};

static void ev_up(struct heartbeat *hb, uint8_t role, uint8_t state, void *arg)
{
	struct events *e = arg;
	e->up++;
	e->up_state = state;
	e->last_state = state;
	e->up_ms = mono_ms();
}

static void ev_state(struct heartbeat *hb, uint8_t state, void *arg)
{
	struct events *e = arg;
	e->states++;
	e->last_state = state;
	e->state_ms = mono_ms();
}

static void ev_lost(struct heartbeat *hb, uint64_t silent_ms, void *arg)
{
	struct events *e = arg;
	e->lost++;
	e->lost_ms = mono_ms();
	e->silent_ms = silent_ms;
	if (e->free_on_lost)
		heartbeat_free(hb);
}

/* A free UDP port on 127.0.0.1 (bound, read, released). */
static uint16_t free_port(void)
{
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	REQUIRE(bind(s, (struct sockaddr *)&a, sizeof(a)) == 0);
	REQUIRE(getsockname(s, (struct sockaddr *)&a, &len) == 0);
	close(s);
	return ntohs(a.sin_port);
}

static void set_addr(struct sockaddr_storage *ss, socklen_t *len, uint16_t port)
{
	struct sockaddr_in *a = (struct sockaddr_in *)ss;
	memset(ss, 0, sizeof(*ss));
	a->sin_family = AF_INET;
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a->sin_port = htons(port);
	*len = sizeof(*a);
}

static struct hb_config cfg_for(uint16_t own, uint16_t peer, uint8_t role, unsigned interval,
				unsigned misses)
{
	struct hb_config c = { .interval_ms = interval, .misses = misses, .role = role, .state = 1 };
	set_addr(&c.bind, &c.bind_len, own);
	set_addr(&c.peer, &c.peer_len, peer);
	return c;
}

static void run_until(struct loop *loop, int *counter, int want, unsigned max_ms)
{
	uint64_t t0 = mono_ms();
	while (*counter < want && mono_ms() - t0 < max_ms)
		loop_run_once(loop, 5);
}

static void test_two_peers_see_each_other(void)
{
	struct loop *loop;
	REQUIRE(loop_new(&loop) == 0);
	uint16_t pa = free_port(), pb = free_port();
	struct events ea = { 0 }, eb = { 0 };
	struct hb_handlers ha = { ev_up, ev_state, ev_lost, &ea }, hbh = { ev_up, ev_state, ev_lost, &eb };
	/* 25 misses: this test is not about loss; a loaded host must not fake one. */
	struct hb_config ca = cfg_for(pa, pb, HB_ROLE_PRIMARY, 20, 25);
	struct hb_config cb = cfg_for(pb, pa, HB_ROLE_SECONDARY, 20, 25);
	cb.state = 7;
	struct heartbeat *a, *b;
	REQUIRE(heartbeat_start(loop, &ca, &ha, &a) == 0);
	REQUIRE(heartbeat_start(loop, &cb, &hbh, &b) == 0);
	CHECK_EQ(heartbeat_port(a), pa);
	run_until(loop, &ea.up, 1, 1000);
	run_until(loop, &eb.up, 1, 1000);
	CHECK_EQ(ea.up, 1);
	CHECK_EQ(eb.up, 1);
	CHECK_EQ(ea.up_state, 7);
	/* A few rounds, then round trips are known and nobody was lost. */
	uint64_t t0 = mono_ms();
	while (mono_ms() - t0 < 200)
		loop_run_once(loop, 5);
	struct hb_stats s;
	heartbeat_get_stats(a, &s);
	CHECK(s.peer_alive);
	CHECK(s.rtt_last_us > 0 && s.rtt_last_us < 20000);
	CHECK(s.rtt_avg_us > 0);
	CHECK(s.rx >= 5 && s.tx >= 5);
	CHECK_EQ(s.peer_role, HB_ROLE_SECONDARY);
	CHECK(s.last_rx_age_ms < 100);
	CHECK_EQ(ea.lost + eb.lost, 0);
	CHECK_EQ(s.bad_size + s.bad_magic + s.foreign + s.stale, 0);
	/* A state change goes out at once, not one interval later. */
	heartbeat_free(a);
	heartbeat_free(b);
	ca.interval_ms = cb.interval_ms = 2000;
	struct events e2a = { 0 }, e2b = { 0 };
	ha.arg = &e2a;
	hbh.arg = &e2b;
	REQUIRE(heartbeat_start(loop, &ca, &ha, &a) == 0);
	REQUIRE(heartbeat_start(loop, &cb, &hbh, &b) == 0);
	heartbeat_send_now(a); /* its first one went out before b was bound */
	run_until(loop, &e2a.up, 1, 3000);
	run_until(loop, &e2b.up, 1, 3000);
	uint64_t t1 = mono_ms();
	heartbeat_set_state(b, 9);
	heartbeat_set_state(b, 9); /* unchanged: nothing sent */
	run_until(loop, &e2a.states, 1, 3000);
	CHECK_EQ(e2a.states, 1);
	CHECK_EQ(e2a.last_state, 9);
	CHECK(e2a.state_ms - t1 < 500); /* well before the 2 s interval */
	heartbeat_free(a);
	heartbeat_free(b);
	loop_free(loop);
}

static void test_silent_peer_is_lost_and_comes_back(void)
{
	struct loop *loop;
	REQUIRE(loop_new(&loop) == 0);
	uint16_t pa = free_port(), pb = free_port();
	struct events ea = { 0 }, eb = { 0 };
	struct hb_handlers ha = { ev_up, ev_state, ev_lost, &ea }, hbh = { ev_up, ev_state, ev_lost, &eb };
	struct hb_config ca = cfg_for(pa, pb, HB_ROLE_PRIMARY, 20, 5);
	struct hb_config cb = cfg_for(pb, pa, HB_ROLE_SECONDARY, 20, 5);
	struct heartbeat *a, *b;
	REQUIRE(heartbeat_start(loop, &ca, &ha, &a) == 0);
	REQUIRE(heartbeat_start(loop, &cb, &hbh, &b) == 0);
	run_until(loop, &ea.up, 1, 1000);
	REQUIRE(ea.up == 1);
	heartbeat_free(b);
	uint64_t t0 = mono_ms();
	run_until(loop, &ea.lost, 1, 2000);
	uint64_t took = mono_ms() - t0;
	CHECK_EQ(ea.lost, 1);
	/* 5 x 20 ms of silence, counted from the last datagram (at most 20 ms before). */
	CHECK(took >= 75 && took <= 300);
	CHECK(ea.silent_ms >= 100 && ea.silent_ms <= 300);
	struct hb_stats s;
	heartbeat_get_stats(a, &s);
	CHECK(!s.peer_alive);
	CHECK_EQ(s.losses, 1);
	/* Lost is reported once, not every interval. */
	t0 = mono_ms();
	while (mono_ms() - t0 < 150)
		loop_run_once(loop, 5);
	CHECK_EQ(ea.lost, 1);
	/* The same peer agent cannot come back (b is gone); a new one is a new instance. */
	REQUIRE(heartbeat_start(loop, &cb, &hbh, &b) == 0);
	run_until(loop, &ea.up, 2, 1000);
	CHECK_EQ(ea.up, 2);
	/* heartbeat_free from inside peer_lost. */
	ea.free_on_lost = true;
	heartbeat_free(b);
	run_until(loop, &ea.lost, 2, 2000);
	CHECK_EQ(ea.lost, 2);
	loop_free(loop);
}

/* The child runs a heartbeat until killed. */
static void child_heartbeat(uint16_t own, uint16_t peer)
{
	struct loop *loop;
	if (loop_new(&loop) < 0)
		_exit(1);
	struct hb_config c = cfg_for(own, peer, HB_ROLE_PRIMARY, 20, 5);
	struct heartbeat *hb;
	if (heartbeat_start(loop, &c, NULL, &hb) < 0)
		_exit(1);
	loop_run(loop);
	_exit(0);
}

static void test_hung_peer_is_lost_like_a_dead_one(void)
{
	uint16_t pa = free_port(), pb = free_port();
	pid_t pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0)
		child_heartbeat(pa, pb);
	struct loop *loop;
	REQUIRE(loop_new(&loop) == 0);
	struct events e = { 0 };
	struct hb_handlers h = { ev_up, ev_state, ev_lost, &e };
	struct hb_config c = cfg_for(pb, pa, HB_ROLE_SECONDARY, 20, 5);
	struct heartbeat *hb;
	REQUIRE(heartbeat_start(loop, &c, &h, &hb) == 0);
	run_until(loop, &e.up, 1, 2000);
	REQUIRE(e.up == 1);
	kill(pid, SIGSTOP);
	uint64_t t0 = mono_ms();
	run_until(loop, &e.lost, 1, 2000);
	uint64_t took = mono_ms() - t0;
	CHECK_EQ(e.lost, 1);
	CHECK(took <= 300);
	/* It wakes up: the same instance, newer sequence numbers: up again. */
	kill(pid, SIGCONT);
	run_until(loop, &e.up, 2, 2000);
	CHECK_EQ(e.up, 2);
	struct hb_stats s;
	heartbeat_get_stats(hb, &s);
	CHECK_EQ(s.peer_restarts, 0);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	heartbeat_free(hb);
	loop_free(loop);
}

static void send_raw(int fd, uint16_t to, const void *p, size_t n)
{
	struct sockaddr_storage ss;
	socklen_t len;
	set_addr(&ss, &len, to);
	REQUIRE(sendto(fd, p, n, 0, (struct sockaddr *)&ss, len) == (ssize_t)n);
}

static int bound_socket(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_storage ss;
	socklen_t len;
	set_addr(&ss, &len, port);
	REQUIRE(bind(fd, (struct sockaddr *)&ss, len) == 0);
	return fd;
}

static void settle(struct loop *loop)
{
	for (int i = 0; i < 5; i++)
		loop_run_once(loop, 5);
}

static void test_hostile_datagrams_are_counted_and_dropped(void)
{
	struct loop *loop;
	REQUIRE(loop_new(&loop) == 0);
	uint16_t pa = free_port(), pp = free_port(), px = free_port();
	struct events e = { 0 };
	struct hb_handlers h = { ev_up, ev_state, ev_lost, &e };
	struct hb_config c = cfg_for(pa, pp, HB_ROLE_SECONDARY, 1000, 3);
	struct heartbeat *hb;
	REQUIRE(heartbeat_start(loop, &c, &h, &hb) == 0);
	int peer = bound_socket(pp), stranger = bound_socket(px);
	uint8_t good[HB_WIRE_SIZE], bad[HB_WIRE_SIZE + 8];
	struct hb_msg m = { .role = HB_ROLE_PRIMARY, .state = 3, .instance = 42, .seq = 10 };
	hb_encode(&m, good);

	send_raw(stranger, pa, good, sizeof(good)); /* right bytes, wrong sender */
	send_raw(peer, pa, good, sizeof(good) - 1);
	memcpy(bad, good, sizeof(good));
	send_raw(peer, pa, bad, sizeof(good) + 8);
	send_raw(peer, pa, "", 0);
	bad[0] ^= 0xff;
	send_raw(peer, pa, bad, sizeof(good));
	memcpy(bad, good, sizeof(good));
	bad[4] = 2; /* version */
	send_raw(peer, pa, bad, sizeof(good));
	memcpy(bad, good, sizeof(good));
	bad[7] = 1; /* flags */
	send_raw(peer, pa, bad, sizeof(good));
	memcpy(bad, good, sizeof(good));
	bad[5] = 9; /* role */
	send_raw(peer, pa, bad, sizeof(good));
	struct hb_msg same_role = m;
	same_role.role = HB_ROLE_SECONDARY;
	hb_encode(&same_role, bad);
	send_raw(peer, pa, bad, sizeof(good));
	settle(loop);
	struct hb_stats s;
	heartbeat_get_stats(hb, &s);
	CHECK_EQ(s.foreign, 1);
	CHECK_EQ(s.bad_size, 3);
	CHECK_EQ(s.bad_magic, 1);
	CHECK_EQ(s.bad_version, 1);
	CHECK_EQ(s.bad_field, 2);
	CHECK_EQ(s.wrong_role, 1);
	CHECK_EQ(s.rx, 0);
	CHECK_EQ(e.up, 0);
	CHECK(!s.peer_alive);

	send_raw(peer, pa, good, sizeof(good));
	settle(loop);
	CHECK_EQ(e.up, 1);
	CHECK_EQ(e.up_state, 3);
	/* A replay (same or older seq) does not keep a dead peer alive. */
	send_raw(peer, pa, good, sizeof(good));
	m.seq = 5;
	hb_encode(&m, bad);
	send_raw(peer, pa, bad, sizeof(good));
	settle(loop);
	heartbeat_get_stats(hb, &s);
	CHECK_EQ(s.stale, 2);
	CHECK_EQ(s.rx, 1);
	/* An echo of a seq we never sent is no round trip. */
	m.seq = 11;
	m.echo_seq = 1000000;
	hb_encode(&m, bad);
	send_raw(peer, pa, bad, sizeof(good));
	settle(loop);
	heartbeat_get_stats(hb, &s);
	CHECK_EQ(s.rx, 2);
	CHECK_EQ(s.rtt_last_us, 0);
	/* A flood of junk is read in bounded rounds and all counted (200 fit in the
	 * socket's receive buffer; more would be dropped by the kernel). */
	for (int i = 0; i < 200; i++)
		send_raw(peer, pa, "junk", 4);
	for (int i = 0; i < 50; i++)
		loop_run_once(loop, 2);
	heartbeat_get_stats(hb, &s);
	CHECK_EQ(s.bad_size, 203);
	/* A restarted peer agent (new instance) is reported as up again. */
	m.instance = 43;
	m.seq = 1;
	m.echo_seq = 0;
	hb_encode(&m, bad);
	send_raw(peer, pa, bad, sizeof(good));
	settle(loop);
	heartbeat_get_stats(hb, &s);
	CHECK_EQ(s.peer_restarts, 1);
	CHECK_EQ(e.up, 2);
	close(peer);
	close(stranger);
	heartbeat_free(hb);
	loop_free(loop);
}

static void test_wire_round_trip_and_garbage(void)
{
	struct hb_msg m = { .role = 1, .state = 200, .instance = 0x0102030405060708ull,
			    .seq = 77, .echo_seq = 76, .echo_hold_us = 1234 }, d;
	uint8_t b[HB_WIRE_SIZE];
	hb_encode(&m, b);
	CHECK(b[0] == 'C' && b[1] == 'O' && b[2] == 'H' && b[3] == 'B');
	REQUIRE(hb_decode(b, sizeof(b), &d) == HB_OK);
	CHECK(d.role == 1 && d.state == 200 && d.instance == m.instance && d.seq == 77 &&
	      d.echo_seq == 76 && d.echo_hold_us == 1234);
	for (size_t n = 0; n < sizeof(b); n++)
		CHECK(hb_decode(b, n, &d) == HB_BAD_SIZE);
	m.seq = 0;
	hb_encode(&m, b);
	CHECK(hb_decode(b, sizeof(b), &d) == HB_BAD_FIELD);
	m.seq = 1;
	m.echo_hold_us = 60000001;
	hb_encode(&m, b);
	CHECK(hb_decode(b, sizeof(b), &d) == HB_BAD_FIELD);
	/* Random bytes: never accepted with a wrong magic, never a crash. */
	srandom(1);
	for (int i = 0; i < 100000; i++) {
		for (size_t j = 0; j < sizeof(b); j++)
			b[j] = (uint8_t)random();
		enum hb_reject r = hb_decode(b, sizeof(b), &d);
		CHECK(r != HB_OK || (b[0] == 'C' && b[1] == 'O'));
	}
}

static const struct test tests[] = {
	TEST(test_two_peers_see_each_other),
	TEST(test_silent_peer_is_lost_and_comes_back),
	TEST(test_hung_peer_is_lost_like_a_dead_one),
	TEST(test_hostile_datagrams_are_counted_and_dropped),
	TEST(test_wire_round_trip_and_garbage),
	{ 0 },
};
TEST_MAIN(tests)
