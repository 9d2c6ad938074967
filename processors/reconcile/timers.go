package reconcile

// timer asks for a key to be swept to instant at. A key has one live
// timer, the one matching its keyState.timer; others are stale.
type timer struct {
	at int64
	ks *keyState
}

// timerHeap orders timers by instant, then key, so that keys due at one
// instant are decided in one order on every run.
type timerHeap []timer

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	return h[i].at < h[j].at || h[i].at == h[j].at && h[i].ks.id < h[j].ks.id
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)   { *h = append(*h, x.(timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// windowClose asks for a window's checksum at instant at (its end plus
// grace).
type windowClose struct {
	at int64
	w  *window
}

type windowHeap []windowClose

func (h windowHeap) Len() int { return len(h) }
func (h windowHeap) Less(i, j int) bool {
	a, b := h[i], h[j]
	return a.at < b.at || a.at == b.at && (a.w.table.t.Name() < b.w.table.t.Name() ||
		a.w.table.t.Name() == b.w.table.t.Name() && a.w.start < b.w.start)
}
func (h windowHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *windowHeap) Push(x any)   { *h = append(*h, x.(windowClose)) }
func (h *windowHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
