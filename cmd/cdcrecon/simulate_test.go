package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cdcrecon/cdcrecon/cmd/cdcrecon/internal/harness"
	"github.com/cdcrecon/cdcrecon/pipeline/broker"
	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
	"github.com/cdcrecon/cdcrecon/pipeline/offline"
)

// driftSet reads JSON lines of drift (check's output or simulate's truth)
// as "table key" strings: the rows drifted at the end. Kind and columns
// are not compared: the truth states what differs in the final rows, a
// drift record what differed when it opened, which for a drift opened
// before the last change of its row can be other columns.
func driftSet(t testing.TB, b []byte) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		r, err := harness.RowOf([]byte(line))
		if err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}

// TestCheckFindsSimulatedTruth: simulate writes a workload with every
// fault it injects; check, run on it, reports exactly the drift of the
// ground truth, which the simulator derives from each key's final rows
// without any of the pipeline's code. Duplicates and poison are counted as
// the simulator wrote them.
func TestCheckFindsSimulatedTruth(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"simulate", "--out", dir, "--events", "6000", "--keys", "1200", "--partitions", "2",
		"--drop", "0.01", "--corrupt", "0.01", "--delay", "0.05", "--duplicate", "0.02", "--poison", "4", "--seed", "7"}, nil, &out, &errOut)
	if code != exitOK {
		t.Fatalf("simulate: exit %d: %s", code, errOut.String())
	}
	var dups, poison int64
	if m := regexp.MustCompile(`(\d+) duplicates, (\d+) poison`).FindStringSubmatch(out.String()); m != nil {
		dups, _ = strconv.ParseInt(m[1], 10, 64)
		poison, _ = strconv.ParseInt(m[2], 10, 64)
	}
	if dups == 0 || poison < 4 {
		t.Fatalf("simulate summary: %s", out.String())
	}
	truth, err := os.ReadFile(filepath.Join(dir, "truth.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	want := driftSet(t, truth)
	if len(want) < 20 {
		t.Fatalf("only %d drifts in the truth; the faults should make more", len(want))
	}

	out.Reset()
	errOut.Reset()
	report := filepath.Join(dir, "report.json")
	code = run(context.Background(), []string{"check", "--config", filepath.Join(dir, "config.yaml"), "--report", report,
		filepath.Join(dir, "source.jsonl"), filepath.Join(dir, "target.jsonl")}, nil, &out, &errOut)
	if code != exitDrift {
		t.Fatalf("check: exit %d, want %d: %s", code, exitDrift, errOut.String())
	}
	got := driftSet(t, out.Bytes())
	if !slices.Equal(got, want) {
		t.Errorf("check found %d drifts, the truth has %d", len(got), len(want))
		reportDiff(t, got, want, "missed", "false")
	}
	var rep offline.Report
	b, _ := os.ReadFile(report)
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Invalid != poison || int64(strings.Count(errOut.String(), "invalid message")) != poison {
		t.Errorf("invalid = %d, stderr %q; want the %d poison messages", rep.Invalid, errOut.String(), poison)
	}
	if rep.Duplicates != dups {
		t.Errorf("duplicates = %d, the simulator re-sent %d", rep.Duplicates, dups)
	}
	if rep.ResolvedDrift == 0 {
		t.Error("no resolved drift: the delays beyond grace and the faults later repaired should open and resolve some")
	}
}

// TestSimulateIsDeterministic: the same flags give the same bytes; another
// seed gives others.
func TestSimulateIsDeterministic(t *testing.T) {
	gen := func(seed string) []byte {
		dir := t.TempDir()
		var out, errOut bytes.Buffer
		if code := run(context.Background(), []string{"simulate", "--out", dir, "--events", "500", "--keys", "100", "--duplicate", "0.05", "--seed", seed}, nil, &out, &errOut); code != exitOK {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
		var all []byte
		for _, f := range []string{"config.yaml", "source.jsonl", "target.jsonl", "truth.jsonl"} {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, b...)
		}
		return all
	}
	a, b, c := gen("3"), gen("3"), gen("4")
	if !bytes.Equal(a, b) {
		t.Error("the same seed gave different output")
	}
	if bytes.Equal(a, c) {
		t.Error("another seed gave the same output")
	}
}

// TestCheckHistoryIsDeterministic: over a simulated workload whose input
// topics have three partitions, --history is byte for byte the same with
// one changes partition or eight, and with the dumps' lines regrouped by
// partition in reverse (so the broker receives, and the ingest stage
// consumes, the input partitions in another interleaving).
func TestCheckHistoryIsDeterministic(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"simulate", "--out", dir, "--events", "20000", "--keys", "3000", "--partitions", "3",
		"--drop", "0.01", "--corrupt", "0.01", "--delay", "0.05", "--duplicate", "0.02", "--poison", "3"}, nil, &out, &errOut); code != exitOK {
		t.Fatalf("simulate: exit %d: %s", code, errOut.String())
	}
	// The regrouped dumps: partition 2's lines, then 1's, then 0's.
	regroup := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		var parts [3][]string
		for _, line := range strings.SplitAfter(string(b), "\n") {
			if line == "" {
				continue
			}
			var rec struct{ Partition int }
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatal(err)
			}
			parts[rec.Partition] = append(parts[rec.Partition], line)
		}
		p := filepath.Join(dir, "regrouped-"+name)
		if err := os.WriteFile(p, []byte(strings.Join(parts[2], "")+strings.Join(parts[1], "")+strings.Join(parts[0], "")), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	plain := []string{filepath.Join(dir, "source.jsonl"), filepath.Join(dir, "target.jsonl")}
	regrouped := []string{regroup("source.jsonl"), regroup("target.jsonl")}
	base, err := os.ReadFile(filepath.Join(dir, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	history := func(partitions string, dumps []string) string {
		cfg := filepath.Join(dir, "config-"+partitions+".yaml")
		if err := os.WriteFile(cfg, append([]byte("kafka: {partitions: "+partitions+"}\n"), base...), 0o644); err != nil {
			t.Fatal(err)
		}
		var out, errOut bytes.Buffer
		if code := run(context.Background(), append([]string{"check", "--config", cfg, "--history"}, dumps...), nil, &out, &errOut); code != exitDrift {
			t.Fatalf("%s partitions: exit %d: %s", partitions, code, errOut.String())
		}
		return out.String()
	}
	want := history("1", plain)
	if n := strings.Count(want, "\n"); n < 100 {
		t.Fatalf("only %d drift records; the faults should make more", n)
	}
	for _, c := range []struct {
		partitions string
		dumps      []string
	}{{"8", plain}, {"1", regrouped}, {"8", regrouped}, {"3", regrouped}} {
		if got := history(c.partitions, c.dumps); got != want {
			t.Errorf("%s partitions, dumps %v: history differs (%d lines against %d)", c.partitions, c.dumps, strings.Count(got, "\n"), strings.Count(want, "\n"))
		}
	}
}

// TestPoisonInEveryBatchPosition: malformed messages first, in the middle
// and last of a partition's batch each reach the dead-letter file with
// their dump offset and reason, and every other message of the partition
// is reconciled: the result equals that of the same dumps without them.
func TestPoisonInEveryBatchPosition(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"simulate", "--out", dir, "--events", "1500", "--keys", "300", "--tables", "1",
		"--drop", "0.02", "--corrupt", "0.02"}, nil, &out, &errOut); code != exitOK {
		t.Fatalf("simulate: exit %d: %s", code, errOut.String())
	}
	src := filepath.Join(dir, "source.jsonl")
	clean, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(clean), "\n"), "\n")
	poison := func(offset int) string {
		return fmt.Sprintf(`{"topic":"pg.public.orders","partition":0,"offset":%d,"ts":1795219200000,"key":"{\"id\":1}","payload":"{\"before\":null,\"after\":"}`, offset)
	}
	// The dump's own offsets: the poison takes offsets past the clean ones'
	// end, so that check names them unambiguously.
	n := len(lines)
	var poisoned []string
	poisoned = append(poisoned, poison(n))
	poisoned = append(poisoned, lines[:n/2]...)
	poisoned = append(poisoned, poison(n+1))
	poisoned = append(poisoned, lines[n/2:]...)
	poisoned = append(poisoned, poison(n+2))
	bad := filepath.Join(dir, "poisoned.jsonl")
	if err := os.WriteFile(bad, []byte(strings.Join(poisoned, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	history := func(source string, extra ...string) (string, string) {
		var out, errOut bytes.Buffer
		args := append([]string{"check", "--config", filepath.Join(dir, "config.yaml"), "--history"}, extra...)
		code := run(context.Background(), append(args, source, filepath.Join(dir, "target.jsonl")), nil, &out, &errOut)
		if code != exitDrift {
			t.Fatalf("check: exit %d: %s", code, errOut.String())
		}
		return out.String(), errOut.String()
	}
	want, _ := history(src)
	dlq := filepath.Join(dir, "dlq.jsonl")
	got, stderr := history(bad, "--dlq", dlq)
	if got != want {
		t.Errorf("the poison changed what was decided about the other messages")
	}
	d, _ := os.ReadFile(dlq)
	for _, off := range []int{n, n + 1, n + 2} {
		if !strings.Contains(string(d), fmt.Sprintf(`"offset":%d,`, off)) || !strings.Contains(stderr, fmt.Sprintf("pg.public.orders/0/%d: ", off)) {
			t.Errorf("poison at dump offset %d: not in the dead letters or not named on stderr:\n%s\n%s", off, d, stderr)
		}
	}
	if strings.Count(string(d), "\n") != 3 || strings.Count(string(d), "cdcrecon.reason") != 3 {
		t.Errorf("want 3 dead letters, each with its reason:\n%s", d)
	}

	// The worker, on the same topics in a broker: the poisoned partition
	// arrives whole, so the poison is first, in the middle and last of
	// one batch. The broker numbers the records from 0.
	decided := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(want), "\n") {
		decided[recordID(line)] = true
	}
	b, err := broker.Start(broker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cc := kafka.ClientConfig{Brokers: []string{b.Addr()}}
	loadDumps(t, cc, bad, filepath.Join(dir, "target.jsonl"))
	stop := startWorker(t, dir, b.Addr())
	defer stop()
	waitForDrift(t, cc, decided)
	offsets := map[string]string{}
	for _, r := range readTopic(t, cc, "cdcrecon.dlq", 3) {
		h := map[string]string{}
		for _, x := range r.Headers {
			h[x.Key] = string(x.Value)
		}
		offsets[h["cdcrecon.origin.offset"]] = h["cdcrecon.reason"]
	}
	for _, off := range []int{0, n/2 + 1, n + 2} {
		if offsets[strconv.Itoa(off)] == "" {
			t.Errorf("worker: no dead letter with a reason for offset %d: %v", off, offsets)
		}
	}
}

// reportDiff names each of want that got lacks ("missed: ...") and each
// of got that want lacks ("false: ...").
func reportDiff(t testing.TB, got, want []string, missed, extra string) {
	t.Helper()
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("%s: %s", missed, w)
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			t.Errorf("%s: %s", extra, g)
		}
	}
}
