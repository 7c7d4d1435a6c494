/* xen_ctl.c - runner <-> helper control messages (docs/xen-helper.md §2). Every
 * field goes through a lib/wire cursor; lengths are exact per type. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "xen/xen_ctl.h"

#define TO_H (1u << XEN_CTL_TO_HELPER)
#define TO_R (1u << XEN_CTL_TO_RUNNER)

static const struct ctl_rule {
	const char *name;
	uint8_t dir;
	uint8_t len;
} rules[] = {
	[XEN_CTL_SAVE_SUSPEND] = { "SAVE_SUSPEND", TO_H, 0 },
	[XEN_CTL_SAVE_POSTCOPY] = { "SAVE_POSTCOPY", TO_H, 0 },
	[XEN_CTL_SAVE_CHECKPOINT] = { "SAVE_CHECKPOINT", TO_H, 0 },
	[XEN_CTL_SAVE_WAIT] = { "SAVE_WAIT_CHECKPOINT", TO_H, 0 },
	[XEN_CTL_SAVE_LOGDIRTY] = { "SAVE_LOGDIRTY", TO_H, 8 },
	[XEN_CTL_RESTORE_CHECKPOINT] = { "RESTORE_CHECKPOINT", TO_H, 0 },
	[XEN_CTL_RESTORE_POSTCOPY] = { "RESTORE_POSTCOPY", TO_H, 0 },
	[XEN_CTL_RESTORE_WAIT] = { "RESTORE_WAIT_CHECKPOINT", TO_H, 0 },
	[XEN_CTL_RESTORE_SUSPEND] = { "RESTORE_SUSPEND", TO_H, 0 },
	[XEN_CTL_RESTORE_RESULTS] = { "RESTORE_RESULTS", TO_H, 16 },
	[XEN_CTL_FINISHED] = { "FINISHED", TO_H, 16 },
	[XEN_CTL_RESTORE_LOGDIRTY] = { "RESTORE_LOGDIRTY", TO_H, 8 },
	[XEN_CTL_SAVE_RESUME_QEMU] = { "SAVE_RESUME_QEMU", TO_H, 0 },
	[XEN_CTL_REPLY] = { "REPLY", TO_R, 8 },
};
#define NRULES (sizeof(rules) / sizeof(rules[0]))

_Static_assert(XEN_CTL_HDR_LEN + 16 <= XEN_CTL_MAX, "the longest message fits");

static const struct ctl_rule *rule_of(uint16_t type)
{
	return type < NRULES && rules[type].name ? &rules[type] : NULL;
}

const char *xen_ctl_name(uint16_t type)
{
	const struct ctl_rule *ru = rule_of(type);
	return ru ? ru->name : "?";
}

__attribute__((format(printf, 3, 4))) static int bad(char *why, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, n, fmt, ap);
	va_end(ap);
	return -EBADMSG;
}

static bool is_call(uint32_t t)
{
	return (t >= XEN_CTL_SAVE_SUSPEND && t <= XEN_CTL_RESTORE_RESULTS) ||
	       t == XEN_CTL_RESTORE_LOGDIRTY || t == XEN_CTL_SAVE_RESUME_QEMU;
}

static int parse_body(struct rd *r, struct xen_ctl *m, char *why, size_t n)
{
	uint32_t a, b, rsv;
	switch (m->type) {
	case XEN_CTL_SAVE_LOGDIRTY:
	case XEN_CTL_RESTORE_LOGDIRTY:
		rd_be32(r, &m->logdirty.domid);
		rd_be32(r, &m->logdirty.enable);
		if (m->logdirty.enable > 1)
			return bad(why, n, "%s enable %u (0 or 1)", xen_ctl_name(m->type),
				   m->logdirty.enable);
		return 0;
	case XEN_CTL_RESTORE_RESULTS:
		rd_be64(r, &m->results.store_gfn);
		rd_be64(r, &m->results.console_gfn);
		return 0;
	case XEN_CTL_FINISHED:
		rd_be32(r, &a);
		rd_be32(r, &m->fin.err);
		rd_be32(r, &m->fin.flags);
		rd_be32(r, &rsv);
		m->fin.rc = (int32_t)a;
		if (m->fin.err > 4095 ||
		    m->fin.flags & ~(XEN_CTL_FIN_RESUMED | XEN_CTL_FIN_REFUSED) || rsv)
			return bad(why, n, "FINISHED errno %u, flags 0x%x, reserved 0x%x", m->fin.err,
				   m->fin.flags, rsv);
		return 0;
	case XEN_CTL_REPLY:
		rd_be32(r, &a);
		rd_be32(r, &b);
		if (!is_call(a))
			return bad(why, n, "REPLY to %u, not a callback", a);
		if ((int32_t)b < -1 || (int32_t)b > 2)
			return bad(why, n, "REPLY value %d outside -1..2", (int32_t)b);
		m->reply.call = (uint16_t)a;
		m->reply.ret = (int32_t)b;
		return 0;
	default:
		return 0;
	}
}

int xen_ctl_parse(const uint8_t *buf, size_t len, enum xen_ctl_dir dir, struct xen_ctl *m,
		  char *why, size_t why_len)
{
	struct rd r = rd_init(buf, len), body;
	uint16_t type, rsv;
	uint32_t blen;
	memset(m, 0, sizeof(*m));
	if (len < XEN_CTL_HDR_LEN || len > XEN_CTL_MAX)
		return bad(why, why_len, "message of %zu octets (%u..%u)", len, XEN_CTL_HDR_LEN,
			   XEN_CTL_MAX);
	rd_be16(&r, &type);
	rd_be16(&r, &rsv);
	rd_be32(&r, &blen);
	const struct ctl_rule *ru = rule_of(type);
	if (!ru)
		return bad(why, why_len, "unknown message type %u", type);
	if (!(ru->dir & (1u << dir)))
		return bad(why, why_len, "%s sent in the wrong direction", ru->name);
	if (rsv)
		return bad(why, why_len, "%s header reserved field is 0x%x", ru->name, rsv);
	if (blen != len - XEN_CTL_HDR_LEN || blen != ru->len)
		return bad(why, why_len, "%s with a %u-octet body in a %zu-octet datagram (body is %u)",
			   ru->name, blen, len, ru->len);
	m->type = type;
	rd_sub(&r, &body, blen);
	int rc = parse_body(&body, m, why, why_len);
	if (!rc && (body.err || rd_left(&body)))
		rc = bad(why, why_len, "%s body does not parse exactly", ru->name);
	return rc;
}

void xen_ctl_put(struct wr *w, const struct xen_ctl *m)
{
	const struct ctl_rule *ru = rule_of(m->type);
	wr_be16(w, m->type);
	wr_be16(w, 0);
	wr_be32(w, ru ? ru->len : 0);
	switch (m->type) {
	case XEN_CTL_SAVE_LOGDIRTY:
	case XEN_CTL_RESTORE_LOGDIRTY:
		wr_be32(w, m->logdirty.domid);
		wr_be32(w, m->logdirty.enable);
		break;
	case XEN_CTL_RESTORE_RESULTS:
		wr_be64(w, m->results.store_gfn);
		wr_be64(w, m->results.console_gfn);
		break;
	case XEN_CTL_FINISHED:
		wr_be32(w, (uint32_t)m->fin.rc);
		wr_be32(w, m->fin.err);
		wr_be32(w, m->fin.flags);
		wr_be32(w, 0);
		break;
	case XEN_CTL_REPLY:
		wr_be32(w, m->reply.call);
		wr_be32(w, (uint32_t)m->reply.ret);
		break;
	default:
		break;
	}
}

int xen_ctl_send(int sock, const struct xen_ctl *m)
{
	uint8_t buf[XEN_CTL_MAX];
	struct wr w;
	wr_init_fixed(&w, buf, sizeof(buf));
	xen_ctl_put(&w, m);
	if (w.err)
		return w.err;
	for (;;) {
		ssize_t n = send(sock, buf, w.len, MSG_NOSIGNAL);
		if (n == (ssize_t)w.len)
			return 0;
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 ? -errno : -EMSGSIZE;
	}
}

int xen_ctl_recv(int sock, enum xen_ctl_dir dir, struct xen_ctl *m, char *why, size_t why_len)
{
	uint8_t buf[XEN_CTL_MAX + 1];
	char cbuf[CMSG_SPACE(sizeof(int) * 4)];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	ssize_t n;
	do
		n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN ? 0 : -errno;
	if (n == 0)
		return -EPIPE;
	if (mh.msg_controllen) /* no control message carries a descriptor: close any */
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
				for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
					int fd;
					memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
					close(fd);
				}
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC) || mh.msg_controllen)
		return bad(why, why_len, "a datagram over %u octets or with descriptors",
			   XEN_CTL_MAX);
	return xen_ctl_parse(buf, (size_t)n, dir, m, why, why_len) ? -EBADMSG : 1;
}
