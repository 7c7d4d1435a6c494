/* fds.c - passing file descriptors to QEMU, so it never opens our paths itself:
 * add-fd/remove-fd (fdsets, opened by QEMU as "/dev/fdset/N") and getfd/closefd
 * (a named fd, for the commands that take an fd name). */
#include <errno.h>

#include "qmp/qmp.h"

int qmp_add_fd(struct qmp *c, int fd, int64_t fdset_id, int timeout_ms, qmp_exec_cb cb,
	       void *arg)
{
	if (fd < 0)
		return -EBADF;
	struct qmp_args *a = qmp_args_new();
	if (!a)
		return -ENOMEM;
	if (fdset_id >= 0)
		qmp_args_int(a, "fdset-id", fdset_id);
	return qmp_exec(c, "add-fd", a, fd, timeout_ms, cb, arg);
}

int qmp_remove_fd(struct qmp *c, int64_t fdset_id, int64_t fd, int timeout_ms, qmp_exec_cb cb,
		  void *arg)
{
	struct qmp_args *a = qmp_args_new();
	if (!a)
		return -ENOMEM;
	qmp_args_int(a, "fdset-id", fdset_id);
	if (fd >= 0)
		qmp_args_int(a, "fd", fd);
	return qmp_exec(c, "remove-fd", a, -1, timeout_ms, cb, arg);
}

int qmp_getfd(struct qmp *c, int fd, const char *fdname, int timeout_ms, qmp_exec_cb cb,
	      void *arg)
{
	if (fd < 0)
		return -EBADF;
	struct qmp_args *a = qmp_args_new();
	if (!a)
		return -ENOMEM;
	qmp_args_str(a, "fdname", fdname);
	return qmp_exec(c, "getfd", a, fd, timeout_ms, cb, arg);
}

int qmp_closefd(struct qmp *c, const char *fdname, int timeout_ms, qmp_exec_cb cb, void *arg)
{
	struct qmp_args *a = qmp_args_new();
	if (!a)
		return -ENOMEM;
	qmp_args_str(a, "fdname", fdname);
	return qmp_exec(c, "closefd", a, -1, timeout_ms, cb, arg);
}
