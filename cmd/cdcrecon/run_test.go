package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cdcrecon/cdcrecon/pipeline/broker"
	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
	"github.com/cdcrecon/cdcrecon/pipeline/registry"
)

// TestRunStreamsWhatCheckDecides: the worker, over a simulated workload in
// a broker, emits drift records that check decides for the same dumps,
// under the same ids; it stops within the shutdown timeout when its
// context ends (SIGINT/SIGTERM in the binary); started again on the same
// state it re-emits what it had emitted, under the same ids, and nothing
// else.
func TestRunStreamsWhatCheckDecides(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"simulate", "--out", dir, "--events", "6000", "--keys", "800", "--rate", "20",
		"--drop", "0.01", "--corrupt", "0.01", "--delay", "0.05", "--duplicate", "0.02"}, nil, &out, &errOut); code != exitOK {
		t.Fatalf("simulate: exit %d: %s", code, errOut.String())
	}
	dumps := []string{filepath.Join(dir, "source.jsonl"), filepath.Join(dir, "target.jsonl")}

	// What check decides, every record of its history by id and status.
	out.Reset()
	if code := run(context.Background(), append([]string{"check", "--config", filepath.Join(dir, "config.yaml"), "--history"}, dumps...), nil, &out, &errOut); code != exitDrift {
		t.Fatalf("check: exit %d: %s", code, errOut.String())
	}
	decided := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		decided[recordID(line)] = true
	}

	b, err := broker.Start(broker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cc := kafka.ClientConfig{Brokers: []string{b.Addr()}}
	p, err := newProducer(cc)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dumps {
		if _, err := p.loadFile(context.Background(), &globals{stderr: &errOut}, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	p.close()
	base, _ := os.ReadFile(filepath.Join(dir, "config.yaml"))
	cfg := filepath.Join(dir, "run.yaml")
	httpAddr := freeAddr(t)
	head := fmt.Sprintf("kafka: {brokers: [%s], group: run-test, partitions: 3}\nstate: {dir: %s}\nhttp: {listen: %s}\n", b.Addr(), filepath.Join(dir, "state"), httpAddr)
	if err := os.WriteFile(cfg, append([]byte(head), base...), 0o644); err != nil {
		t.Fatal(err)
	}

	// emitted waits until the drift topic stops growing, and returns its
	// records as "id status".
	emitted := func() []string {
		var last []string
		for stable := 0; stable < 4; {
			time.Sleep(500 * time.Millisecond)
			ds, err := readDrift(context.Background(), cc, "cdcrecon.drift", registry.NewSerde(nil))
			if err != nil {
				t.Fatal(err)
			}
			var now []string
			for _, d := range ds {
				now = append(now, d.ID+" "+string(d.Status))
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
	start := func() (stop func() time.Duration) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int, 1)
		var stderr bytes.Buffer
		go func() { done <- run(ctx, []string{"run", "--config", cfg}, nil, &bytes.Buffer{}, &stderr) }()
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

	stop := start()
	first := emitted()

	// The operations endpoints, while it runs: every message read counted,
	// every drift opened counted.
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := httpGet(t, "http://"+httpAddr+path); code != 200 {
			t.Errorf("%s: %d %s", path, code, body)
		}
	}
	_, metrics := httpGet(t, "http://"+httpAddr+"/metrics")
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
	if got := metricSum(metrics, "cdcrecon_events_total"); got != float64(lines) {
		t.Errorf("cdcrecon_events_total sums to %v, the dumps hold %d messages", got, lines)
	}
	if got := metricSum(metrics, "cdcrecon_drift_opened_total"); got != float64(opened) {
		t.Errorf("cdcrecon_drift_opened_total sums to %v, %d drifts were opened", got, opened)
	}
	if !strings.Contains(metrics, `cdcrecon_events_total{side="target",table="customers"}`) {
		t.Errorf("no per-table, per-side event counts in:\n%.2000s", metrics)
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
	// Only what the watermarks of both sides have passed is decided: all
	// but the records near the end of the input.
	if len(seen) < len(decided)*8/10 {
		t.Errorf("run emitted %d distinct records, check decides %d", len(seen), len(decided))
	}

	t.Logf("first run: %d records, %d distinct, of %d check decides", len(first), len(seen), len(decided))
	stop = start() // again, on the same state and topics
	second := emitted()
	stop()
	if len(second) <= len(first) {
		t.Fatalf("the restarted worker emitted nothing (%d records, %d before)", len(second), len(first))
	}
	for _, r := range second {
		if !seen[r] {
			t.Errorf("after a restart, a record not emitted before: %s", r)
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
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
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

// metricSum adds up a metric's samples in a Prometheus text exposition.
func metricSum(text, name string) float64 {
	var sum float64
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		sum += v
	}
	return sum
}
