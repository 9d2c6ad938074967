package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cdcrecon/cdcrecon/pipeline/offline"
	"github.com/cdcrecon/cdcrecon/processors/config"
	"github.com/cdcrecon/cdcrecon/schemas"
)

// A randomized property test of the whole pipeline, as check runs it:
// thousands of generated histories, each of its own keys, written as
// Debezium messages of a PostgreSQL source and a MySQL target (lag within
// and beyond the grace, wrong values, lost changes, rows the source never
// had, deletes with tombstones, re-sent duplicates), run through check
// once; every key's drift history must equal what a reference model
// computes from the histories alone.
//
// The model is DESIGN.md's rule taken literally and by brute force: a
// side's state at t is its last event at or before t (duplicates, same
// side, key, op and position, counted once); the key is consistent at t
// when the target's state equals the source's at some t' in [t−grace, t];
// drift opens at the first inconsistent instant and resolves at the first
// consistent one; after the last event, final states are compared. It
// shares no code with the pipeline: rows are compared as the simulated
// values they were written from.

const (
	propGrace = 1000 // ms, the configuration's grace
	propStart = int64(1_795_000_000_000)
)

const propConfig = `
window: {size: 5s, grace: 1s}
kafka: {partitions: 3}
tables:
  - name: orders
    key: [id]
    source: {topic: pg.public.orders}
    target:
      topic: mysql.shop.orders
      rename: {order_total: total}
    normalize:
      total: {as: decimal}
      paid: {as: bool}
  - name: items
    key: [order_id, line]
    source: {topic: pg.public.items}
    target: {topic: mysql.shop.items}
    normalize:
      paid: {as: bool}
`

// propRow is a row's logical values; nil is absent.
type propRow struct {
	status string
	cents  int64
	paid   bool
}

// propEvent is one row event of one side.
type propEvent struct {
	time int64
	row  *propRow // nil: a delete
	pos  int64    // connector position, unique per side
}

type propKey struct {
	table string
	key   map[string]int64
	src   []propEvent
	tgt   []propEvent
}

func (k *propKey) keyJSON() string {
	b, _ := json.Marshal(k.key)
	return string(b)
}

// propGenerate writes one history: a few keys, each a source history and a
// target that replicates it with faults.
func propGenerate(r *rand.Rand, id int, pos *[2]int64) []*propKey {
	var keys []*propKey
	for k := range 1 + r.IntN(2) {
		pk := &propKey{table: "orders", key: map[string]int64{"id": int64(id*2 + k)}}
		if r.IntN(3) == 0 {
			pk.table = "items"
			pk.key = map[string]int64{"order_id": int64(id), "line": int64(k)}
		}
		t := propStart + int64(r.IntN(20_000))
		var cur *propRow
		tgtT := int64(0)
		for range 1 + r.IntN(6) {
			t += 1 + int64(r.IntN(1500))
			var row *propRow
			if cur == nil || r.IntN(6) != 0 {
				row = &propRow{status: []string{"new", "paid", "sent"}[r.IntN(3)], cents: int64(r.IntN(4)) * 125, paid: r.IntN(2) == 0}
			}
			if cur == nil && row == nil {
				continue
			}
			pos[0]++
			pk.src = append(pk.src, propEvent{time: t, row: row, pos: pos[0]})
			cur = row
			// The target's copy.
			te := propEvent{row: row}
			switch p := r.IntN(20); {
			case p < 13: // within the grace
				te.time = t + int64(r.IntN(propGrace))
			case p < 15: // beyond it
				te.time = t + propGrace + int64(r.IntN(3*propGrace))
			case p < 17: // a wrong value
				te.time = t + int64(r.IntN(propGrace))
				if row != nil {
					w := *row
					w.cents += 1
					te.row = &w
				} else {
					te.row = &propRow{status: "ghost"}
				}
			default: // lost
				continue
			}
			te.time = max(te.time, tgtT+1) // applied in order
			tgtT = te.time
			pos[1]++
			te.pos = pos[1]
			pk.tgt = append(pk.tgt, te)
		}
		if len(pk.src) == 0 {
			continue
		}
		// A row the source never had, sometimes deleted again.
		if r.IntN(8) == 0 {
			tgtT += 1 + int64(r.IntN(2000))
			pos[1]++
			pk.tgt = append(pk.tgt, propEvent{time: tgtT, row: &propRow{status: "extra"}, pos: pos[1]})
			if r.IntN(2) == 0 {
				tgtT += 1 + int64(r.IntN(2000))
				pos[1]++
				pk.tgt = append(pk.tgt, propEvent{time: tgtT, pos: pos[1]})
			}
		}
		keys = append(keys, pk)
	}
	return keys
}

// propDrift is one drift of a key: opened and resolved instants (resolved
// MaxInt64 while open), kind and columns.
type propDrift struct {
	opened, resolved int64
	kind             string
	columns          string
	// decision is what the table's policy makes of the drift, and
	// action the compensation command's ("" for none); set by the
	// policy model only.
	decision, action string
}

func (d propDrift) String() string {
	res := "open"
	if d.resolved != math.MaxInt64 {
		res = fmt.Sprint(d.resolved - propStart)
	}
	if d.decision != "" {
		return fmt.Sprintf("[%d..%s %s %s %s %s]", d.opened-propStart, res, d.kind, d.columns, d.decision, d.action)
	}
	return fmt.Sprintf("[%d..%s %s %s]", d.opened-propStart, res, d.kind, d.columns)
}

// propPolicy is a table's policy as the model reads it: the rule, and
// whether the target owns paid.
type propPolicy struct {
	rule      string // source_wins, newest_wins (by total), manual, never_delete
	ownedPaid bool
}

// propModel computes a key's drift history by brute force.
func propModel(k *propKey) []propDrift { return propModelPolicy(k, nil) }

// propModelPolicy is propModel under a policy (nil: none, as before): an
// owned column is not compared, and each drift carries the policy's
// decision and the compensation action, from the rows at its opening.
func propModelPolicy(k *propKey, pol *propPolicy) []propDrift {
	dedupe := func(evs []propEvent) []propEvent {
		seen := map[int64]bool{}
		var out []propEvent
		for _, e := range evs {
			if !seen[e.pos] {
				seen[e.pos] = true
				out = append(out, e)
			}
		}
		return out
	}
	src, tgt := dedupe(k.src), dedupe(k.tgt)
	at := func(evs []propEvent, t int64) *propRow {
		var row *propRow
		for _, e := range evs {
			if e.time <= t {
				row = e.row
			}
		}
		return row
	}
	equal := func(a, b *propRow) bool {
		if (a == nil) != (b == nil) {
			return false
		}
		if a == nil {
			return true
		}
		x, y := *a, *b
		if pol != nil && pol.ownedPaid {
			x.paid, y.paid = false, false
		}
		return x == y
	}
	// Instants where anything can change: every event, and every source
	// event plus the grace (an older source state stops being acceptable).
	var instants []int64
	for _, e := range src {
		instants = append(instants, e.time, e.time+propGrace)
	}
	for _, e := range tgt {
		instants = append(instants, e.time)
	}
	slices.Sort(instants)
	instants = slices.Compact(instants)
	consistent := func(t int64) bool {
		target := at(tgt, t)
		// The source states of [t−grace, t]: the one at t−grace, and
		// every one that starts after it, up to t.
		if equal(target, at(src, t-propGrace)) {
			return true
		}
		for _, e := range src {
			if e.time > t-propGrace && e.time <= t && equal(target, e.row) {
				return true
			}
		}
		return false
	}
	var out []propDrift
	var open *propDrift
	for _, t := range instants {
		c := consistent(t)
		switch {
		case !c && open == nil:
			s, g := at(src, t), at(tgt, t)
			d := propDrift{opened: t, resolved: math.MaxInt64}
			switch {
			case g == nil:
				d.kind = "missing_in_target"
			case s == nil:
				d.kind = "extra_in_target"
			default:
				d.kind = "value_mismatch"
				var cols []string
				if s.paid != g.paid && (pol == nil || !pol.ownedPaid) {
					cols = append(cols, "paid")
				}
				if s.status != g.status {
					cols = append(cols, "status")
				}
				if s.cents != g.cents {
					cols = append(cols, "total")
				}
				d.columns = strings.Join(cols, ",")
			}
			if pol != nil {
				d.decision, d.action = "compensate", "upsert"
				switch {
				case pol.rule == "manual":
					d.decision, d.action = "manual", ""
				case pol.rule == "never_delete" && d.kind == "extra_in_target":
					d.decision, d.action = "never_delete", ""
				case pol.rule == "newest_wins" && d.kind == "value_mismatch" && g.cents > s.cents:
					d.decision, d.action = "target_newer", ""
				case d.kind == "extra_in_target":
					d.action = "delete"
				}
			}
			out = append(out, d)
			open = &out[len(out)-1]
		case c && open != nil:
			open.resolved = t
			open = nil
		}
	}
	return out
}

// propMessage is one Debezium message of a connector's topic.
type propMessage struct {
	topic string
	time  int64
	key   string
	value *string // nil: a tombstone
}

// propWrite writes a key's events as the connectors would, re-sending
// some (a connector restart) with their original positions.
func propWrite(r *rand.Rand, k *propKey) []propMessage {
	var out []propMessage
	// Orders: the target names total order_total and writes it at scale
	// 4; paid is a boolean on the source, 0/1 on the target.
	rowJSON := func(row *propRow, source bool) string {
		keyCols := strings.TrimSuffix(k.keyJSON(), "}")
		col, amount := "total", fmt.Sprintf("%d.%02d", row.cents/100, row.cents%100)
		paid := strconv.FormatBool(row.paid)
		if !source {
			paid = "0"
			if row.paid {
				paid = "1"
			}
			if k.table == "orders" {
				col, amount = "order_total", amount+"00"
			}
		}
		return fmt.Sprintf(`%s,"status":%q,%q:%q,"paid":%s}`, keyCols, row.status, col, amount, paid)
	}
	side := func(evs []propEvent, source bool) {
		topic := "mysql.shop." + k.table
		if source {
			topic = "pg.public." + k.table
		}
		var prev *propRow
		for _, e := range evs {
			op := "u"
			switch {
			case e.row == nil:
				op = "d"
			case prev == nil:
				op = "c"
			}
			before, after := "null", "null"
			if e.row != nil {
				after = rowJSON(e.row, source)
			}
			if op == "d" {
				before = k.keyJSON()
				if !source && prev != nil {
					before = rowJSON(prev, false)
				}
			}
			var block string
			if source {
				block = fmt.Sprintf(`{"connector":"postgresql","name":"pg","ts_ms":%d,"snapshot":"false","db":"shop","schema":"public","table":%q,"txId":%d,"lsn":%d}`, e.time, k.table, e.pos, 1000+e.pos*64)
			} else {
				block = fmt.Sprintf(`{"connector":"mysql","name":"mysql","ts_ms":%d,"snapshot":"false","db":"shop","table":%q,"server_id":1,"file":"binlog.000001","pos":%d,"row":0}`, e.time, k.table, 4+e.pos*100)
			}
			v := fmt.Sprintf(`{"before":%s,"after":%s,"source":%s,"op":%q,"ts_ms":%d}`, before, after, block, op, e.time+5)
			out = append(out, propMessage{topic: topic, time: e.time, key: k.keyJSON(), value: &v})
			if op == "d" {
				out = append(out, propMessage{topic: topic, time: e.time, key: k.keyJSON()})
			}
			prev = e.row
			// A connector restart re-sends the event, with its position,
			// later in the topic.
			if r.IntN(12) == 0 {
				out = append(out, propMessage{topic: topic, time: e.time + 1 + int64(r.IntN(3000)), key: k.keyJSON(), value: &v})
			}
		}
	}
	side(k.src, true)
	side(k.tgt, false)
	return out
}

// TestPipelineMatchesReferenceModel runs check --history over thousands
// of generated histories and compares every key's drift history with the
// reference model's.
func TestPipelineMatchesReferenceModel(t *testing.T) {
	histories := 3000
	if testing.Short() {
		histories = 300
	}
	keys, src, tgt := propDumps(t, rand.New(rand.NewPCG(2026, 11)), histories)
	dir := filepath.Dir(src)
	cfgPath := filepath.Join(dir, "check.yaml")
	if err := os.WriteFile(cfgPath, []byte(propConfig), 0o644); err != nil {
		t.Fatal(err)
	}

	var out, errOut bytes.Buffer
	report := filepath.Join(dir, "report.json")
	code := run(context.Background(), []string{"check", "--config", cfgPath, "--history", "--report", report, src, tgt}, nil, &out, &errOut)
	if code != exitOK && code != exitDrift {
		t.Fatalf("check: exit %d: %s", code, errOut.String())
	}

	// The pipeline's drift history per key.
	got := map[string][]propDrift{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if line == "" {
			continue
		}
		var d struct {
			Table      string         `json:"table"`
			Key        map[string]any `json:"key"`
			Kind       string         `json:"kind"`
			Columns    []string       `json:"columns"`
			Status     string         `json:"status"`
			OpenedAt   time.Time      `json:"opened_at"`
			ResolvedAt *time.Time     `json:"resolved_at"`
		}
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Fatal(err)
		}
		kj, _ := json.Marshal(d.Key)
		id := d.Table + " " + string(kj)
		opened := d.OpenedAt.UnixMilli()
		if d.Status == "open" {
			got[id] = append(got[id], propDrift{opened: opened, resolved: math.MaxInt64, kind: d.Kind, columns: strings.Join(d.Columns, ",")})
			continue
		}
		ds := got[id]
		if len(ds) == 0 || ds[len(ds)-1].opened != opened || ds[len(ds)-1].resolved != math.MaxInt64 {
			t.Fatalf("%s: resolution of a drift not open: %s", id, line)
		}
		ds[len(ds)-1].resolved = d.ResolvedAt.UnixMilli()
	}

	stats := map[string]int{}
	for _, k := range keys {
		id := k.table + " " + k.keyJSON()
		want := propModel(k)
		for _, d := range want {
			stats[d.kind]++
			if d.resolved != math.MaxInt64 {
				stats["resolved"]++
			}
		}
		if fmt.Sprint(got[id]) != fmt.Sprint(want) {
			t.Errorf("%s: pipeline %v, model %v\nsource %v\ntarget %v", id, got[id], want, k.src, k.tgt)
		}
		delete(got, id)
	}
	for id, ds := range got {
		t.Errorf("%s: drift for a key the model does not know: %v", id, ds)
	}
	var rep offline.Report
	b, _ := os.ReadFile(report)
	_ = json.Unmarshal(b, &rep)
	t.Logf("%d histories, %d keys, %d events, %d duplicates; model drifts: %v", histories, len(keys), rep.Events, rep.Duplicates, stats)
	if rep.Duplicates == 0 || stats["missing_in_target"] == 0 || stats["extra_in_target"] == 0 || stats["value_mismatch"] == 0 || stats["resolved"] == 0 {
		t.Errorf("the generator does not cover every case: duplicates %d, drifts %v", rep.Duplicates, stats)
	}
}

// propDumps generates histories and writes them as the two sides' kcat
// -J dumps, in a temporary directory.
func propDumps(t *testing.T, r *rand.Rand, histories int) (keys []*propKey, src, tgt string) {
	t.Helper()
	var pos [2]int64
	for id := range histories {
		keys = append(keys, propGenerate(r, id, &pos)...)
	}
	// Every topic's messages in time order (ties in the order written),
	// as each connector's topic holds them.
	var msgs []propMessage
	for _, k := range keys {
		msgs = append(msgs, propWrite(r, k)...)
	}
	sort.SliceStable(msgs, func(i, j int) bool { return msgs[i].time < msgs[j].time })
	dir := t.TempDir()
	files := map[bool]*bytes.Buffer{true: {}, false: {}}
	offsets := map[string]int64{}
	for _, m := range msgs {
		source := strings.HasPrefix(m.topic, "pg.")
		rec := map[string]any{"topic": m.topic, "partition": 0, "offset": offsets[m.topic], "ts": m.time + 10, "key": m.key, "payload": nil}
		if m.value != nil {
			rec["payload"] = *m.value
		}
		offsets[m.topic]++
		line, _ := json.Marshal(rec)
		files[source].Write(append(line, '\n'))
	}
	src, tgt = filepath.Join(dir, "source.jsonl"), filepath.Join(dir, "target.jsonl")
	for p, b := range map[string][]byte{src: files[true].Bytes(), tgt: files[false].Bytes()} {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return keys, src, tgt
}

// TestPolicyMatchesReferenceModel runs the generated histories through the
// pipeline under two sets of policies — orders newest_wins by total with
// paid owned by the target, items never_delete; then orders manual, items
// source_wins with paid owned — and compares every key's drift history,
// each drift's decision and its compensation command (present, and its
// action, and an owned column never in its row) with the reference model
// extended with ownership and the rules.
func TestPolicyMatchesReferenceModel(t *testing.T) {
	histories := 1500
	if testing.Short() {
		histories = 200
	}
	keys, src, tgt := propDumps(t, rand.New(rand.NewPCG(2026, 12)), histories)
	for _, set := range []struct {
		name     string
		policies map[string]string // table -> its policy block
		model    map[string]*propPolicy
	}{
		{"newest_wins and never_delete", map[string]string{
			"orders": "{rule: newest_wins, newest_by: total, columns: {paid: {owner: target}}}",
			"items":  "{rule: never_delete, version: v7}"},
			map[string]*propPolicy{"orders": {rule: "newest_wins", ownedPaid: true}, "items": {rule: "never_delete"}}},
		{"manual and source_wins", map[string]string{
			"orders": "{rule: manual}",
			"items":  "{columns: {paid: {owner: target}}}"},
			map[string]*propPolicy{"orders": {rule: "manual"}, "items": {rule: "source_wins", ownedPaid: true}}},
	} {
		t.Run(set.name, func(t *testing.T) {
			text := propConfig
			for table, pol := range set.policies {
				anchor := "    target: {topic: mysql.shop." + table + "}\n"
				if table == "orders" {
					anchor = "      rename: {order_total: total}\n"
				}
				if !strings.Contains(text, anchor) {
					t.Fatalf("propConfig has no %q", anchor)
				}
				text = strings.Replace(text, anchor, anchor+"    policy: "+pol+"\n", 1)
			}
			cfg, err := config.Parse([]byte(text), "policy.yaml")
			if err != nil {
				t.Fatal(err)
			}
			res, err := offline.Check(context.Background(), offline.Options{Config: cfg, Dumps: []string{src, tgt}, Logger: slog.New(slog.DiscardHandler), Warn: io.Discard})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][]propDrift{}
			for _, d := range res.History {
				kj, _ := json.Marshal(d.Key)
				var key map[string]any // the model's key order: by name
				_ = json.Unmarshal(kj, &key)
				kj, _ = json.Marshal(key)
				id := d.Table + " " + string(kj)
				if d.Status == schemas.Open {
					c := res.Compensation[d.ID]
					action := ""
					if c != nil {
						action = string(c.Action)
						for _, col := range c.Row {
							if col.Name == "paid" && set.model[d.Table].ownedPaid {
								t.Errorf("%s: compensation writes paid, which the target owns: %+v", id, c)
							}
						}
						if c.Policy != d.Policy || !strings.HasPrefix(c.Policy, d.Table+"@") {
							t.Errorf("%s: compensation policy %q, drift's %q", id, c.Policy, d.Policy)
						}
					}
					got[id] = append(got[id], propDrift{opened: d.OpenedAt.UnixMilli(), resolved: math.MaxInt64, kind: string(d.Kind),
						columns: strings.Join(d.Columns, ","), decision: string(d.Decision), action: action})
					continue
				}
				ds := got[id]
				if len(ds) == 0 || ds[len(ds)-1].resolved != math.MaxInt64 {
					t.Fatalf("%s: resolution of a drift not open", id)
				}
				ds[len(ds)-1].resolved = d.ResolvedAt.UnixMilli()
			}
			decisions := map[string]int{}
			for _, k := range keys {
				id := k.table + " " + k.keyJSON()
				want := propModelPolicy(k, set.model[k.table])
				for _, d := range want {
					decisions[k.table+" "+d.decision]++
				}
				if fmt.Sprint(got[id]) != fmt.Sprint(want) {
					t.Errorf("%s: pipeline %v, model %v\nsource %v\ntarget %v", id, got[id], want, k.src, k.tgt)
				}
				delete(got, id)
			}
			for id, ds := range got {
				t.Errorf("%s: drift for a key the model does not know: %v", id, ds)
			}
			t.Logf("%d keys; model decisions: %v", len(keys), decisions)
			for _, d := range res.History {
				if want := cfg.Tables[slices.IndexFunc(cfg.Tables, func(tb config.Table) bool { return tb.Name == d.Table })].Policy.Name(d.Table); d.Policy != want {
					t.Fatalf("drift %s names policy %q, want %q", d.ID, d.Policy, want)
				}
			}
		})
	}
}
