/* xen_helper.h - the Xen replication helper (docs/xen-helper.md): a program the
 * agent execs (checkpoint/repl.c, cfg->vm == REPL_VM_XEN) with the agent <->
 * helper socketpair on fd 3. It speaks docs/helper-protocol.md to the agent and
 * runs libxenguest's xc_domain_save / xc_domain_restore (XC_STREAM_COLO) in a
 * forked "runner" process, whose callbacks come back over a control socketpair.
 *
 * Two builds link the same helper: build/colo-xen-helper against the real
 * libxenguest/libxenctrl, and build/tests/colo-xen-helper-standin against the
 * stand-in of tests/xen-standin/ (tests only; it is no evidence that Xen works).
 */
#ifndef COLO_XEN_XEN_HELPER_H
#define COLO_XEN_XEN_HELPER_H

#include <stdbool.h>
#include <stdint.h>

/* What the runner is given. The three descriptors are its ends of socketpairs
 * with the helper: ctl (SOCK_SEQPACKET, xen/xen_ctl.h), io (libxc's stream:
 * io_fd of xc_domain_save / xc_domain_restore) and back (libxc's back channel:
 * recv_fd / send_back_fd). */
struct xen_runner_cfg {
	bool primary;
	uint32_t domid;
	int ctl, io, back;
	/* restore only: the secondary's xenstore / console event channels (unbound
	 * ports the toolstack allocated) and the domains serving them (START's Xen tail) */
	unsigned store_evtchn, console_evtchn;
	uint32_t store_domid, console_domid;
};

/* The runner's main, in the forked child; returns its exit status. The real one
 * (xen_runner.c) calls libxenguest; tests pass others to play a hostile runner. */
typedef int (*xen_runner_fn)(const struct xen_runner_cfg *cfg);
int xen_runner_main(const struct xen_runner_cfg *cfg);

/* The helper: read START from sock, replicate, return the exit status. */
int xen_helper_main(int sock, xen_runner_fn runner);

#endif
