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
 * Faults: COLO_XEN_STANDIN_FAULT="<domid>:<kind>:<n>", n counting checkpoints
 * from 1 (the initial sync's final one):
 *   cut      primary: mid-checkpoint n (half its pages written), SIGKILL the helper
 *            (the link breaks with a partial checkpoint on the wire)
 *   crash    SIGKILL ourselves (the runner) before checkpoint n's callback
 *   shutdown xc_domain_shutdown fails at checkpoint n (the suspend callback fails)
 *   acked    primary: SIGKILL the helper right after checkpoint n's ACK arrived
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
static struct {
	uint32_t domid;
	uint8_t *mem, *snap;
	size_t npages;
	bool suspended;
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

int xc_domain_shutdown(xc_interface *xch, uint32_t domid, int reason)
{
	if (reason != SHUTDOWN_suspend || fault("shutdown")) {
		errno = EINVAL;
		return -1;
	}
	dom.suspended = true;
	return 0;
}

int xc_domain_resume(xc_interface *xch, uint32_t domid, int fast)
{
	trace("resume fast=%d", fast);
	dom.suspended = false;
	return 0;
}

int xc_domain_getinfo(xc_interface *xch, uint32_t first_domid, unsigned int max_doms,
		      xc_dominfo_t *info)
{
	memset(info, 0, sizeof(*info));
	info->domid = first_domid;
	info->shutdown = dom.suspended;
	info->shutdown_reason = dom.suspended ? SHUTDOWN_suspend : 0;
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

static int save_checkpoint(int io, struct save_callbacks *cb, int recv_fd, bool first, bool *want)
{
	struct wr w;
	dom.ckpt++;
	trace("suspend");
	if (cb->suspend(cb->data) == 0)
		return -1;
	if (!dom.suspended) {
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
	if (cb->postcopy(cb->data) <= 0)
		return -1;
	trace("wait_checkpoint");
	return cb->wait_checkpoint(cb->data) <= 0 ? -1 : 0;
}

int xc_domain_save(xc_interface *xch, int io_fd, uint32_t domid, uint32_t flags,
		   struct save_callbacks *cb, xc_stream_type_t stream_type, int recv_fd)
{
	int rc = -1;
	bool *want = NULL;
	if (stream_type != XC_STREAM_COLO || !(flags & XCFLAGS_LIVE) || open_dom(domid))
		return -1;
	want = calloc(dom.npages, 1);
	trace("switch_qemu_logdirty 1");
	if (!want || cb->switch_qemu_logdirty(domid, 1, cb->data))
		goto out;
	if (put_headers(io_fd) || send_pages(io_fd, NULL, true, false))
		goto out;
	/* Live passes while the "guest" runs: whatever changed since it was sent. */
	for (int pass = 0; pass < 2; pass++)
		if (send_pages(io_fd, NULL, false, false))
			goto out;
	for (bool first = true;; first = false)
		if (save_checkpoint(io_fd, cb, recv_fd, first, want))
			goto out;
out:
	trace("switch_qemu_logdirty 0");
	cb->switch_qemu_logdirty(domid, 0, cb->data);
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
	wr_init(&w);
	size_t n = 0;
	for (size_t p = 0; p < dom.npages; p++)
		if (page_dirty(p)) {
			wr_be64(&w, p);
			n++;
		}
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
	if (stream_type != XC_STREAM_COLO || open_dom(dom_id) || read_all(io_fd, ihdr, sizeof(ihdr)))
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
	return rc < 0 ? -1 : 0;
}
