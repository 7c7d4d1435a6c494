/* tap_io.h - an AF_PACKET socket on the host side of the secondary VM's tap
 * (docs/net.md §2): writing a frame injects it into the VM; the VM's frames are
 * read back. Frames are whole Ethernet frames; a VLAN tag the kernel took off is
 * put back (PACKET_AUXDATA), and our own injections are not read back.
 *
 * Lifecycle: tapio_open() (registers a non-blocking fd on the loop when cb is set)
 * -> callbacks, tapio_inject() -> tapio_close().
 */
#ifndef COLO_NET_TAP_IO_H
#define COLO_NET_TAP_IO_H

#include <stddef.h>
#include <stdint.h>

struct loop;
struct tapio;

/* A frame the VM sent; valid during the callback. */
typedef void (*tapio_cb)(void *arg, const uint8_t *frame, size_t len);

/* 0, -ENODEV (no such interface), or another negative errno. */
int tapio_open(struct loop *loop, const char *ifname, tapio_cb cb, void *arg,
	       struct tapio **out);
void tapio_close(struct tapio *t);
/* Into the VM. 0, -EAGAIN (the tap's queue is full: the VM is not reading), or
 * another negative errno. */
int tapio_inject(struct tapio *t, const uint8_t *frame, size_t len);
/* Read every frame the VM has sent so far (before switching generation). */
int tapio_drain(struct tapio *t);

struct tapio_stats {
	uint64_t captured, injected, inject_errors, truncated, read_errors;
};
void tapio_get_stats(const struct tapio *t, struct tapio_stats *out);

#endif
