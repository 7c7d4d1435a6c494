/* xen_runner.c - the runner: the process that blocks in libxenguest's
 * xc_domain_save (primary) or xc_domain_restore (secondary), COLO stream type.
 * libxenguest calls back synchronously from inside those functions; each callback
 * becomes one CALL on the control socketpair and waits for the helper's REPLY
 * (docs/xen-helper.md §2-§3). The helper, with its own event loop, turns CALLs into
 * agent requests and carries libxc's bytes on the replication link.
 *
 * The runner does to the domain only what needs the hypervisor handle: suspend it
 * (SHUTDOWN_suspend, as libxl does for an HVM guest without PV drivers) and
 * resume it (xc_domain_resume, fast). Everything about QEMU is the agent's. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <xenctrl.h>
#include <xenguest.h>

#include "lib/log.h"
#include "xen/xen_helper.h"
#include "xen/xen_ctl.h"

#define SUSPEND_WAIT_MS 5000 /* a domain that does not suspend in 5 s never will */

struct runner {
	xc_interface *xch;
	const struct xen_runner_cfg *cfg;
	bool suspended; /* by us, not yet resumed: resume it if the save fails */
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

static int save_suspend(void *data)
{
	struct runner *r = data;
	struct timespec ms = { 0, 1000000 };
	if (xc_domain_shutdown(r->xch, r->cfg->domid, SHUTDOWN_suspend)) {
		log_err("runner: cannot suspend domain %u: %s", r->cfg->domid, strerror(errno));
		return 0;
	}
	r->suspended = true;
	for (int i = 0; !domain_suspended(r); i++) {
		if (i == SUSPEND_WAIT_MS) {
			log_err("runner: domain %u did not suspend within %d ms", r->cfg->domid,
				SUSPEND_WAIT_MS);
			return 0;
		}
		nanosleep(&ms, NULL);
	}
	return simple(r, XEN_CTL_SAVE_SUSPEND, 0); /* libxenguest: 0 = failed */
}

static int save_postcopy(void *data)
{
	struct runner *r = data;
	if (xc_domain_resume(r->xch, r->cfg->domid, 1)) {
		log_err("runner: cannot resume domain %u: %s", r->cfg->domid, strerror(errno));
		return 0;
	}
	r->suspended = false;
	return simple(r, XEN_CTL_SAVE_POSTCOPY, 0);
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

/* postcopy, wait_checkpoint, suspend: 1 go on, 2 fail over (BROKEN_CHANNEL). */
static int restore_postcopy(void *data)
{
	return simple(data, XEN_CTL_RESTORE_POSTCOPY, 0);
}

static int restore_wait(void *data)
{
	return simple(data, XEN_CTL_RESTORE_WAIT, 0);
}

static int restore_suspend(void *data)
{
	return simple(data, XEN_CTL_RESTORE_SUSPEND, 0);
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
	return xc_domain_restore(r->xch, r->cfg->io, r->cfg->domid, r->cfg->store_evtchn,
				 &store_mfn, 0, r->cfg->console_evtchn, &console_mfn, 0,
				 XC_STREAM_COLO, &cb, r->cfg->back);
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
	int rc = cfg->primary ? run_save(&r) : run_restore(&r);
	int err = errno;
	if (rc)
		log_err("runner: %s of domain %u returned %d: %s", cfg->primary ? "save" : "restore",
			cfg->domid, rc, strerror(err));
	/* A failed save may leave the domain suspended: it runs on, unprotected. */
	if (cfg->primary && r.suspended && xc_domain_resume(r.xch, cfg->domid, 1) == 0)
		fin.fin.flags = XEN_CTL_FIN_RESUMED;
	fin.fin.rc = rc;
	fin.fin.err = rc && err > 0 && err < 4096 ? (uint32_t)err : 0;
	xc_interface_close(r.xch);
	if (!r.broken)
		xen_ctl_send(cfg->ctl, &fin);
	return rc ? 1 : 0;
}
