package consistency_test

import (
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cdcrecon/cdcrecon/processors/canon"
	"github.com/cdcrecon/cdcrecon/processors/changes"
	"github.com/cdcrecon/cdcrecon/processors/consistency"
	"github.com/cdcrecon/cdcrecon/processors/normalize"
	"github.com/cdcrecon/cdcrecon/processors/state"
	"github.com/cdcrecon/cdcrecon/schemas"
)

// TestStoredKeysComeBack: a key idle long enough leaves memory for the
// store with its open drift; an engine opened later on the same store
// (which then holds keys it did not write) reads it back when a change
// arrives, and resolves the drift under the id it was opened with.
func TestStoredKeysComeBack(t *testing.T) {
	cfg, m := propertySetup(t)
	tbl := m.Tables()[0]
	var h canon.Hasher
	key := canon.AppendKey(nil, []canon.Value{canon.IntValue(1)})
	change := func(side normalize.Side, at, v int64) changes.Change {
		row := canon.Row{{Name: "v", Value: canon.IntValue(v)}, {Name: "w", Value: canon.IntValue(0)}}
		return changes.Change{Table: tbl.Name(), Side: side, Kind: changes.Upsert, Key: key, Time: at,
			Row: canon.AppendRow(nil, row), Digest: tbl.Digest(&h, row),
			Origin: changes.Origin{Topic: "x", Offset: at}}
	}
	st, err := state.Open("db", state.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var got []*schemas.Drift
	emit := func(r schemas.Record) {
		if d, ok := r.(*schemas.Drift); ok {
			got = append(got, d)
		}
	}
	open := func() *consistency.Engine {
		e, err := consistency.New(consistency.Config{Settings: cfg, Mapper: m, Emit: emit, Store: st})
		if err != nil {
			t.Fatal(err)
		}
		e.Expect(normalize.Source, "src")
		e.Expect(normalize.Target, "tgt")
		return e
	}
	flush := func(e *consistency.Engine) int {
		b := st.NewBatch()
		defer b.Close()
		n, err := e.Checkpoint(b, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
		return n
	}

	e := open()
	for _, c := range []changes.Change{change(normalize.Source, 100, 1), change(normalize.Target, 120, 2)} {
		if err := e.Apply(c); err != nil {
			t.Fatal(err)
		}
	}
	// Watermarks well past the window (200ms) and grace (50ms).
	e.Watermark(normalize.Source, "src", 1000)
	e.Watermark(normalize.Target, "tgt", 1000)
	e.Advance()
	if len(got) != 1 || got[0].Status != schemas.Open || got[0].OpenedAt.UnixMilli() != 120 {
		t.Fatalf("want one drift opened at 120 (a value the source never had), got %+v", got)
	}
	if n := flush(e); n != 1 || e.Stats().Keys != 0 {
		t.Fatalf("flushed %d keys, %d left in memory; want the idle key stored", n, e.Stats().Keys)
	}

	e2 := open() // the store holds a key this engine did not write
	e2.Watermark(normalize.Source, "src", 1000)
	e2.Watermark(normalize.Target, "tgt", 1000)
	if err := e2.Apply(change(normalize.Target, 1500, 1)); err != nil {
		t.Fatal(err)
	}
	e2.Finish()
	if e2.Stats().Loaded != 1 {
		t.Fatalf("loaded %d keys, want 1", e2.Stats().Loaded)
	}
	if len(got) != 2 || got[1].Status != schemas.Resolved || got[1].ID != got[0].ID || got[1].ResolvedAt.UnixMilli() != 1500 {
		t.Fatalf("want the drift resolved at 1500 under its id, got %+v", got[1:])
	}
	if got[1].OpenedAt != got[0].OpenedAt || got[1].Kind != got[0].Kind {
		t.Errorf("the resolved record does not repeat the opening: %+v vs %+v", got[1], got[0])
	}
}
