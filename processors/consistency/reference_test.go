package consistency_test

import (
	"encoding/binary"
	"math"
	"sort"

	"github.com/zeebo/xxh3"

	"github.com/cdcrecon/cdcrecon/processors/canon"
	"github.com/cdcrecon/cdcrecon/processors/changes"
	"github.com/cdcrecon/cdcrecon/processors/consistency"
	"github.com/cdcrecon/cdcrecon/processors/normalize"
)

// The reference model: DESIGN.md's consistency rule evaluated by brute
// force over complete histories, with none of the engine's machinery (no
// watermarks, timers, pruning or incremental state). For every key it
// computes each side's state function S(t) and tests, at every instant
// where anything can change, whether S_tgt(t) equals S_src(t') for some t'
// in [t − grace, t].

// refDrift is one drift as the model finds it.
type refDrift struct {
	table    string
	key      string
	opened   int64
	resolved int64 // MaxInt64: still open
	kind     string
	columns  []string
}

// refChecksum is one window's checksum as the model finds it.
type refChecksum struct {
	table      string
	start      int64
	src, tgt   [16]byte
	nsrc, ntgt int64
	drifts     []string
}

type refState struct {
	row    canon.Row // nil: absent
	digest uint64
	time   int64
}

type refModel struct {
	grace, window int64
	tables        map[string]*normalize.Table
}

// sideStates applies a side's changes in (time, origin) order, resolving
// TOAST placeholders against the previous row, and returns the states,
// the first being "absent since -∞".
func (m *refModel) sideStates(t *normalize.Table, cs []changes.Change) []refState {
	sort.SliceStable(cs, func(i, j int) bool {
		a, b := cs[i], cs[j]
		if a.Time != b.Time {
			return a.Time < b.Time
		}
		if a.Origin.Topic != b.Origin.Topic {
			return a.Origin.Topic < b.Origin.Topic
		}
		if a.Origin.Partition != b.Origin.Partition {
			return a.Origin.Partition < b.Origin.Partition
		}
		return a.Origin.Offset < b.Origin.Offset
	})
	states := []refState{{time: math.MinInt64}}
	var h canon.Hasher
	for _, c := range cs {
		s := refState{time: c.Time}
		if c.Kind == changes.Upsert {
			row, err := canon.DecodeRow(c.Row)
			if err != nil {
				panic(err)
			}
			nc := normalize.Change{Row: row, Unresolved: c.Unresolved}
			nc.Resolve(states[len(states)-1].row)
			s.row, s.digest = nc.Row, t.Digest(&h, nc.Row)
		}
		states = append(states, s)
	}
	return states
}

// at returns S(t): the last state whose time is ≤ t.
func at(states []refState, t int64) refState {
	i := sort.Search(len(states), func(i int) bool { return states[i].time > t })
	return states[i-1]
}

func (m *refModel) same(t *normalize.Table, a, b refState) bool {
	if a.row == nil || b.row == nil {
		return a.row == nil && b.row == nil
	}
	return t.Equal(a.row, a.digest, b.row, b.digest)
}

// consistent tells whether the target's state at t equals the source's at
// some t' in [t−grace, t]. S_src takes on that interval its value at
// t−grace and the values its changes inside it set.
func (m *refModel) consistent(t *normalize.Table, src, tgt []refState, at_ int64) bool {
	target := at(tgt, at_)
	lo := at_ - m.grace
	if m.same(t, at(src, lo), target) {
		return true
	}
	for _, s := range src[1:] {
		if s.time > lo && s.time <= at_ && m.same(t, s, target) {
			return true
		}
	}
	return false
}

// run finds every drift and checksum of a complete history.
func (m *refModel) run(cs []changes.Change) ([]refDrift, []refChecksum) {
	type keyID struct{ table, key string }
	bySide := map[keyID][3][]changes.Change{}
	keysOf := map[string][]string{}
	var truncates []changes.Change
	for _, c := range cs {
		if c.Kind == changes.Truncate {
			truncates = append(truncates, c)
			continue
		}
		id := keyID{c.Table, string(c.Key)}
		s, seen := bySide[id]
		if !seen {
			keysOf[c.Table] = append(keysOf[c.Table], id.key)
		}
		s[c.Side] = append(s[c.Side], c)
		bySide[id] = s
	}
	for _, tr := range truncates { // a truncate makes every key of its side absent
		for _, k := range keysOf[tr.Table] {
			id := keyID{tr.Table, k}
			s := bySide[id]
			a := tr
			a.Kind, a.Key = changes.Absent, []byte(k)
			s[tr.Side] = append(s[tr.Side], a)
			bySide[id] = s
		}
	}
	var drifts []refDrift
	var sums []refChecksum
	for tableName, keys := range keysOf {
		t := m.tables[tableName]
		windows := map[int64][]string{}
		open := map[string]*refDrift{}
		states := map[string][2][]refState{}
		for _, k := range keys {
			s := bySide[keyID{tableName, k}]
			src := m.sideStates(t, s[normalize.Source])
			tgt := m.sideStates(t, s[normalize.Target])
			states[k] = [2][]refState{src, tgt}
			// change points: every change, and grace after every source change
			var points []int64
			for _, st := range src[1:] {
				points = append(points, st.time, st.time+m.grace)
			}
			for _, st := range tgt[1:] {
				points = append(points, st.time)
			}
			for _, side := range [][]refState{src[1:], tgt[1:]} {
				for _, st := range side {
					ws := st.time - ((st.time%m.window)+m.window)%m.window
					windows[ws] = append(windows[ws], k)
				}
			}
			sort.Slice(points, func(i, j int) bool { return points[i] < points[j] })
			var cur *refDrift
			for i, p := range points {
				if i > 0 && p == points[i-1] {
					continue
				}
				ok := m.consistent(t, src, tgt, p)
				switch {
				case !ok && cur == nil:
					cur = &refDrift{table: tableName, key: k, opened: p, resolved: math.MaxInt64}
					s, g := at(src, p), at(tgt, p)
					switch {
					case g.row == nil:
						cur.kind = "missing_in_target"
					case s.row == nil:
						cur.kind = "extra_in_target"
					default:
						cur.kind = "value_mismatch"
						cur.columns = t.Diff(s.row, g.row)
					}
					drifts = append(drifts, *cur)
					open[k] = &drifts[len(drifts)-1]
				case ok && cur != nil:
					cur = nil
					// find the drift just appended for this key
					for j := len(drifts) - 1; j >= 0; j-- {
						if drifts[j].table == tableName && drifts[j].key == k && drifts[j].resolved == math.MaxInt64 {
							drifts[j].resolved = p
							break
						}
					}
				}
			}
		}
		for ws, ks := range windows {
			sum := refChecksum{table: tableName, start: ws, drifts: []string{}}
			end, closeAt := ws+m.window, ws+m.window+m.grace
			seen := map[string]bool{}
			for _, k := range ks {
				if seen[k] {
					continue
				}
				seen[k] = true
				st := states[k]
				if s := at(st[0], end); s.row != nil {
					addRef(&sum.src, &sum.nsrc, k, s.digest)
				}
				if g := at(st[1], closeAt); g.row != nil {
					addRef(&sum.tgt, &sum.ntgt, k, g.digest)
				}
				for _, d := range drifts {
					if d.table == tableName && d.key == k && d.opened <= closeAt && d.resolved > closeAt {
						sum.drifts = append(sum.drifts, consistency.DriftID(tableName, []byte(k), d.opened))
					}
				}
			}
			sort.Strings(sum.drifts)
			sums = append(sums, sum)
		}
	}
	return drifts, sums
}

// addRef adds a key's row digest to a 128-bit sum, written out here as
// two 64-bit halves with a carry.
func addRef(sum *[16]byte, n *int64, key string, digest uint64) {
	h := xxh3.Hash128(binary.LittleEndian.AppendUint64([]byte(key), digest))
	hi, lo := binary.BigEndian.Uint64(sum[:8]), binary.BigEndian.Uint64(sum[8:])
	nlo := lo + h.Lo
	if nlo < lo {
		hi++
	}
	binary.BigEndian.PutUint64(sum[:8], hi+h.Hi)
	binary.BigEndian.PutUint64(sum[8:], nlo)
	*n++
}
