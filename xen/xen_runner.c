/* xen_runner.c - the runner: the process that blocks in libxenguest's
 * xc_domain_save (primary) or xc_domain_restore (secondary), COLO stream type.
 * libxenguest calls back synchronously from inside those functions; each callback
 * becomes one CALL on the control socketpair and waits for the helper's REPLY
 * (docs/xen-helper.md §2-§3). The helper, with its own event loop, turns CALLs into
 * agent requests and carries libxc's bytes on the replication link.
 *
 * The runner does to the domain what needs the hypervisor handle, in libxl's order
 * (libxl_dom_suspend.c, libxl_colo_save.c, libxl_colo_restore.c of Xen 4.17):
 *  - suspend: SHUTDOWN_suspend and wait for it, then the helper stops QEMU
 *    (both roles);
 *  - resume: the helper resumes QEMU first, then xc_domain_resume(domid, 0)
 *    (never fast=1: xg_resume.c's fast path rewrites vCPU0's rax, which corrupts an
 *    HVM guest with a PV event-channel callback);
 *  - the secondary's first postcopy: log-dirty on in Xen (SHADOW_OP_ENABLE_LOGDIRTY)
 *    and in QEMU (RESTORE_LOGDIRTY), then xc_domain_unpause (the domain was
 *    created paused and has never run).
 * Everything about QEMU is the agent's. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <xenctrl.h>
#include <xenguest.h>
#include <xen/hvm/params.h>

#include "lib/log.h"
#include "xen/xen_helper.h"
#include "xen/xen_ctl.h"

#define SUSPEND_WAIT_MS 5000 /* a domain that does not suspend in 5 s never will */

struct runner {
	xc_interface *xch;
	const struct xen_runner_cfg *cfg;
	bool suspended; /* by us, not yet resumed: resume it if the save/restore ends */
	bool unpaused;  /* secondary: the first postcopy unpaused the domain */
	bool broken;    /* the helper is gone: every callback fails at once */
};

/* One callback round trip. Returns the helper's value, or `failed` when the
 * channel broke or the helper answered something else (it is then never asked
 * again: libxenguest unwinds with the failure value). */
static int call(struct runner *r, const struct xen_ctl *m, int failed)
{
	struct xen_ctl rep;
	char why[160];
	if (r->broken || xen_ctl_send(r->cfg->ctl, m) < 0)
		goto broken;
	for (;;) {
		struct pollfd p = { .fd = r->cfg->ctl, .events = POLLIN };
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			goto broken;
		int rc = xen_ctl_recv(r->cfg->ctl, XEN_CTL_TO_RUNNER, &rep, why, sizeof(why));
		if (rc == 0)
			continue;
		if (rc < 0) {
			if (rc == -EBADMSG)
				log_err("runner: bad reply from the helper: %s", why);
			goto broken;
		}
		if (rep.reply.call != m->type) {
			log_err("runner: the helper answered %s to %s", xen_ctl_name(rep.reply.call),
				xen_ctl_name(m->type));
			goto broken;
		}
		return rep.reply.ret;
	}
broken:
	r->broken = true;
	return failed;
}

static int simple(struct runner *r, uint16_t type, int failed)
{
	struct xen_ctl m = { .type = type };
	return call(r, &m, failed);
}

/* ---- primary: xc_domain_save's callbacks -------------------------------------------- */

static bool domain_suspended(struct runner *r)
{
	xc_dominfo_t info;
	return xc_domain_getinfo(r->xch, r->cfg->domid, 1, &info) == 1 &&
	       info.domid == r->cfg->domid && info.shutdown &&
	       info.shutdown_reason == SHUTDOWN_suspend;
}

/* SHUTDOWN_suspend, then wait until Xen reports the domain suspended. */
static int suspend_domain(struct runner *r)
{
	struct timespec ms = { 0, 1000000 };
	if (xc_domain_shutdown(r->xch, r->cfg->domid, SHUTDOWN_suspend)) {
		log_err("runner: cannot suspend domain %u: %s", r->cfg->domid, strerror(errno));
		return -1;
	}
	r->suspended = true;
	for (int i = 0; !domain_suspended(r); i++) {
		if (i == SUSPEND_WAIT_MS) {
			log_err("runner: domain %u did not suspend within %d ms", r->cfg->domid,
				SUSPEND_WAIT_MS);
			return -1;
		}
		nanosleep(&ms, NULL);
	}
	return 0;
}

/* After the device model runs again: xc_domain_resume, never the fast path. */
static int resume_domain(struct runner *r)
{
	if (xc_domain_resume(r->xch, r->cfg->domid, 0)) {
		log_err("runner: cannot resume domain %u: %s", r->cfg->domid, strerror(errno));
		return -1;
	}
	r->suspended = false;
	return 0;
}

static int save_suspend(void *data)
{
	struct runner *r = data;
	if (suspend_domain(r))
		return 0;
	return simple(r, XEN_CTL_SAVE_SUSPEND, 0); /* libxenguest: 0 = failed */
}

/* libxl's order (libxl__domain_resume): the device model first, then the domain. */
static int save_postcopy(void *data)
{
	struct runner *r = data;
	int v = simple(r, XEN_CTL_SAVE_POSTCOPY, 0);
	if (v <= 0)
		return v;
	return resume_domain(r) ? 0 : v;
}

static int save_checkpoint(void *data)
{
	return simple(data, XEN_CTL_SAVE_CHECKPOINT, 0);
}

static int save_wait(void *data)
{
	return simple(data, XEN_CTL_SAVE_WAIT, 0);
}

static int save_logdirty(uint32_t domid, unsigned enable, void *data)
{
	struct xen_ctl m = { .type = XEN_CTL_SAVE_LOGDIRTY,
			     .logdirty = { .domid = domid, .enable = enable ? 1 : 0 } };
	return call(data, &m, -1); /* libxenguest: nonzero = failed */
}

static int run_save(struct runner *r)
{
	struct save_callbacks cb = { .suspend = save_suspend, .postcopy = save_postcopy,
				     .checkpoint = save_checkpoint, .wait_checkpoint = save_wait,
				     .switch_qemu_logdirty = save_logdirty, .data = r };
	return xc_domain_save(r->xch, r->cfg->io, r->cfg->domid, XCFLAGS_LIVE, &cb, XC_STREAM_COLO,
			      r->cfg->back);
}

/* ---- secondary: xc_domain_restore's callbacks --------------------------------------- */

static int restore_checkpoint(void *data)
{
	return simple(data, XEN_CTL_RESTORE_CHECKPOINT, XGR_CHECKPOINT_ERROR);
}

/* libxl's colo_enable_logdirty: Xen's log first (if it is already on, switched off
 * and on again: a clean start), then the device model's. */
static int enable_logdirty(struct runner *r)
{
	uint32_t domid = r->cfg->domid;
	if (xc_shadow_control(r->xch, domid, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY, NULL, 0) < 0) {
		int err = errno;
		if (xc_shadow_control(r->xch, domid, XEN_DOMCTL_SHADOW_OP_OFF, NULL, 0) < 0 ||
		    xc_shadow_control(r->xch, domid, XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY, NULL, 0) < 0) {
			log_err("runner: cannot enable log-dirty on secondary domain %u: %s (libxc "
				"needs it to send its dirty-pfn list)", domid, strerror(err));
			return -1;
		}
	}
	struct xen_ctl m = { .type = XEN_CTL_RESTORE_LOGDIRTY,
			     .logdirty = { .domid = domid, .enable = 1 } };
	if (call(r, &m, -1)) {
		log_err("runner: the device model of domain %u cannot log its dirty pages", domid);
		return -1;
	}
	return 0;
}

/* postcopy, wait_checkpoint, suspend: 1 go on, 2 fail over (BROKEN_CHANNEL), 0 fail.
 * postcopy: the helper's LOAD (QEMU has the checkpoint's device state and runs);
 * then the domain goes: the first time it was never run (unpause), later it is
 * suspended (resume). */
static int restore_postcopy(void *data)
{
	struct runner *r = data;
	int v = simple(r, XEN_CTL_RESTORE_POSTCOPY, 0);
	if (v != 1)
		return v;
	if (r->unpaused)
		return resume_domain(r) ? 0 : 1;
	if (enable_logdirty(r))
		return 0;
	if (xc_domain_unpause(r->xch, r->cfg->domid)) {
		log_err("runner: cannot unpause secondary domain %u: %s", r->cfg->domid,
			strerror(errno));
		return 0;
	}
	r->unpaused = true;
	return 1;
}

static int restore_wait(void *data)
{
	return simple(data, XEN_CTL_RESTORE_WAIT, 0);
}

/* libxl__colo_restore_domain_suspend_callback: the domain, then the device model. */
static int restore_suspend(void *data)
{
	struct runner *r = data;
	if (r->broken || suspend_domain(r))
		return 0;
	return simple(r, XEN_CTL_RESTORE_SUSPEND, 0);
}

static void restore_results(xen_pfn_t store_gfn, xen_pfn_t console_gfn, void *data)
{
	struct xen_ctl m = { .type = XEN_CTL_RESTORE_RESULTS,
			     .results = { .store_gfn = store_gfn, .console_gfn = console_gfn } };
	call(data, &m, 0);
}

static int run_restore(struct runner *r)
{
	struct restore_callbacks cb = { .checkpoint = restore_checkpoint,
					.postcopy = restore_postcopy,
					.wait_checkpoint = restore_wait, .suspend = restore_suspend,
					.restore_results = restore_results, .data = r };
	unsigned long store_mfn = 0, console_mfn = 0;
	const struct xen_runner_cfg *c = r->cfg;
	log_info("runner: restoring domain %u: xenstore event channel %u (served by domain %u), "
		 "console event channel %u (domain %u)", c->domid, c->store_evtchn, c->store_domid,
		 c->console_evtchn, c->console_domid);
	return xc_domain_restore(r->xch, c->io, c->domid, c->store_evtchn, &store_mfn,
				 c->store_domid, c->console_evtchn, &console_mfn, c->console_domid,
				 XC_STREAM_COLO, &cb, c->back);
}

/* ---- checks before the stream --------------------------------------------------------- */

/* libxc's restore populates the secondary's memory itself (populate_physmap, up to
 * max_pages = target + 1 MiB in libxl): a domain already built by `xl create -p`
 * has its memory populated and the restore fails past max_pages; a device model
 * started on it holds mappings of frames the restore replaces. Refuse it. */
static int check_unbuilt(struct runner *r)
{
	xc_dominfo_t info;
	if (xc_domain_getinfo(r->xch, r->cfg->domid, 1, &info) != 1 || info.domid != r->cfg->domid) {
		log_err("runner: secondary domain %u does not exist", r->cfg->domid);
		return -1;
	}
	unsigned long max_pages = info.max_memkb / 4;
	if (info.nr_pages && max_pages && info.nr_pages >= max_pages / 2) {
		log_err("runner: secondary domain %u already has %lu of its %lu pages populated: it "
			"was built (xl create -p?); libxc's restore needs a domain created without "
			"its memory (docs/xen.md, the secondary's contract)", r->cfg->domid,
			info.nr_pages, max_pages);
		return -1;
	}
	return 0;
}

/* An HVM guest with PV drivers registers an event-channel upcall
 * (HVM_PARAM_CALLBACK_IRQ). libxl suspends such a guest through its PV suspend
 * protocol (xenstore control/shutdown or the suspend event channel) when the guest
 * advertises it (control/feature-suspend); we only use SHUTDOWN_suspend. */
static void warn_pv_drivers(struct runner *r)
{
	uint64_t cb = 0;
	if (xc_hvm_param_get(r->xch, r->cfg->domid, HVM_PARAM_CALLBACK_IRQ, &cb) == 0 && cb)
		log_warn("runner: domain %u has an event-channel callback (HVM_PARAM_CALLBACK_IRQ "
			 "0x%llx): it runs PV drivers. This helper suspends it with SHUTDOWN_suspend "
			 "behind the drivers' back and resumes it with xc_domain_resume(fast=0); "
			 "libxl would use the PV suspend protocol if the guest advertises "
			 "control/feature-suspend. Untested with such a guest (docs/xen.md)",
			 r->cfg->domid, (unsigned long long)cb);
}

/* ---- main --------------------------------------------------------------------------- */

int xen_runner_main(const struct xen_runner_cfg *cfg)
{
	struct runner r = { .cfg = cfg };
	struct xen_ctl fin = { .type = XEN_CTL_FINISHED };
	signal(SIGPIPE, SIG_IGN); /* a closed io_fd is an error return, not a death */
	r.xch = xc_interface_open(NULL, NULL, 0);
	if (!r.xch) {
		log_err("runner: cannot open the Xen control interface: %s", strerror(errno));
		fin.fin.rc = -1;
		fin.fin.err = (uint32_t)(errno > 0 && errno < 4096 ? errno : EIO);
		xen_ctl_send(cfg->ctl, &fin);
		return 1;
	}
	if (!cfg->primary && check_unbuilt(&r)) {
		fin.fin.rc = -1;
		fin.fin.err = EEXIST;
		fin.fin.flags = XEN_CTL_FIN_REFUSED;
		xc_interface_close(r.xch);
		xen_ctl_send(cfg->ctl, &fin);
		return 1;
	}
	warn_pv_drivers(&r);
	int rc = cfg->primary ? run_save(&r) : run_restore(&r);
	int err = errno;
	if (rc)
		log_err("runner: %s of domain %u returned %d: %s", cfg->primary ? "save" : "restore",
			cfg->domid, rc, strerror(err));
	else if (cfg->primary)
		log_info("runner: save of domain %u stopped (a callback said stop)", cfg->domid);
	if (r.suspended && cfg->primary) {
		/* A save that ended with the domain suspended: it runs on, unprotected.
		 * The device model first (the helper asks the agent), then the domain. */
		if (!r.broken)
			simple(&r, XEN_CTL_SAVE_RESUME_QEMU, 0);
		if (resume_domain(&r) == 0)
			fin.fin.flags = XEN_CTL_FIN_RESUMED;
	} else if (!cfg->primary && rc == 0) {
		/* Failover (libxl's colo_disable_logdirty, then from the suspended state
		 * colo_resume_vm): log-dirty off, the domain runs again; the agent's
		 * takeover resumes the device model. */
		if (r.unpaused &&
		    xc_shadow_control(r.xch, cfg->domid, XEN_DOMCTL_SHADOW_OP_OFF, NULL, 0) < 0)
			log_warn("runner: cannot disable log-dirty on domain %u after failover: %s",
				 cfg->domid, strerror(errno));
		if (r.suspended && resume_domain(&r) == 0)
			fin.fin.flags = XEN_CTL_FIN_RESUMED;
	}
	fin.fin.rc = rc;
	fin.fin.err = rc && err > 0 && err < 4096 ? (uint32_t)err : 0;
	xc_interface_close(r.xch);
	if (!r.broken)
		xen_ctl_send(cfg->ctl, &fin);
	return rc ? 1 : 0;
}
