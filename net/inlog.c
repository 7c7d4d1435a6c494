/* inlog.c - the secondary's input log (net/inlog.h): a FIFO of copies. */
#include "net/inlog.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct entry {
	struct entry *next;
	uint64_t seq;
	size_t len;
	uint8_t frame[];
};

struct inlog {
	uint32_t max_frames;
	uint64_t max_bytes;
	struct entry *head, *tail;
	struct inlog_stats st;
};

int inlog_new(uint32_t max_frames, uint64_t max_bytes, struct inlog **out)
{
	if (!max_frames || !max_bytes)
		return -EINVAL;
	struct inlog *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->max_frames = max_frames;
	l->max_bytes = max_bytes;
	*out = l;
	return 0;
}

static void drop_head(struct inlog *l)
{
	struct entry *e = l->head;
	l->head = e->next;
	if (!l->head)
		l->tail = NULL;
	l->st.frames--;
	l->st.bytes -= e->len;
	free(e);
}

void inlog_free(struct inlog *l)
{
	if (!l)
		return;
	while (l->head)
		drop_head(l);
	free(l);
}

int inlog_add(struct inlog *l, uint64_t seq, const uint8_t *frame, size_t len)
{
	if (seq <= l->st.mark) {
		l->st.stale++;
		return 0;
	}
	while (l->head && (l->st.frames + 1 > l->max_frames || l->st.bytes + len > l->max_bytes)) {
		drop_head(l);
		l->st.forgotten++;
	}
	struct entry *e = malloc(sizeof(*e) + len);
	if (!e)
		return -ENOMEM;
	*e = (struct entry){ .seq = seq, .len = len };
	memcpy(e->frame, frame, len);
	if (l->tail)
		l->tail->next = e;
	else
		l->head = e;
	l->tail = e;
	l->st.frames++;
	l->st.bytes += len;
	return 1;
}

void inlog_loaded(struct inlog *l, uint64_t mark,
		  void (*inject)(void *arg, const uint8_t *frame, size_t len), void *arg)
{
	if (mark > l->st.mark)
		l->st.mark = mark;
	while (l->head && l->head->seq <= l->st.mark)
		drop_head(l);
	for (struct entry *e = l->head; e; e = e->next) {
		l->st.reinjected++;
		inject(arg, e->frame, e->len);
	}
}

void inlog_get_stats(const struct inlog *l, struct inlog_stats *out)
{
	*out = l->st;
}
