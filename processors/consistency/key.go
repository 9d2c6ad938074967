package consistency

import (
	"math"
	"sort"

	"github.com/cdcrecon/cdcrecon/processors/changes"
	"github.com/cdcrecon/cdcrecon/processors/normalize"
)

// state is one side's row from an instant on.
type state struct {
	start  int64
	row    []byte // canon.AppendRow; nil: absent
	digest uint64
	// partial: the row still holds unchanged-TOAST placeholders, so its
	// digest cannot decide equality.
	partial bool
}

// keyState is what the engine holds of one key.
type keyState struct {
	table *tableState
	id    string // table, NUL, key
	key   []byte
	// src is the source's history: src[len-1] the current state, earlier
	// ones kept while they are still acceptable for the target.
	src []state
	tgt state
	// pending changes, not yet applied, in (time, origin) order.
	pending []changes.Change
	at      int64 // decided through this instant
	drift   *openDrift
	timer   int64   // instant of the key's timer; MaxInt64 for none
	wins    []int64 // starts of the open checksum windows holding the key
	queued  bool    // in the engine's idle list
	// dirty: changed since the engine's last checkpoint; indexed: the
	// store's busy index names the key (see checkpoint.go).
	dirty, indexed bool
}

func newKeyState(ts *tableState, id string, key []byte) *keyState {
	absent := state{start: math.MinInt64}
	return &keyState{table: ts, id: id, key: key, src: []state{absent}, tgt: absent, at: math.MinInt64, timer: math.MaxInt64}
}

func (ks *keyState) current(side normalize.Side) *state {
	if side == normalize.Source {
		return &ks.src[len(ks.src)-1]
	}
	return &ks.tgt
}

// insert adds a pending change in (time, origin) order.
func (ks *keyState) insert(c changes.Change) {
	i := sort.Search(len(ks.pending), func(i int) bool {
		p := ks.pending[i]
		return p.Time > c.Time || p.Time == c.Time && p.Origin.Compare(c.Origin) > 0
	})
	ks.pending = append(ks.pending, changes.Change{})
	copy(ks.pending[i+1:], ks.pending[i:])
	ks.pending[i] = c
}

// next is the key's next change point after the decided instant: its next
// pending change, or the instant an older source state stops being
// acceptable.
func (ks *keyState) next(grace int64) int64 {
	n := int64(math.MaxInt64)
	if len(ks.pending) > 0 {
		n = ks.pending[0].Time
	}
	if len(ks.src) > 1 {
		n = min(n, ks.src[1].start+grace)
	}
	if ks.drift != nil {
		n = min(n, ks.drift.v.nextAt())
	}
	return n
}

// prune drops the source states no longer acceptable at t.
func (ks *keyState) prune(t, grace int64) {
	i := 0
	for i+1 < len(ks.src) && ks.src[i+1].start+grace <= t {
		i++
	}
	if i > 0 {
		ks.src = append(ks.src[:0], ks.src[i:]...)
	}
}

// acceptable tells whether source state i may be the target's state at t:
// it held on [start, end) and grace has not passed since end.
func (ks *keyState) acceptable(i int, t, grace int64) bool {
	return ks.src[i].start <= t && (i == len(ks.src)-1 || ks.src[i+1].start+grace > t)
}

// sourceAt returns the source state of instant t, which must still be in
// the history.
func (ks *keyState) sourceAt(t int64) *state {
	for i := len(ks.src) - 1; i > 0; i-- {
		if ks.src[i].start <= t {
			return &ks.src[i]
		}
	}
	return &ks.src[0]
}
