package consistency_test

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cdcrecon/cdcrecon/processors/canon"
	"github.com/cdcrecon/cdcrecon/processors/changes"
	"github.com/cdcrecon/cdcrecon/processors/config"
	"github.com/cdcrecon/cdcrecon/processors/consistency"
	"github.com/cdcrecon/cdcrecon/processors/normalize"
	"github.com/cdcrecon/cdcrecon/processors/state"
	"github.com/cdcrecon/cdcrecon/schemas"
)

const propertyConfig = `
window: {size: 200ms, grace: 50ms}
tables:
  - name: a
    key: [id]
    source: {topic: src.a}
    target: {topic: tgt.a}
  - name: b
    key: [id]
    source: {topic: src.b}
    target: {topic: tgt.b}
    normalize:
      w: {tolerance: 1}
`

func propertySetup(t testing.TB) (*config.Config, *normalize.Mapper) {
	t.Helper()
	cfg, err := config.Parse([]byte(propertyConfig), "property.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m, err := normalize.NewMapper(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, m
}

// history is a generated input: the changes of every input partition, in
// partition order, with non-decreasing times.
type history struct {
	inputs map[string][]changes.Change // "topic/partition" -> cs
	sides  map[string]normalize.Side
}

func (h *history) all() []changes.Change {
	var out []changes.Change
	for _, cs := range h.inputs {
		out = append(out, cs...)
	}
	return out
}

// generate writes a source history per key and a target that follows it
// with lag, sometimes beyond grace, sometimes wrongly, sometimes not at all,
// sometimes early; TOAST placeholders, deletes and truncates included.
func generate(r *rand.Rand, m *normalize.Mapper) *history {
	const grace = 50
	var raw []changes.Change
	var h canon.Hasher
	row := func(t *normalize.Table, v, w int64, toast bool) ([]byte, uint64, bool) {
		vv := canon.IntValue(v)
		if toast {
			vv = canon.UnavailableValue()
		}
		rw := canon.Row{{Name: "v", Value: vv}, {Name: "w", Value: canon.IntValue(w)}}
		return canon.AppendRow(nil, rw), t.Digest(&h, rw), toast
	}
	nkeys := 1 + r.IntN(5)
	for _, t := range m.Tables() {
		for k := 0; k < nkeys; k++ {
			key := canon.AppendKey(nil, []canon.Value{canon.IntValue(int64(k))})
			tm := int64(r.IntN(300))
			for n := r.IntN(6); n >= 0; n-- {
				tm += int64(r.IntN(120))
				if r.IntN(5) == 0 {
					// A pause longer than a window and the grace: the key
					// goes idle (and, with a store, leaves memory).
					tm += 300 + int64(r.IntN(400))
				}
				c := changes.Change{Table: t.Name(), Side: normalize.Source, Key: key, Time: tm, Kind: changes.Upsert}
				v, w := int64(r.IntN(3)), int64(r.IntN(3))
				if r.IntN(6) == 0 {
					c.Kind = changes.Absent
				} else {
					c.Row, c.Digest, c.Unresolved = row(t, v, w, r.IntN(8) == 0)
				}
				raw = append(raw, c)
				// the target's copy
				tc := c
				tc.Side = normalize.Target
				switch p := r.IntN(20); {
				case p < 12: // on time
					tc.Time += int64(r.IntN(grace))
				case p < 14: // late beyond grace
					tc.Time += grace + int64(r.IntN(3*grace))
				case p < 15: // early
					tc.Time -= int64(r.IntN(10))
				case p < 17: // wrong value (w within tolerance on table b, sometimes)
					tc.Time += int64(r.IntN(grace))
					if tc.Kind == changes.Upsert {
						tc.Row, tc.Digest, tc.Unresolved = row(t, v, w+int64(1+r.IntN(2)), false)
					} else {
						tc.Kind, tc.Row, tc.Digest, tc.Unresolved = changes.Upsert, nil, 0, false
						tc.Row, tc.Digest, _ = row(t, v, w, false)
					}
				default: // dropped
					continue
				}
				tc.Time = max(tc.Time, 0)
				raw = append(raw, tc)
			}
		}
		if r.IntN(5) == 0 {
			side := normalize.Side(1 + r.IntN(2))
			raw = append(raw, changes.Change{Table: t.Name(), Side: side, Kind: changes.Truncate, Time: int64(r.IntN(2000))})
		}
	}
	// Spread over input partitions, each in time order.
	hist := &history{inputs: map[string][]changes.Change{}, sides: map[string]normalize.Side{}}
	sort.SliceStable(raw, func(i, j int) bool { return raw[i].Time < raw[j].Time })
	for _, c := range raw {
		topic := map[normalize.Side]string{normalize.Source: "src.", normalize.Target: "tgt."}[c.Side] + c.Table
		part := int32(0)
		if len(c.Key) > 0 {
			part = int32(c.Key[len(c.Key)-1] % 2)
		}
		in := fmt.Sprintf("%s/%d", topic, part)
		c.Origin = changes.Origin{Topic: topic, Partition: part, Offset: int64(len(hist.inputs[in]))}
		hist.inputs[in] = append(hist.inputs[in], c)
		hist.sides[in] = c.Side
	}
	return hist
}

// next takes the next change of an input picked at random among those
// with changes left (pos holds each input's position); false when none
// is left.
func (h *history) next(r *rand.Rand, inputs []string, pos map[string]int) (string, changes.Change, bool) {
	var live []string
	for _, in := range inputs {
		if pos[in] < len(h.inputs[in]) {
			live = append(live, in)
		}
	}
	if len(live) == 0 {
		return "", changes.Change{}, false
	}
	in := live[r.IntN(len(live))]
	c := h.inputs[in][pos[in]]
	pos[in]++
	return in, c, true
}

// feed runs a history through an engine, interleaving the input partitions
// at random, reporting watermarks and advancing as it goes.
func feed(t testing.TB, r *rand.Rand, e *consistency.Engine, hist *history, inputs []string, flush func(*consistency.Engine) *consistency.Engine) *consistency.Engine {
	t.Helper()
	for _, in := range inputs {
		e.Expect(hist.sides[in], in)
	}
	pos := map[string]int{}
	for {
		in, c, ok := hist.next(r, inputs, pos)
		if !ok {
			break
		}
		if err := e.Apply(c); err != nil {
			t.Fatal(err)
		}
		switch {
		case pos[in] == len(hist.inputs[in]) && r.IntN(2) == 0:
			// The input's end, told at once (as ingest does at the end
			// of a dump), lets the others' watermarks decide.
			e.Watermark(hist.sides[in], in, changes.End)
			e.Advance()
			e = flush(e)
		case r.IntN(3) == 0:
			e.Watermark(hist.sides[in], in, c.Time)
			e.Advance()
			e = flush(e)
		}
	}
	e.Finish()
	return e
}

type gotDrift struct {
	opened, resolved int64
	kind             string
	columns          []string
}

// TestMatchesReferenceModel compares the engine with the reference model
// over thousands of generated histories, each fed in a random order with
// random watermark progress. Every other history runs with a Pebble store
// (in memory), flushed after every advance, so that idle keys leave the
// engine and come back.
func TestMatchesReferenceModel(t *testing.T) {
	var spilled, loaded, restarts int64
	cfg, m := propertySetup(t)
	tables := map[string]*normalize.Table{}
	for _, tb := range m.Tables() {
		tables[tb.Name()] = tb
	}
	model := &refModel{grace: 50, window: 200, tables: tables}
	n := 3000
	if testing.Short() {
		n = 300
	}
	stats := map[string]int{}
	for seed := 0; seed < n; seed++ {
		r := rand.New(rand.NewPCG(uint64(seed), 7))
		hist := generate(r, m)
		var inputs []string
		for in := range hist.inputs {
			inputs = append(inputs, in)
		}
		sort.Strings(inputs)

		drifts := map[string]*gotDrift{}
		sums := map[string]*schemas.Checksum{}
		var failed []string
		var st *state.Store
		if seed%2 == 0 {
			var err error
			if st, err = state.Open("state", state.Options{FS: vfs.NewMem()}); err != nil {
				t.Fatal(err)
			}
		}
		cfgE := consistency.Config{Settings: cfg, Mapper: m}
		if st != nil {
			cfgE.Store = st
			cfgE.MaxKeys = (seed / 2) % 3 // also keep some idle keys in memory
		}
		cfgE.Emit = func(rec schemas.Record) {
			switch x := rec.(type) {
			case *schemas.Drift:
				switch x.Status {
				case schemas.Open:
					if drifts[x.ID] != nil {
						failed = append(failed, "drift "+x.ID+" opened twice")
					}
					drifts[x.ID] = &gotDrift{opened: x.OpenedAt.UnixMilli(), resolved: math.MaxInt64, kind: string(x.Kind), columns: x.Columns}
				case schemas.Resolved:
					d := drifts[x.ID]
					if d == nil || d.resolved != math.MaxInt64 {
						failed = append(failed, "drift "+x.ID+" resolved before opened, or twice")
						return
					}
					d.resolved = x.ResolvedAt.UnixMilli()
				}
			case *schemas.Checksum:
				c := *x
				sums[fmt.Sprintf("%s@%d", x.Table, x.WindowStart.UnixMilli())] = &c
			}
		}
		e, err := consistency.New(cfgE)
		if err != nil {
			t.Fatal(err)
		}
		e = feed(t, r, e, hist, inputs, func(e *consistency.Engine) *consistency.Engine {
			if st == nil {
				return e
			}
			checkpoint(t, e, st)
			if r.IntN(4) != 0 {
				return e
			}
			// A restart: an engine opened on the checkpoint goes on
			// where this one stopped.
			e, err = consistency.New(cfgE)
			if err != nil {
				t.Fatal(err)
			}
			if extra, ok := e.Resumed(); !ok || !bytes.Equal(extra, []byte{1}) {
				t.Fatalf("seed %d: the engine did not open on the checkpoint (%v, %x)", seed, ok, extra)
			}
			restarts++
			return e
		})
		if st != nil {
			spilled += e.Stats().Spilled
			loaded += e.Stats().Loaded
			st.Close()
		}
		if len(failed) > 0 {
			t.Fatalf("seed %d: %s", seed, strings.Join(failed, "; "))
		}

		want, wantSums := model.run(hist.all())
		wantByID := map[string]*gotDrift{}
		for _, d := range want {
			cols := d.columns
			if cols == nil {
				cols = []string{}
			}
			wantByID[consistency.DriftID(d.table, []byte(d.key), d.opened)] = &gotDrift{opened: d.opened, resolved: d.resolved, kind: d.kind, columns: cols}
			stats[d.kind]++
			if d.resolved != math.MaxInt64 {
				stats["resolved"]++
			}
		}
		if !reflect.DeepEqual(drifts, wantByID) {
			t.Fatalf("seed %d: drifts differ from the reference model\n got %s\nwant %s\nhistory:\n%s", seed, show(drifts), show(wantByID), showHistory(hist))
		}
		if len(sums) != len(wantSums) {
			t.Fatalf("seed %d: %d checksum records, the model has %d", seed, len(sums), len(wantSums))
		}
		for _, w := range wantSums {
			got := sums[fmt.Sprintf("%s@%d", w.table, w.start)]
			if got == nil || got.Source.Count != w.nsrc || got.Target.Count != w.ntgt ||
				[16]byte(got.Source.Digest) != w.src || [16]byte(got.Target.Digest) != w.tgt || !reflect.DeepEqual(got.DriftIDs, w.drifts) ||
				got.Consistent != (w.src == w.tgt && w.nsrc == w.ntgt) {
				t.Fatalf("seed %d: checksum of %s@%d: got %+v, model %+v", seed, w.table, w.start, got, w)
			}
		}
	}
	t.Logf("reference drifts over %d histories: %v; keys spilled %d, loaded back %d; restarts on a checkpoint %d", n, stats, spilled, loaded, restarts)
	if spilled == 0 || loaded == 0 || restarts == 0 {
		t.Errorf("keys spilled %d, loaded back %d, restarts %d: the store is not exercised", spilled, loaded, restarts)
	}
	for _, k := range []string{"missing_in_target", "extra_in_target", "value_mismatch", "resolved"} {
		if stats[k] == 0 {
			t.Errorf("no %s drift generated: the generator does not cover every kind", k)
		}
	}
}

func show(m map[string]*gotDrift) string {
	var lines []string
	for id, d := range m {
		lines = append(lines, fmt.Sprintf("  %s… opened %d resolved %d %s %v", id[:8], d.opened, d.resolved, d.kind, d.columns))
	}
	sort.Strings(lines)
	return "\n" + strings.Join(lines, "\n")
}

func showHistory(h *history) string {
	all := h.all()
	sort.SliceStable(all, func(i, j int) bool { return all[i].Time < all[j].Time })
	var b strings.Builder
	for _, c := range all {
		row := "-"
		if c.Row != nil {
			r, _ := canon.DecodeRow(c.Row)
			row = string(canon.AppendRowJSON(nil, r))
		}
		fmt.Fprintf(&b, "  t=%d %s %s kind=%d key=%x row=%s toast=%v\n", c.Time, c.Table, c.Side, c.Kind, c.Key, row, c.Unresolved)
	}
	return b.String()
}

// checkpoint commits an engine's checkpoint, with the caller's bytes {1},
// to the store.
func checkpoint(t testing.TB, e *consistency.Engine, st *state.Store) {
	t.Helper()
	b := st.NewBatch()
	defer b.Close()
	if _, err := e.Checkpoint(b, []byte{1}); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
}
