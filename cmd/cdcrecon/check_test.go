package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckExamplesAreConsistent runs the quick start's check: the
// examples' source and target agree, so nothing is printed and the exit
// status is 0.
func TestCheckExamplesAreConsistent(t *testing.T) {
	var out, errOut bytes.Buffer
	report := filepath.Join(t.TempDir(), "report.json")
	code := run(context.Background(), []string{"check", "--config", "../../examples/orders.yaml", "--report", report,
		"../../examples/dumps/source.jsonl", "../../examples/dumps/target.jsonl"}, nil, &out, &errOut)
	if code != exitOK || out.Len() != 0 {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
	var rep map[string]any
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]float64{"events": 6, "duplicates": 0, "invalid": 0, "open_drift": 0, "resolved_drift": 0} {
		if rep[k] != want {
			t.Errorf("report %s = %v, want %v", k, rep[k], want)
		}
	}
}

// TestCheckFindsDriftAndSetsAsidePoison tampers with the example target
// (order 2's total), re-sends one source event (a duplicate) and adds a
// message that is not JSON.
func TestCheckFindsDriftAndSetsAsidePoison(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile("../../examples/dumps/source.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	tgt, err := os.ReadFile("../../examples/dumps/target.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(src), "\n")
	src = []byte(lines[0] + lines[1] + lines[2] + strings.Replace(lines[1], `"offset":1`, `"offset":3`, 1) +
		`{"topic":"pg.public.orders","partition":0,"offset":40,"ts":1763700009000,"key":"{\"id\": 3}","payload":"not json"}` + "\n")
	tgt = bytes.Replace(tgt, []byte(`5.0000`), []byte(`5.5000`), 1)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	s, g := write("source.jsonl", src), write("target.jsonl", tgt)
	dlq, report := filepath.Join(dir, "dlq.jsonl"), filepath.Join(dir, "report.json")
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"check", "--config", "../../examples/orders.yaml", "--history",
		"--dlq", dlq, "--report", report, s, g}, nil, &out, &errOut)
	if code != exitDrift {
		t.Fatalf("exit %d, want %d; stderr %s", code, exitDrift, errOut.String())
	}
	var drifts []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var d map[string]any
		if err := json.Unmarshal([]byte(l), &d); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		drifts = append(drifts, d)
	}
	if len(drifts) != 1 {
		t.Fatalf("%d drift records, want 1:\n%s", len(drifts), out.String())
	}
	d := drifts[0]
	// Order 2: the source wrote 5.00 at 1763700001000, the target 5.5000
	// at 1763700001300.
	want := map[string]any{"table": "orders", "kind": "value_mismatch", "status": "open",
		"opened_at": "2025-11-21T04:40:01.3Z", "resolved_at": nil}
	for k, v := range want {
		if d[k] != v {
			t.Errorf("%s = %v, want %v", k, d[k], v)
		}
	}
	if k, _ := json.Marshal(d["key"]); string(k) != `{"id":2}` {
		t.Errorf("key %s", k)
	}
	if c, _ := json.Marshal(d["columns"]); string(c) != `["total"]` {
		t.Errorf("columns %s", c)
	}
	if !strings.Contains(errOut.String(), "invalid message pg.public.orders/0/40: malformed value") {
		t.Errorf("stderr does not name the poison message: %s", errOut.String())
	}
	b, _ := os.ReadFile(dlq)
	if !strings.Contains(string(b), `"offset":40,`) || !strings.Contains(string(b), `"payload":"not json"`) || !strings.Contains(string(b), `"cdcrecon.reason"`) {
		t.Errorf("dlq file: %s", b)
	}
	var rep map[string]any
	b, _ = os.ReadFile(report)
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]float64{"events": 8, "duplicates": 1, "invalid": 1, "open_drift": 1} {
		if rep[k] != v {
			t.Errorf("report %s = %v, want %v", k, rep[k], v)
		}
	}
}

func TestCheckUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"check", "x.jsonl"}, "--config is required"},
		{[]string{"check", "--config", "/no/such.yaml", "x.jsonl"}, "/no/such.yaml"},
		{[]string{"check", "--config", "../../examples/orders.yaml"}, "requires at least 1 arg"},
		{[]string{"check", "--config", "../../examples/orders.yaml", "/no/such.jsonl"}, "opening dump"},
	} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), c.args, nil, &out, &errOut); code != exitFailure {
			t.Errorf("%v: exit %d", c.args, code)
		}
		if !strings.Contains(errOut.String(), c.want) {
			t.Errorf("%v: stderr %q, want %q", c.args, errOut.String(), c.want)
		}
	}
}

// TestCheckSameHistoryWhateverThePartitions: one changes partition or
// eight, the --history output is byte for byte the same.
func TestCheckSameHistoryWhateverThePartitions(t *testing.T) {
	dir := t.TempDir()
	base, err := os.ReadFile("../../examples/orders.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tgt, err := os.ReadFile("../../examples/dumps/target.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	g := filepath.Join(dir, "target.jsonl")
	// Target: order 2 wrong, order 1's last update lost.
	lines := strings.SplitAfter(strings.Replace(string(tgt), "5.0000", "5.5000", 1), "\n")
	if err := os.WriteFile(g, []byte(lines[0]+lines[1]), 0o644); err != nil {
		t.Fatal(err)
	}
	var outs []string
	for _, n := range []string{"1", "8", "3"} {
		cfg := filepath.Join(dir, "orders-"+n+".yaml")
		if err := os.WriteFile(cfg, append([]byte("kafka: {partitions: "+n+"}\n"), base...), 0o644); err != nil {
			t.Fatal(err)
		}
		var out, errOut bytes.Buffer
		code := run(context.Background(), []string{"check", "--config", cfg, "--history", "../../examples/dumps/source.jsonl", g}, nil, &out, &errOut)
		if code != exitDrift {
			t.Fatalf("%s partitions: exit %d, stderr %s", n, code, errOut.String())
		}
		outs = append(outs, out.String())
	}
	if strings.Count(outs[0], "\n") != 2 {
		t.Errorf("want 2 drift records (order 2's total, order 1's lost update), got:\n%s", outs[0])
	}
	for i := 1; i < len(outs); i++ {
		if outs[i] != outs[0] {
			t.Errorf("history differs with another partition count:\n%s\nvs\n%s", outs[0], outs[i])
		}
	}
}

// TestCheckWorkedExample runs examples/lag, the worked example of
// processors/consistency/SEMANTICS.md: the target applies an update 40s
// late with a grace of 30s, so a drift opens at 40s and resolves at 50s.
func TestCheckWorkedExample(t *testing.T) {
	var out, errOut bytes.Buffer
	args := []string{"check", "--config", "../../examples/lag/lag.yaml", "../../examples/lag/source.jsonl", "../../examples/lag/target.jsonl"}
	if code := run(context.Background(), args, nil, &out, &errOut); code != exitOK || out.Len() != 0 {
		t.Fatalf("without --history: exit %d, stdout %q, stderr %s", code, out.String(), errOut.String())
	}
	args = append(args, "--history")
	if code := run(context.Background(), args, nil, &out, &errOut); code != exitOK {
		t.Fatalf("exit %d, stderr %s", code, errOut.String())
	}
	type rec struct {
		ID, Kind, Status, OpenedAt string
		ResolvedAt                 *string
		Columns                    []string
	}
	var got []rec
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var r struct {
			ID         string   `json:"id"`
			Kind       string   `json:"kind"`
			Status     string   `json:"status"`
			OpenedAt   string   `json:"opened_at"`
			ResolvedAt *string  `json:"resolved_at"`
			Columns    []string `json:"columns"`
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		got = append(got, rec{r.ID, r.Kind, r.Status, r.OpenedAt, r.ResolvedAt, r.Columns})
	}
	if len(got) != 2 {
		t.Fatalf("%d records, want the opening and the resolution:\n%s", len(got), out.String())
	}
	open, res := got[0], got[1]
	if open.Status != "open" || open.Kind != "value_mismatch" || open.OpenedAt != "2025-11-21T04:40:40Z" || open.ResolvedAt != nil ||
		len(open.Columns) != 1 || open.Columns[0] != "status" {
		t.Errorf("opening: %+v", open)
	}
	if res.Status != "resolved" || res.ID != open.ID || res.ResolvedAt == nil || *res.ResolvedAt != "2025-11-21T04:40:50Z" {
		t.Errorf("resolution: %+v", res)
	}
}

// TestCheckPolicyPrintsWhatWouldChange tampers with two rows of the
// example target — order 1's paid flag, order 2's total — and decides the
// dumps under the configuration's policy (source_wins: both compensated)
// and under examples/manual-policy.yaml (the target owns paid; a person
// decides the rest): order 1 has no drift there, order 2 no compensation.
// examples/policy/target.jsonl is the example target with those two rows
// changed; the test checks that it is exactly that.
func TestCheckPolicyPrintsWhatWouldChange(t *testing.T) {
	orig, err := os.ReadFile("../../examples/dumps/target.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	g := "../../examples/policy/target.jsonl"
	tgt, err := os.ReadFile(g)
	if err != nil {
		t.Fatal(err)
	}
	orig = bytes.Replace(orig, []byte(`5.0000`), []byte(`5.5000`), 1)
	orig = bytes.Replace(orig, []byte(`\"paid\": 1}, \"source\"`), []byte(`\"paid\": 0}, \"source\"`), 1)
	if !bytes.Equal(orig, tgt) {
		t.Fatalf("%s is not the example target with order 1's paid and order 2's total changed", g)
	}
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"check", "--config", "../../examples/orders.yaml", "--policy", "../../examples/policy/manual.yaml",
		"../../examples/dumps/source.jsonl", g}, nil, &out, &errOut)
	if code != exitDrift {
		t.Fatalf("exit %d, want %d (compensation would change); stderr %s", code, exitDrift, errOut.String())
	}
	type decision struct {
		Policy       string          `json:"policy"`
		Decision     string          `json:"decision"`
		Compensation json.RawMessage `json:"compensation"`
	}
	got := map[string][2]*decision{}
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var d struct {
			Key     map[string]any `json:"key"`
			Current *decision      `json:"current"`
			Other   *decision      `json:"other"`
		}
		if err := json.Unmarshal([]byte(l), &d); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		got[fmt.Sprint(d.Key["id"])] = [2]*decision{d.Current, d.Other}
	}
	if len(got) != 2 {
		t.Fatalf("%d differences, want orders 1 and 2:\n%s", len(got), out.String())
	}
	one, two := got["1"], got["2"]
	if one[0] == nil || one[0].Decision != "compensate" || string(one[0].Compensation) == "null" || one[1] != nil {
		t.Errorf("order 1 (paid differs): current %+v, other %+v; want compensated, then no drift (the target owns paid)", one[0], one[1])
	}
	if two[0] == nil || two[0].Decision != "compensate" || two[1] == nil || two[1].Decision != "manual" ||
		string(two[1].Compensation) != "null" || two[1].Policy != "orders@v2-manual" || !strings.HasPrefix(two[0].Policy, "orders@") {
		t.Errorf("order 2 (total differs): current %+v, other %+v; want compensated, then manual under orders@v2-manual", two[0], two[1])
	}
	if !strings.Contains(errOut.String(), "2 drifts decided differently under [orders@v2-manual]: 2 compensation commands fewer, 0 more, 0 changed") {
		t.Errorf("stderr: %s", errOut.String())
	}
}
