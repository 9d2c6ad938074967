package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cdcrecon/cdcrecon/pipeline/dump"
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
		Records int        `json:"records"`
		Runs    []benchRun `json:"runs"`
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

// TestWatermarksDecidable: an instant is decidable once every input
// partition holds an event committed after it, at the acknowledgement
// that made it so; tombstones and poison carry no time.
func TestWatermarksDecidable(t *testing.T) {
	ev := func(topic string, part int32, ts int64) dump.Record {
		return dump.Record{Topic: topic, Partition: part, Value: []byte(`{"op":"c","source":{"ts_ms":` + strconv.FormatInt(ts, 10) + `}}`)}
	}
	at := func(s int) time.Time { return time.Unix(int64(s), 0) }
	m := newWatermarks(2)
	m.observe([]dump.Record{ev("a", 0, 100), ev("a", 0, 300)}, at(1))
	if _, ok := m.decidable(50); ok {
		t.Fatal("decidable while partition b/0 holds nothing")
	}
	m.observe([]dump.Record{{Topic: "b", Partition: 0, Value: []byte(`{"before":`)}, {Topic: "b", Partition: 0}}, at(2))
	if _, ok := m.decidable(50); ok {
		t.Fatal("poison and tombstones moved the watermark")
	}
	m.observe([]dump.Record{ev("b", 0, 200)}, at(3))
	m.observe([]dump.Record{ev("b", 0, 150)}, at(4)) // a re-send: older
	m.observe([]dump.Record{ev("b", 0, 400)}, at(5))
	for _, c := range []struct {
		t    int64
		want int
		ok   bool
	}{{50, 3, true}, {199, 3, true}, {200, 5, true}, {299, 5, true}, {300, 0, false}} {
		got, ok := m.decidable(c.t)
		if ok != c.ok || (ok && !got.Equal(at(c.want))) {
			t.Errorf("decidable(%d) = %v, %v; want %v, %v", c.t, got, ok, at(c.want), c.ok)
		}
	}
	m.end(at(9))
	if got, ok := m.decidable(1 << 50); !ok || !got.Equal(at(9)) {
		t.Errorf("after the heartbeats: %v, %v", got, ok)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 200; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	if p := percentile(d, 50); p != 100*time.Millisecond {
		t.Errorf("p50 = %s", p)
	}
	if p := percentile(d, 99); p != 198*time.Millisecond {
		t.Errorf("p99 = %s", p)
	}
	if p := percentile(d[:1], 99); p != time.Millisecond {
		t.Errorf("p99 of one = %s", p)
	}
}
