package consistency_test

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"sort"
	"testing"

	"github.com/cdcrecon/cdcrecon/processors/changes"
	"github.com/cdcrecon/cdcrecon/processors/consistency"
	"github.com/cdcrecon/cdcrecon/processors/normalize"
	"github.com/cdcrecon/cdcrecon/schemas"
)

// logEntry is one record of a changes partition: a change or a watermark.
type logEntry struct {
	change *changes.Change
	side   normalize.Side
	input  string
	mark   int64
}

// lateLog interleaves a history's inputs into one changes-partition log
// with watermarks, some of them idle watermarks far ahead of the input's
// events (a side read to its end, stamped by the wall clock), so that the
// input's later changes arrive late.
func lateLog(r *rand.Rand, hist *history, inputs []string) []logEntry {
	pos := map[string]int{}
	var log []logEntry
	for {
		in, c, ok := hist.next(r, inputs, pos)
		if !ok {
			break
		}
		log = append(log, logEntry{change: &c})
		switch p := r.IntN(8); {
		case p == 0: // idle: the wall clock is ahead of the events
			log = append(log, logEntry{side: hist.sides[in], input: in, mark: c.Time + int64(50+r.IntN(400))})
		case p < 3:
			log = append(log, logEntry{side: hist.sides[in], input: in, mark: c.Time})
		}
	}
	for _, in := range inputs {
		log = append(log, logEntry{side: hist.sides[in], input: in, mark: changes.End})
	}
	return log
}

// runLog feeds a log to a new engine, advancing after a record with
// probability advance (1: after every one), and returns what it emitted,
// encoded, in order.
func runLog(t *testing.T, r *rand.Rand, log []logEntry, inputs []string, sides map[string]normalize.Side, advance float64) []string {
	t.Helper()
	cfg, m := propertySetup(t)
	var out []string
	e, err := consistency.New(consistency.Config{Settings: cfg, Mapper: m, Emit: func(rec schemas.Record) {
		b, err := json.Marshal(struct {
			Type string
			R    schemas.Record
		}{fmt.Sprintf("%T", rec), rec})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range inputs {
		e.Expect(sides[in], in)
	}
	for _, l := range log {
		if l.change != nil {
			if err := e.Apply(*l.change); err != nil {
				t.Fatal(err)
			}
		} else {
			e.Watermark(l.side, l.input, l.mark)
		}
		if r.Float64() < advance {
			e.Advance()
		}
	}
	e.Finish()
	return out
}

// TestLateChangesPlacedByTheLog: a change older than its input's
// watermark takes effect at that watermark, a fact of the log. An engine
// that advances after every record (a live worker) and engines that
// advance at random batch ends (a rebuild, a replay) emit the same records
// byte for byte, and those records are the reference model's over the
// changes at their effective times.
func TestLateChangesPlacedByTheLog(t *testing.T) {
	_, m := propertySetup(t)
	tables := map[string]*normalize.Table{}
	for _, tb := range m.Tables() {
		tables[tb.Name()] = tb
	}
	model := &refModel{grace: 50, window: 200, tables: tables}
	n := 1000
	if testing.Short() {
		n = 100
	}
	late := 0
	for seed := 0; seed < n; seed++ {
		r := rand.New(rand.NewPCG(uint64(seed), 11))
		hist := generate(r, m)
		var inputs []string
		for in := range hist.inputs {
			inputs = append(inputs, in)
		}
		sort.Strings(inputs)
		log := lateLog(r, hist, inputs)

		live := runLog(t, r, log, inputs, hist.sides, 1)
		for _, p := range []float64{0.5, 0.1, 0} {
			if got := runLog(t, r, log, inputs, hist.sides, p); !reflect.DeepEqual(got, live) {
				t.Fatalf("seed %d: advancing with probability %.1f emits %d records, advancing after every record %d; first difference:\n%s",
					seed, p, len(got), len(live), firstDiff(got, live))
			}
		}

		// The rule, written out: a change takes effect no earlier than
		// its input's latest watermark before it.
		marks := map[string]int64{}
		var eff []changes.Change
		for _, l := range log {
			if l.change == nil {
				marks[l.input] = max(marks[l.input], l.mark)
				continue
			}
			c := *l.change
			in := fmt.Sprintf("%s/%d", c.Origin.Topic, c.Origin.Partition)
			if mk, ok := marks[in]; ok && c.Time < mk {
				c.Time = mk
				late++
			}
			eff = append(eff, c)
		}
		want, _ := model.run(eff)
		opened := map[string]bool{}
		for _, d := range want {
			opened[consistency.DriftID(d.table, []byte(d.key), d.opened)] = d.resolved == math.MaxInt64
		}
		got := map[string]bool{}
		for _, rec := range live {
			var d struct {
				Type string
				R    struct {
					ID     string              `json:"id"`
					Status schemas.DriftStatus `json:"status"`
				}
			}
			if err := json.Unmarshal([]byte(rec), &d); err != nil {
				t.Fatal(err)
			}
			if d.Type != "*schemas.Drift" {
				continue
			}
			if d.R.Status == schemas.Open {
				got[d.R.ID] = true
			} else {
				got[d.R.ID] = false
			}
		}
		if !reflect.DeepEqual(got, opened) {
			t.Fatalf("seed %d: drifts (id -> still open) differ from the model's over the effective times:\n got %v\nwant %v", seed, got, opened)
		}
	}
	if late == 0 {
		t.Fatal("no late change generated")
	}
	t.Logf("%d histories, %d late cs", n, late)
}

func firstDiff(a, b []string) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("record %d:\n  %s\n  %s", i, a[i], b[i])
		}
	}
	return "one is a prefix of the other"
}
