/* xen_ctl.h - the runner <-> helper control messages of docs/xen-helper.md §2:
 * encoder, bounds-checked parser (the fuzz target fuzz/fuzz_xen_ctl.c) and the
 * SOCK_SEQPACKET transport. Internal to xen/; needs no libxen header.
 *
 * The runner (the process blocked in xc_domain_save / xc_domain_restore) turns
 * every libxenguest callback into one CALL and blocks until the helper's REPLY
 * carries the callback's return value; FINISHED is its last message. A message
 * whose length, fields or direction do not match its type exactly is rejected.
 */
#ifndef COLO_XEN_XEN_CTL_H
#define COLO_XEN_XEN_CTL_H

#include <stddef.h>
#include <stdint.h>

#include "lib/wire.h"

#define XEN_CTL_HDR_LEN 8u
#define XEN_CTL_MAX 64u

enum xen_ctl_type {
	/* runner -> helper: one per libxenguest callback, answered by REPLY */
	XEN_CTL_SAVE_SUSPEND = 1,
	XEN_CTL_SAVE_POSTCOPY = 2,
	XEN_CTL_SAVE_CHECKPOINT = 3,
	XEN_CTL_SAVE_WAIT = 4,
	XEN_CTL_SAVE_LOGDIRTY = 5,   /* body: domid u32, enable u32 (0/1) */
	XEN_CTL_RESTORE_CHECKPOINT = 6,
	XEN_CTL_RESTORE_POSTCOPY = 7,
	XEN_CTL_RESTORE_WAIT = 8,
	XEN_CTL_RESTORE_SUSPEND = 9,
	XEN_CTL_RESTORE_RESULTS = 10, /* body: store_gfn u64, console_gfn u64 */
	/* runner -> helper, last: body rc u32 (signed), errno u32, flags u32, rsvd u32 */
	XEN_CTL_FINISHED = 11,
	/* runner -> helper, answered by REPLY (not libxenguest callbacks: the runner's
	 * own steps around them, docs/xen-helper.md §2) */
	XEN_CTL_RESTORE_LOGDIRTY = 12, /* body as SAVE_LOGDIRTY: the secondary's device
					* model dirty log, before the first unpause */
	XEN_CTL_SAVE_RESUME_QEMU = 13, /* the save failed with the domain suspended: resume
					* the device model first, then the runner resumes
					* the domain */
	/* helper -> runner */
	XEN_CTL_REPLY = 32, /* body: call u32 (the CALL's type), ret u32 (signed) */
};

/* FINISHED flags: the runner resumed the domain it had suspended; the runner
 * refused the domain before calling libxenguest (secondary: already built). */
#define XEN_CTL_FIN_RESUMED 0x1u
#define XEN_CTL_FIN_REFUSED 0x2u

enum xen_ctl_dir { XEN_CTL_TO_HELPER, XEN_CTL_TO_RUNNER };

struct xen_ctl {
	uint16_t type;
	union {
		struct {
			uint32_t domid;
			uint32_t enable;
		} logdirty;
		struct {
			uint64_t store_gfn, console_gfn;
		} results;
		struct {
			int32_t rc;
			uint32_t err; /* errno, 0..4095 */
			uint32_t flags;
		} fin;
		struct {
			uint16_t call;
			int32_t ret; /* -1..2: every libxenguest callback's range */
		} reply;
	};
};

const char *xen_ctl_name(uint16_t type);
/* Parse one datagram buf[0..len) travelling in direction dir: 0, or -EBADMSG with
 * a one-line reason in why. */
int xen_ctl_parse(const uint8_t *buf, size_t len, enum xen_ctl_dir dir, struct xen_ctl *m,
		  char *why, size_t why_len);
/* Append one message (errors sticky in w->err). */
void xen_ctl_put(struct wr *w, const struct xen_ctl *m);
/* Send / receive one datagram. send: 0 or -errno. recv: 1 with *m, 0 if nothing
 * waits (non-blocking socket), -EPIPE at EOF, -EBADMSG (why says what), -errno. */
int xen_ctl_send(int sock, const struct xen_ctl *m);
int xen_ctl_recv(int sock, enum xen_ctl_dir dir, struct xen_ctl *m, char *why, size_t why_len);

#endif
