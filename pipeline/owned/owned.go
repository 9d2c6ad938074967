// Package owned keeps a stage's per-partition state as its consumer group
// assigns and revokes partitions: a Map of the partitions this member
// owns, each embedding a Part that its batch handler holds while it runs.
// A revoked or reassigned partition is retired once the batch it may be
// handling is done, and takes no batch after: a batch that was fetched
// before the revocation and delivered after it fails instead of writing
// into state the member no longer owns.
package owned

import "sync"

// Part is the ownership of one partition's state, embedded in it.
type Part struct {
	mu      sync.Mutex
	retired bool
}

// Enter takes the part for a batch or a periodic duty, waiting for the
// one under way, and reports whether the part is still owned. The caller
// calls Leave in either case.
func (p *Part) Enter() (owned bool) {
	p.mu.Lock()
	return !p.retired
}

// Leave releases the part.
func (p *Part) Leave() { p.mu.Unlock() }

// Retire marks the part no longer owned, once the batch it may be
// handling is done.
func (p *Part) Retire() {
	p.mu.Lock()
	p.retired = true
	p.mu.Unlock()
}

// Retirer is a partition's state: a type that embeds a Part.
type Retirer interface{ Retire() }

// Map holds the parts a member owns, by key. It is safe for concurrent
// use.
type Map[K comparable, P Retirer] struct {
	mu sync.Mutex
	m  map[K]P
}

// Get returns the part of k.
func (m *Map[K, P]) Get(k K) (P, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.m[k]
	return p, ok
}

// GetOrCreate returns the part of k, creating it with create when there
// is none.
func (m *Map[K, P]) GetOrCreate(k K, create func() (P, error)) (P, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p, ok := m.m[k]; ok {
		return p, nil
	}
	p, err := create()
	if err != nil {
		return p, err
	}
	m.put(k, p)
	return p, nil
}

// Replace makes p the part of k, retiring the one it replaces (once the
// batch it may be handling is done).
func (m *Map[K, P]) Replace(k K, p P) {
	m.mu.Lock()
	old, ok := m.m[k]
	m.put(k, p)
	m.mu.Unlock()
	if ok {
		old.Retire()
	}
}

func (m *Map[K, P]) put(k K, p P) {
	if m.m == nil {
		m.m = map[K]P{}
	}
	m.m[k] = p
}

// Retire removes the part of k, retiring it once the batch it may be
// handling is done.
func (m *Map[K, P]) Retire(k K) {
	m.mu.Lock()
	p, ok := m.m[k]
	delete(m.m, k)
	m.mu.Unlock()
	if ok {
		p.Retire()
	}
}

// All returns the parts owned now, in no order.
func (m *Map[K, P]) All() []P {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]P, 0, len(m.m))
	for _, p := range m.m {
		out = append(out, p)
	}
	return out
}
