package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fastjson"

	"github.com/cdcrecon/cdcrecon/pipeline/broker"
	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
)

// The check benchmark's workload: `cdcrecon simulate` with these sizes,
// written once per machine into the temporary directory and reused.
// CDCRECON_BENCH_EVENTS and CDCRECON_BENCH_KEYS change them (the default:
// 1M source events, about as many target events, 200k keys, 3 tables).
func benchWorkload(b *testing.B) string {
	b.Helper()
	events, keys := 1_000_000, 200_000
	if v := os.Getenv("CDCRECON_BENCH_EVENTS"); v != "" {
		events, _ = strconv.Atoi(v)
	}
	if v := os.Getenv("CDCRECON_BENCH_KEYS"); v != "" {
		keys, _ = strconv.Atoi(v)
	}
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("cdcrecon-bench-%d-%d", events, keys))
	if _, err := os.Stat(filepath.Join(dir, "done")); err == nil {
		return dir
	}
	args := []string{"simulate", "--out", dir, "--events", strconv.Itoa(events), "--keys", strconv.Itoa(keys),
		"--drop", "0.0005", "--corrupt", "0.0005", "--delay", "0.005", "--duplicate", "0.001", "--poison", "10"}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), args, nil, &out, &errOut); code != exitOK {
		b.Fatalf("simulate: exit %d: %s", code, errOut.String())
	}
	if err := os.WriteFile(filepath.Join(dir, "done"), out.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	return dir
}

var (
	benchBinOnce sync.Once
	benchBin     string
	benchBinErr  error
)

// benchBinary builds cdcrecon once for the benchmarks that run it as a
// process of its own, whose peak RSS is then the command's alone.
func benchBinary(b *testing.B) string {
	benchBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cdcrecon-bench-bin")
		if err != nil {
			benchBinErr = err
			return
		}
		benchBin = filepath.Join(dir, "cdcrecon")
		out, err := exec.Command("go", "build", "-o", benchBin, ".").CombinedOutput()
		if err != nil {
			benchBinErr = fmt.Errorf("building cdcrecon: %v: %s", err, out)
		}
	})
	if benchBinErr != nil {
		b.Fatal(benchBinErr)
	}
	return benchBin
}

// BenchmarkCheck runs `cdcrecon check` over the simulated workload and,
// in the same run, the baseline: the raw rate at which the same dumps,
// loaded into the same embedded broker, are consumed and parsed as JSON.
//
//	go test -run '^$' -bench BenchmarkCheck -benchtime 1x -count 3 ./cmd/cdcrecon
//
// check reports events/s (all events over the whole command, loading the
// dumps included), pipeline-events/s (the same after the load), and
// peak-RSS-B (the process's maximum resident set, in bytes). It also fails unless
// check reports exactly the simulator's ground truth. The baseline reports
// records/s from the first record to the last, the load excluded.
func BenchmarkCheck(b *testing.B) {
	dir := benchWorkload(b)
	dumps := []string{filepath.Join(dir, "source.jsonl"), filepath.Join(dir, "target.jsonl")}

	b.Run("raw-consume-parse", func(b *testing.B) {
		for range b.N {
			b.StopTimer()
			addr, stop := benchLoaded(b, dumps)
			b.StartTimer()
			n, secs := benchConsumeParse(b, addr)
			b.StopTimer()
			stop()
			b.ReportMetric(float64(n)/secs, "records/s")
		}
	})

	b.Run("check", func(b *testing.B) {
		bin := benchBinary(b)
		truth, err := os.ReadFile(filepath.Join(dir, "truth.jsonl"))
		if err != nil {
			b.Fatal(err)
		}
		want := driftSet(b, truth)
		b.ResetTimer() // the build and the truth are not measured
		for range b.N {
			report := filepath.Join(b.TempDir(), "report.json")
			var out, errOut bytes.Buffer
			cmd := exec.Command(bin, append([]string{"check", "--config", filepath.Join(dir, "config.yaml"), "--report", report}, dumps...)...)
			cmd.Stdout, cmd.Stderr = &out, &errOut
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != exitDrift {
				b.Fatalf("check: %v (want exit %d): %s", err, exitDrift, errOut.String())
			}
			if got := driftSet(b, out.Bytes()); !slices.Equal(got, want) {
				b.Fatalf("check found %d drifts, the ground truth has %d", len(got), len(want))
			}
			var rep Report
			b2, _ := os.ReadFile(report)
			if err := json.Unmarshal(b2, &rep); err != nil {
				b.Fatal(err)
			}
			rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss // KiB on Linux
			b.ReportMetric(float64(rep.Events)/rep.Seconds, "events/s")
			b.ReportMetric(float64(rep.Events)/(rep.Seconds-rep.LoadSeconds), "pipeline-events/s")
			b.ReportMetric(float64(rss)*1024, "peak-RSS-B")
		}
	})
}

// benchLoaded starts an embedded broker as check does (its log on disk)
// and loads the dumps into it with check's producer.
func benchLoaded(b *testing.B, dumps []string) (addr string, stop func()) {
	dataDir := b.TempDir()
	br, err := broker.Start(broker.Config{DataDir: dataDir})
	if err != nil {
		b.Fatal(err)
	}
	p, err := newProducer(kafka.ClientConfig{Brokers: []string{br.Addr()}})
	if err != nil {
		b.Fatal(err)
	}
	defer p.close()
	g := &globals{stderr: &bytes.Buffer{}}
	for _, d := range dumps {
		if _, err := p.loadFile(context.Background(), g, d); err != nil {
			b.Fatal(err)
		}
	}
	if err := p.flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	return br.Addr(), func() { br.Close() }
}

// benchConsumeParse reads every input topic to its end with franz-go's
// PollFetches and parses each key and value with fastjson.
func benchConsumeParse(b *testing.B, addr string) (n int64, secs float64) {
	topics := []string{"pg.public.orders", "pg.public.customers", "pg.public.payments",
		"mysql.shop.orders", "mysql.shop.customers", "mysql.shop.payments"}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topics...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	var want int64
	for _, t := range topics {
		// Every simulated topic has one partition.
		offs, err := kadmEnd(ctx, cl, t)
		if err != nil {
			b.Fatal(err)
		}
		want += offs
	}
	var p fastjson.Parser
	var start time.Time
	for n < want {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			b.Fatal(err)
		}
		if start.IsZero() {
			start = time.Now()
		}
		for it := fs.RecordIter(); !it.Done(); {
			r := it.Next()
			n++
			if r.Key != nil {
				_, _ = p.ParseBytes(r.Key)
			}
			if r.Value != nil {
				_, _ = p.ParseBytes(r.Value) // poison fails to parse, as it should
			}
		}
	}
	return n, time.Since(start).Seconds()
}

// kadmEnd returns the end offset of partition 0 of topic.
func kadmEnd(ctx context.Context, cl *kgo.Client, topic string) (int64, error) {
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return 0, err
	}
	o, _ := ends.Lookup(topic, 0)
	return o.Offset, nil
}
