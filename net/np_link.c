/* np_link.c - the net link's socket (docs/net-link.md): the secondary listens, the
 * primary connects and retries every NPL_RETRY_MS; one connection at a time, a
 * newer one replaces the old. Writes are buffered (np->out) and never block the
 * loop; a peer that stops reading past NPL_OUT_MAX is dropped rather than letting
 * the agent's memory grow without bound. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/loop.h"
#include "net/np_int.h"

#define NPL_RETRY_MS 200
#define NPL_OUT_MAX (64u << 20)

static const char *side(const struct netpath *np)
{
	return np->primary ? "net link (primary)" : "net link (secondary)";
}

static void close_conn(struct netpath *np)
{
	if (np->fd >= 0) {
		loop_del_fd(np->loop, np->fd);
		close(np->fd);
	}
	np->fd = -1;
	np->up = np->connecting = false;
	wr_reset(&np->out);
	np->out_sent = 0;
	link_dec_free(np->dec);
	np->dec = NULL;
}

static int64_t on_retry(struct loop *loop, uint64_t id, void *arg);

static void arm_retry(struct netpath *np)
{
	if (np->primary && !np->retry_timer)
		loop_timer_add(np->loop, NPL_RETRY_MS, on_retry, np, &np->retry_timer);
}

void npl_drop(struct netpath *np, const char *why)
{
	if (np->up)
		log_warn("%s: connection lost: %s; %s", side(np), why,
			 np->primary ? "reconnecting (held output waits for checkpoints)"
				     : "waiting for the primary to reconnect");
	np->st.link_errors++;
	close_conn(np);
	arm_retry(np);
}

void npl_flush(struct netpath *np)
{
	if (np->fd < 0 || !np->up)
		return;
	if (np->out.err) {
		npl_drop(np, "cannot buffer output (out of memory)");
		return;
	}
	while (np->out_sent < np->out.len) {
		ssize_t n = send(np->fd, np->out.buf + np->out_sent, np->out.len - np->out_sent,
				 MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			npl_drop(np, n < 0 ? strerror(errno) : "short write");
			return;
		}
		np->out_sent += (size_t)n;
	}
	if (np->out_sent == np->out.len) {
		wr_reset(&np->out);
		np->out_sent = 0;
		loop_mod_fd(np->loop, np->fd, EPOLLIN);
		return;
	}
	if (np->out.len - np->out_sent > NPL_OUT_MAX) {
		npl_drop(np, "the peer does not read (64 MiB unsent)");
		return;
	}
	loop_mod_fd(np->loop, np->fd, EPOLLIN | EPOLLOUT);
}

static void read_some(struct netpath *np)
{
	uint8_t buf[65536];
	ssize_t n = recv(np->fd, buf, sizeof(buf), 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		npl_drop(np, n < 0 ? strerror(errno) : "closed by the peer");
		return;
	}
	size_t at = 0;
	while (at < (size_t)n) {
		struct link_rec rec;
		size_t used = 0;
		int r = link_dec_feed(np->dec, buf + at, (size_t)n - at, &used, &rec);
		at += used;
		if (r == 1) {
			nps_record(np, &rec);
			if (np->fd < 0)
				return; /* the record dropped the connection */
			continue;
		}
		if (r < 0) {
			char why[200];
			snprintf(why, sizeof(why), "corrupt stream: %s", link_dec_reason(np->dec));
			npl_drop(np, why);
			return;
		}
		break;
	}
}

static int become_up(struct netpath *np)
{
	int one = 1;
	setsockopt(np->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	int r = link_dec_new(np->primary ? LINK_PRIMARY : LINK_SECONDARY, np->config_hash, &np->dec);
	if (r < 0)
		return r;
	np->up = true;
	np->connecting = false;
	np->st.link_connects++;
	link_enc_header(&np->out, np->primary ? LINK_PRIMARY : LINK_SECONDARY, np->config_hash);
	log_info("%s: connected", side(np));
	nps_link_up(np);
	npl_flush(np);
	return 0;
}

static void on_conn(struct loop *loop, int fd, uint32_t ev, void *arg)
{
	struct netpath *np = arg;
	if (np->connecting) {
		int err = 0;
		socklen_t l = sizeof(err);
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
		if (err) {
			np->connecting = false;
			log_debug("%s: connect to %s:%u: %s", side(np), np->peer_host, np->port,
				  strerror(err));
			close_conn(np);
			arm_retry(np);
			return;
		}
		if (become_up(np) < 0)
			npl_drop(np, "out of memory");
		return;
	}
	if (ev & EPOLLOUT)
		npl_flush(np);
	if (np->fd >= 0 && (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		read_some(np);
}

static int connect_now(struct netpath *np)
{
	struct sockaddr_storage ss = { 0 };
	socklen_t sl;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, np->peer_host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(np->port);
		sl = sizeof(*s4);
	} else if (inet_pton(AF_INET6, np->peer_host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(np->port);
		sl = sizeof(*s6);
	} else {
		log_err("%s: '%s' is not a numeric address", side(np), np->peer_host);
		return -EINVAL;
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&ss, sl) < 0 && errno != EINPROGRESS) {
		int r = -errno;
		close(fd);
		return r;
	}
	int r = loop_add_fd(np->loop, fd, EPOLLOUT, on_conn, np);
	if (r < 0) {
		close(fd);
		return r;
	}
	np->fd = fd;
	np->connecting = true;
	return 0;
}

static int64_t on_retry(struct loop *loop, uint64_t id, void *arg)
{
	struct netpath *np = arg;
	np->retry_timer = 0;
	if (np->fd < 0 && connect_now(np) < 0)
		arm_retry(np);
	return LOOP_TIMER_DONE;
}

static void on_accept(struct loop *loop, int lfd, uint32_t ev, void *arg)
{
	struct netpath *np = arg;
	int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	if (np->fd >= 0) {
		log_info("%s: a new connection from the primary replaces the old one", side(np));
		close_conn(np);
	}
	if (loop_add_fd(loop, fd, EPOLLIN, on_conn, np) < 0) {
		close(fd);
		return;
	}
	np->fd = fd;
	if (become_up(np) < 0)
		npl_drop(np, "out of memory");
}

static int listen_now(struct netpath *np)
{
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), r, one = 1;
	if (fd < 0)
		return -errno;
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_port = htons(np->port),
				   .sin6_addr = in6addr_any };
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) {
		r = -errno;
		log_err("%s: cannot listen on port %u: %s (another agent? see --net-link-port)",
			side(np), np->port, strerror(-r));
		goto out;
	}
	r = loop_add_fd(np->loop, fd, EPOLLIN, on_accept, np);
	if (r < 0)
		goto out;
	np->lfd = fd;
	return 0;
out:
	close(fd);
	return r;
}

int npl_start(struct netpath *np)
{
	if (!np->primary)
		return listen_now(np);
	int r = connect_now(np);
	if (r == -EINVAL)
		return r;
	if (r < 0)
		arm_retry(np);
	return 0;
}

void npl_stop(struct netpath *np)
{
	close_conn(np);
	if (np->retry_timer)
		loop_timer_cancel(np->loop, np->retry_timer);
	np->retry_timer = 0;
	if (np->lfd >= 0) {
		loop_del_fd(np->loop, np->lfd);
		close(np->lfd);
	}
	np->lfd = -1;
	wr_free(&np->out);
}
