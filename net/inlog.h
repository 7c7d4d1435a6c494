/* inlog.h - the secondary's input log (docs/net.md §2.1): every mirrored input
 * frame injected since the last checkpoint load, so that after loading a
 * checkpoint with INPUT_MARK m the frames above m can be injected again into the
 * freshly loaded VM (they may have gone into the state the checkpoint replaced),
 * and frames at or below m are never injected again.
 *
 * Lifecycle: inlog_new() -> for each INPUT record: inlog_add(), inject if it says
 * so -> after each load: inlog_loaded(mark, inject) -> inlog_free().
 */
#ifndef COLO_NET_INLOG_H
#define COLO_NET_INLOG_H

#include <stddef.h>
#include <stdint.h>

struct inlog;

int inlog_new(uint32_t max_frames, uint64_t max_bytes, struct inlog **out); /* 0, -ENOMEM, -EINVAL */
void inlog_free(struct inlog *l);

/* Input frame seq arrived. Returns 1: inject it now (it is logged); 0: the loaded
 * state already has it (seq <= the last mark), drop it; -ENOMEM. A full log forgets
 * its oldest frame (counted: after the next load that frame is missing, and the
 * comparator's timeout repairs it). */
int inlog_add(struct inlog *l, uint64_t seq, const uint8_t *frame, size_t len);

/* A checkpoint with input mark `mark` was loaded and the VM resumed: forget frames
 * <= mark, call inject for each frame > mark in order, keep them logged. */
void inlog_loaded(struct inlog *l, uint64_t mark,
		  void (*inject)(void *arg, const uint8_t *frame, size_t len), void *arg);

struct inlog_stats {
	uint64_t frames, bytes;	    /* logged now */
	uint64_t stale;		    /* arrived at or below the mark */
	uint64_t reinjected, forgotten; /* forgotten: pushed out by a full log */
	uint64_t mark;
};
void inlog_get_stats(const struct inlog *l, struct inlog_stats *out);

#endif
