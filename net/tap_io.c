/* tap_io.c - AF_PACKET on the secondary's tap (net/tap_io.h). */
#include "net/tap_io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/loop.h"

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

#define RCVBUF (8 << 20)
#define FRAME_MAX 65536

struct tapio {
	struct loop *loop;
	int fd, ifindex;
	bool on_loop;
	tapio_cb cb;
	void *arg;
	struct tapio_stats st;
	uint8_t buf[FRAME_MAX + 4];
};

/* The kernel took the VLAN tag off into auxdata: put it back after the MACs. */
static size_t restore_vlan(struct tapio *t, size_t len, const struct tpacket_auxdata *aux)
{
	if (!(aux->tp_status & TP_STATUS_VLAN_VALID) || len < 12 || len + 4 > sizeof(t->buf))
		return len;
	uint16_t tpid = aux->tp_status & TP_STATUS_VLAN_TPID_VALID ? aux->tp_vlan_tpid : 0x8100;
	memmove(t->buf + 16, t->buf + 12, len - 12);
	t->buf[12] = (uint8_t)(tpid >> 8);
	t->buf[13] = (uint8_t)tpid;
	t->buf[14] = (uint8_t)(aux->tp_vlan_tci >> 8);
	t->buf[15] = (uint8_t)aux->tp_vlan_tci;
	return len + 4;
}

/* One frame: 1 read, 0 nothing more, negative errno. */
static int read_one(struct tapio *t)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(sizeof(struct tpacket_auxdata))];
	} ctl;
	struct sockaddr_ll from;
	struct iovec iov = { t->buf, FRAME_MAX };
	struct msghdr mh = { .msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &iov,
			     .msg_iovlen = 1, .msg_control = &ctl, .msg_controllen = sizeof(ctl) };
	ssize_t n = recvmsg(t->fd, &mh, MSG_DONTWAIT);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
	if (from.sll_pkttype == PACKET_OUTGOING)
		return 1; /* our own injection, on a kernel without PACKET_IGNORE_OUTGOING */
	if (mh.msg_flags & MSG_TRUNC) {
		t->st.truncated++;
		return 1;
	}
	size_t len = (size_t)n;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_PACKET && c->cmsg_type == PACKET_AUXDATA) {
			struct tpacket_auxdata aux;
			memcpy(&aux, CMSG_DATA(c), sizeof(aux));
			len = restore_vlan(t, len, &aux);
		}
	t->st.captured++;
	if (t->cb)
		t->cb(t->arg, t->buf, len);
	return 1;
}

int tapio_drain(struct tapio *t)
{
	int rc;
	while ((rc = read_one(t)) > 0)
		;
	if (rc < 0) {
		t->st.read_errors++;
		log_err("net: reading the tap: %s", strerror(-rc));
	}
	return rc;
}

static void on_readable(struct loop *loop, int fd, uint32_t events, void *arg)
{
	tapio_drain(arg);
}

int tapio_inject(struct tapio *t, const uint8_t *frame, size_t len)
{
	ssize_t n = send(t->fd, frame, len, MSG_DONTWAIT);
	if (n == (ssize_t)len) {
		t->st.injected++;
		return 0;
	}
	t->st.inject_errors++;
	return n < 0 ? -errno : -EIO;
}

static int setup_socket(struct tapio *t, const char *ifname)
{
	int one = 1, rcvbuf = RCVBUF;
	if (!(t->ifindex = (int)if_nametoindex(ifname)))
		return -ENODEV;
	/* Protocol 0 until bound: no frame of another interface is queued meanwhile. */
	if ((t->fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	if (setsockopt(t->fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof(one)) < 0)
		return -errno;
	setsockopt(t->fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)); /* >= 4.20 */
	if (setsockopt(t->fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0)
		setsockopt(t->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
				   .sll_ifindex = t->ifindex };
	if (bind(t->fd, (struct sockaddr *)&sll, sizeof(sll)) < 0)
		return -errno;
	return 0;
}

int tapio_open(struct loop *loop, const char *ifname, tapio_cb cb, void *arg,
	       struct tapio **out)
{
	int rc = -ENOMEM;
	struct tapio *t = calloc(1, sizeof(*t));
	if (!t)
		goto out;
	t->loop = loop;
	t->fd = -1;
	t->cb = cb;
	t->arg = arg;
	if ((rc = setup_socket(t, ifname)) < 0) {
		log_err("net: AF_PACKET on %s: %s", ifname, strerror(-rc));
		goto out;
	}
	if (cb) {
		if ((rc = loop_add_fd(loop, t->fd, EPOLLIN, on_readable, t)) < 0)
			goto out;
		t->on_loop = true;
	}
	*out = t;
	t = NULL;
	rc = 0;
out:
	tapio_close(t);
	return rc;
}

void tapio_close(struct tapio *t)
{
	if (!t)
		return;
	if (t->on_loop)
		loop_del_fd(t->loop, t->fd);
	if (t->fd >= 0)
		close(t->fd);
	free(t);
}

void tapio_get_stats(const struct tapio *t, struct tapio_stats *out)
{
	*out = t->st;
}
