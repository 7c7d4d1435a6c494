/* Tests of the kernel plumbing: net/colo-net-setup, net/nfqueue.c, net/tap_io.c.
 * Each test runs in its own forked child (the harness) which unshares a private
 * network namespace, so nothing touches the host: a bridge br0 with two veth ports,
 * vm0 (peer vmx: the "VM") and eth0 (peer lanx: the "LAN"), the primary's rules
 * from colo-net-setup, and frames injected and captured with AF_PACKET (tap_io).
 * Needs root, iptables-legacy and br_netfilter; skips without them. Run from the
 * source tree (the script is net/colo-net-setup). */
#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/loop.h"
#include "net/nfqueue.h"
#include "net/tap_io.h"
#include "tests/harness/test.h"
#include "tests/unit/test_net_frames.h"

#define QOUT 3
#define QIN 4
#define MAXF 256

struct ctx {
	struct loop *loop;
	struct nfq *qout, *qin;
	struct tapio *vm, *lan;
	uint64_t out_ids[MAXF], in_ids[MAXF];
	int nout, nin;
	uint32_t out_physin;
	int lan_seen, vm_seen;
	uint16_t lan_ports[MAXF]; /* UDP destination port of each frame seen on the LAN */
	uint8_t last_lan[2048];
	size_t last_lan_len;
	uint8_t last_queued[2048];
	size_t last_queued_len;
};

static struct ctx C;

static int sh(const char *cmd)
{
	int rc = system(cmd);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int setup_script(const char *action)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd),
		 "COLO_NET_MODE=primary COLO_NET_ACTION=%s COLO_NET_QUEUE_OUT=%d "
		 "COLO_NET_QUEUE_IN=%d net/colo-net-setup",
		 action, QOUT, QIN);
	return sh(cmd);
}

/* The frames we inject are UDP to port 9000 + n; everything else (IPv6 chatter of
 * the kernel) is ignored. */
static int udp_port_of(const uint8_t *f, size_t n)
{
	struct pkt p;
	if (pkt_parse(f, n, 0, &p) != PKT_UDP || p.dport < 9000 || p.dport >= 9000 + MAXF)
		return -1;
	return p.dport;
}

static void on_out(void *arg, const struct nfq_pkt *p)
{
	if (udp_port_of(p->frame, p->len) < 0 || C.nout == MAXF) {
		nfq_verdict(C.qout, p->id, true);
		return;
	}
	C.out_ids[C.nout++] = p->id;
	C.out_physin = p->physindev;
	memcpy(C.last_queued, p->frame, p->len < 2048 ? p->len : 2048);
	C.last_queued_len = p->len;
}

static void on_in(void *arg, const struct nfq_pkt *p)
{
	if (udp_port_of(p->frame, p->len) < 0 || C.nin == MAXF) {
		nfq_verdict(C.qin, p->id, true);
		return;
	}
	C.in_ids[C.nin++] = p->id;
}

static void on_lan(void *arg, const uint8_t *f, size_t n)
{
	int port = udp_port_of(f, n);
	if (port < 0 && !(n >= 14 && f[12] == 0x08 && f[13] == 0x06))
		return;
	if (C.lan_seen < MAXF)
		C.lan_ports[C.lan_seen] = (uint16_t)port;
	C.lan_seen++;
	memcpy(C.last_lan, f, n < 2048 ? n : 2048);
	C.last_lan_len = n;
}

static void on_vm(void *arg, const uint8_t *f, size_t n)
{
	if (udp_port_of(f, n) >= 0)
		C.vm_seen++;
}

/* Run the loop for up to ms, or until *until >= want. */
static void pump(int ms, const int *until, int want)
{
	uint64_t end = mono_ms() + (uint64_t)ms;
	while (mono_ms() < end && !(until && *until >= want))
		loop_run_once(C.loop, 10);
}

static void netns_or_skip(void)
{
	if (geteuid() != 0)
		test_skip("needs root (network namespaces, iptables)");
	if (sh("command -v iptables-legacy >/dev/null && command -v ip >/dev/null") != 0)
		test_skip("needs iptables-legacy and ip");
	if (unshare(CLONE_NEWNET) < 0)
		test_skip("unshare(CLONE_NEWNET): %s", strerror(errno));
	if (access("/proc/sys/net/bridge/bridge-nf-call-iptables", W_OK) < 0)
		test_skip("br_netfilter is not available");
	REQUIRE(access("net/colo-net-setup", X_OK) == 0);
	/* No IPv6 chatter (router solicitations, DAD) through the bridge. */
	REQUIRE(sh("echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; "
		   "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6") == 0);
	REQUIRE(sh("ip link add br0 type bridge && "
		   "ip link add vm0 type veth peer name vmx && "
		   "ip link add eth0 type veth peer name lanx && "
		   "ip link set vm0 master br0 && ip link set eth0 master br0 && "
		   "for i in br0 vm0 vmx eth0 lanx; do ip link set $i up || exit 1; done") == 0);
}

static void open_all(void)
{
	memset(&C, 0, sizeof(C));
	REQUIRE(loop_new(&C.loop) == 0);
	REQUIRE(setup_script("install") == 0);
	REQUIRE(nfq_open(C.loop, QOUT, 1024, on_out, NULL, &C.qout) == 0);
	REQUIRE(nfq_open(C.loop, QIN, 1024, on_in, NULL, &C.qin) == 0);
	REQUIRE(tapio_open(C.loop, "vmx", on_vm, NULL, &C.vm) == 0);
	REQUIRE(tapio_open(C.loop, "lanx", on_lan, NULL, &C.lan) == 0);
}

static void close_all(void)
{
	tapio_close(C.vm);
	tapio_close(C.lan);
	nfq_close(C.qout);
	nfq_close(C.qin);
	loop_free(C.loop);
}

static size_t udp_frame(uint8_t *f, size_t cap, int n, bool to_vm)
{
	struct tf t = tf_udp(5000, (uint16_t)(9000 + n), "colo-net-test", 13);
	size_t len = tf_build(&t, f, cap);
	if (to_vm) { /* swap the MACs: the VM's address is the destination */
		uint8_t mac[6];
		memcpy(mac, f, 6);
		memcpy(f, f + 6, 6);
		memcpy(f + 6, mac, 6);
	}
	return len;
}

static void test_output_held_until_accept(void)
{
	uint8_t f[256];
	netns_or_skip();
	open_all();
	size_t n = udp_frame(f, sizeof(f), 0, false);
	REQUIRE(tapio_inject(C.vm, f, n) == 0);
	pump(2000, &C.nout, 1);
	REQUIRE(C.nout == 1);
	CHECK_EQ(C.out_physin, if_nametoindex("vm0"));
	/* The synthesized frame carries the same IP packet. */
	CHECK_EQ(C.last_queued_len, n);
	CHECK(!memcmp(C.last_queued + 6, f + 6, 6)); /* source MAC from the kernel */
	CHECK(!memcmp(C.last_queued + 12, f + 12, n - 12));
	pump(300, NULL, 0);
	CHECK_EQ(C.lan_seen, 0); /* held */
	REQUIRE(nfq_verdict(C.qout, C.out_ids[0], true) == 0);
	pump(2000, &C.lan_seen, 1);
	CHECK_EQ(C.lan_seen, 1);
	CHECK_EQ(C.last_lan_len, n);
	CHECK(!memcmp(C.last_lan, f, n));
	struct nfq_stats st;
	nfq_get_stats(C.qout, &st);
	CHECK(st.accepted >= 1);
	close_all();
}

static void test_drop_verdict(void)
{
	uint8_t f[256];
	netns_or_skip();
	open_all();
	size_t n = udp_frame(f, sizeof(f), 1, false);
	REQUIRE(tapio_inject(C.vm, f, n) == 0);
	pump(2000, &C.nout, 1);
	REQUIRE(C.nout == 1);
	REQUIRE(nfq_verdict(C.qout, C.out_ids[0], false) == 0);
	pump(300, NULL, 0);
	CHECK_EQ(C.lan_seen, 0);
	close_all();
}

static void test_input_queued_to_the_input_queue(void)
{
	uint8_t f[256];
	netns_or_skip();
	open_all();
	size_t n = udp_frame(f, sizeof(f), 2, true);
	REQUIRE(tapio_inject(C.lan, f, n) == 0);
	pump(2000, &C.nin, 1);
	REQUIRE(C.nin == 1);
	CHECK_EQ(C.nout, 0);
	CHECK_EQ(C.vm_seen, 0);
	REQUIRE(nfq_verdict(C.qin, C.in_ids[0], true) == 0);
	pump(2000, &C.vm_seen, 1);
	CHECK_EQ(C.vm_seen, 1);
	close_all();
}

static void test_release_out_of_order(void)
{
	uint8_t f[256];
	netns_or_skip();
	open_all();
	for (int i = 0; i < 50; i++) {
		size_t n = udp_frame(f, sizeof(f), i, false);
		REQUIRE(tapio_inject(C.vm, f, n) == 0);
	}
	pump(3000, &C.nout, 50);
	REQUIRE(C.nout == 50);
	for (int i = 49; i >= 0; i--)
		REQUIRE(nfq_verdict(C.qout, C.out_ids[i], true) == 0);
	pump(3000, &C.lan_seen, 50);
	CHECK_EQ(C.lan_seen, 50);
	CHECK_EQ(C.lan_ports[0], 9049); /* released in verdict order, not arrival order */
	CHECK_EQ(C.lan_ports[49], 9000);
	close_all();
}

static void test_arp_is_not_queued(void)
{
	uint8_t f[64];
	netns_or_skip();
	open_all();
	struct tf a = { .family = 0 };
	size_t n = tf_build(&a, f, sizeof(f));
	REQUIRE(tapio_inject(C.vm, f, n) == 0);
	pump(2000, &C.lan_seen, 1);
	CHECK_EQ(C.lan_seen, 1);
	CHECK_EQ(C.nout, 0);
	close_all();
}

/* Without an agent reading, frames wait in the kernel and then drop: none leaks. */
static void test_no_reader_no_leak(void)
{
	uint8_t f[256];
	netns_or_skip();
	memset(&C, 0, sizeof(C));
	REQUIRE(loop_new(&C.loop) == 0);
	REQUIRE(setup_script("install") == 0);
	REQUIRE(tapio_open(C.loop, "lanx", on_lan, NULL, &C.lan) == 0);
	REQUIRE(tapio_open(C.loop, "vmx", NULL, NULL, &C.vm) == 0);
	size_t n = udp_frame(f, sizeof(f), 3, false);
	REQUIRE(tapio_inject(C.vm, f, n) == 0);
	pump(300, NULL, 0);
	CHECK_EQ(C.lan_seen, 0);
	/* Removed: frames flow unexamined again. */
	REQUIRE(setup_script("remove") == 0);
	REQUIRE(tapio_inject(C.vm, f, n) == 0);
	pump(2000, &C.lan_seen, 1);
	CHECK_EQ(C.lan_seen, 1);
	close_all();
}

static void test_setup_idempotent_and_clean(void)
{
	netns_or_skip();
	REQUIRE(setup_script("install") == 0);
	REQUIRE(sh("(iptables-legacy -S; ip6tables-legacy -S) > /tmp/colo-a.$PPID") == 0);
	REQUIRE(setup_script("install") == 0);
	REQUIRE(sh("(iptables-legacy -S; ip6tables-legacy -S) | "
		   "cmp -s - /tmp/colo-a.$PPID") == 0);
	CHECK_EQ(setup_script("check"), 0);
	CHECK_EQ(sh("grep -c 'NFQUEUE' /tmp/colo-a.$PPID | grep -qx 4"), 0);
	REQUIRE(setup_script("remove") == 0);
	CHECK_EQ(sh("(iptables-legacy -S; ip6tables-legacy -S) | grep -q COLO"), 1);
	CHECK(setup_script("check") != 0);
	REQUIRE(setup_script("remove") == 0);
	sh("rm -f /tmp/colo-a.$PPID");
	CHECK_EQ(tapio_open(NULL, "nonexistent0", NULL, NULL, &C.vm), -ENODEV);
}

static const struct test tests[] = {
	TEST(test_output_held_until_accept),
	TEST(test_drop_verdict),
	TEST(test_input_queued_to_the_input_queue),
	TEST(test_release_out_of_order),
	TEST(test_arp_is_not_queued),
	TEST(test_no_reader_no_leak),
	TEST(test_setup_idempotent_and_clean),
	{ 0 },
};
TEST_MAIN(tests)
