package normalize

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cdcrecon/cdcrecon/processors/debezium"
)

// colInfo is everything Map needs to know about one of a side's columns,
// found with one map lookup per column.
type colInfo struct {
	name string  // canonical name
	rank int     // position of name among the side's known names, sorted
	col  *column // normalisation, nil for none
	key  int     // index in the key, -1 for other columns
	drop bool    // not compared: ignored, or outside compare
	soft bool    // the side's soft-delete column
}

// columnCache maps a side's column names to their colInfo. It is
// immutable; a column not seen before makes a new cache (copy on write),
// so lookups take no lock.
type columnCache struct {
	byLocal map[string]*colInfo
	n       int // number of distinct canonical names, the rank bound
}

type sideCache struct {
	cur atomic.Pointer[columnCache]
	mu  sync.Mutex // serialises rebuilds
	// last remembers the column names of the side's last image and their
	// infos: events of a table usually repeat the same columns in the same
	// order, which then costs string comparisons instead of lookups.
	last atomic.Pointer[imageShape]
}

type imageShape struct {
	names []string
	infos []*colInfo
	cache *columnCache
}

// infosOf returns the colInfo of each column of an image, all from the
// returned cache.
func (t *Table) infosOf(side Side, image debezium.Row) ([]*colInfo, *columnCache) {
	sc := &t.caches[side]
	if last := sc.last.Load(); last != nil && len(last.names) == len(image) && last.cache == sc.cur.Load() {
		same := true
		for i, col := range image {
			if col.Name != last.names[i] {
				same = false
				break
			}
		}
		if same {
			return last.infos, last.cache
		}
	}
	if len(image) == 0 {
		return nil, nil
	}
	infos := make([]*colInfo, len(image))
	var cache, first *columnCache
	for i, col := range image {
		infos[i], cache = t.info(side, col.Name)
		if i == 0 {
			first = cache
		}
	}
	// A column learnt in this image shifts the ranks of others: look them
	// all up again in the final cache.
	if first != cache {
		for i, col := range image {
			infos[i] = cache.byLocal[col.Name]
		}
	}
	names := make([]string, len(image))
	for i, col := range image {
		names[i] = strings.Clone(col.Name) // the image's names live in its message's memory
	}
	sc.last.Store(&imageShape{names: names, infos: infos, cache: cache})
	return infos, cache
}

// info returns the colInfo of a side's column, adding it on first sight.
func (t *Table) info(side Side, local string) (*colInfo, *columnCache) {
	c := t.caches[side].cur.Load()
	if ci, ok := c.byLocal[local]; ok {
		return ci, c
	}
	return t.learn(side, local)
}

func (t *Table) learn(side Side, local string) (*colInfo, *columnCache) {
	sc := &t.caches[side]
	sc.mu.Lock()
	defer sc.mu.Unlock()
	old := sc.cur.Load()
	if ci, ok := old.byLocal[local]; ok {
		return ci, old
	}
	plan := &t.sides[side]
	locals := make([]string, 0, len(old.byLocal)+1)
	for l := range old.byLocal {
		locals = append(locals, l)
	}
	locals = append(locals, local)
	names := make([]string, 0, len(locals))
	for _, l := range locals {
		names = append(names, plan.canon(l))
	}
	slices.Sort(names)
	names = slices.Compact(names)
	next := &columnCache{byLocal: make(map[string]*colInfo, len(locals)), n: len(names)}
	for _, l := range locals {
		name := plan.canon(l)
		rank, _ := slices.BinarySearch(names, name)
		key, isKey := t.keyPos[name]
		if !isKey {
			key = -1
		}
		next.byLocal[l] = &colInfo{
			name: name,
			rank: rank,
			col:  t.columns[name],
			key:  key,
			drop: t.ignore[name] || t.compare != nil && !t.compare[name],
			soft: plan.softColumn != "" && name == plan.softColumn,
		}
	}
	sc.cur.Store(next)
	return next.byLocal[local], next
}
