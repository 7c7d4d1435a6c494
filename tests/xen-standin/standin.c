/* standin.c - a STAND-IN for the libxenctrl / libxenguest entry points the Xen
 * runner calls (xen/xen_runner.c). It is linked into the test build of the Xen
 * helper (build/tests/colo-xen-helper-standin) in place of the real libraries.
 *
 * THIS IS NOT EVIDENCE THAT XEN WORKS. It proves that our helper, runner and
 * agent protocol drive libxenguest's COLO callbacks in the order libxenguest 4.17
 * calls them (tools/libs/guest/xg_sr_save.c save(), xg_sr_restore.c
 * handle_checkpoint()), relay a byte stream shaped like libxc's migration stream
 * v2 and its back channel, and keep the commit rule. It knows nothing of real
 * domains, page types, vCPU state, event channels or the hypervisor.
 *
 * The synthetic domain: guest memory is the file $COLO_XEN_STANDIN_DIR/dom<D>.mem
 * (its size / 4096 pages), mapped shared so a test writes "guest" pages into it.
 * Dirty tracking compares memory with a snapshot of what was last sent (primary)
 * or applied (secondary). Each callback made is appended to dom<D>.trace.
 *
 * Domain state, modelled strictly after Xen: a domain is running, paused (the
 * secondary: created paused, never run until the runner unpauses it) or suspended
 * (SHUTDOWN_suspend). Log-dirty (SHADOW_OP_ENABLE_LOGDIRTY) is on or off. The
 * device model's run state is $DIR/dom<D>.qemu ('1' running, '0' stopped; no file:
 * unknown), written by the test's fake agent. What real Xen/libxc would refuse or
 * silently corrupt is a line "VIOLATION ..." in the trace and a failure:
 *   - pages applied by the restore to a running domain;
 *   - the dirty-pfn list (SHADOW_OP_CLEAN) without log-dirty, or of a running domain;
 *   - xc_domain_resume(fast=1) (xg_resume.c's fast path rewrites vCPU0's rax);
 *   - resuming a domain that is not suspended, unpausing one that is not paused;
 *   - resuming/unpausing while the device model is stopped (libxl resumes QEMU
 *     first), except after the restore returned (failover: the agent's takeover
 *     resumes QEMU after FAILOVER_READY; traced, not refused);
 *   - a restore into a domain whose memory is already populated
 *     ($COLO_XEN_STANDIN_BUILT=<domid>: xc_domain_getinfo reports it built).
 * $COLO_XEN_STANDIN_CALLBACK_IRQ: the value of HVM_PARAM_CALLBACK_IRQ (PV drivers).
 *
 * Faults: COLO_XEN_STANDIN_FAULT="<domid>:<kind>:<n>", n counting checkpoints
 * from 1 (the initial sync's final one):
 *   cut      primary: mid-checkpoint n (half its pages written), SIGKILL the helper
 *            (the link breaks with a partial checkpoint on the wire)
 *   crash    SIGKILL ourselves (the runner) before checkpoint n's callback
 *   shutdown xc_domain_shutdown fails at checkpoint n (the suspend callback fails)
 *   acked    primary: SIGKILL the helper right after checkpoint n's ACK arrived
 *   bigdirty secondary: checkpoint n's dirty-pfn list is 16 MiB long
 *   slow     secondary: sleep 20 ms per PAGE_DATA record applied from checkpoint n on
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <xenctrl.h>
#include <xenguest.h>

#include "lib/wire.h"

#define PS 4096u
#define BATCH 64u
#define MAX_BODY (16u << 20)
/* Record types: libxc's numbers (docs/specs/libxc-migration-stream.pandoc);
 * the bodies are simplified. */
enum { REC_END = 0x0, REC_PAGE_DATA = 0x1, REC_HVM_CONTEXT = 0x7, REC_CHECKPOINT = 0xe,
       REC_DIRTY_PFN_LIST = 0xf, REC_STATIC_DATA_END = 0x10, REC_DOMAIN_HEADER = 0x100 };
#define IHDR_MARKER 0xffffffffffffffffull
#define IHDR_ID 0x58454e46u /* "XENF" */

struct xc_interface_core {
	int unused;
};

/* One synthetic domain per process (the runner drives one). */
enum dstate { D_RUNNING, D_PAUSED, D_SUSPENDED };
static const char *const dstate_names[] = { "running", "paused", "suspended" };
static struct {
	uint32_t domid;
	uint8_t *mem, *snap;
	size_t npages;
	enum dstate st;
	bool logdirty;
	bool restore_over; /* xc_domain_restore returned (failover) */
	int ckpt; /* checkpoints begun, from 1 */
	char fault[16];
	int fault_n;
} dom;

static void trace(const char *fmt, ...)
{
	char path[512];
	const char *dir = getenv("COLO_XEN_STANDIN_DIR");
	va_list ap;
	snprintf(path, sizeof(path), "%s/dom%u.trace", dir ? dir : "/tmp", dom.domid);
	FILE *f = fopen(path, "a");
	if (!f)
		return;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
	fclose(f);
}

static bool fault(const char *kind)
{
	return dom.fault[0] && !strcmp(dom.fault, kind) && dom.fault_n == dom.ckpt;
}

static int open_dom(uint32_t domid)
{
	char path[512];
	const char *dir = getenv("COLO_XEN_STANDIN_DIR");
	const char *f = getenv("COLO_XEN_STANDIN_FAULT");
	struct stat st;
	unsigned fd_dom;
	if (dom.mem)
		return dom.domid == domid ? 0 : -1;
	dom.domid = domid;
	if (f && sscanf(f, "%u:%15[a-z]:%d", &fd_dom, dom.fault, &dom.fault_n) == 3 && fd_dom != domid)
		dom.fault[0] = '\0';
	snprintf(path, sizeof(path), "%s/dom%u.mem", dir ? dir : "/tmp", domid);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || st.st_size < (off_t)PS || st.st_size % PS) {
		if (fd >= 0)
			close(fd);
		errno = ENOENT;
		return -1;
	}
	dom.npages = (size_t)st.st_size / PS;
	dom.mem = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	dom.snap = calloc(dom.npages, PS);
	if (dom.mem == MAP_FAILED || !dom.snap)
		return -1;
	return 0;
}

/* ---- libxenctrl --------------------------------------------------------------------- */

xc_interface *xc_interface_open(xentoollog_logger *logger, xentoollog_logger *dombuild_logger,
				unsigned open_flags)
{
	return calloc(1, sizeof(struct xc_interface_core));
}

int xc_interface_close(xc_interface *xch)
{
	free(xch);
	return 0;
}

static int violation(int err, const char *what)
{
	trace("VIOLATION %s", what);
	errno = err;
	return -1;
}

/* The fake device model's run state: 1 running, 0 stopped, -1 unknown. */
static int qemu_running(void)
{
	char path[512], c = 0;
	const char *dir = getenv("COLO_XEN_STANDIN_DIR");
	snprintf(path, sizeof(path), "%s/dom%u.qemu", dir ? dir : "/tmp", dom.domid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	if (fread(&c, 1, 1, f) != 1)
		c = 0;
	fclose(f);
	return c == '1';
}

int xc_domain_shutdown(xc_interface *xch, uint32_t domid, int reason)
{
	if (open_dom(domid))
		return -1;
	if (reason != SHUTDOWN_suspend || fault("shutdown")) {
		errno = EINVAL;
		return -1;
	}
	trace("xen suspend (was %s)", dstate_names[dom.st]);
	dom.st = D_SUSPENDED;
	return 0;
}

int xc_domain_resume(xc_interface *xch, uint32_t domid, int fast)
{
	if (open_dom(domid))
		return -1;
	trace("resume fast=%d", fast);
	if (fast)
		return violation(EINVAL, "xc_domain_resume(fast=1): vCPU0's rax is rewritten");
	if (dom.st != D_SUSPENDED)
		return violation(EINVAL, "resume of a domain that is not suspended");
	if (qemu_running() == 0 && !dom.restore_over)
		return violation(EINVAL, "domain resumed while its device model is stopped");
	if (qemu_running() == 0)
		trace("resumed after failover; the device model is still stopped");
	dom.st = D_RUNNING;
	return 0;
}

int xc_domain_unpause(xc_interface *xch, uint32_t domid)
{
	if (open_dom(domid))
		return -1;
	trace("unpause");
	if (dom.st != D_PAUSED)
		return violation(EINVAL, "unpause of a domain that is not paused");
	if (qemu_running() == 0)
		return violation(EINVAL, "domain unpaused while its device model is stopped");
	dom.st = D_RUNNING;
	return 0;
}

int xc_shadow_control(xc_interface *xch, uint32_t domid, unsigned int sop, unsigned int *mb,
		      unsigned int mode)
{
	if (open_dom(domid))
		return -1;
	trace("shadow op %u", sop);
	if (sop == XEN_DOMCTL_SHADOW_OP_OFF) {
		dom.logdirty = false;
		return 0;
	}
	if (sop != XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY || dom.logdirty) {
		errno = EINVAL; /* Xen: log-dirty already on */
		return -1;
	}
	dom.logdirty = true;
	return 0;
}

int xc_hvm_param_get(xc_interface *handle, uint32_t domid, uint32_t param, uint64_t *value)
{
	const char *cb = getenv("COLO_XEN_STANDIN_CALLBACK_IRQ");
	*value = param == HVM_PARAM_CALLBACK_IRQ && cb ? strtoull(cb, NULL, 0) : 0;
	return 0;
}

int xc_domain_getinfo(xc_interface *xch, uint32_t first_domid, unsigned int max_doms,
		      xc_dominfo_t *info)
{
	const char *built = getenv("COLO_XEN_STANDIN_BUILT");
	if (open_dom(first_domid))
		return -1;
	memset(info, 0, sizeof(*info));
	info->domid = first_domid;
	info->hvm = 1;
	info->shutdown = dom.st == D_SUSPENDED;
	info->shutdown_reason = dom.st == D_SUSPENDED ? SHUTDOWN_suspend : 0;
	info->paused = dom.st == D_PAUSED;
	/* libxl: max_pages = target + 1 MiB. A built domain has its target populated. */
	info->max_memkb = dom.npages * (PS / 1024) + 1024;
	info->nr_pages = built && strtoul(built, NULL, 0) == first_domid ? dom.npages : 4;
	return 1;
}

/* ---- the byte stream ------------------------------------------------------------------ */

static int write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n) {
		ssize_t k = write(fd, b, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		b += k;
		n -= (size_t)k;
	}
	return 0;
}

static int read_all(int fd, void *p, size_t n)
{
	uint8_t *b = p;
	while (n) {
		ssize_t k = read(fd, b, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			errno = k == 0 ? EPIPE : errno;
			return -1;
		}
		b += k;
		n -= (size_t)k;
	}
	return 0;
}

static int put_rec(int fd, uint32_t type, const void *body, size_t len)
{
	struct wr w;
	static const uint8_t pad[8];
	wr_init(&w);
	wr_be32(&w, type);
	wr_be32(&w, (uint32_t)len);
	int rc = w.err ? -1 : write_all(fd, w.buf, w.len);
	wr_free(&w);
	if (!rc && len)
		rc = write_all(fd, body, len);
	if (!rc && len % 8)
		rc = write_all(fd, pad, 8 - len % 8);
	return rc;
}

static int put_pages(int fd, const uint32_t *pfns, size_t n)
{
	struct wr w;
	wr_init(&w);
	wr_be32(&w, (uint32_t)n);
	wr_be32(&w, 0);
	for (size_t i = 0; i < n; i++)
		wr_be64(&w, pfns[i]);
	for (size_t i = 0; i < n; i++) {
		wr_bytes(&w, dom.mem + (size_t)pfns[i] * PS, PS);
		memcpy(dom.snap + (size_t)pfns[i] * PS, dom.mem + (size_t)pfns[i] * PS, PS);
	}
	int rc = w.err ? -1 : put_rec(fd, REC_PAGE_DATA, w.buf, w.len);
	wr_free(&w);
	return rc;
}

static bool page_dirty(size_t pfn)
{
	return memcmp(dom.mem + pfn * PS, dom.snap + pfn * PS, PS) != 0;
}

/* Send the pages marked in `want`, every page (`all`), or every changed one. With
 * `cut`, stop halfway and break the link (fault injection). */
static int send_pages(int fd, const bool *want, bool all, bool cut)
{
	uint32_t *list = malloc(dom.npages * sizeof(*list));
	size_t n = 0;
	int rc = 0;
	if (!list)
		return -1;
	for (size_t p = 0; p < dom.npages; p++)
		if (all || page_dirty(p) || (want && want[p]))
			list[n++] = (uint32_t)p;
	for (size_t i = 0; i < n && !rc; i += BATCH) {
		if (cut && i >= n / 2) {
			struct timespec t = { 0, 300 * 1000000L };
			nanosleep(&t, NULL); /* let the helper put the first half on the wire */
			trace("cut");
			kill(getppid(), SIGKILL);
			nanosleep(&t, NULL);
			errno = EPIPE;
			rc = -1;
			break;
		}
		rc = put_pages(fd, list + i, n - i < BATCH ? n - i : BATCH);
	}
	free(list);
	return rc;
}

static int put_headers(int fd)
{
	struct wr w;
	wr_init(&w);
	wr_be64(&w, IHDR_MARKER);
	wr_be32(&w, IHDR_ID);
	wr_be32(&w, 3);
	wr_be32(&w, 0);
	wr_be32(&w, 0);
	int rc = w.err ? -1 : write_all(fd, w.buf, w.len);
	wr_reset(&w);
	wr_be32(&w, 2); /* x86 HVM */
	wr_be32(&w, 12); /* page shift */
	wr_be32(&w, 4);
	wr_be32(&w, 17);
	if (!rc)
		rc = put_rec(fd, REC_DOMAIN_HEADER, w.buf, w.len);
	if (!rc)
		rc = put_rec(fd, REC_STATIC_DATA_END, NULL, 0);
	wr_free(&w);
	return rc;
}

/* COLO's back channel: the secondary's dirty pfns for this checkpoint. */
static int read_peer_dirty(int fd, bool *want)
{
	uint8_t hdr[8];
	struct rd r = rd_init(hdr, sizeof(hdr));
	uint32_t type, len;
	if (read_all(fd, hdr, sizeof(hdr)))
		return -1;
	rd_be32(&r, &type);
	rd_be32(&r, &len);
	if (type != REC_DIRTY_PFN_LIST || len % 8 || len > MAX_BODY) {
		errno = EBADMSG;
		return -1;
	}
	uint8_t *body = malloc(len ? len : 1);
	if (!body || read_all(fd, body, len)) {
		free(body);
		return -1;
	}
	r = rd_init(body, len);
	for (uint32_t i = 0; i < len / 8; i++) {
		uint64_t pfn;
		rd_be64(&r, &pfn);
		if (pfn < dom.npages)
			want[pfn] = true;
	}
	free(body);
	trace("peer dirty %u", len / 8);
	return 0;
}

/* ---- libxenguest: save ----------------------------------------------------------------- */

/* 0 go on, 1 stopped by a callback returning 0 (save returns 0), -1 error. */
static int save_checkpoint(int io, struct save_callbacks *cb, int recv_fd, bool first, bool *want)
{
	struct wr w;
	dom.ckpt++;
	trace("suspend");
	if (cb->suspend(cb->data) == 0)
		return -1;
	if (dom.st != D_SUSPENDED) {
		errno = EINVAL; /* "Domain has not been suspended" */
		return -1;
	}
	memset(want, 0, dom.npages);
	if (!first && read_peer_dirty(recv_fd, want))
		return -1;
	if (send_pages(io, want, false, fault("cut")))
		return -1;
	wr_init(&w);
	wr_be64(&w, (uint64_t)dom.ckpt); /* the "vCPU state": which checkpoint this is */
	int rc = w.err ? -1 : put_rec(io, REC_HVM_CONTEXT, w.buf, w.len);
	wr_free(&w);
	if (rc || put_rec(io, REC_CHECKPOINT, NULL, 0))
		return -1;
	if (fault("crash"))
		raise(SIGKILL);
	trace("checkpoint");
	if (cb->checkpoint(cb->data) == 0)
		return -1;
	if (fault("acked")) { /* the ACK is in: the helper dies before anything else */
		kill(getppid(), SIGKILL);
		raise(SIGKILL);
	}
	trace("postcopy");
	int v = cb->postcopy(cb->data);
	if (v <= 0)
		return v < 0 ? -1 : 1; /* xg_sr_save.c: rc 0 from postcopy -> save returns 0 */
	trace("wait_checkpoint");
	v = cb->wait_checkpoint(cb->data);
	return v < 0 ? -1 : v == 0 ? 1 : 0;
}

int xc_domain_save(xc_interface *xch, int io_fd, uint32_t domid, uint32_t flags,
		   struct save_callbacks *cb, xc_stream_type_t stream_type, int recv_fd)
{
	int rc = -1;
	bool *want = NULL, logdirty = false;
	if (stream_type != XC_STREAM_COLO || !(flags & XCFLAGS_LIVE) || open_dom(domid))
		return -1;
	want = calloc(dom.npages, 1);
	trace("switch_qemu_logdirty 1");
	if (!want || cb->switch_qemu_logdirty(domid, 1, cb->data))
		goto out;
	logdirty = true;
	if (put_headers(io_fd) || send_pages(io_fd, NULL, true, false))
		goto out;
	/* Live passes while the "guest" runs: whatever changed since it was sent. */
	for (int pass = 0; pass < 2; pass++)
		if (send_pages(io_fd, NULL, false, false))
			goto out;
	for (bool first = true;; first = false) {
		int v = save_checkpoint(io_fd, cb, recv_fd, first, want);
		if (v) {
			rc = v > 0 ? 0 : -1;
			goto out;
		}
	}
out:
	if (logdirty) { /* libxc: only what it switched on */
		trace("switch_qemu_logdirty 0");
		cb->switch_qemu_logdirty(domid, 0, cb->data);
	}
	free(want);
	return rc;
}

/* ---- libxenguest: restore ---------------------------------------------------------------- */

struct rec {
	uint32_t type, len;
	uint8_t *body;
};

static int read_rec(int fd, struct rec *r)
{
	uint8_t hdr[8];
	struct rd c = rd_init(hdr, sizeof(hdr));
	if (read_all(fd, hdr, sizeof(hdr)))
		return -1;
	rd_be32(&c, &r->type);
	rd_be32(&c, &r->len);
	size_t padded = (r->len + 7u) & ~7u;
	if (r->len > MAX_BODY) {
		errno = EBADMSG;
		return -1;
	}
	r->body = malloc(padded ? padded : 1);
	if (!r->body || read_all(fd, r->body, padded)) {
		free(r->body);
		return -1;
	}
	return 0;
}

static int apply(const struct rec *r)
{
	struct rd c = rd_init(r->body, r->len);
	uint32_t n, rsv;
	if (r->type != REC_PAGE_DATA)
		return 0; /* headers and HVM_CONTEXT: nothing to do in the stand-in */
	if (dom.st == D_RUNNING)
		return violation(EBUSY, "pages applied to a running domain");
	if (dom.fault[0] && !strcmp(dom.fault, "slow") && dom.ckpt + 1 >= dom.fault_n) {
		struct timespec t = { 0, 20 * 1000000L };
		nanosleep(&t, NULL);
	}
	rd_be32(&c, &n);
	rd_be32(&c, &rsv);
	if (c.err || (uint64_t)n * (8 + PS) != r->len - 8u) {
		errno = EBADMSG;
		return -1;
	}
	const uint8_t *data = r->body + 8 + (size_t)n * 8;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t pfn;
		rd_be64(&c, &pfn);
		if (pfn >= dom.npages) {
			errno = EBADMSG;
			return -1;
		}
		memcpy(dom.mem + pfn * PS, data + (size_t)i * PS, PS);
	}
	return 0;
}

/* 1 go on, 0 COLO failover (return success), -1 error: libxenguest's mapping. */
static int verdict(int ret)
{
	return ret == 1 ? 1 : ret == 2 ? 0 : -1;
}

static int send_dirty(int fd)
{
	struct wr w;
	if (!dom.logdirty) /* xg_sr_restore.c: SHADOW_OP_CLEAN on a domain without it */
		return violation(EINVAL, "dirty-pfn list without log-dirty on the secondary");
	if (dom.st == D_RUNNING)
		return violation(EINVAL, "dirty-pfn list of a running domain (not suspended)");
	wr_init(&w);
	size_t n = 0;
	for (size_t p = 0; p < dom.npages; p++)
		if (page_dirty(p)) {
			wr_be64(&w, p);
			n++;
		}
	if (fault("bigdirty")) /* a 16 MiB list (pfn 0 repeated): longer than any socket buffer */
		for (size_t i = 0; i < (16u << 20) / 8; i++)
			wr_be64(&w, 0);
	int rc = w.err ? -1 : put_rec(fd, REC_DIRTY_PFN_LIST, w.buf, w.len);
	wr_free(&w);
	trace("dirty %zu", n);
	return rc;
}

/* restore.checkpoint and what libxenguest runs after it in a COLO stream. */
static int handle_checkpoint(struct restore_callbacks *cb, struct rec *buf, size_t *nbuf,
			     bool *buffering, int back)
{
	dom.ckpt++;
	if (fault("crash"))
		raise(SIGKILL);
	trace("checkpoint");
	int v = cb->checkpoint(cb->data);
	if (v == 2)
		return *buffering ? 0 : -1;
	if (v != 1)
		return -1;
	for (size_t i = 0; i < *nbuf; i++)
		if (apply(&buf[i]))
			return -1;
	for (size_t i = 0; i < *nbuf; i++)
		free(buf[i].body);
	*nbuf = 0;
	*buffering = true;
	trace("restore_results");
	cb->restore_results(0xfeffc, 0xfeffd, cb->data);
	trace("postcopy");
	if ((v = verdict(cb->postcopy(cb->data))) <= 0)
		return v;
	memcpy(dom.snap, dom.mem, dom.npages * PS); /* the VM runs from here */
	trace("wait_checkpoint");
	if ((v = verdict(cb->wait_checkpoint(cb->data))) <= 0)
		return v;
	trace("suspend");
	if ((v = verdict(cb->suspend(cb->data))) <= 0)
		return v;
	return send_dirty(back) ? -1 : 1;
}

int xc_domain_restore(xc_interface *xch, int io_fd, uint32_t dom_id, unsigned int store_evtchn,
		      unsigned long *store_mfn, uint32_t store_domid, unsigned int console_evtchn,
		      unsigned long *console_mfn, uint32_t console_domid,
		      xc_stream_type_t stream_type, struct restore_callbacks *cb, int send_back_fd)
{
	uint8_t ihdr[24];
	struct rd c = rd_init(ihdr, sizeof(ihdr));
	uint64_t marker;
	uint32_t id;
	struct rec *buf = NULL, r;
	size_t nbuf = 0, cap = 0;
	bool buffering = false;
	int rc = -1;
	if (stream_type != XC_STREAM_COLO || open_dom(dom_id))
		return -1;
	dom.st = D_PAUSED; /* the toolstack created it paused; it never ran */
	trace("restore store evtchn %u domid %u console evtchn %u domid %u", store_evtchn,
	      store_domid, console_evtchn, console_domid);
	if (read_all(io_fd, ihdr, sizeof(ihdr)))
		return -1;
	rd_be64(&c, &marker);
	rd_be32(&c, &id);
	if (marker != IHDR_MARKER || id != IHDR_ID) {
		errno = EBADMSG;
		return -1;
	}
	for (;;) {
		if (read_rec(io_fd, &r)) {
			/* libxenguest: a read error after the first checkpoint = failover */
			rc = buffering ? 0 : -1;
			trace(buffering ? "failover" : "read error");
			break;
		}
		if (buffering && r.type != REC_CHECKPOINT && r.type != REC_END) {
			if (nbuf == cap) {
				cap = cap ? cap * 2 : 64;
				struct rec *n = realloc(buf, cap * sizeof(*n));
				if (!n)
					break;
				buf = n;
			}
			buf[nbuf++] = r;
			continue;
		}
		int v = r.type == REC_CHECKPOINT ? handle_checkpoint(cb, buf, &nbuf, &buffering, send_back_fd)
						 : apply(&r);
		free(r.body);
		bool ckpt = r.type == REC_CHECKPOINT;
		if (r.type == REC_END || (ckpt ? v <= 0 : v < 0)) {
			rc = r.type == REC_END ? 0 : v;
			if (ckpt && v == 0)
				trace("failover");
			break;
		}
	}
	for (size_t i = 0; i < nbuf; i++)
		free(buf[i].body);
	free(buf);
	*store_mfn = 0xfeffc;
	*console_mfn = 0xfeffd;
	dom.restore_over = true;
	return rc < 0 ? -1 : 0;
}
