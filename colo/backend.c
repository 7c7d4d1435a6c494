/* backend.c - the generic half of the backend interface: dispatch to the ops table. */
#include "colo/backend.h"

#include <errno.h>
#include <stdlib.h>

struct backend {
	const struct backend_ops *ops;
	void *priv;
	struct backend_handlers h;
	bool gone;
};

int backend_new(const struct backend_ops *ops, void *priv, struct backend **out)
{
	struct backend *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->ops = ops;
	b->priv = priv;
	*out = b;
	return 0;
}

void *backend_priv(const struct backend *b)
{
	return b->priv;
}

const char *backend_name(const struct backend *b)
{
	return b->ops->name;
}

void backend_set_handlers(struct backend *b, const struct backend_handlers *h)
{
	b->h = *h;
}

void backend_notify_gone(struct backend *b, int err, const char *why)
{
	if (b->gone)
		return;
	b->gone = true;
	if (b->h.gone)
		b->h.gone(b, err, why, b->h.arg);
}

int backend_probe(struct backend *b, backend_probe_cb cb, void *arg)
{
	return b->gone ? -ENOTCONN : b->ops->probe(b, cb, arg);
}

int backend_stop(struct backend *b, backend_done_cb cb, void *arg)
{
	return b->gone ? -ENOTCONN : b->ops->stop(b, cb, arg);
}

int backend_resume(struct backend *b, backend_done_cb cb, void *arg)
{
	return b->gone ? -ENOTCONN : b->ops->resume(b, cb, arg);
}

int backend_save_devices(struct backend *b, int fd, backend_done_cb cb, void *arg)
{
	return b->gone ? -ENOTCONN : b->ops->save_devices(b, fd, cb, arg);
}

int backend_load_devices(struct backend *b, int fd, backend_done_cb cb, void *arg)
{
	return b->gone ? -ENOTCONN : b->ops->load_devices(b, fd, cb, arg);
}

int backend_announce(struct backend *b, backend_done_cb cb, void *arg)
{
	return b->gone ? -ENOTCONN : b->ops->announce(b, cb, arg);
}

int backend_set_global_dirty_log(struct backend *b, bool enable, backend_done_cb cb, void *arg)
{
	if (!b->ops->set_global_dirty_log)
		return -EOPNOTSUPP;
	return b->gone ? -ENOTCONN : b->ops->set_global_dirty_log(b, enable, cb, arg);
}

int backend_set_disk_replication(struct backend *b, bool enable, bool primary, bool failover,
				 backend_done_cb cb, void *arg)
{
	if (!b->ops->set_disk_replication)
		return -EOPNOTSUPP;
	if (enable && failover)
		return -EINVAL;
	return b->gone ? -ENOTCONN : b->ops->set_disk_replication(b, enable, primary, failover, cb,
								   arg);
}

int backend_disk_replication_status(struct backend *b, backend_done_cb cb, void *arg)
{
	if (!b->ops->disk_replication_status)
		return -EOPNOTSUPP;
	return b->gone ? -ENOTCONN : b->ops->disk_replication_status(b, cb, arg);
}

int backend_disk_checkpoint(struct backend *b, backend_done_cb cb, void *arg)
{
	if (!b->ops->disk_checkpoint)
		return -EOPNOTSUPP;
	return b->gone ? -ENOTCONN : b->ops->disk_checkpoint(b, cb, arg);
}

void backend_cancel(struct backend *b)
{
	if (b->ops->cancel)
		b->ops->cancel(b);
}

void backend_free(struct backend *b)
{
	if (!b)
		return;
	if (b->ops->destroy)
		b->ops->destroy(b);
	free(b);
}
