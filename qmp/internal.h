/* internal.h - shared between the files of qmp/ only; the module's API is qmp.h. */
#ifndef COLO_QMP_INTERNAL_H
#define COLO_QMP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "qmp/qmp.h"

/* {"execute": name, "arguments": {...}, "id": id}\n as one malloc'd buffer.
 * Consumes args (may be NULL). Returns 0, -EINVAL (bad args or name: why says
 * which) or -ENOMEM. */
int qmp_cmd_encode(const char *name, struct qmp_args *args, uint64_t id, char **buf,
		   size_t *len, char *why, size_t why_len);

#endif
