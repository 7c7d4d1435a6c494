/* fuzz_xen_ctl.c - libFuzzer target for the Xen runner <-> helper control-message
 * parser (xen/xen_ctl.c, docs/xen-helper.md §2).
 *
 * Input: byte 0 = direction (bit 0: 0 to the helper, 1 to the runner); the rest is
 * one datagram. Whatever parses must re-encode to exactly the same octets (every
 * control message has one encoding), and parse again to the same message. Seeds:
 * fuzz/corpus/fuzz_xen_ctl/, written by tests/unit/test_xen_hostile.c
 * (COLO_WRITE_SEEDS=dir). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xen/xen_ctl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct xen_ctl m, m2;
	uint8_t buf[XEN_CTL_MAX];
	struct wr w;
	char why[256];
	if (size < 1)
		return 0;
	enum xen_ctl_dir dir = data[0] & 1 ? XEN_CTL_TO_RUNNER : XEN_CTL_TO_HELPER;
	if (xen_ctl_parse(data + 1, size - 1, dir, &m, why, sizeof(why)))
		return 0;
	wr_init_fixed(&w, buf, sizeof(buf));
	xen_ctl_put(&w, &m);
	if (w.err || w.len != size - 1 || memcmp(w.buf, data + 1, w.len))
		abort();
	if (xen_ctl_parse(w.buf, w.len, dir, &m2, why, sizeof(why)) || memcmp(&m, &m2, sizeof(m)))
		abort();
	return 0;
}
