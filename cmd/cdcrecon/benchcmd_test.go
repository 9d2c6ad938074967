package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cdcrecon/cdcrecon/cmd/cdcrecon/internal/harness"
)

// TestBenchCommand runs `cdcrecon bench` small, once: it must find the
// ground truth exactly in both parts and report figures that hang
// together.
func TestBenchCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("runs worker processes")
	}
	out := filepath.Join(t.TempDir(), "bench.json")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"bench", "--runs", "1", "--events", "12000", "--keys", "2000", "--rate", "20000",
		"--json", out, "--worker-binary", cliBinary(t)}, nil, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("bench: exit %d:\n%s\n%s", code, stdout.String(), stderr.String())
	}
	var res struct {
		Records int           `json:"records"`
		Runs    []harness.Run `json:"runs"`
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Runs) != 1 {
		t.Fatalf("%d runs in --json, want 1", len(res.Runs))
	}
	r := res.Runs[0]
	switch {
	case r.Recall != 1 || r.Precision != 1 || r.LiveRecall != 1 || r.LivePrecision != 1:
		t.Errorf("detection: %+v", r)
	case r.EventsPerSec <= 0 || r.BaselinePerSec <= 0 || r.PeakRSS < 1<<20:
		t.Errorf("throughput figures: %+v", r)
	case r.Latencies == 0 || r.ByHeartbeat > r.Latencies:
		t.Errorf("latency records: %+v", r)
	case r.LatencyP50 < 0 || r.LatencyP50 > r.LatencyP99 || r.LatencyP99 > r.LatencyMax:
		// A negative latency would be a drift emitted before the input
		// made it decidable: the benchmark's model or the worker is wrong.
		t.Errorf("latency percentiles out of order: %+v", r)
	case r.ProducedPerSec > 20000*1.1:
		t.Errorf("the latency part produced %.0f records/s, above --rate 20000", r.ProducedPerSec)
	}
	for _, want := range []string{"worker events/s", "detection latency p99", "recall                                       1.00"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("bench output lacks %q:\n%s", want, stdout.String())
		}
	}
}
