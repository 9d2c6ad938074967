package consistency

import "container/heap"

// timer asks for a key to be swept to instant at. A key has one live
// timer, the one matching its keyState.timer; others are stale.
type timer struct {
	at int64
	ks *keyState
}

// timerFirst orders timers by instant, then key, so that keys due at one
// instant are decided in one order on every run.
func timerFirst(a, b timer) bool { return a.at < b.at || a.at == b.at && a.ks.id < b.ks.id }

// windowClose asks for a window's checksum at instant at (its end plus
// grace).
type windowClose struct {
	at int64
	w  *window
}

func closeFirst(a, b windowClose) bool {
	an, bn := a.w.table.t.Name(), b.w.table.t.Name()
	return a.at < b.at || a.at == b.at && (an < bn || an == bn && a.w.start < b.w.start)
}

// queue is a priority queue: first() is the least item by less.
type queue[T any] struct {
	items []T
	less  func(a, b T) bool
}

func (q *queue[T]) Len() int           { return len(q.items) }
func (q *queue[T]) Less(i, j int) bool { return q.less(q.items[i], q.items[j]) }
func (q *queue[T]) Swap(i, j int)      { q.items[i], q.items[j] = q.items[j], q.items[i] }
func (q *queue[T]) Push(x any)         { q.items = append(q.items, x.(T)) }
func (q *queue[T]) Pop() any {
	x := q.items[len(q.items)-1]
	q.items = q.items[:len(q.items)-1]
	return x
}

func (q *queue[T]) push(x T)    { heap.Push(q, x) }
func (q *queue[T]) pop() T      { return heap.Pop(q).(T) }
func (q *queue[T]) first() *T   { return &q.items[0] }
func (q *queue[T]) empty() bool { return len(q.items) == 0 }
