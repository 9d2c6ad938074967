package dedupe_test

import (
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cdcrecon/cdcrecon/processors/dedupe"
	"github.com/cdcrecon/cdcrecon/processors/state"
)

func id(n byte) [16]byte { return [16]byte{n, 1, 2, 3} }

func seen(t *testing.T, w *dedupe.Window, n byte, at int64) bool {
	t.Helper()
	dup, err := w.Seen(id(n), at)
	if err != nil {
		t.Fatal(err)
	}
	return dup
}

// TestMarksAreDurableWithTheirBatch: a mark counts within its batch at
// once, survives a restart once committed, and is lost with an
// uncommitted batch.
func TestMarksAreDurableWithTheirBatch(t *testing.T) {
	fs := vfs.NewMem()
	st, err := state.Open("db", state.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	w, _ := dedupe.New(st, dedupe.Config{Retention: time.Hour})
	if seen(t, w, 1, 1000) || !seen(t, w, 1, 1000) {
		t.Fatal("a repeated identity within one batch is a duplicate")
	}
	if seen(t, w, 2, 1000) {
		t.Fatal("a new identity is not a duplicate")
	}
	b := st.NewBatch()
	w.Flush(b)
	b.SetOffset("in", 0, 3)
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	seen(t, w, 3, 2000) // marked, never committed

	w2, _ := dedupe.New(st, dedupe.Config{Retention: time.Hour})
	if !seen(t, w2, 1, 1000) || !seen(t, w2, 2, 1000) {
		t.Error("committed marks are gone after a restart")
	}
	if seen(t, w2, 3, 2000) {
		t.Error("an uncommitted mark survived")
	}
	if w.Duplicates() != 1 || w2.Duplicates() != 2 {
		t.Errorf("duplicates counted %d and %d, want 1 and 2", w.Duplicates(), w2.Duplicates())
	}
	if off, ok, err := st.Offset("in", 0); err != nil || !ok || off != 3 {
		t.Errorf("offset %d %v %v", off, ok, err)
	}
}

// TestExpiryByBucket: once the latest event time is a retention past a
// bucket, the bucket's marks are deleted and its events are new again.
func TestExpiryByBucket(t *testing.T) {
	st, err := state.Open("db", state.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	hour := time.Hour.Milliseconds()
	w, _ := dedupe.New(st, dedupe.Config{Retention: 4 * time.Hour, Buckets: 4}) // 1h buckets
	commit := func() {
		b := st.NewBatch()
		w.Flush(b)
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	seen(t, w, 1, 10)       // bucket 0
	seen(t, w, 2, hour+10)  // bucket 1
	seen(t, w, 3, -hour+10) // bucket -1: negative times bucket too
	commit()
	seen(t, w, 4, 5*hour+30) // horizon 1h+30: buckets before 1h expire
	commit()
	w2, _ := dedupe.New(st, dedupe.Config{Retention: 4 * time.Hour, Buckets: 4})
	if seen(t, w2, 1, 10) || seen(t, w2, 3, -hour+10) {
		t.Error("marks of expired buckets survived")
	}
	if !seen(t, w2, 2, hour+10) || !seen(t, w2, 4, 5*hour+30) {
		t.Error("marks within the retention were expired")
	}
}

// TestHorizonSkipsLookups: events later than every mark of their input,
// or at the latest instant with an identity not marked there, are not
// looked up; a re-send before the horizon is, and is found, also after a
// restart restored the horizon (when events at the horizon are looked up
// too, its identities being unknown); a discarded batch gives back its
// horizon; each input has its own.
func TestHorizonSkipsLookups(t *testing.T) {
	fs := vfs.NewMem()
	st, err := state.Open("db", state.Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := dedupe.Config{Retention: time.Hour, Name: "pg.public.orders/0"}
	w, _ := dedupe.New(st, cfg)
	for n, at := range []int64{1000, 2000, 3000} {
		if seen(t, w, byte(n), at) {
			t.Fatalf("event %d is new", n)
		}
	}
	if seen(t, w, 9, 3000) || !seen(t, w, 2, 3000) || w.Lookups() != 0 {
		t.Fatalf("at the horizon: a new identity is new, a repeated one a duplicate, neither looked up (lookups %d)", w.Lookups())
	}
	if !seen(t, w, 1, 2000) || w.Lookups() != 0 {
		t.Fatalf("a re-send before the horizon, of this batch, is found among its marks (lookups %d)", w.Lookups())
	}
	b := st.NewBatch()
	w.Flush(b)
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	b.Close()

	w2, _ := dedupe.New(st, cfg)
	if !seen(t, w2, 2, 3000) || !seen(t, w2, 1, 2000) || seen(t, w2, 8, 3000) || w2.Lookups() != 3 {
		t.Errorf("after a restart: duplicates %d, lookups %d, want 2 and 3", w2.Duplicates(), w2.Lookups())
	}
	if seen(t, w2, 5, 4000) || w2.Lookups() != 3 {
		t.Error("an event later than the restored horizon is new without a lookup")
	}
	w2.Discard()
	if seen(t, w2, 5, 4000) || w2.Lookups() != 3 {
		t.Error("a discarded event, seen again, is new without a lookup")
	}
	w2.Discard()
	if seen(t, w2, 6, 2500) || w2.Lookups() != 4 {
		t.Error("after a discard the horizon is the committed one: an earlier event is looked up")
	}
	if seen(t, w2, 7, 3000) || w2.Lookups() != 5 {
		t.Error("after a discard, events at the restored horizon are looked up")
	}

	other, _ := dedupe.New(st, dedupe.Config{Retention: time.Hour, Name: "mysql.shop.orders/0"})
	if seen(t, other, 1, 1000) || seen(t, other, 2, 1000) || other.Lookups() != 0 {
		t.Error("another input's horizon starts empty")
	}
}

// TestWindowsExpireOnlyTheirOwnMarks: windows share one store, and the
// one furthest ahead in event time expires its own marks only. A re-send
// on a slow input partition, well inside the retention of that partition,
// is still a duplicate after a fast partition moved hours past it.
func TestWindowsExpireOnlyTheirOwnMarks(t *testing.T) {
	st, err := state.Open("db", state.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := func(name string) dedupe.Config {
		return dedupe.Config{Retention: time.Hour, Buckets: 4, Name: name}
	}
	slow, _ := dedupe.New(st, cfg("slow/0"))
	fast, _ := dedupe.New(st, cfg("fast/0"))
	commit := func(w *dedupe.Window) {
		t.Helper()
		b := st.NewBatch()
		defer b.Close()
		w.Flush(b)
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	const minute = int64(time.Minute / time.Millisecond)
	for i := range byte(10) {
		seen(t, slow, i, int64(i)*minute)
	}
	seen(t, slow, 100, 30*minute) // the slow partition's horizon: the re-sends are behind it
	commit(slow)
	for i := range byte(50) {
		seen(t, fast, i, int64(i)*10*minute) // the same identities, up to 8 h later
	}
	commit(fast)

	// Restarted: the re-sends are looked up in the store.
	slow, _ = dedupe.New(st, cfg("slow/0"))
	for i := range byte(10) {
		if !seen(t, slow, i, int64(i)*minute) {
			t.Errorf("the slow partition's re-send of event %d passed as new after the fast one moved on", i)
		}
	}
	// The fast partition's own old marks are gone, as its retention says.
	fast, _ = dedupe.New(st, cfg("fast/0"))
	if seen(t, fast, 0, 0) {
		t.Error("a mark 8 h behind its own window's latest event survived a retention of 1 h")
	}
}
