/* heartbeat.c - the UDP endpoint: send every interval, receive and check, measure the
 * round trip, declare the peer lost after interval x misses of silence. */
#include "colo/heartbeat.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/loop.h"

/* Send times of the last 64 datagrams, to turn an echoed seq into a round trip. */
#define HB_RING 64
/* One wakeup reads at most this many datagrams, so a flood cannot starve the loop
 * (epoll is level-triggered: the rest comes next round). */
#define HB_READS_PER_WAKEUP 64
/* Log each kind of bad datagram at most once per this many. */
#define HB_LOG_EVERY 1000

struct heartbeat {
	struct loop *loop;
	struct hb_config cfg;
	struct hb_handlers h;
	int fd;
	uint64_t tx_timer, lost_timer;
	uint64_t instance, seq;
	struct { uint64_t seq, ns; } ring[HB_RING];
	/* the peer */
	bool alive, seen_instance;
	uint64_t peer_instance, peer_seq;
	uint8_t peer_role, peer_state;
	uint64_t last_rx_ns, last_rx_peer_seq;
	struct hb_stats st;
	int depth; /* handler calls in progress */
	bool freed;
};

static const char *const reject_names[] = {
	[HB_BAD_SIZE] = "wrong size", [HB_BAD_MAGIC] = "wrong magic",
	[HB_BAD_VERSION] = "unknown version", [HB_BAD_FIELD] = "bad field",
};

static const char *addr_str(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)ss;
		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		port = ntohs(a->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)ss;
		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		port = ntohs(a->sin6_port);
	}
	snprintf(buf, len, ss->ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", host, port);
	return buf;
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
	return x->sin6_port == y->sin6_port &&
	       !memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr));
}

/* Handlers may free hb: call them between these two, and stop if the end says so. */
static void cb_begin(struct heartbeat *hb)
{
	hb->depth++;
}

static bool cb_end(struct heartbeat *hb)
{
	if (--hb->depth == 0 && hb->freed) {
		free(hb);
		return false;
	}
	return !hb->freed;
}

static void send_beat(struct heartbeat *hb)
{
	struct hb_msg m = {
		.role = hb->cfg.role,
		.state = hb->cfg.state,
		.instance = hb->instance,
		.seq = ++hb->seq,
		.echo_seq = hb->last_rx_peer_seq,
	};
	uint64_t now = mono_ns();
	if (m.echo_seq) {
		uint64_t hold = (now - hb->last_rx_ns) / 1000;
		m.echo_hold_us = hold > 60000000 ? 60000000 : (uint32_t)hold;
	}
	uint8_t buf[HB_WIRE_SIZE];
	hb_encode(&m, buf);
	hb->ring[m.seq % HB_RING].seq = m.seq;
	hb->ring[m.seq % HB_RING].ns = now;
	if (sendto(hb->fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_NOSIGNAL,
		   (const struct sockaddr *)&hb->cfg.peer, hb->cfg.peer_len) < 0) {
		/* ECONNREFUSED while the peer is down is expected: count, log rarely. */
		char peer[80];
		if (hb->st.tx_errors++ % HB_LOG_EVERY == 0)
			log_msg(errno == ECONNREFUSED ? LOG_DEBUG : LOG_WARN,
				"heartbeat: cannot send to %s: %s (%llu failures so far); check "
				"--heartbeat-peer and the route to it",
				addr_str(&hb->cfg.peer, peer, sizeof(peer)), strerror(errno),
				(unsigned long long)hb->st.tx_errors);
		return;
	}
	hb->st.tx++;
}

static int64_t on_tx_timer(struct loop *loop, uint64_t id, void *arg)
{
	struct heartbeat *hb = arg;
	send_beat(hb);
	return hb->cfg.interval_ms;
}

static uint64_t timeout_ms(const struct heartbeat *hb)
{
	return (uint64_t)hb->cfg.interval_ms * hb->cfg.misses;
}

static int64_t on_lost_timer(struct loop *loop, uint64_t id, void *arg)
{
	struct heartbeat *hb = arg;
	hb->lost_timer = 0;
	if (!hb->alive)
		return LOOP_TIMER_DONE;
	uint64_t silent = (mono_ns() - hb->last_rx_ns) / 1000000;
	if (silent < timeout_ms(hb)) { /* the loop's timers are in whole ms: not yet */
		hb->lost_timer = id;
		return (int64_t)(timeout_ms(hb) - silent);
	}
	hb->alive = false;
	hb->st.losses++;
	char peer[80];
	log_warn("heartbeat: peer %s silent for %llu ms (%u x %u ms): peer lost",
		 addr_str(&hb->cfg.peer, peer, sizeof(peer)), (unsigned long long)silent,
		 hb->cfg.misses, hb->cfg.interval_ms);
	if (hb->h.peer_lost) {
		cb_begin(hb);
		hb->h.peer_lost(hb, silent, hb->h.arg);
		cb_end(hb);
	}
	return LOOP_TIMER_DONE;
}

static void arm_lost_timer(struct heartbeat *hb)
{
	if (hb->lost_timer)
		loop_timer_cancel(hb->loop, hb->lost_timer);
	hb->lost_timer = 0;
	if (loop_timer_add(hb->loop, (int64_t)timeout_ms(hb), on_lost_timer, hb, &hb->lost_timer) < 0)
		log_err("heartbeat: cannot arm the silence timer (out of memory): peer loss "
			"would go unnoticed");
}

static void measure_rtt(struct heartbeat *hb, const struct hb_msg *m, uint64_t now)
{
	if (!m->echo_seq || m->echo_seq > hb->seq || hb->ring[m->echo_seq % HB_RING].seq != m->echo_seq)
		return;
	uint64_t elapsed = (now - hb->ring[m->echo_seq % HB_RING].ns) / 1000;
	if (m->echo_hold_us > elapsed)
		return; /* the peer's clock is not ours: nonsense, skip */
	uint64_t rtt = elapsed - m->echo_hold_us;
	hb->st.rtt_last_us = rtt;
	hb->st.rtt_avg_us = hb->st.rtt_avg_us ? (hb->st.rtt_avg_us * 7 + rtt) / 8 : rtt;
}

static void count_bad(struct heartbeat *hb, uint64_t *counter, const char *what,
		      const struct sockaddr_storage *from)
{
	char src[80];
	if ((*counter)++ % HB_LOG_EVERY == 0)
		log_warn("heartbeat: dropped a datagram from %s: %s (%llu so far); another "
			 "agent or a misconfigured --heartbeat-peer?",
			 addr_str(from, src, sizeof(src)), what, (unsigned long long)*counter);
}

/* A valid datagram from the peer; false if a handler freed hb. */
static bool accept_beat(struct heartbeat *hb, const struct hb_msg *m,
			const struct sockaddr_storage *from)
{
	uint64_t now = mono_ns();
	bool restarted = hb->seen_instance && m->instance != hb->peer_instance;
	if (!restarted && hb->seen_instance && m->seq <= hb->peer_seq) {
		count_bad(hb, &hb->st.stale, "old sequence number (duplicate or replay)", from);
		return true;
	}
	if (m->role == hb->cfg.role) {
		count_bad(hb, &hb->st.wrong_role, "the peer has our role (two primaries or two "
			  "secondaries?)", from);
		return true;
	}
	if (restarted) {
		hb->st.peer_restarts++;
		log_warn("heartbeat: the peer agent restarted (instance %016llx -> %016llx)",
			 (unsigned long long)hb->peer_instance, (unsigned long long)m->instance);
	}
	bool was_alive = hb->alive && !restarted;
	uint8_t old_state = hb->peer_state;
	hb->seen_instance = true;
	hb->peer_instance = m->instance;
	hb->peer_seq = m->seq;
	hb->peer_role = m->role;
	hb->peer_state = m->state;
	hb->last_rx_ns = now;
	hb->last_rx_peer_seq = m->seq;
	hb->alive = true;
	hb->st.rx++;
	measure_rtt(hb, m, now);
	arm_lost_timer(hb);
	cb_begin(hb);
	if (!was_alive && hb->h.peer_up)
		hb->h.peer_up(hb, m->role, m->state, hb->h.arg);
	else if (was_alive && old_state != m->state && hb->h.peer_state)
		hb->h.peer_state(hb, m->state, hb->h.arg);
	return cb_end(hb);
}

static void on_readable(struct loop *loop, int fd, uint32_t events, void *arg)
{
	struct heartbeat *hb = arg;
	for (int i = 0; i < HB_READS_PER_WAKEUP; i++) {
		uint8_t buf[HB_WIRE_SIZE + 1];
		struct sockaddr_storage from;
		socklen_t flen = sizeof(from);
		ssize_t n = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC,
				     (struct sockaddr *)&from, &flen);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNREFUSED)
				log_warn("heartbeat: receive failed: %s", strerror(errno));
			return;
		}
		if (!same_addr(&from, &hb->cfg.peer)) {
			count_bad(hb, &hb->st.foreign, "not from the configured peer", &from);
			continue;
		}
		struct hb_msg m;
		enum hb_reject why = hb_decode(buf, (size_t)n, &m);
		if (why != HB_OK) {
			uint64_t *c[] = { [HB_BAD_SIZE] = &hb->st.bad_size,
					  [HB_BAD_MAGIC] = &hb->st.bad_magic,
					  [HB_BAD_VERSION] = &hb->st.bad_version,
					  [HB_BAD_FIELD] = &hb->st.bad_field };
			count_bad(hb, c[why], reject_names[why], &from);
			continue;
		}
		if (!accept_beat(hb, &m, &from))
			return;
	}
}

static int open_socket(const struct hb_config *cfg)
{
	int fd = socket(cfg->bind.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1, prio = 6, tos = IPTOS_PREC_INTERNETCONTROL;
	/* Ahead of bulk traffic in the qdisc, and marked as network control. */
	setsockopt(fd, SOL_SOCKET, SO_PRIORITY, &prio, sizeof(prio));
	if (cfg->bind.ss_family == AF_INET)
		setsockopt(fd, IPPROTO_IP, IP_TOS, &tos, sizeof(tos));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&cfg->bind, cfg->bind_len) < 0) {
		int r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

int heartbeat_start(struct loop *loop, const struct hb_config *cfg, const struct hb_handlers *h,
		    struct heartbeat **out)
{
	char a[80];
	if (cfg->interval_ms == 0 || cfg->misses < 1)
		return -EINVAL;
	struct heartbeat *hb = calloc(1, sizeof(*hb));
	if (!hb)
		return -ENOMEM;
	hb->loop = loop;
	hb->cfg = *cfg;
	if (h)
		hb->h = *h;
	if (getrandom(&hb->instance, sizeof(hb->instance), 0) != sizeof(hb->instance))
		hb->instance = mono_ns() ^ ((uint64_t)getpid() << 32);
	int r = open_socket(cfg);
	if (r < 0) {
		log_err("heartbeat: cannot bind UDP %s: %s; is another agent using it? (see "
			"--heartbeat-bind)", addr_str(&cfg->bind, a, sizeof(a)), strerror(-r));
		free(hb);
		return r;
	}
	hb->fd = r;
	r = loop_add_fd(loop, hb->fd, EPOLLIN, on_readable, hb);
	if (r == 0)
		r = loop_timer_add(loop, cfg->interval_ms, on_tx_timer, hb, &hb->tx_timer);
	if (r < 0) {
		heartbeat_free(hb);
		return r;
	}
	send_beat(hb);
	*out = hb;
	return 0;
}

void heartbeat_set_state(struct heartbeat *hb, uint8_t state)
{
	if (hb->cfg.state == state)
		return;
	hb->cfg.state = state;
	send_beat(hb);
}

void heartbeat_send_now(struct heartbeat *hb)
{
	send_beat(hb);
}

void heartbeat_get_stats(const struct heartbeat *hb, struct hb_stats *out)
{
	*out = hb->st;
	out->peer_alive = hb->alive;
	out->peer_role = hb->peer_role;
	out->peer_state = hb->peer_state;
	out->peer_instance = hb->peer_instance;
	out->last_rx_age_ms = hb->seen_instance ? (mono_ns() - hb->last_rx_ns) / 1000000 : UINT64_MAX;
}

uint16_t heartbeat_port(const struct heartbeat *hb)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getsockname(hb->fd, (struct sockaddr *)&ss, &len) < 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

void heartbeat_free(struct heartbeat *hb)
{
	if (!hb || hb->freed)
		return;
	loop_del_fd(hb->loop, hb->fd);
	close(hb->fd);
	loop_timer_cancel(hb->loop, hb->tx_timer);
	if (hb->lost_timer)
		loop_timer_cancel(hb->loop, hb->lost_timer);
	hb->freed = true;
	if (hb->depth == 0)
		free(hb);
}
