/* ram.h - the agent's own mapping of the VM's RAM backend file (QEMU's
 * memory-backend-file, share=on), through which pages leave the primary and enter
 * the secondary without passing through QEMU.
 *
 *   RAM_READ   the primary: PROT_READ, so a bug in the agent cannot corrupt the guest.
 *   RAM_WRITE  the secondary: PROT_READ|PROT_WRITE, to apply checkpoints. Writes
 *              through this mapping do not mark pages dirty in QEMU's tracker (that
 *              tracks QEMU's own mapping), so applying a checkpoint does not show up
 *              in the secondary's next dirty list.
 *
 * Lifecycle: ram_map_open() -> use ram_map_base()/ram_map_page() -> ram_map_close().
 * The file must have exactly the VM's RAM size: a different size means another VM
 * or another configuration, and is refused with one log line.
 */
#ifndef COLO_CHECKPOINT_RAM_H
#define COLO_CHECKPOINT_RAM_H

#include <stdint.h>

#define RAM_PAGE_SIZE 4096u

enum ram_access { RAM_READ, RAM_WRITE };

struct ram_map;

/* Map the whole of path, which must be a regular file of ram_size bytes (a nonzero
 * multiple of RAM_PAGE_SIZE). 0, or (logged) -ENOENT/-EACCES/... from open,
 * -EINVAL for a wrong size or type, -ENOMEM. */
int ram_map_open(const char *path, uint64_t ram_size, enum ram_access access,
		 struct ram_map **out);
void ram_map_close(struct ram_map *m);

/* Start of the mapping; writable only for RAM_WRITE. */
void *ram_map_base(const struct ram_map *m);
uint64_t ram_map_size(const struct ram_map *m);
uint64_t ram_map_npages(const struct ram_map *m);
/* Address of page pfn, or NULL beyond the RAM. */
void *ram_map_page(const struct ram_map *m, uint64_t pfn);

#endif
