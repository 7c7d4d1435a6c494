/* compare_nfqueue.c - the comparator's kernel path (net/nfqueue.c, tap_io.c,
 * colo-net-setup): what holding a frame in NFQUEUE and releasing it costs.
 *
 * Default: in a private network namespace (root; unshare), a bridge with two veth
 * ports stands for the primary host; UDP frames are injected on the "VM" port one
 * at a time and timed until they appear on the "LAN" port, first bridged plainly,
 * then through colo-net-setup's rules and this program's queue, which accepts each
 * frame as soon as it reads it (a frame the secondary already matched). Prints the
 * latency p50/p99 of both and the difference. Run from the source tree.
 *
 * --serve QUEUE_OUT QUEUE_IN SECONDS HOLD_MS: in the current namespace, read both
 * queues for SECONDS and accept every packet HOLD_MS after it arrived (the
 * integration test tests/integration/test-net-setup.sh uses this); prints
 * "compare_nfqueue: served N packets".
 *
 * Usage: build/bench/compare_nfqueue [frames (default 2000)] | --serve Q_OUT Q_IN S MS */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "lib/loop.h"
#include "net/nfqueue.h"
#include "net/tap_io.h"
#include "tests/unit/test_net_frames.h"

#define MAXN 100000

struct held_pkt {
	struct nfq *q;
	uint64_t id;
};

static struct {
	struct loop *loop;
	struct nfq *qout, *qin;
	uint64_t served, hold_ms;
	bool seen;
	uint64_t lat_ns[MAXN];
} B;

static int sh(const char *cmd)
{
	int rc = system(cmd);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int64_t release_later(struct loop *loop, uint64_t timer_id, void *arg)
{
	struct held_pkt *h = arg;
	nfq_verdict(h->q, h->id, true);
	free(h);
	return LOOP_TIMER_DONE;
}

static void serve_cb(struct nfq *q, const struct nfq_pkt *p)
{
	uint64_t tid;
	struct held_pkt *h = malloc(sizeof(*h));
	B.served++;
	if (!h || !B.hold_ms || loop_timer_add(B.loop, (int64_t)B.hold_ms, release_later, h, &tid)) {
		nfq_verdict(q, p->id, true);
		free(h);
		return;
	}
	*h = (struct held_pkt){ q, p->id };
}

static void on_out(void *arg, const struct nfq_pkt *p)
{
	serve_cb(B.qout, p);
}

static void on_in(void *arg, const struct nfq_pkt *p)
{
	serve_cb(B.qin, p);
}

static int serve(char **argv)
{
	uint64_t end;
	B.hold_ms = strtoull(argv[3], NULL, 10);
	if (loop_new(&B.loop) || nfq_open(B.loop, (uint16_t)atoi(argv[0]), 4096, on_out, NULL, &B.qout) ||
	    nfq_open(B.loop, (uint16_t)atoi(argv[1]), 4096, on_in, NULL, &B.qin)) {
		fprintf(stderr, "compare_nfqueue: cannot bind the queues\n");
		return 1;
	}
	printf("compare_nfqueue: serving\n");
	fflush(stdout);
	end = mono_ms() + strtoull(argv[2], NULL, 10) * 1000;
	while (mono_ms() < end)
		loop_run_once(B.loop, 50);
	printf("compare_nfqueue: served %llu packets\n", (unsigned long long)B.served);
	return 0;
}

static void on_lan(void *arg, const uint8_t *f, size_t n)
{
	struct pkt p;
	if (pkt_parse(f, n, 0, &p) == PKT_UDP && p.dport == 9999)
		B.seen = true;
}

static void accept_now(void *arg, const struct nfq_pkt *p)
{
	nfq_verdict(B.qout, p->id, true);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Inject n frames one at a time; latencies in B.lat_ns, sorted. 0 or -1. */
static int measure(struct tapio *vm, int n)
{
	uint8_t f[128];
	struct tf t = tf_udp(5000, 9999, "latency", 7);
	size_t len = tf_build(&t, f, sizeof(f));
	for (int i = 0; i < n; i++) {
		B.seen = false;
		uint64_t t0 = mono_ns();
		if (tapio_inject(vm, f, len) < 0)
			return -1;
		while (!B.seen && mono_ns() - t0 < 1000000000ull)
			loop_run_once(B.loop, 1);
		if (!B.seen)
			return -1;
		B.lat_ns[i] = mono_ns() - t0;
	}
	qsort(B.lat_ns, (size_t)n, sizeof(B.lat_ns[0]), cmp_u64);
	return 0;
}

static int make_netns(void)
{
	if (unshare(CLONE_NEWNET) < 0) {
		perror("compare_nfqueue: unshare (needs root)");
		return -1;
	}
	return sh("echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6; "
		  "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6; "
		  "ip link add br0 type bridge && ip link add vm0 type veth peer name vmx && "
		  "ip link add eth0 type veth peer name lanx && ip link set vm0 master br0 && "
		  "ip link set eth0 master br0 && "
		  "for i in br0 vm0 vmx eth0 lanx; do ip link set $i up || exit 1; done") == 0
		       ? 0
		       : -1;
}

static void report(const char *what, int n, uint64_t *p50, uint64_t *p99)
{
	*p50 = B.lat_ns[n / 2];
	*p99 = B.lat_ns[(size_t)n * 99 / 100];
	printf("compare_nfqueue: %s p50 %.1f us p99 %.1f us\n", what, (double)*p50 / 1000,
	       (double)*p99 / 1000);
}

int main(int argc, char **argv)
{
	struct tapio *vm, *lan;
	uint64_t b50, b99, q50, q99;
	if (argc == 6 && !strcmp(argv[1], "--serve"))
		return serve(argv + 2);
	int n = argc > 1 ? atoi(argv[1]) : 2000;
	if (n < 1 || n > MAXN || make_netns() < 0 || loop_new(&B.loop) ||
	    tapio_open(B.loop, "vmx", NULL, NULL, &vm) || tapio_open(B.loop, "lanx", on_lan, NULL, &lan))
		return 1;
	if (measure(vm, n) < 0)
		return 1;
	report("bridged", n, &b50, &b99);
	if (sh("COLO_NET_MODE=primary COLO_NET_ACTION=install net/colo-net-setup") != 0 ||
	    nfq_open(B.loop, 0, 4096, accept_now, NULL, &B.qout) || measure(vm, n) < 0)
		return 1;
	report("queued+accepted", n, &q50, &q99);
	printf("compare_nfqueue: added p50 %.1f us p99 %.1f us\n", ((double)q50 - (double)b50) / 1000,
	       ((double)q99 - (double)b99) / 1000);
	nfq_close(B.qout);
	tapio_close(vm);
	tapio_close(lan);
	loop_free(B.loop);
	return 0;
}
