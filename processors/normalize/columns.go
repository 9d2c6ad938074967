package normalize

import (
	"slices"
	"sync"
	"sync/atomic"
)

// colInfo is everything mapping needs to know about one of a side's
// columns.
type colInfo struct {
	local string  // the side's name
	name  string  // canonical name
	rank  int     // position of name among the side's row columns, sorted; -1 for others
	col   *column // normalisation, nil for none or one that changes nothing
	key   int     // index in the key, -1 for other columns
	drop  bool    // not compared: ignored, or outside compare
	soft  bool    // the side's soft-delete column
}

// columnCache maps a side's column names to their colInfo. It is
// immutable; a column not seen before makes a new cache (copy on write),
// so lookups take no lock. Only the columns a row holds have a rank (not
// key, ignored or soft-delete columns). Ranks are dense: every rank below
// n has a column, and rows are built in rank order, which is name order.
type columnCache struct {
	byLocal map[string]*colInfo
	byRank  []*colInfo
	n       int
}

type sideCache struct {
	cur atomic.Pointer[columnCache]
	mu  sync.Mutex // serialises rebuilds
}

// learn adds a column name to a side's cache, making a new cache.
func (t *Table) learn(side Side, local string) {
	sc := &t.caches[side]
	sc.mu.Lock()
	defer sc.mu.Unlock()
	old := sc.cur.Load()
	if _, ok := old.byLocal[local]; ok {
		return
	}
	plan := &t.sides[side]
	locals := make([]string, 0, len(old.byLocal)+1)
	for l := range old.byLocal {
		locals = append(locals, l)
	}
	locals = append(locals, local)
	infos := make([]*colInfo, 0, len(locals))
	var names []string
	for _, l := range locals {
		name := plan.canon(l)
		key, isKey := t.keyPos[name]
		if !isKey {
			key = -1
		}
		col := t.columns[name]
		if col != nil && !col.changes() {
			col = nil
		}
		ci := &colInfo{
			local: l,
			name:  name,
			rank:  -1,
			col:   col,
			key:   key,
			drop:  t.ignore[name] || t.compare != nil && !t.compare[name],
			soft:  plan.softColumn != "" && name == plan.softColumn,
		}
		infos = append(infos, ci)
		if !isKey && !ci.drop && !ci.soft {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	next := &columnCache{byLocal: make(map[string]*colInfo, len(locals)), byRank: make([]*colInfo, len(names)), n: len(names)}
	for _, ci := range infos {
		if rank, ok := slices.BinarySearch(names, ci.name); ok {
			ci.rank = rank
			next.byRank[rank] = ci
		}
		next.byLocal[ci.local] = ci
	}
	sc.cur.Store(next)
}
