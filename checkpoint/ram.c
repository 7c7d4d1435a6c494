/* ram.c - mapping the RAM backend file into the agent (see ram.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint/ram.h"
#include "lib/log.h"

struct ram_map {
	uint8_t *base;
	uint64_t size;
};

static int check_file(int fd, const char *path, uint64_t ram_size)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode)) {
		log_err("ram: %s is not a regular file; give QEMU's memory-backend-file mem-path",
			path);
		return -EINVAL;
	}
	if ((uint64_t)st.st_size != ram_size) {
		log_err("ram: %s has %lld bytes but the VM has %" PRIu64 " bytes of RAM; refusing "
			"to map another VM's or another configuration's RAM",
			path, (long long)st.st_size, ram_size);
		return -EINVAL;
	}
	return 0;
}

int ram_map_open(const char *path, uint64_t ram_size, enum ram_access access,
		 struct ram_map **out)
{
	const bool rw = access == RAM_WRITE;
	struct ram_map *m = NULL;
	void *p;
	int fd, rc;

	if (ram_size == 0 || ram_size % RAM_PAGE_SIZE)
		return -EINVAL;
	fd = open(path, (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		log_err("ram: cannot open %s %s: %s", path, rw ? "read-write" : "read-only",
			strerror(-rc));
		return rc;
	}
	rc = check_file(fd, path, ram_size);
	if (rc < 0)
		goto out;
	/* MAP_SHARED: the same pages as QEMU's mapping, not a copy. */
	p = mmap(NULL, (size_t)ram_size, rw ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		rc = -errno;
		log_err("ram: cannot map %s (%" PRIu64 " MiB): %s", path, ram_size >> 20,
			strerror(-rc));
		goto out;
	}
	m = malloc(sizeof(*m));
	if (!m) {
		munmap(p, (size_t)ram_size);
		rc = -ENOMEM;
		goto out;
	}
	*m = (struct ram_map){ .base = p, .size = ram_size };
	*out = m;
	rc = 0;
out:
	close(fd); /* the mapping keeps the file */
	return rc;
}

void ram_map_close(struct ram_map *m)
{
	if (!m)
		return;
	munmap(m->base, (size_t)m->size);
	free(m);
}

void *ram_map_base(const struct ram_map *m)
{
	return m->base;
}

uint64_t ram_map_size(const struct ram_map *m)
{
	return m->size;
}

uint64_t ram_map_npages(const struct ram_map *m)
{
	return m->size / RAM_PAGE_SIZE;
}

void *ram_map_page(const struct ram_map *m, uint64_t pfn)
{
	return pfn < m->size / RAM_PAGE_SIZE ? m->base + pfn * RAM_PAGE_SIZE : NULL;
}
