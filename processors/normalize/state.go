package normalize

import (
	"fmt"
	mathbits "math/bits"
	"slices"

	"github.com/cdcrecon/cdcrecon/processors/canon"
	"github.com/cdcrecon/cdcrecon/processors/debezium"
)

// mapState maps the events of one side of one table, one at a time. As a
// debezium.Projector it receives an event's columns and puts each where
// the canonical row wants it: a slot per rank, a key position, or the
// soft-delete flag; columns the table does not compare are skipped unread.
// It is reused from event to event and is not safe for concurrent use.
type mapState struct {
	t     *Table
	side  Side
	cache *columnCache
	// stale is set when a column not seen before was learnt during this
	// event: the ranks changed, so the event must be mapped again.
	stale bool
	img   [2]imageState
	// reuse, set for a Worker's states, builds each Change in the memory
	// of the previous one (buf) instead of new memory.
	reuse bool
	buf   struct {
		key      []canon.Value
		keyBytes []byte
		row      canon.Row
	}
}

type imageState struct {
	slots      canon.Row // by rank
	used       []uint64  // which slots hold a value
	key        []canon.Value
	keySet     []bool
	soft       bool
	unresolved bool
	// shape is the previous event's columns in order, so that the same
	// columns again cost a string comparison each rather than a lookup;
	// next collects this event's when they differ.
	shape      []*colInfo
	shapeCache *columnCache
	pos        int
	differs    bool
	next       []*colInfo
}

func newMapState(t *Table, side Side) *mapState {
	st := &mapState{t: t, side: side}
	for i := range st.img {
		st.img[i].key = make([]canon.Value, len(t.key))
		st.img[i].keySet = make([]bool, len(t.key))
	}
	return st
}

// begin readies the state for an event.
func (st *mapState) begin() {
	st.cache = st.t.caches[st.side].cur.Load()
	st.stale = false
	for i := range st.img {
		is := &st.img[i]
		if len(is.slots) < st.cache.n {
			is.slots = make(canon.Row, st.cache.n)
			is.used = make([]uint64, (st.cache.n+63)/64)
		}
		if is.shapeCache != st.cache {
			is.shape, is.shapeCache = nil, st.cache
		}
		is.pos, is.differs = 0, false
	}
}

// clear drops the values an event left in the images. The slots keep
// them: only the used ones are read.
func (is *imageState) clear() {
	clear(is.used)
	clear(is.key)
	clear(is.keySet)
	is.soft, is.unresolved = false, false
}

// Reset implements debezium.Projector.
func (st *mapState) Reset() {
	for i := range st.img {
		st.img[i].clear()
	}
}

// end clears what an event left and keeps its column shape.
func (st *mapState) end() {
	for i := range st.img {
		is := &st.img[i]
		is.clear()
		if is.differs && !st.stale {
			is.shape = append(is.shape[:0:0], is.next...)
		} else if is.pos < len(is.shape) && !st.stale {
			is.shape = is.shape[:is.pos] // the event had fewer columns
		}
	}
}

// Column implements debezium.Projector.
func (st *mapState) Column(img debezium.Image, name []byte) int {
	is := &st.img[img]
	var ci *colInfo
	if is.pos < len(is.shape) && is.shape[is.pos].local == string(name) {
		ci = is.shape[is.pos]
	} else {
		ci = st.cache.byLocal[string(name)]
		if ci == nil {
			st.t.learn(st.side, string(name))
			st.stale = true
			return -1
		}
		if !is.differs {
			is.differs = true
			is.next = append(is.next[:0], is.shape[:min(is.pos, len(is.shape))]...)
		}
	}
	if is.differs {
		is.next = append(is.next, ci)
	}
	is.pos++
	n := st.cache.n
	switch {
	case ci.soft:
		return n + len(st.t.key)
	case ci.key >= 0:
		return n + ci.key
	case ci.drop:
		return -1
	}
	return ci.rank
}

// Value implements debezium.Projector.
func (st *mapState) Value(img debezium.Image, h int, pv *canon.Value) {
	is := &st.img[img]
	n := st.cache.n
	switch {
	case h < n:
		ci := st.cache.byRank[h]
		slot := &is.slots[h]
		slot.Value = *pv
		if ci.col != nil {
			slot.Value = st.t.apply(ci.col, slot.Value)
		}
		bit := uint64(1) << (h % 64)
		switch slot.Value.Kind() {
		case canon.Null: // null and absent are the same
			*slot = canon.Column{}
			is.used[h/64] &^= bit
			return
		case canon.Unavailable:
			is.unresolved = true
		}
		slot.Name = ci.name
		is.used[h/64] |= bit
	case h < n+len(st.t.key):
		k := h - n
		is.key[k], is.keySet[k] = st.t.apply(st.t.keyCols[k], *pv), true
	default:
		plan := &st.t.sides[st.side]
		is.soft = canon.Equal(st.t.apply(plan.softCol, *pv), plan.softValue)
	}
}

// finish builds the Change of a decoded event whose images the state
// received.
func (st *mapState) finish(ev *debezium.Event, raw []byte) (Change, error) {
	t, side := st.t, st.side
	c := Change{Table: t.name, Side: side, Op: ev.Op, Time: ev.Time}
	switch ev.Kind {
	case debezium.Heartbeat:
		c.Kind = Heartbeat
		return c, nil
	case debezium.RowEvent:
	default:
		return c, nil // Skip
	}
	if ev.Op == debezium.Truncate {
		c.Kind = Truncate
		c.Identity = t.identity(side, nil, ev, raw)
		return c, nil
	}
	c.Kind = Row
	is := &st.img[debezium.AfterImage]
	if ev.Op == debezium.Delete && !ev.Unwrapped {
		is = &st.img[debezium.BeforeImage]
	}
	if ev.Unwrapped {
		// An ExtractNewRecordState row always carries its key columns;
		// a value without them is no row of the table (say {"hello":1}
		// under a valid key), not a row to compare.
		if i := slices.Index(is.keySet, false); i >= 0 {
			return Change{}, fmt.Errorf("%w: %s (%s name %s) is not in the row: neither a Debezium envelope nor a row of the table",
				ErrKeyMissing, t.key[i], side, t.LocalName(side, t.key[i]))
		}
	}
	key, err := st.keyOf(ev.Key, is)
	if err != nil {
		return Change{}, err
	}
	c.Key = key
	var kb []byte
	if st.reuse {
		kb = st.buf.keyBytes[:0]
	}
	c.KeyBytes = canon.AppendKey(kb, key)
	if st.reuse {
		st.buf.keyBytes = c.KeyBytes
	}
	c.Identity = t.identity(side, c.KeyBytes, ev, raw)
	c.Reread = ev.Op == debezium.Read && ev.Source.Incremental
	if ev.Op == debezium.Delete || is.soft {
		return c, nil // absent
	}
	count := 0
	for _, bits := range is.used {
		count += mathbits.OnesCount64(bits)
	}
	var row canon.Row
	if st.reuse && count == st.cache.n && count > 0 {
		// Every column is there: the slots are the row, until the next
		// event of the state writes them.
		c.Row, c.Unresolved = is.slots[:count:count], is.unresolved
		return c, nil
	}
	if st.reuse && st.buf.row != nil && cap(st.buf.row) >= count {
		row = st.buf.row[:0]
	} else {
		row = make(canon.Row, 0, count)
		if st.reuse {
			st.buf.row = row
		}
	}
	for w, bits := range is.used {
		for bits != 0 {
			row = append(row, is.slots[w*64+mathbits.TrailingZeros64(bits)])
			bits &= bits - 1
		}
	}
	c.Row, c.Unresolved = row, is.unresolved
	return c, nil
}

// keyOf takes the key columns from the message key, else from the row. A
// name repeated within one of them counts by its last value, as everywhere.
func (st *mapState) keyOf(msgKey debezium.Row, is *imageState) ([]canon.Value, error) {
	t := st.t
	plan := &t.sides[st.side]
	var key []canon.Value
	if st.reuse {
		if len(st.buf.key) < len(t.key) {
			st.buf.key = make([]canon.Value, len(t.key))
		}
		key = st.buf.key[:len(t.key)]
	} else {
		key = make([]canon.Value, len(t.key))
	}
	var setBuf [8]bool
	var set []bool
	if len(t.key) > len(setBuf) {
		set = make([]bool, len(t.key))
	} else {
		set = setBuf[:len(t.key)]
	}
	for _, col := range msgKey {
		name := plan.canon(col.Name)
		if i, ok := t.keyPos[name]; ok {
			key[i], set[i] = t.apply(t.keyCols[i], col.Value), true
		}
	}
	for i := range key {
		if !set[i] && is.keySet[i] {
			key[i], set[i] = is.key[i], true
		}
	}
	if i := slices.Index(set, false); i >= 0 {
		return nil, fmt.Errorf("%w: %s (%s name %s) is in neither the message key nor the row",
			ErrKeyMissing, t.key[i], st.side, t.LocalName(st.side, t.key[i]))
	}
	return key, nil
}
