package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/cmd/cdcrecon/internal/harness"
	"github.com/cdcrecon/cdcrecon/pipeline/broker"
	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
	"github.com/cdcrecon/cdcrecon/pipeline/load"
	"github.com/cdcrecon/cdcrecon/pipeline/offline"
	"github.com/cdcrecon/cdcrecon/pipeline/registry"
)

// TestRunStreamsWhatCheckDecides: the worker, over a simulated workload in
// a broker, emits exactly the drift records check decides for the same
// dumps, under the same ids (once its inputs are read to their end, the
// idle clock lets it decide everything); it stops within the shutdown
// timeout when its context ends (SIGINT/SIGTERM in the binary); started
// again it publishes nothing twice; a replay from earliest publishes every
// record again, identical.
func TestRunStreamsWhatCheckDecides(t *testing.T) {
	dir, dumps, _ := simulated(t, "--events", "6000", "--keys", "800", "--rate", "20",
		"--drop", "0.01", "--corrupt", "0.01", "--delay", "0.05", "--duplicate", "0.02")
	decided := checkDecides(t, dir, dumps)

	b, err := broker.Start(broker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cc := kafka.ClientConfig{Brokers: []string{b.Addr()}}
	loadDumps(t, cc, dumps...)
	base, _ := os.ReadFile(filepath.Join(dir, "config.yaml"))
	cfg := filepath.Join(dir, "run.yaml")
	httpAddr := freeAddr(t)
	head := fmt.Sprintf("kafka: {brokers: [%s], group: run-test, partitions: 3}\nstate: {dir: %s}\nhttp: {listen: %s}\n", b.Addr(), filepath.Join(dir, "state"), httpAddr)
	if err := os.WriteFile(cfg, append([]byte(head), base...), 0o644); err != nil {
		t.Fatal(err)
	}

	// emitted waits until the drift topic stops growing, and returns its
	// records as "id status" and in full.
	var full []string
	emitted := func() []string {
		var last []string
		for stable := 0; stable < 4; {
			time.Sleep(500 * time.Millisecond)
			ds, err := offline.ReadDrift(context.Background(), cc, "cdcrecon.drift", registry.NewSerde(nil))
			if err != nil {
				t.Fatal(err)
			}
			var now []string
			full = full[:0]
			for _, d := range ds {
				now = append(now, d.ID+" "+string(d.Status))
				b, _ := json.Marshal(d)
				full = append(full, string(b))
			}
			if len(now) > 0 && len(now) == len(last) {
				stable++
			} else {
				stable = 0
			}
			last = now
		}
		return last
	}
	start := func(args ...string) (stop func() time.Duration) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int, 1)
		var stderr bytes.Buffer
		args = append([]string{"--config", cfg}, args...)
		go func() { done <- run(ctx, args, nil, &bytes.Buffer{}, &stderr) }()
		return func() time.Duration {
			t0 := time.Now()
			cancel()
			select {
			case code := <-done:
				if code != exitOK {
					t.Errorf("run: exit %d: %s", code, stderr.String())
				}
			case <-time.After(2 * shutdownTimeout):
				t.Fatal("run did not stop")
			}
			return time.Since(t0)
		}
	}

	stop := start("run")
	first := emitted()
	firstFull := append([]string(nil), full...)

	// The operations endpoints, while it runs: every message read counted,
	// every drift opened counted.
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := httpGet(t, "http://"+httpAddr+path); code != 200 {
			t.Errorf("%s: %d %s", path, code, body)
		}
	}
	_, metrics := httpGet(t, "http://"+httpAddr+"/metrics")
	m := harness.ParseMetrics(strings.NewReader(metrics))
	lines := 0
	for _, d := range dumps {
		b, _ := os.ReadFile(d)
		lines += strings.Count(string(b), "\n")
	}
	opened := 0
	for _, r := range first {
		if strings.HasSuffix(r, " open") {
			opened++
		}
	}
	if got := m.Sum("cdcrecon_events_total"); got != float64(lines) {
		t.Errorf("cdcrecon_events_total sums to %v, the dumps hold %d messages", got, lines)
	}
	if got := m.Sum("cdcrecon_drift_opened_total"); got != float64(opened) {
		t.Errorf("cdcrecon_drift_opened_total sums to %v, %d drifts were opened", got, opened)
	}
	if _, ok := m[`cdcrecon_events_total{side="target",table="customers"}`]; !ok {
		t.Errorf("no per-table, per-side event counts in:\n%.2000s", metrics)
	}
	if m.Series("cdcrecon_consumer_lag_records") == 0 || m.Sum("cdcrecon_consumer_lag_records") != 0 {
		t.Errorf("want a consumer lag of 0 for every input partition read to its end, got:\n%s", grepLines(metrics, "cdcrecon_consumer_lag_records"))
	}
	if m.Sum("cdcrecon_state_bytes") <= 0 {
		t.Errorf("no state size in:\n%s", grepLines(metrics, "cdcrecon_state"))
	}

	if took := stop(); took > shutdownTimeout {
		t.Errorf("stopping took %s, more than %s", took, shutdownTimeout)
	}
	seen := map[string]bool{}
	for _, r := range first {
		if !decided[r] {
			t.Errorf("run emitted %s, which check does not decide", r)
		}
		seen[r] = true
	}
	// Once every input is read to its end, the idle clock moves both
	// sides past the last event: everything is decided.
	for r := range decided {
		if !seen[r] {
			t.Errorf("run did not emit %s", r)
		}
	}
	if len(first) != len(seen) {
		t.Errorf("run emitted %d records, %d distinct", len(first), len(seen))
	}
	t.Logf("first run: %d records, %d distinct, of %d check decides", len(first), len(seen), len(decided))

	stop = start("run") // again, on the same state and topics
	second := emitted()
	stop()
	if len(second) != len(first) {
		t.Errorf("the restarted worker published %d records again", len(second)-len(first))
	}

	stop = start("replay", "--from", "earliest")
	third := emitted()
	stop()
	if len(third) != 2*len(first) {
		t.Fatalf("replay from earliest: %d records after %d", len(third)-len(first), len(first))
	}
	// The topic's records are read partition by partition: compare the
	// whole topic with every record of the first run twice.
	all := slices.Sorted(slices.Values(full))
	want := slices.Sorted(slices.Values(append(slices.Clone(firstFull), firstFull...)))
	if !slices.Equal(all, want) {
		reportDiff(t, all, want, "replay from earliest did not publish", "replay from earliest published")
	}

	// From a time: before every change, everything once more; after the
	// last, nothing.
	stop = start("replay", "--from", time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	fourth := emitted()
	stop()
	if len(fourth) != len(third) {
		t.Errorf("replay from a time after every change published %d records", len(fourth)-len(third))
	}
	stop = start("replay", "--from", "2000-01-01T00:00:00Z")
	fifth := emitted()
	stop()
	if len(fifth) != 3*len(first) {
		t.Errorf("replay from a time before every change: %d records after %d", len(fifth)-len(fourth), len(fourth))
	}
}

func TestParseFrom(t *testing.T) {
	for _, c := range []struct {
		in   string
		want replayPoint
		bad  bool
	}{
		{in: "earliest", want: replayPoint{earliest: true}},
		{in: "2026-11-21T09:00:00Z", want: replayPoint{at: time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)}},
		{in: "0=1200, 3=980", want: replayPoint{offsets: map[int32]int64{0: 1200, 3: 980}}},
		{in: "", bad: true},
		{in: "yesterday", bad: true},
		{in: "0=-1", bad: true},
		{in: "a=1", bad: true},
		{in: "1=2,3", bad: true},
	} {
		got, err := parseFrom(c.in)
		if c.bad {
			if err == nil {
				t.Errorf("parseFrom(%q) = %+v, want an error", c.in, got)
			}
			continue
		}
		if err != nil || got.earliest != c.want.earliest || !got.at.Equal(c.want.at) || fmt.Sprint(got.offsets) != fmt.Sprint(c.want.offsets) {
			t.Errorf("parseFrom(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
}

func grepLines(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestRunStopsAtAnyMoment: a stop that arrives while the worker is still
// connecting, creating its topics or starting its router ends it at once
// and cleanly. (A Watermill router closed while it was starting used to
// hold the stop for the whole shutdown timeout.)
func TestRunStopsAtAnyMoment(t *testing.T) {
	dir, dumps, _ := simulated(t, "--events", "500", "--keys", "100", "--tables", "1")
	b, err := broker.Start(broker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	loadDumps(t, kafka.ClientConfig{Brokers: []string{b.Addr()}}, dumps...)
	for _, after := range []time.Duration{0, time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond, 5 * time.Millisecond,
		8 * time.Millisecond, 12 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond, 200 * time.Millisecond} {
		stop := startWorker(t, dir, b.Addr())
		time.Sleep(after)
		t0 := time.Now()
		stop()
		if took := time.Since(t0); took > 2*time.Second {
			t.Errorf("stopped %s after the start: the stop took %s", after, took)
		}
	}
}

// recordID reads a drift line's id and status.
func recordID(line string) string {
	var d struct{ ID, Status string }
	if err := json.Unmarshal([]byte(line), &d); err != nil {
		return line
	}
	return d.ID + " " + d.Status
}

// freeAddr returns a loopback address with a port free at the time.
func freeAddr(t testing.TB) string {
	t.Helper()
	addr, err := harness.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// simulated runs simulate with args into a new temporary directory and
// returns the directory, its dumps and simulate's summary.
func simulated(t testing.TB, args ...string) (dir string, dumps []string, summary string) {
	t.Helper()
	dir = t.TempDir()
	var out, errOut bytes.Buffer
	if code := run(context.Background(), append([]string{"simulate", "--out", dir}, args...), nil, &out, &errOut); code != exitOK {
		t.Fatalf("simulate: exit %d: %s", code, errOut.String())
	}
	return dir, []string{filepath.Join(dir, "source.jsonl"), filepath.Join(dir, "target.jsonl")}, out.String()
}

// checkDecides runs check --history over a simulated workload and returns
// every record it decides, as "id status".
func checkDecides(t testing.TB, dir string, dumps []string) map[string]bool {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := run(context.Background(), append([]string{"check", "--config", filepath.Join(dir, "config.yaml"), "--history"}, dumps...), nil, &out, &errOut); code != exitDrift {
		t.Fatalf("check: exit %d: %s", code, errOut.String())
	}
	decided := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		decided[recordID(line)] = true
	}
	return decided
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// loadDumps produces kcat -J dumps into a broker.
func loadDumps(t testing.TB, cc kafka.ClientConfig, files ...string) {
	t.Helper()
	var stderr bytes.Buffer
	p, err := load.New(cc, load.Options{Warn: &stderr})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, f := range files {
		stderr.Reset()
		bad, err := p.File(context.Background(), f)
		if err == nil && bad > 0 {
			err = fmt.Errorf("%d lines not produced:\n%s", bad, stderr.String())
		}
		if err != nil {
			t.Fatalf("producing %s: %v", f, err)
		}
	}
	if err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// startWorker runs the worker in process on a simulated workload's
// config.yaml (in dir) against a broker; stop ends it gracefully.
func startWorker(t testing.TB, dir, addr string) (stop func()) {
	t.Helper()
	base, err := os.ReadFile(filepath.Join(dir, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "worker.yaml")
	head := fmt.Sprintf("kafka: {brokers: [%s], partitions: 3}\nstate: {dir: %s}\nhttp: {listen: \"\"}\n", addr, filepath.Join(dir, "worker-state"))
	if err := os.WriteFile(cfg, append([]byte(head), base...), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() { done <- run(ctx, []string{"run", "--config", cfg}, nil, io.Discard, &stderr) }()
	return func() {
		cancel()
		if code := <-done; code != exitOK {
			t.Errorf("run: exit %d: %s", code, stderr.String())
		}
	}
}

// waitForDrift waits, up to a minute, for the drift topic to hold every
// record ("id status") of want, and fails on any other.
func waitForDrift(t testing.TB, cc kafka.ClientConfig, want map[string]bool) {
	t.Helper()
	got := map[string]bool{}
	for deadline := time.Now().Add(time.Minute); len(got) < len(want) && time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		ds, err := offline.ReadDrift(context.Background(), cc, "cdcrecon.drift", registry.NewSerde(nil))
		if err != nil {
			continue // not created yet
		}
		for _, d := range ds {
			got[d.ID+" "+string(d.Status)] = true
		}
	}
	for k := range want {
		if !got[k] {
			t.Errorf("worker did not emit %s", k)
		}
	}
	for k := range got {
		if !want[k] {
			t.Errorf("worker emitted %s, which check does not decide", k)
		}
	}
}

// readTopic reads n records of a topic from its start, waiting up to 10s.
func readTopic(t testing.TB, cc kafka.ClientConfig, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(append(cc.ClientOpts(), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n && ctx.Err() == nil {
		out = append(out, cl.PollFetches(ctx).Records()...)
	}
	if len(out) < n {
		t.Errorf("%s: %d records, want %d", topic, len(out), n)
	}
	return out
}

// TestDemo: the demo runs to its end on a small workload, shows its
// progress, and finds exactly the simulator's ground truth.
func TestDemo(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"demo", "--events", "8000", "--keys", "1500", "--seed", "3"}, nil, &out, &errOut)
	if code != exitOK {
		t.Fatalf("demo: exit %d:\n%s\n%s", code, out.String(), errOut.String())
	}
	for _, want := range []string{"messages loaded", "events ", "recall 1.00  precision 1.00", "cdcrecon check --config"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestWorkerStopsWhenRefused: a broker that refuses the worker's group
// membership for good (here a session timeout below kfake's 6s minimum)
// stops the worker with an error naming the setting, instead of retries
// that never end.
func TestWorkerStopsWhenRefused(t *testing.T) {
	dir, dumps, _ := simulated(t, "--events", "200", "--keys", "50", "--tables", "1")
	b, err := broker.Start(broker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	loadDumps(t, kafka.ClientConfig{Brokers: []string{b.Addr()}}, dumps...)
	base, err := os.ReadFile(filepath.Join(dir, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "refused.yaml")
	head := fmt.Sprintf("kafka: {brokers: [%s], session_timeout: 3s}\nstate: {dir: %s}\nhttp: {listen: \"\"}\n", b.Addr(), filepath.Join(dir, "refused-state"))
	if err := os.WriteFile(cfg, append([]byte(head), base...), 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() { done <- run(context.Background(), []string{"run", "--config", cfg}, nil, io.Discard, &stderr) }()
	select {
	case code := <-done:
		if code != exitFailure || !strings.Contains(stderr.String(), "kafka.session_timeout") || !strings.Contains(stderr.String(), "INVALID_SESSION_TIMEOUT") {
			t.Errorf("run: exit %d, want %d with the setting named:\n%s", code, exitFailure, stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("the refused worker still runs after a minute")
	}
}
