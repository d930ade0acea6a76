/* list.h -- intrusive circular doubly-linked lists (Linux list_head style). */
#ifndef PGSLAB_LIST_H
#define PGSLAB_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list {
	struct list *next, *prev;
};

#define LIST_INIT(name) { &(name), &(name) }
#define list_entry(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#define list_first_entry(head, type, member) list_entry((head)->next, type, member)
#define list_last_entry(head, type, member) list_entry((head)->prev, type, member)
#define list_for_each(pos, head) for (pos = (head)->next; pos != (head); pos = pos->next)
#define list_for_each_safe(pos, tmp, head)                                                       \
	for (pos = (head)->next, tmp = pos->next; pos != (head); pos = tmp, tmp = pos->next)

static inline void list_init(struct list *l)
{
	l->next = l->prev = l;
}

static inline bool list_empty(const struct list *l)
{
	return l->next == l;
}

static inline void list_insert_between(struct list *n, struct list *prev, struct list *next)
{
	n->next = next;
	n->prev = prev;
	prev->next = n;
	next->prev = n;
}

/* Append <n> at the tail of <head>. */
static inline void list_append(struct list *head, struct list *n)
{
	list_insert_between(n, head->prev, head);
}

/* Push <n> at the head of <head>. */
static inline void list_prepend(struct list *head, struct list *n)
{
	list_insert_between(n, head, head->next);
}

/* Unlink <n> and leave it self-linked, so a second del is harmless. */
static inline void list_del(struct list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->next = n->prev = n;
}

static inline void list_move_tail(struct list *head, struct list *n)
{
	list_del(n);
	list_append(head, n);
}

static inline size_t list_count(const struct list *head)
{
	size_t n = 0;
	const struct list *p;

	for (p = head->next; p != head; p = p->next)
		n++;
	return n;
}

#endif
