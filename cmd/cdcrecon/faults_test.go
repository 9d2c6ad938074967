package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cdcrecon/cdcrecon/cmd/cdcrecon/internal/harness"
	"github.com/cdcrecon/cdcrecon/pipeline/broker"
	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
)

// faultWorkload loads a small simulated workload into a new in-process
// broker and writes a worker configuration for it, metrics on listen.
func faultWorkload(t *testing.T, listen string) (b *broker.Broker, dir, cfg string) {
	t.Helper()
	dir, dumps, _ := simulated(t, "--events", "4000", "--keys", "600", "--partitions", "2",
		"--drop", "0.01", "--corrupt", "0.01", "--seed", "21")
	b, err := broker.Start(broker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	loadDumps(t, kafka.ClientConfig{Brokers: []string{b.Addr()}}, dumps...)
	base, err := os.ReadFile(filepath.Join(dir, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg = filepath.Join(dir, "faults.yaml")
	head := fmt.Sprintf("kafka: {brokers: [%s], partitions: 3}\nstate: {dir: %s}\nhttp: {listen: %q}\nidle: {safety_margin: 1s, interval: 200ms}\n",
		b.Addr(), filepath.Join(dir, "state"), listen)
	if err := os.WriteFile(cfg, append([]byte(head), base...), 0o644); err != nil {
		t.Fatal(err)
	}
	return b, dir, cfg
}

// waitMetrics polls a worker's /metrics until ok holds, up to limit.
func waitMetrics(t *testing.T, url string, limit time.Duration, what string, ok func(harness.Metrics) bool) harness.Metrics {
	t.Helper()
	var last harness.Metrics
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if m := harness.Scrape(url); m != nil {
			if ok(m) {
				return m
			}
			last = m
		}
	}
	t.Fatalf("metrics: %s: not within %s; last:\n%v", what, limit, last)
	return nil
}

// TestWorkerSignalsTellTheTruth: the drift series exist at 0 for every
// table from the start, the drift gauge equals the drift the worker's
// state holds open (never negative), build_info is there, and when the
// broker goes away the lag becomes unknown (absent) and
// cdcrecon_broker_reachable 0, rather than a lag of 0.
func TestWorkerSignalsTellTheTruth(t *testing.T) {
	listen := freeAddr(t)
	b, dir, cfg := faultWorkload(t, listen)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() { done <- run(ctx, []string{"run", "--config", cfg}, nil, io.Discard, &stderr) }()
	url := "http://" + listen + "/metrics"
	tables := []string{"customers", "orders", "payments"}
	m := waitMetrics(t, url, 20*time.Second, "serving", func(m harness.Metrics) bool { return len(m) > 0 })
	for _, tb := range tables {
		if _, ok := m[`cdcrecon_drift_open{table="`+tb+`"}`]; !ok {
			t.Errorf("no cdcrecon_drift_open series of table %s at the start", tb)
		}
	}
	if m.Series("cdcrecon_build_info") != 1 {
		t.Error("no cdcrecon_build_info")
	}
	// Read everything (3 tables x 2 sides x 2 input partitions, and 3
	// changes partitions); the gauge then equals the drift the truth has
	// open.
	waitMetrics(t, url, 60*time.Second, "read to the end", func(m harness.Metrics) bool {
		return m.Series("cdcrecon_consumer_lag_records") >= 6*2+3 && m.Sum("cdcrecon_consumer_lag_records") == 0 && m["cdcrecon_broker_reachable"] == 1
	})
	truth, _ := os.ReadFile(filepath.Join(dir, "truth.jsonl"))
	want := len(driftSet(t, truth))
	m = waitMetrics(t, url, 30*time.Second, fmt.Sprintf("%d drifts open", want), func(m harness.Metrics) bool {
		return m.Sum("cdcrecon_drift_open") == float64(want)
	})
	for k, v := range m {
		if harness.MetricName(k) == "cdcrecon_drift_open" && v < 0 {
			t.Errorf("%s = %g", k, v)
		}
	}
	b.Close()
	waitMetrics(t, url, 20*time.Second, "lag unknown with the broker gone", func(m harness.Metrics) bool {
		return m["cdcrecon_broker_reachable"] == 0 && m.Series("cdcrecon_consumer_lag_records") == 0
	})
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Error("the worker did not stop within 30s of its context")
	}
}

// TestWorkerStopsWhenStateDirRemoved: a state directory removed under a
// running worker stops it with exit 2, the directory named, within the
// graceful-stop bound, instead of failing batches forever while /readyz
// says ready.
func TestWorkerStopsWhenStateDirRemoved(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a worker process")
	}
	listen := freeAddr(t)
	_, dir, cfg := faultWorkload(t, listen)
	log := filepath.Join(dir, "worker.log")
	w := startProcess(t, cliBinary(t), log, "run", "--config", cfg)
	waitMetrics(t, "http://"+listen+"/metrics", 30*time.Second, "read to the end", func(m harness.Metrics) bool {
		return m.Series("cdcrecon_consumer_lag_records") > 0 && m.Sum("cdcrecon_consumer_lag_records") == 0
	})
	if err := os.RemoveAll(filepath.Join(dir, "state")); err != nil {
		t.Fatal(err)
	}
	removed := time.Now()
	exited := make(chan error, 1)
	go func() { exited <- w.cmd.Wait() }()
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitFailure {
			t.Errorf("worker exited with %v, want exit %d", err, exitFailure)
		}
	case <-time.After(shutdownTimeout + 5*time.Second):
		resp, err := http.Get("http://" + listen + "/readyz")
		if err == nil {
			resp.Body.Close()
		}
		t.Fatalf("the worker still runs %s after its state directory was removed", time.Since(removed).Round(time.Second))
	}
	out, _ := os.ReadFile(log)
	if !strings.Contains(string(out), "state.dir "+filepath.Join(dir, "state")) || !strings.Contains(string(out), "state storage failed") {
		t.Errorf("the worker's last words do not name the state directory and the storage failure:\n%s", lastBytes(string(out), 1500))
	}
	t.Logf("stopped %s after the removal", time.Since(removed).Round(100*time.Millisecond))
}

// TestWorkerWaitsForItsInputTopics: a worker started before its
// connectors have created their topics waits for them, saying which, and
// runs once they exist, instead of exiting.
func TestWorkerWaitsForItsInputTopics(t *testing.T) {
	listen := freeAddr(t)
	dir, dumps, _ := simulated(t, "--events", "2000", "--keys", "300", "--partitions", "1", "--seed", "22")
	b, err := broker.Start(broker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	base, err := os.ReadFile(filepath.Join(dir, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "wait.yaml")
	head := fmt.Sprintf("kafka: {brokers: [%s], partitions: 2}\nstate: {dir: %s}\nhttp: {listen: %q}\nidle: {safety_margin: 1s, interval: 200ms}\n",
		b.Addr(), filepath.Join(dir, "state"), listen)
	if err := os.WriteFile(cfg, append([]byte(head), base...), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	var stderr syncBuffer
	go func() { done <- run(ctx, []string{"run", "--config", cfg}, nil, io.Discard, &stderr) }()
	for deadline := time.Now().Add(15 * time.Second); !strings.Contains(stderr.String(), "waiting for an input topic"); time.Sleep(100 * time.Millisecond) {
		select {
		case code := <-done:
			t.Fatalf("the worker exited %d before its topics existed:\n%s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no word of waiting for the topics within 15s:\n%s", stderr.String())
		}
	}
	loadDumps(t, kafka.ClientConfig{Brokers: []string{b.Addr()}}, dumps...)
	waitMetrics(t, "http://"+listen+"/metrics", 30*time.Second, "events read once the topics exist", func(m harness.Metrics) bool {
		return m.Sum("cdcrecon_events_total") > 0
	})
	cancel()
	if code := <-done; code != exitOK {
		t.Errorf("exit %d after SIGTERM-like stop:\n%s", code, stderr.String())
	}
}

// syncBuffer is a bytes.Buffer safe to write from one goroutine while
// another reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
