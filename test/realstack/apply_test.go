package realstack

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cdcrecon/cdcrecon/schemas"
)

// The repair loop on the real stack: rows tampered on the target behind
// replication, while the source keeps being written, are found by the
// worker, confirmed by re-reading them through the connectors, repaired
// by cdcrecon apply, and seen repaired through the target's own Debezium
// stream, the SQL comparison of the databases ending empty. Every kind of
// repair is among them:
//
//   - orders 10..12 tampered (value mismatch: update), 13..14 deleted
//     (missing: insert), 5000000..5000001 inserted (extra: delete), ids
//     the steady writes never reach;
//   - members, whose target soft-deletes (a deleted column the source has
//     not): 50 inserted on the target (extra: soft delete), 1 soft-deleted
//     there (missing: update that undeletes);
//   - kinds, a column of every type the pair's database and the
//     normaliser share: 1 tampered in every column, 2 deleted, 3 with its
//     source's NULLs overwritten — each written back must read back, by
//     Debezium, equal under the normalisation, or its drift stays open.
//
// Order 15 is tampered too, then updated on the source after its command
// was issued: replication overwrites the tampering, and apply must find
// the command superseded rather than write it.

// applyPair is one database pair as the repair scenario drives it.
type applyPair struct {
	name     string
	source   func(sql string)
	target   func(sql string)
	try      func(sql string) error                         // the source, for the steady writes
	rows     func(side int, table string) map[string]string // id → the row as compared
	prefixes [2]string
	schema   string
	quote    string
	group    string
	database string            // the apply.database section
	extra    map[string]string // per-table configuration lines
	env      []string
}

const applyWorkerConfig = `kafka: {brokers: [kafka:9092], group: %[1]s, partitions: 4}
state: {dir: /var/lib/cdcrecon}
http: {listen: ":9464"}
window: {size: 1m, grace: 5s}
verify: {delay: 2s, timeout: 60s, settle: 2s, max_keys: 100}
idle:
  heartbeats:
    source: [__debezium-heartbeat.%[2]s]
    target: [__debezium-heartbeat.%[3]s]
topics:
  changes: %[1]s.changes
  drift: %[1]s.drift
  compensation: %[1]s.compensation
  checksums: %[1]s.checksums
  dlq: %[1]s.dlq
  state: %[1]s.state
  audit: %[1]s.audit
apply:
  database: %[6]s
tables:
  - name: orders
    key: [id]
    source: {topic: %[2]s.%[4]s.orders, verify: {signal_topic: cdcrecon.signals.%[2]s, prefix: %[2]s, quote: %[5]s}}
    target: {topic: %[3]s.%[4]s.orders, verify: {signal_topic: cdcrecon.signals.%[3]s, prefix: %[3]s, quote: %[5]s}}
%[7]s  - name: members
    key: [id]
    source: {topic: %[2]s.%[4]s.members, verify: {signal_topic: cdcrecon.signals.%[2]s, prefix: %[2]s, quote: %[5]s}}
    target:
      topic: %[3]s.%[4]s.members
      soft_delete: {column: deleted}
      verify: {signal_topic: cdcrecon.signals.%[3]s, prefix: %[3]s, quote: %[5]s}
%[9]s  # Not re-read: a re-read of a row a side has not needs an anchor row of
  # that side in the same changes partition, which a four-row table
  # without writes often has not; its commands follow the openings.
  - name: kinds
    key: [id]
    source: {topic: %[2]s.%[4]s.kinds}
    target: {topic: %[3]s.%[4]s.kinds}
%[8]s`

// applyTables are the tables the scenario compares, and the rows it
// tampers with: "table id" → the command's action.
var applyTables = []string{"orders", "members", "kinds"}

var applyRepairs = map[string]schemas.Action{
	"orders 10": schemas.Upsert, "orders 11": schemas.Upsert, "orders 12": schemas.Upsert,
	"orders 13": schemas.Upsert, "orders 14": schemas.Upsert,
	"orders 5000000": schemas.Delete, "orders 5000001": schemas.Delete,
	"members 50": schemas.SoftDelete, "members 1": schemas.Upsert,
	"kinds 1": schemas.Upsert, "kinds 2": schemas.Upsert, "kinds 3": schemas.Upsert,
}

// sqlDiff compares the pair's tables by id: "table id" → both rows.
func (p *applyPair) sqlDiff() map[string]string {
	out := map[string]string{}
	for _, table := range applyTables {
		src, tgt := p.rows(0, table), p.rows(1, table)
		for id := range maps.Keys(src) {
			if !sameRow(src[id], tgt[id]) {
				out[table+" "+id] = src[id] + " ≠ " + tgt[id]
			}
		}
		for id := range maps.Keys(tgt) {
			if _, ok := src[id]; !ok {
				out[table+" "+id] = "absent ≠ " + tgt[id]
			}
		}
	}
	return out
}

// sameRow compares two rows as read: JSON documents by value (a json
// column keeps its text as written, 2.50 and all; apply writes the
// canonical document, which is the same value), else by text.
func sameRow(a, b string) bool {
	if a == b {
		return true
	}
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// snapshot is the target's tables as text, to show a dry run wrote
// nothing.
func (p *applyPair) snapshot() string {
	var b strings.Builder
	for _, table := range applyTables {
		rows := p.rows(1, table)
		for _, id := range slices.Sorted(maps.Keys(rows)) {
			fmt.Fprintf(&b, "%s %s %s\n", table, id, rows[id])
		}
	}
	return b.String()
}

func runApply(t *testing.T, s *Stack, p applyPair) {
	t.Helper()
	for id := 10; id < 16; id++ {
		p.source(fmt.Sprintf("INSERT INTO orders (id, customer_id, total, status) VALUES (%d, 1, %d.50, 'new')", id, id))
	}
	settle := func(want int) map[string]string {
		t.Helper()
		var diff map[string]string
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
			if diff = p.sqlDiff(); len(diff) == want {
				break
			}
		}
		return diff
	}
	if diff := settle(0); len(diff) != 0 {
		t.Fatalf("the pair differs before the scenario: %v", diff)
	}
	cfg := fmt.Sprintf(applyWorkerConfig, p.group, p.prefixes[0], p.prefixes[1], p.schema, p.quote, p.database, p.extra["orders"], p.extra["kinds"], p.extra["members"])
	w := s.StartWorker(t, s.write(p.name+"-apply.yaml", cfg))
	w.AwaitDrift(t, map[string]string{}, 2*time.Minute)
	// A re-read of a row a side has not names a row that side has, which
	// the connector's read shows it answered: members 2, written now, is
	// such an anchor for both sides.
	p.source("UPDATE members SET name = 'Grace H' WHERE id = 2")
	if diff := settle(0); len(diff) != 0 {
		t.Fatalf("the pair differs after the anchors' updates: %v", diff)
	}

	// Tamper while the source is written. A drift opened before (the
	// connectors' snapshots do not arrive together) is not the scenario's.
	tampered := time.Now().Add(-time.Second)
	stop := writeOrders(t, p.try)
	p.target("UPDATE orders SET total = 0 WHERE id BETWEEN 10 AND 12 OR id = 15")
	p.target("DELETE FROM orders WHERE id IN (13, 14)")
	p.target("INSERT INTO orders (id, customer_id, total, status) VALUES (5000000, 1, 1.00, 'ghost'), (5000001, 2, 2.00, 'ghost')")
	p.target("INSERT INTO members (id, name) VALUES (50, 'intruder')")
	p.target("UPDATE members SET deleted = TRUE WHERE id = 1")
	p.target(kindsTamper[p.name])
	p.target("DELETE FROM kinds WHERE id = 2")
	p.target(kindsNullsTamper[p.name])

	// Every tampered row gets its confirmed command.
	want := maps.Clone(applyRepairs)
	want["orders 15"] = schemas.Upsert
	var comps map[string]*schemas.Compensation
	for deadline := time.Now().Add(4 * time.Minute); ; time.Sleep(2 * time.Second) {
		comps = map[string]*schemas.Compensation{}
		for _, c := range w.Compensations(t) {
			if c.DriftOpenedAt.After(tampered) {
				comps[c.Table+" "+keyID(c.Key)] = c
			}
		}
		missing := 0
		for row := range want {
			if comps[row] == nil {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("commands after 4 minutes: %v; want one for each of %v", slices.Sorted(maps.Keys(comps)), slices.Sorted(maps.Keys(want)))
		}
	}
	writes := stop()
	for row, action := range want {
		verified := schemas.Confirmed
		if strings.HasPrefix(row, "kinds ") {
			verified = "" // not re-read
		}
		if c := comps[row]; c.Action != action || c.Verification != verified {
			t.Errorf("%s: command %s %s, want %s confirmed", row, c.Action, c.Verification, action)
		}
	}
	for row := range comps {
		if _, ok := want[row]; !ok {
			t.Errorf("%s: a command for a row nobody tampered with (%d writes went on)", row, writes)
		}
	}
	// Order 15 changes on the source after its command: replication
	// overwrites the tampering.
	p.source("UPDATE orders SET total = 15.75, status = 'changed' WHERE id = 15")
	truth := settle(len(applyRepairs))
	if !maps.Equal(keysOf(truth), keysOf(applyRepairs)) {
		t.Fatalf("the SQL comparison finds %v; the scenario leaves %v tampered", slices.Sorted(maps.Keys(truth)), slices.Sorted(maps.Keys(applyRepairs)))
	}

	// The dry run lists exactly the tampered rows and writes nothing.
	before := p.snapshot()
	dry := apply(t, p, w.Config, "--dry-run")
	t.Logf("apply --dry-run:\n%s", dry)
	wouldApply := map[string]bool{}
	superseded := map[string]bool{}
	for _, line := range strings.Split(dry, "\n") {
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "would apply "):
			wouldApply[f[2]+" "+idOf(f[3])] = true
		case strings.HasPrefix(line, "superseded "):
			superseded[f[1]+" "+idOf(f[2])] = true
		}
	}
	if !maps.Equal(wouldApply, keysOf(applyRepairs)) {
		t.Errorf("dry run would apply %v, want %v\n%s", slices.Sorted(maps.Keys(wouldApply)), slices.Sorted(maps.Keys(applyRepairs)), dry)
	}
	if !superseded["orders 15"] {
		t.Errorf("dry run: order 15 not superseded\n%s", dry)
	}
	if after := p.snapshot(); after != before {
		t.Errorf("the dry run changed the target:\nbefore\n%s\nafter\n%s", before, after)
	}

	// Apply; the target's stream then resolves every drift.
	out := apply(t, p, w.Config, "--exit")
	t.Logf("apply: %s", lastLine([]byte(out)))
	if diff := settle(0); len(diff) != 0 {
		t.Errorf("the SQL comparison after apply: %v\n%s", diff, out)
	}
	if open := w.AwaitDrift(t, map[string]string{}, 3*time.Minute); len(open) != 0 {
		t.Errorf("drifts still open after apply: %v", open)
	}
	audits := readAudits(t, s.Kafka, p.group+".audit")
	applied := map[string]string{}
	ours := map[string]bool{}
	for _, c := range comps {
		ours[c.ID] = true
	}
	audits = slices.DeleteFunc(audits, func(a *schemas.Audit) bool { return !ours[a.CompensationID] })
	for _, a := range audits {
		row := a.Table + " " + keyID(a.Key)
		switch {
		case a.Outcome == schemas.Applied:
			applied[row] = a.CompensationID
		case row == "orders 15" && a.Outcome == schemas.Superseded:
		default:
			t.Errorf("%s: %s: %s", row, a.Outcome, a.Reason)
		}
	}
	if !maps.Equal(keysOf(applied), keysOf(applyRepairs)) || len(audits) != len(applyRepairs)+1 {
		t.Errorf("audit: %d records, applied %v; want %d applied and order 15 superseded", len(audits), slices.Sorted(maps.Keys(applied)), len(applyRepairs))
	}
	// Each repaired drift's resolution names its command.
	resolvedBy := map[string]string{}
	w.read(t, w.cfg.Topics.Drift, func(r schemas.Record) {
		if d, ok := r.(*schemas.Drift); ok && d.Status == schemas.Resolved {
			resolvedBy[d.Table+" "+keyID(d.Key)] = d.CompensationID
		}
	})
	for row, id := range applied {
		if resolvedBy[row] != id {
			t.Errorf("%s: resolved naming compensation %q, want %s", row, resolvedBy[row], id)
		}
	}
}

func apply(t *testing.T, p applyPair, cfg string, args ...string) string {
	t.Helper()
	cmd := exec.Command(Binary(t), append([]string{"apply", "--config", cfg}, args...)...)
	cmd.Env = append(os.Environ(), p.env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("apply %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func keysOf[V any](m map[string]V) map[string]bool {
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}

// keyID is a single-column key's value: "12".
func keyID(key schemas.Columns) string {
	if len(key) != 1 {
		return fmt.Sprint(key)
	}
	return key[0].Value
}

// idOf reads the id of a printed key, {"id":12}.
func idOf(key string) string {
	return strings.TrimSuffix(strings.TrimPrefix(key, `{"id":`), "}")
}

// writeOrders inserts and updates orders from id 100 on, every 50 ms,
// until stopped; it returns how many writes ran. It deletes nothing: a
// re-read of a row a side has not asks for an anchor row too (the side's
// latest), which must still be there when the connector reads it.
func writeOrders(t *testing.T, run func(sql string) error) (stop func() int) {
	return writeEvery(t, run, func(i int) string {
		if i%2 == 1 {
			return fmt.Sprintf("UPDATE orders SET status = 'paid', total = total + 1 WHERE id = %d", i/2+100)
		}
		return fmt.Sprintf("INSERT INTO orders (id, customer_id, total, status) VALUES (%d, 1, %d.25, 'new')", i/2+100, i)
	})
}
