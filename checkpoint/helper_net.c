/* helper_net.c - the replication link inside the helper: connect (primary, retried
 * until the timeout, as the secondary's agent may start later), listen and accept
 * one primary (secondary), socket options for bulk transfer with low latency, and
 * moving the encoder's bytes out without blocking the helper's loop. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "checkpoint/helper_int.h"
#include "lib/log.h"
#include "lib/loop.h"

/* Large socket buffers keep the pipe full while the other side copies; 4 MiB is
 * net.core.[rw]mem_max on these hosts (SO_*BUFFORCE goes beyond it as root). */
#define NET_BUF_BYTES (4 << 20)
#define READ_CHUNK (256u << 10)
/* Bytes one wakeup may read before the loop looks at the agent again. */
#define READ_BUDGET (64u << 20)
#define CONNECT_RETRY_MS 100

static void set_buffers(int fd)
{
	int v = NET_BUF_BYTES;
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof(v)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof(v)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
}

/* Checkpoint requests, dirty lists and ACKs are small and latency-bound: Nagle +
 * delayed ACK cost QEMU's own COLO ~40 ms per checkpoint (RIG-NOTES). */
static void set_nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void sock_name(const struct sockaddr *sa, socklen_t len, char *out, size_t n)
{
	char host[REPL_HOST_MAX + 1], port[16];
	if (getnameinfo(sa, len, host, sizeof(host), port, sizeof(port),
			NI_NUMERICHOST | NI_NUMERICSERV))
		snprintf(out, n, "?");
	else
		snprintf(out, n, "%s:%s", host, port);
}

static int resolve(struct helper *h, bool passive, struct addrinfo **out)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0) };
	char port[8];
	snprintf(port, sizeof(port), "%u", h->cfg.peer_port);
	int rc = getaddrinfo(h->cfg.peer_host, port, &hints, out);
	if (rc) {
		log_err("helper: cannot resolve %s: %s", h->peer_name, gai_strerror(rc));
		return -EHOSTUNREACH;
	}
	return 0;
}

/* ---- reading and writing ------------------------------------------------------------ */

static void feed(struct helper *h, const uint8_t *buf, size_t len)
{
	if (h->role)
		h->role->feed(h, buf, len);
	else if (h->pri)
		pri_feed(h, buf, len);
	else
		sec_feed(h, buf, len);
}

static void eof(struct helper *h)
{
	if (h->role)
		h->role->eof(h);
	else if (h->pri)
		pri_eof(h);
	else
		sec_eof(h);
}

/* Read until the socket is empty or the budget is spent. 1 if more may follow. */
static int read_some(struct helper *h, size_t budget)
{
	size_t got = 0;
	while (h->net >= 0 && !h->failing && got < budget) {
		ssize_t n = read(h->net, h->rbuf, h->rbuf_cap);
		if (n > 0) {
			got += (size_t)n;
			feed(h, h->rbuf, (size_t)n);
		} else if (n == 0) {
			eof(h);
			return 0;
		} else if (errno == EAGAIN || errno == EINTR) {
			return errno == EINTR;
		} else {
			helper_fail(h, REPL_BROKEN_CHANNEL, "replication link to %s: %s", h->peer_name,
				    strerror(errno));
			return 0;
		}
	}
	return 1;
}

void helper_net_drain(struct helper *h)
{
	while (h->net >= 0 && !h->failing && read_some(h, READ_BUDGET))
		;
}

static void arm_out(struct helper *h, bool on)
{
	if (h->net_out_armed == on || h->net < 0)
		return;
	h->net_out_armed = on;
	loop_mod_fd(h->loop, h->net, EPOLLIN | (on ? EPOLLOUT : 0));
}

int helper_net_send(struct helper *h)
{
	if (h->net < 0)
		return -1;
	int rc = stream_enc_flush(h->enc, h->net);
	if (rc == -EAGAIN) {
		arm_out(h, true);
		return 1;
	}
	if (rc < 0) {
		helper_fail(h, REPL_BROKEN_CHANNEL, "replication link to %s: send: %s", h->peer_name,
			    strerror(-rc));
		return -1;
	}
	arm_out(h, false);
	return 0;
}

static void drained(struct helper *h)
{
	if (h->role)
		h->role->drained(h);
	else if (h->pri)
		pri_drained(h);
	else
		sec_drained(h);
}

static void net_cb(struct loop *loop, int fd, uint32_t events, void *arg)
{
	struct helper *h = arg;
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		read_some(h, READ_BUDGET);
	if ((events & EPOLLOUT) && h->net >= 0 && !h->failing && helper_net_send(h) == 0)
		drained(h);
	helper_settle(h);
}

void helper_net_flush_blocking(struct helper *h, int timeout_ms)
{
	uint64_t until = mono_ms() + (uint64_t)timeout_ms;
	while (h->net >= 0 && stream_enc_pending(h->enc)) {
		int rc = stream_enc_flush(h->enc, h->net);
		if (rc != -EAGAIN)
			return;
		uint64_t now = mono_ms();
		struct pollfd p = { .fd = h->net, .events = POLLOUT };
		if (now >= until || poll(&p, 1, (int)(until - now)) <= 0)
			return;
	}
}

void helper_net_close(struct helper *h)
{
	if (h->retry_timer)
		loop_timer_cancel(h->loop, h->retry_timer);
	h->retry_timer = 0;
	if (h->net >= 0) {
		loop_del_fd(h->loop, h->net);
		close(h->net);
		h->net = -1;
	}
	if (h->lfd >= 0) {
		loop_del_fd(h->loop, h->lfd);
		close(h->lfd);
		h->lfd = -1;
	}
	h->net_out_armed = false;
	h->connecting = false;
}

void helper_net_free(struct helper *h)
{
	if (h->ai)
		freeaddrinfo(h->ai);
	h->ai = NULL;
	free(h->rbuf);
	h->rbuf = NULL;
}

void helper_net_up(struct helper *h)
{
	int rc = stream_enc_header(h->enc);
	if (rc < 0) {
		helper_fail(h, REPL_LOCAL_ERROR, "cannot encode the stream header: %s", strerror(-rc));
		return;
	}
	log_info("helper: replication link to %s is up", h->peer_name);
	if (h->role)
		h->role->up(h);
	else if (h->pri)
		pri_up(h);
	else
		sec_up(h);
	if (helper_net_send(h) == 0)
		drained(h);
}

static int alloc_rbuf(struct helper *h)
{
	h->rbuf_cap = READ_CHUNK;
	h->rbuf = malloc(h->rbuf_cap);
	return h->rbuf ? 0 : -ENOMEM;
}

/* ---- primary: connect ---------------------------------------------------------------- */

static int64_t retry_cb(struct loop *loop, uint64_t id, void *arg);

static void connect_failed(struct helper *h, int err)
{
	helper_net_close(h);
	if (mono_ms() >= h->connect_deadline_ms) {
		helper_fail(h, REPL_BROKEN_CHANNEL,
			    "cannot connect to the secondary at %s within %u ms: %s; is its agent running and listening there?",
			    h->peer_name, h->cfg.connect_timeout_ms ? h->cfg.connect_timeout_ms
								    : REPL_DEFAULT_CONNECT_MS,
			    strerror(err));
		return;
	}
	if (loop_timer_add(h->loop, CONNECT_RETRY_MS, retry_cb, h, &h->retry_timer) < 0)
		helper_fail(h, REPL_LOCAL_ERROR, "cannot arm the connect retry timer");
}

static void connected(struct helper *h)
{
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(h->net, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err)
		return connect_failed(h, err);
	h->connecting = false;
	loop_mod_fd(h->loop, h->net, EPOLLIN);
	helper_net_up(h);
}

static void connecting_cb(struct loop *loop, int fd, uint32_t events, void *arg)
{
	struct helper *h = arg;
	if (h->connecting)
		connected(h);
	else
		net_cb(loop, fd, events, arg);
	helper_settle(h);
}

static int try_connect(struct helper *h)
{
	const struct addrinfo *ai = h->ai;
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	set_buffers(fd); /* before connect: the window scale is agreed in the handshake */
	set_nodelay(fd);
	h->net = fd;
	h->connecting = true;
	int rc = loop_add_fd(h->loop, fd, EPOLLOUT, connecting_cb, h);
	if (rc < 0) {
		close(fd);
		h->net = -1;
		return rc;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS)
		connect_failed(h, errno);
	return 0;
}

static int64_t retry_cb(struct loop *loop, uint64_t id, void *arg)
{
	struct helper *h = arg;
	h->retry_timer = 0;
	int rc = try_connect(h);
	if (rc < 0)
		helper_fail(h, REPL_LOCAL_ERROR, "cannot create a socket for %s: %s", h->peer_name,
			    strerror(-rc));
	helper_settle(h);
	return LOOP_TIMER_DONE;
}

int helper_net_connect(struct helper *h)
{
	int rc = alloc_rbuf(h);
	if (!rc)
		rc = resolve(h, false, &h->ai);
	if (rc)
		return rc;
	h->connect_deadline_ms = mono_ms() + (h->cfg.connect_timeout_ms ? h->cfg.connect_timeout_ms
									 : REPL_DEFAULT_CONNECT_MS);
	return try_connect(h);
}

/* ---- secondary: listen, accept one --------------------------------------------------- */

/* A second primary gets our header and an ERROR saying why, then the door. */
static void refuse(struct helper *h, int fd, const char *who)
{
	char reason[REPL_HOST_MAX + 128];
	struct stream_enc *e = stream_enc_new(&h->id, STREAM_SECONDARY);
	snprintf(reason, sizeof(reason),
		 "this secondary already replicates the primary at %s; refusing a second primary",
		 h->peer_name);
	log_warn("helper: connection from %s refused: already replicating %s", who, h->peer_name);
	if (e && !stream_enc_header(e) && !stream_enc_error(e, STREAM_ERR_ABORTED, reason))
		stream_enc_flush(e, fd); /* a few hundred bytes into an empty socket */
	stream_enc_free(e);
	close(fd);
}

static void accept_cb(struct loop *loop, int lfd, uint32_t events, void *arg)
{
	struct helper *h = arg;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char who[REPL_HOST_MAX + 24];
	int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	sock_name((struct sockaddr *)&ss, len, who, sizeof(who));
	if (h->net >= 0 || h->failing || h->done) {
		refuse(h, fd, who);
		return;
	}
	set_nodelay(fd);
	snprintf(h->peer_name, sizeof(h->peer_name), "%s", who);
	h->net = fd;
	if (loop_add_fd(loop, fd, EPOLLIN, net_cb, h) < 0) {
		helper_fail(h, REPL_LOCAL_ERROR, "cannot watch the connection from %s", who);
	} else {
		helper_net_up(h);
	}
	helper_settle(h);
}

static int listen_on(struct helper *h, const struct addrinfo *ai)
{
	int one = 1, fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	set_buffers(fd); /* inherited by the accepted socket */
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 4) < 0) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	h->lfd = fd;
	return loop_add_fd(h->loop, fd, EPOLLIN, accept_cb, h);
}

int helper_net_listen(struct helper *h)
{
	struct addrinfo *ai = NULL;
	int rc = alloc_rbuf(h);
	if (!rc)
		rc = resolve(h, true, &ai);
	if (rc)
		return rc;
	rc = listen_on(h, ai);
	if (rc < 0)
		log_err("helper: cannot listen on %s: %s; is another agent using the port?",
			h->peer_name, strerror(-rc));
	else
		log_info("helper: waiting for the primary on %s", h->peer_name);
	freeaddrinfo(ai);
	return rc;
}
