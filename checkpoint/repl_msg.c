/* repl_msg.c - the agent <-> helper messages (docs/helper-protocol.md §2-§3). Every
 * field goes through a lib/wire cursor; a type's length, fields and descriptor count
 * are checked exactly, so a message that is wrong in any way is rejected whole. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "checkpoint/repl_msg.h"

_Static_assert(sizeof(struct repl_stats) == REPL_STATS_FIELDS * sizeof(uint64_t),
	       "COMMITTED carries every repl_stats field, each a u64");
_Static_assert(REPL_MSG_HDR_LEN + REPL_START_FIXED_LEN + REPL_HOST_MAX + REPL_PATH_MAX +
			       REPL_START_XEN_LEN <=
		       REPL_MSG_MAX,
	       "the longest START fits one datagram");

#define TO_H (1u << REPL_TO_HELPER)
#define TO_A (1u << REPL_TO_AGENT)

/* Per type: direction, body length bounds, passed descriptors. */
static const struct msg_rule {
	const char *name;
	uint8_t dir;
	uint16_t min, max;
	uint8_t fds_min, fds_max;
} rules[] = {
	[REPL_MSG_START] = { "START", TO_H, REPL_START_FIXED_LEN + 2,
			     REPL_START_FIXED_LEN + REPL_HOST_MAX + REPL_PATH_MAX +
				     REPL_START_XEN_LEN,
			     0, 0 },
	[REPL_MSG_CHECKPOINT] = { "CHECKPOINT", TO_H, 0, 0, 0, 0 },
	[REPL_MSG_SUSPEND_DONE] = { "SUSPEND_DONE", TO_H, 16, 16, 0, 0 },
	[REPL_MSG_RESUME_DONE] = { "RESUME_DONE", TO_H, 8, 8, 0, 0 },
	[REPL_MSG_LOAD_DONE] = { "LOAD_DONE", TO_H, 8, 8, 0, 0 },
	[REPL_MSG_FAILOVER] = { "FAILOVER", TO_H, 0, 0, 0, 0 },
	[REPL_MSG_STOPPED] = { "STOPPED", TO_H, 0, 0, 0, 0 },
	[REPL_MSG_LOGDIRTY_DONE] = { "LOGDIRTY_DONE", TO_H, 8, 8, 0, 0 },
	[REPL_MSG_SYNCING] = { "SYNCING", TO_A, 0, 0, 0, 0 },
	[REPL_MSG_SUSPEND] = { "SUSPEND", TO_A, 8, 8, 0, 1 },
	[REPL_MSG_RESUME] = { "RESUME", TO_A, 8, 8, 0, 0 },
	[REPL_MSG_LOAD] = { "LOAD", TO_A, 24, 24, 1, 1 },
	[REPL_MSG_COMMITTED] = { "COMMITTED", TO_A, REPL_STATS_FIELDS * 8, REPL_STATS_FIELDS * 8, 0, 0 },
	[REPL_MSG_FAILOVER_READY] = { "FAILOVER_READY", TO_A, 0, 0, 0, 0 },
	[REPL_MSG_FAILED] = { "FAILED", TO_A, 8 + 1, 8 + REPL_REASON_MAX, 0, 0 },
	[REPL_MSG_LOGDIRTY] = { "LOGDIRTY", TO_A, 8, 8, 0, 0 },
};
#define NRULES (sizeof(rules) / sizeof(rules[0]))

static const struct msg_rule *rule_of(uint16_t type)
{
	return type < NRULES && rules[type].name ? &rules[type] : NULL;
}

const char *repl_msg_name(uint16_t type)
{
	const struct msg_rule *ru = rule_of(type);
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

static int parse_err(struct rd *r, int32_t *err, char *why, size_t n)
{
	uint32_t v, rsv;
	rd_be32(r, &v);
	rd_be32(r, &rsv);
	if (rsv)
		return bad(why, n, "reserved field is 0x%x", rsv);
	*err = (int32_t)v;
	if (*err > 0 || *err < -4095)
		return bad(why, n, "err %d is not a negative errno", *err);
	return 0;
}

/* A string field: exactly len octets, no NUL inside, stored NUL-terminated. */
static int parse_str(struct rd *r, char *out, size_t len, const char *what, char *why, size_t n)
{
	if (rd_copy(r, out, len))
		return bad(why, n, "%s runs past the body", what);
	out[len] = '\0';
	if (strlen(out) != len)
		return bad(why, n, "%s contains a NUL octet", what);
	return 0;
}

static int start_fields(struct repl_start *s, uint32_t role, uint32_t backend, char *why, size_t n)
{
	if (role != 1 && role != 2)
		return bad(why, n, "role %u (1 primary, 2 secondary)", role);
	if (backend != REPL_BACKEND_QEMU && backend != REPL_BACKEND_XEN)
		return bad(why, n, "backend %u (1 QEMU, 2 Xen)", backend);
	s->role = role == 1 ? REPL_PRIMARY : REPL_SECONDARY;
	s->backend = backend;
	if (!s->vm_id)
		return bad(why, n, "vm_id 0");
	if (!s->ram_size || s->ram_size % 4096 || s->ram_size > (1ull << 52))
		return bad(why, n, "ram_size %llu is not a nonzero multiple of 4096 up to 2^52",
			    (unsigned long long)s->ram_size);
	if (!s->peer_port)
		return bad(why, n, "peer_port 0");
	return 0;
}

static int parse_start(struct rd *r, struct repl_start *s, char *why, size_t n)
{
	uint32_t role, backend;
	uint16_t hlen, plen, rsv;
	memset(s, 0, sizeof(*s));
	rd_be32(r, &role);
	rd_be32(r, &backend);
	rd_be32(r, &s->vm_id);
	rd_be32(r, &s->connect_timeout_ms);
	rd_be64(r, &s->ram_size);
	rd_be64(r, &s->config_hash);
	rd_be16(r, &s->peer_port);
	rd_be16(r, &hlen);
	rd_be16(r, &plen);
	rd_be16(r, &rsv);
	if (rsv)
		return bad(why, n, "reserved field is 0x%x", rsv);
	if (!hlen || hlen > REPL_HOST_MAX || !plen || plen > REPL_PATH_MAX)
		return bad(why, n, "host_len %u (1..%u) or path_len %u (1..%u) out of range", hlen,
			   REPL_HOST_MAX, plen, REPL_PATH_MAX);
	size_t tail = backend == REPL_BACKEND_XEN ? REPL_START_XEN_LEN : 0;
	if (rd_left(r) != (size_t)hlen + plen + tail)
		return bad(why, n, "%zu octets after the fixed fields, host_len + path_len%s say "
			   "%zu", rd_left(r), tail ? " + the Xen tail" : "",
			   (size_t)hlen + plen + tail);
	int rc = parse_str(r, s->peer_host, hlen, "peer_host", why, n);
	if (!rc)
		rc = parse_str(r, s->ram_path, plen, "ram_path", why, n);
	if (!rc && tail) {
		rd_be32(r, &s->xen_store_evtchn);
		rd_be32(r, &s->xen_console_evtchn);
		rd_be32(r, &s->xen_store_domid);
		rd_be32(r, &s->xen_console_domid);
		if (s->xen_store_domid > 0x7fef || s->xen_console_domid > 0x7fef)
			return bad(why, n, "store domid %u or console domid %u above 0x7fef",
				   s->xen_store_domid, s->xen_console_domid);
	}
	return rc ? rc : start_fields(s, role, backend, why, n);
}

static int parse_load(struct rd *r, struct repl_msg *m, char *why, size_t n)
{
	uint32_t flags, rsv;
	rd_be64(r, &m->load.seq);
	rd_be64(r, &m->load.input_mark);
	rd_be32(r, &flags);
	rd_be32(r, &rsv);
	if (flags & ~1u || rsv)
		return bad(why, n, "flags 0x%x or reserved 0x%x has unknown bits", flags, rsv);
	m->load.has_mark = flags & 1;
	return 0;
}

static int parse_logdirty(struct rd *r, struct repl_msg *m, char *why, size_t n)
{
	uint32_t enable, rsv;
	rd_be32(r, &enable);
	rd_be32(r, &rsv);
	if (enable > 1 || rsv)
		return bad(why, n, "enable %u (0 or 1) or reserved 0x%x", enable, rsv);
	m->enable = enable;
	return 0;
}

static int parse_stats(struct rd *r, struct repl_stats *st)
{
	uint64_t v[REPL_STATS_FIELDS];
	for (size_t i = 0; i < REPL_STATS_FIELDS; i++)
		rd_be64(r, &v[i]);
	*st = (struct repl_stats){ .seq = v[0], .dirty_pages_local = v[1], .dirty_pages_peer = v[2],
				   .pages_sent = v[3], .zero_pages = v[4],
				   .device_state_bytes = v[5], .bytes_sent = v[6], .pause_us = v[7],
				   .capture_us = v[8], .transfer_us = v[9], .suspend_us = v[10] };
	return 0;
}

static int parse_failed(struct rd *r, struct repl_msg *m, char *why, size_t n)
{
	uint32_t code, rsv;
	size_t len;
	rd_be32(r, &code);
	rd_be32(r, &rsv);
	if (rsv)
		return bad(why, n, "reserved field is 0x%x", rsv);
	if (code > REPL_LOCAL_ERROR)
		return bad(why, n, "failure class %u is unknown", code);
	m->failed.why = (enum repl_failure)code;
	len = rd_left(r);
	rd_copy(r, m->failed.reason, len);
	/* The helper's text is headed for our logs: printable ASCII only. */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)m->failed.reason[i];
		if (c < 0x20 || c > 0x7e)
			m->failed.reason[i] = '?';
	}
	m->failed.reason[len] = '\0';
	return 0;
}

static int parse_body(struct rd *r, struct repl_msg *m, char *why, size_t n)
{
	switch (m->type) {
	case REPL_MSG_START:
		return parse_start(r, &m->start, why, n);
	case REPL_MSG_SUSPEND_DONE:
		if (parse_err(r, &m->done.err, why, n))
			return -EBADMSG;
		rd_be64(r, &m->done.input_mark);
		return 0;
	case REPL_MSG_RESUME_DONE:
	case REPL_MSG_LOAD_DONE:
	case REPL_MSG_LOGDIRTY_DONE:
		return parse_err(r, &m->done.err, why, n);
	case REPL_MSG_LOGDIRTY:
		return parse_logdirty(r, m, why, n);
	case REPL_MSG_SUSPEND:
	case REPL_MSG_RESUME:
		rd_be64(r, &m->seq);
		return 0;
	case REPL_MSG_LOAD:
		return parse_load(r, m, why, n);
	case REPL_MSG_COMMITTED:
		return parse_stats(r, &m->stats);
	case REPL_MSG_FAILED:
		return parse_failed(r, m, why, n);
	default: /* empty bodies */
		return 0;
	}
}

/* The header and the type's rules: length, direction, descriptors. */
static int check_header(const uint8_t *buf, size_t len, int nfds, enum repl_dir dir,
			struct repl_msg *m, struct rd *body, char *why, size_t n)
{
	struct rd r = rd_init(buf, len);
	uint16_t type, rsv;
	uint32_t blen;
	if (len < REPL_MSG_HDR_LEN || len > REPL_MSG_MAX)
		return bad(why, n, "message of %zu octets (%u..%u)", len, REPL_MSG_HDR_LEN, REPL_MSG_MAX);
	rd_be16(&r, &type);
	rd_be16(&r, &rsv);
	rd_be32(&r, &blen);
	const struct msg_rule *ru = rule_of(type);
	if (!ru)
		return bad(why, n, "unknown message type %u", type);
	if (!(ru->dir & (1u << dir)))
		return bad(why, n, "%s sent in the wrong direction", ru->name);
	if (rsv)
		return bad(why, n, "%s header reserved field is 0x%x", ru->name, rsv);
	if (blen != len - REPL_MSG_HDR_LEN)
		return bad(why, n, "%s says %u body octets, the datagram has %zu", ru->name, blen,
			   len - REPL_MSG_HDR_LEN);
	if (blen < ru->min || blen > ru->max)
		return bad(why, n, "%s body of %u octets (%u..%u)", ru->name, blen, ru->min, ru->max);
	if (nfds < ru->fds_min || nfds > ru->fds_max)
		return bad(why, n, "%s came with %d descriptors (%u..%u)", ru->name, nfds,
			   ru->fds_min, ru->fds_max);
	m->type = type;
	rd_sub(&r, body, blen);
	return 0;
}

int repl_msg_parse(const uint8_t *buf, size_t len, int nfds, enum repl_dir dir,
		   struct repl_msg *m, char *why, size_t why_len)
{
	struct rd body;
	memset(m, 0, sizeof(*m));
	m->fd = -1;
	int rc = check_header(buf, len, nfds, dir, m, &body, why, why_len);
	if (rc)
		return rc;
	rc = parse_body(&body, m, why, why_len);
	if (!rc && (body.err || rd_left(&body)))
		rc = bad(why, why_len, "%s body of %zu octets does not parse exactly",
			 repl_msg_name(m->type), body.len);
	return rc;
}

/* ---- encoding ------------------------------------------------------------------- */

static size_t open_msg(struct wr *w, uint16_t type)
{
	size_t at = w->len;
	wr_be16(w, type);
	wr_be16(w, 0);
	wr_be32(w, 0); /* patched by close_msg */
	return at;
}

static void close_msg(struct wr *w, size_t at)
{
	if (!w->err)
		wr_patch_be32(w, at + 4, (uint32_t)(w->len - at - REPL_MSG_HDR_LEN));
}

void repl_msg_put_start(struct wr *w, const struct repl_start *s)
{
	size_t hlen = strnlen(s->peer_host, REPL_HOST_MAX), plen = strnlen(s->ram_path, REPL_PATH_MAX);
	size_t at = open_msg(w, REPL_MSG_START);
	wr_be32(w, s->role == REPL_PRIMARY ? 1 : 2);
	wr_be32(w, s->backend);
	wr_be32(w, s->vm_id);
	wr_be32(w, s->connect_timeout_ms);
	wr_be64(w, s->ram_size);
	wr_be64(w, s->config_hash);
	wr_be16(w, s->peer_port);
	wr_be16(w, (uint16_t)hlen);
	wr_be16(w, (uint16_t)plen);
	wr_be16(w, 0);
	wr_bytes(w, s->peer_host, hlen);
	wr_bytes(w, s->ram_path, plen);
	if (s->backend == REPL_BACKEND_XEN) {
		wr_be32(w, s->xen_store_evtchn);
		wr_be32(w, s->xen_console_evtchn);
		wr_be32(w, s->xen_store_domid);
		wr_be32(w, s->xen_console_domid);
	}
	close_msg(w, at);
}

void repl_msg_put_empty(struct wr *w, uint16_t type)
{
	close_msg(w, open_msg(w, type));
}

void repl_msg_put_done(struct wr *w, uint16_t type, int err, uint64_t input_mark)
{
	size_t at = open_msg(w, type);
	wr_be32(w, (uint32_t)err);
	wr_be32(w, 0);
	if (type == REPL_MSG_SUSPEND_DONE)
		wr_be64(w, input_mark);
	close_msg(w, at);
}

void repl_msg_put_seq(struct wr *w, uint16_t type, uint64_t seq)
{
	size_t at = open_msg(w, type);
	wr_be64(w, seq);
	close_msg(w, at);
}

void repl_msg_put_load(struct wr *w, uint64_t seq, bool has_mark, uint64_t input_mark)
{
	size_t at = open_msg(w, REPL_MSG_LOAD);
	wr_be64(w, seq);
	wr_be64(w, input_mark);
	wr_be32(w, has_mark ? 1 : 0);
	wr_be32(w, 0);
	close_msg(w, at);
}

void repl_msg_put_stats(struct wr *w, const struct repl_stats *st)
{
	const uint64_t v[REPL_STATS_FIELDS] = { st->seq, st->dirty_pages_local, st->dirty_pages_peer,
						st->pages_sent, st->zero_pages,
						st->device_state_bytes, st->bytes_sent, st->pause_us,
						st->capture_us, st->transfer_us, st->suspend_us };
	size_t at = open_msg(w, REPL_MSG_COMMITTED);
	for (size_t i = 0; i < REPL_STATS_FIELDS; i++)
		wr_be64(w, v[i]);
	close_msg(w, at);
}

void repl_msg_put_failed(struct wr *w, enum repl_failure why, const char *reason)
{
	size_t n = strnlen(reason ? reason : "", REPL_REASON_MAX);
	size_t at = open_msg(w, REPL_MSG_FAILED);
	wr_be32(w, (uint32_t)why);
	wr_be32(w, 0);
	if (n)
		wr_bytes(w, reason, n);
	else
		wr_bytes(w, "?", 1); /* the reason is never empty */
	close_msg(w, at);
}

/* ---- transport ------------------------------------------------------------------ */

int repl_msg_send(int sock, const struct wr *w, int fd, int flags)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = w->buf, .iov_len = w->len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (w->err)
		return w->err;
	if (fd >= 0) {
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	ssize_t n;
	do
		n = sendmsg(sock, &mh, flags | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	return (size_t)n == w->len ? 0 : -EMSGSIZE;
}

/* Collect the passed descriptors; at most 2 are kept apart (more is malformed). */
static int take_fds(struct msghdr *mh, int *fds, int max)
{
	int n = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (n < max)
				fds[n] = fd;
			else
				close(fd);
			n++;
		}
	}
	return n;
}

static void close_fds(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		close(fds[i]);
}

int repl_msg_recv(int sock, enum repl_dir dir, struct repl_msg *m, char *why, size_t why_len)
{
	uint8_t buf[REPL_MSG_MAX];
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(4 * sizeof(int))];
	} ctl;
	int fds[2];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			     .msg_controllen = sizeof(ctl.buf) };
	ssize_t n;
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == ECONNRESET)
		return -EPIPE; /* the peer closed with our messages unread: gone all the same */
	if (n < 0)
		return errno == EWOULDBLOCK ? 0 : -errno;
	int nfds = take_fds(&mh, fds, 2);
	int kept = nfds < 2 ? nfds : 2;
	if (n == 0 && !nfds)
		return -EPIPE; /* SOCK_SEQPACKET: 0 octets without fds is the peer's close */
	int rc;
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
		rc = bad(why, why_len, "message of more than %u octets or too many descriptors",
			 REPL_MSG_MAX);
	else
		rc = repl_msg_parse(buf, (size_t)n, nfds, dir, m, why, why_len);
	if (rc) {
		close_fds(fds, kept);
		return rc;
	}
	m->fd = nfds ? fds[0] : -1;
	return 1;
}

void repl_msg_put_logdirty(struct wr *w, bool enable)
{
	size_t at = open_msg(w, REPL_MSG_LOGDIRTY);
	wr_be32(w, enable ? 1 : 0);
	wr_be32(w, 0);
	close_msg(w, at);
}
