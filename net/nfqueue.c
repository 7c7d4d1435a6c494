/* nfqueue.c - one NFQUEUE over libnl-nf-3 (net/nfqueue.h). */
#include "net/nfqueue.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <netlink/netfilter/nfnl.h>
#include <netlink/netfilter/queue.h>
#include <netlink/netfilter/queue_msg.h>
#include <netlink/attr.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "lib/log.h"
#include "lib/loop.h"
#include "lib/wire.h"

#define ETH_HLEN_ 14
#define RCVBUF (8 << 20)

struct nfq {
	struct loop *loop;
	struct nl_sock *sock;
	struct nfnl_queue *queue;
	struct nfnl_queue_msg *vmsg; /* reused for every verdict */
	uint16_t num;
	int fd;
	bool on_loop, logged_verdict, logged_overrun;
	nfq_cb cb;
	void *arg;
	struct nfq_stats st;
	uint8_t frame[ETH_HLEN_ + 4 + 65535];
};

static uint16_t vlan_of(struct nlmsghdr *nlh, bool *has)
{
	struct nlattr *v = nlmsg_find_attr(nlh, sizeof(struct nfgenmsg), NFQA_VLAN), *tci;
	*has = false;
	if (!v || !(tci = nla_find(nla_data(v), nla_len(v), NFQA_VLAN_TCI)) || nla_len(tci) < 2)
		return 0;
	*has = true;
	return ntohs(nla_get_u16(tci));
}

/* The Ethernet header the kernel did not give us (see nfqueue.h). */
static size_t synth_frame(struct nfq *q, struct nfnl_queue_msg *m, struct nlmsghdr *nlh,
			  const uint8_t *payload, size_t len)
{
	static const uint8_t zero_mac[6];
	struct wr w;
	int hwlen = 0;
	bool has_vlan;
	const uint8_t *hw = nfnl_queue_msg_get_hwaddr(m, &hwlen);
	uint16_t proto = ntohs(nfnl_queue_msg_get_hwproto(m)), vlan = vlan_of(nlh, &has_vlan);
	/* iptables and ip6tables queue IP packets: the version says which (libnl keeps
	 * hw_protocol in network order, and older kernels leave it 0). */
	if (len && payload[0] >> 4 == 4)
		proto = 0x0800;
	else if (len && payload[0] >> 4 == 6)
		proto = 0x86dd;
	wr_init_fixed(&w, q->frame, sizeof(q->frame));
	wr_bytes(&w, zero_mac, 6);
	wr_bytes(&w, hw && hwlen == 6 ? hw : zero_mac, 6);
	if (has_vlan) {
		wr_be16(&w, 0x8100);
		wr_be16(&w, vlan);
	}
	wr_be16(&w, proto);
	wr_bytes(&w, payload, len);
	return w.err ? 0 : w.len;
}

static void deliver(struct nfq *q, struct nfnl_queue_msg *m, struct nlmsghdr *nlh)
{
	int plen = 0;
	const uint8_t *payload = nfnl_queue_msg_get_payload(m, &plen);
	if (!nfnl_queue_msg_test_packetid(m) || !payload || plen < 0) {
		q->st.bad_messages++;
		return;
	}
	if (nlmsg_find_attr(nlh, sizeof(struct nfgenmsg), NFQA_CAP_LEN))
		q->st.truncated++; /* compared as a lying length: RAW */
	struct nfq_pkt p = {
		.id = (uint64_t)nfnl_queue_msg_get_family(m) << 32 | nfnl_queue_msg_get_packetid(m),
		.frame = q->frame,
		.len = synth_frame(q, m, nlh, payload, (size_t)plen),
		.indev = nfnl_queue_msg_get_indev(m),
		.physindev = nfnl_queue_msg_get_physindev(m),
		.physoutdev = nfnl_queue_msg_get_physoutdev(m),
	};
	q->st.packets++;
	q->cb(q->arg, &p);
}

static int on_msg(struct nl_msg *msg, void *arg)
{
	struct nfq *q = arg;
	struct nfnl_queue_msg *m = NULL;
	struct nlmsghdr *nlh = nlmsg_hdr(msg);
	if (nfnlmsg_queue_msg_parse(nlh, &m) < 0 || !m) {
		q->st.bad_messages++;
		return NL_SKIP;
	}
	deliver(q, m, nlh);
	nfnl_queue_msg_put(m);
	return NL_OK;
}

int nfq_drain(struct nfq *q)
{
	for (;;) {
		int rc = nl_recvmsgs_default(q->sock);
		if (rc >= 0)
			continue;
		if (rc == -NLE_AGAIN)
			return 0;
		if (rc == -NLE_NOMEM || rc == -NLE_BUSY) {
			/* ENOBUFS: the kernel could not hand us a packet and dropped it. */
			q->st.overruns++;
			if (!q->logged_overrun)
				log_warn("net: NFQUEUE %u overran (packets dropped by the kernel); "
					 "the agent is not reading fast enough", q->num);
			q->logged_overrun = true;
			continue;
		}
		log_err("net: reading NFQUEUE %u: %s", q->num, nl_geterror(rc));
		return -EIO;
	}
}

static void on_readable(struct loop *loop, int fd, uint32_t events, void *arg)
{
	nfq_drain(arg);
}

int nfq_verdict(struct nfq *q, uint64_t id, bool accept)
{
	nfnl_queue_msg_set_group(q->vmsg, q->num);
	nfnl_queue_msg_set_family(q->vmsg, (uint8_t)(id >> 32));
	nfnl_queue_msg_set_packetid(q->vmsg, (uint32_t)id);
	nfnl_queue_msg_set_verdict(q->vmsg, accept ? NF_ACCEPT : NF_DROP);
	int rc = nfnl_queue_msg_send_verdict(q->sock, q->vmsg);
	if (rc < 0) {
		q->st.verdict_errors++;
		if (!q->logged_verdict)
			log_err("net: NFQUEUE %u verdict for packet %u: %s", q->num, (uint32_t)id,
				nl_geterror(rc));
		q->logged_verdict = true;
		return -EIO;
	}
	if (accept)
		q->st.accepted++;
	else
		q->st.dropped++;
	return 0;
}

int nfq_accept_frame(struct nfq *q, uint64_t id, const uint8_t *frame, size_t len)
{
	/* Back from our synthesized frame to the IP packet the kernel holds. */
	size_t l2 = len >= 18 && frame[12] == 0x81 && frame[13] == 0x00 ? 18 : 14;
	if (len <= l2)
		return -EINVAL;
	nfnl_queue_msg_set_group(q->vmsg, q->num);
	nfnl_queue_msg_set_family(q->vmsg, (uint8_t)(id >> 32));
	nfnl_queue_msg_set_packetid(q->vmsg, (uint32_t)id);
	nfnl_queue_msg_set_verdict(q->vmsg, NF_ACCEPT);
	int rc = nfnl_queue_msg_send_verdict_payload(q->sock, q->vmsg, frame + l2,
						     (unsigned)(len - l2));
	if (rc < 0) {
		q->st.verdict_errors++;
		if (!q->logged_verdict)
			log_err("net: NFQUEUE %u verdict for packet %u: %s", q->num, (uint32_t)id,
				nl_geterror(rc));
		q->logged_verdict = true;
		return -EIO;
	}
	q->st.accepted++;
	return 0;
}

static int nl_errno(int nlerr)
{
	return nlerr == -NLE_BUSY || nlerr == -NLE_EXIST ? -EBUSY
	       : nlerr == -NLE_PERM			 ? -EPERM
	       : nlerr == -NLE_NOMEM			 ? -ENOMEM
							 : -EIO;
}

static int bind_queue(struct nfq *q, uint32_t maxlen)
{
	int rc;
	if (!(q->queue = nfnl_queue_alloc()) || !(q->vmsg = nfnl_queue_msg_alloc()))
		return -ENOMEM;
	nfnl_queue_set_group(q->queue, q->num);
	nfnl_queue_set_copy_mode(q->queue, NFNL_QUEUE_COPY_PACKET);
	nfnl_queue_set_copy_range(q->queue, 0xffff);
	nfnl_queue_set_maxlen(q->queue, maxlen);
	if ((rc = nfnl_queue_create(q->sock, q->queue)) < 0) {
		log_err("net: cannot bind NFQUEUE %u: %s", q->num, nl_geterror(rc));
		return nl_errno(rc);
	}
	return 0;
}

int nfq_open(struct loop *loop, uint16_t queue, uint32_t maxlen, nfq_cb cb, void *arg,
	     struct nfq **out)
{
	int rc = -ENOMEM, one = RCVBUF;
	struct nfq *q = calloc(1, sizeof(*q));
	if (!q)
		goto out;
	q->loop = loop;
	q->num = queue;
	q->cb = cb;
	q->arg = arg;
	if (!(q->sock = nfnl_queue_socket_alloc()))
		goto out;
	nl_socket_disable_seq_check(q->sock);
	nl_socket_modify_cb(q->sock, NL_CB_VALID, NL_CB_CUSTOM, on_msg, q);
	if ((rc = nfnl_connect(q->sock)) < 0) {
		log_err("net: netfilter netlink socket: %s", nl_geterror(rc));
		rc = nl_errno(rc);
		goto out;
	}
	q->fd = nl_socket_get_fd(q->sock);
	/* Room for bursts; FORCE passes rmem_max (we are root). */
	if (setsockopt(q->fd, SOL_SOCKET, SO_RCVBUFFORCE, &one, sizeof(one)) < 0)
		setsockopt(q->fd, SOL_SOCKET, SO_RCVBUF, &one, sizeof(one));
	if ((rc = bind_queue(q, maxlen)) < 0)
		goto out;
	nl_socket_disable_auto_ack(q->sock); /* verdicts need no ACK back */
	nl_socket_set_nonblocking(q->sock);
	if ((rc = loop_add_fd(loop, q->fd, EPOLLIN, on_readable, q)) < 0)
		goto out;
	q->on_loop = true;
	*out = q;
	q = NULL;
	rc = 0;
out:
	nfq_close(q);
	return rc;
}

void nfq_close(struct nfq *q)
{
	if (!q)
		return;
	if (q->on_loop)
		loop_del_fd(q->loop, q->fd);
	/* Closing the socket unbinds the queue (no unbind request: it would wait for an
	 * ACK on a non-blocking socket that also carries packets). */
	if (q->queue)
		nfnl_queue_put(q->queue);
	if (q->vmsg)
		nfnl_queue_msg_put(q->vmsg);
	if (q->sock)
		nl_socket_free(q->sock);
	free(q);
}

void nfq_get_stats(const struct nfq *q, struct nfq_stats *out)
{
	*out = q->st;
}
