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
	"testing"
	"time"

	"github.com/cdcrecon/cdcrecon/cmd/cdcrecon/internal/harness"
	"github.com/cdcrecon/cdcrecon/pipeline/broker"
	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
	"github.com/cdcrecon/cdcrecon/pipeline/load"
	"github.com/cdcrecon/cdcrecon/pipeline/offline"
	"github.com/cdcrecon/cdcrecon/pipeline/registry"
	"github.com/cdcrecon/cdcrecon/processors/config"
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
	return benchWorkloadSized(b, events, keys)
}

// benchWorkloadSized is the benchmark workload with the given sizes.
func benchWorkloadSized(b *testing.B, events, keys int) string {
	b.Helper()
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
	cliOnce sync.Once
	cliBin  string
	cliErr  error
)

// cliBinary builds cdcrecon once for the tests and benchmarks that run it
// as processes of their own (a benchmarked one's peak RSS is then the
// command's alone).
func cliBinary(tb testing.TB) string {
	tb.Helper()
	cliOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cdcrecon-test-bin")
		if err != nil {
			cliErr = err
			return
		}
		cliBin = filepath.Join(dir, "cdcrecon")
		if out, err := exec.Command("go", "build", "-o", cliBin, ".").CombinedOutput(); err != nil {
			cliErr = fmt.Errorf("building cdcrecon: %v: %s", err, out)
		}
	})
	if cliErr != nil {
		tb.Fatal(cliErr)
	}
	return cliBin
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
			n, secs, err := harness.ConsumeParse(context.Background(), addr, []string{"pg.public.orders", "pg.public.customers", "pg.public.payments",
				"mysql.shop.orders", "mysql.shop.customers", "mysql.shop.payments"})
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			stop()
			b.ReportMetric(float64(n)/secs, "records/s")
		}
	})

	b.Run("check", func(b *testing.B) {
		bin := cliBinary(b)
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
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			// Its VmHWM, read until it exits (the rusage of a child
			// started by a big process reports the parent's peak).
			var rss float64
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			var err error
		wait:
			for {
				select {
				case err = <-exited:
					break wait
				case <-time.After(50 * time.Millisecond):
					if v, ok := harness.VmHWM(cmd.Process.Pid); ok {
						rss = v
					}
				}
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != exitDrift {
				b.Fatalf("check: %v (want exit %d): %s", err, exitDrift, errOut.String())
			}
			if got := driftSet(b, out.Bytes()); !slices.Equal(got, want) {
				b.Fatalf("check found %d drifts, the ground truth has %d", len(got), len(want))
			}
			var rep offline.Report
			b2, _ := os.ReadFile(report)
			if err := json.Unmarshal(b2, &rep); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(rep.Events)/rep.Seconds, "events/s")
			b.ReportMetric(float64(rep.Events)/(rep.Seconds-rep.LoadSeconds), "pipeline-events/s")
			b.ReportMetric(rss, "peak-RSS-B")
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
	p, err := load.New(kafka.ClientConfig{Brokers: []string{br.Addr()}}, load.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	for _, d := range dumps {
		if _, err := p.File(context.Background(), d); err != nil {
			b.Fatal(err)
		}
	}
	if err := p.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	return br.Addr(), func() { br.Close() }
}

// benchWorker is a worker process of a benchmark.
type benchWorker struct{ *harness.Process }

// startBenchWorker runs `cdcrecon run` on the workload in dir against a
// broker, with its state in stateDir; extra flags follow.
// CDCRECON_BENCH_LOG names a file to keep the worker's log in.
func startBenchWorker(b *testing.B, bin, dir, addr, stateDir string, extra ...string) *benchWorker {
	b.Helper()
	base, err := os.ReadFile(filepath.Join(dir, "config.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	cfg := filepath.Join(b.TempDir(), "worker.yaml")
	head := fmt.Sprintf("kafka: {brokers: [%s], group: bench}\nstate: {dir: %s}\n", addr, stateDir)
	if err := os.WriteFile(cfg, append([]byte(head), base...), 0o644); err != nil {
		b.Fatal(err)
	}
	logFile := filepath.Join(b.TempDir(), "worker.log")
	if v := os.Getenv("CDCRECON_BENCH_LOG"); v != "" {
		logFile = v
	}
	w, err := harness.StartProcess(bin, cfg, logFile, extra...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(w.Kill)
	return &benchWorker{w}
}

// waitFor polls the worker's metrics until ok holds, and returns them; it
// fails the benchmark after limit.
func (w *benchWorker) waitFor(b *testing.B, limit time.Duration, what string, ok func(m harness.Metrics) bool) harness.Metrics {
	b.Helper()
	m, err := w.Process.WaitFor(context.Background(), limit, what, ok)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// stop stops the worker and returns its peak RSS in bytes.
func (w *benchWorker) stop(b *testing.B) float64 {
	b.Helper()
	rss, err := w.Process.Stop()
	if err != nil {
		b.Fatal(err)
	}
	return rss
}

// done tells that the benchmark's worker has read all of total records
// and holds open exactly open drifts (< 0: any).
func done(total, open int) func(m harness.Metrics) bool {
	return harness.Done(benchPartitions, total, open)
}

// benchPartitions is how many partitions a benchmark's only worker owns:
// the six single-partition input topics' and the changes topic's (the
// configuration's default count). Until it reports the lag of all of
// them, not all are assigned and started.
var benchPartitions = 6 + config.Default().Kafka.Partitions

// rebuilt tells that a worker owns all its partitions and rebuilds none.
func rebuilt(m harness.Metrics) bool {
	return m.Series("cdcrecon_consumer_lag_records") >= benchPartitions && m.Sum("cdcrecon_rebuilding_partitions") == 0
}

// benchInputs returns a workload's dumps, its ground truth's drifted rows
// and how many records the dumps hold.
func benchInputs(b *testing.B, dir string) (dumps, want []string, total int) {
	dumps = []string{filepath.Join(dir, "source.jsonl"), filepath.Join(dir, "target.jsonl")}
	truth, err := os.ReadFile(filepath.Join(dir, "truth.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	return dumps, driftSet(b, truth), inputRecords(b, dumps)
}

// inputRecords counts the records of the workload's dumps.
func inputRecords(b *testing.B, dumps []string) int {
	n := 0
	for _, d := range dumps {
		data, err := os.ReadFile(d)
		if err != nil {
			b.Fatal(err)
		}
		n += bytes.Count(data, []byte("\n"))
	}
	return n
}

// checkFinalDrift fails unless the drift topic's open drift, by each
// record's latest status, is the truth's; it waits up to a minute for it.
func checkFinalDrift(b *testing.B, addr string, want []string) {
	b.Helper()
	var got []string
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(500 * time.Millisecond) {
		ds, err := offline.ReadDrift(context.Background(), kafka.ClientConfig{Brokers: []string{addr}}, "cdcrecon.drift", registry.NewSerde(nil))
		if err != nil {
			b.Fatal(err)
		}
		got = got[:0]
		for _, d := range offline.OpenAtEnd(ds) {
			got = append(got, harness.DriftRow(d))
		}
		if slices.Sort(got); slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("the worker left %d drifts open, the ground truth has %d", len(got), len(want))
		}
	}
}

// BenchmarkRun is BenchmarkCheck's workload through the streaming worker:
// one `cdcrecon run` process over the dumps loaded into an embedded broker
// (the load excluded), from its start until it has read every input
// record and every change and holds open exactly the ground truth's
// drift, which its drift topic must then show.
//
//	go test -run '^$' -bench 'BenchmarkCheck/check|BenchmarkRun' -benchtime 1x -count 3 ./cmd/cdcrecon
//
// It reports events/s and the worker's peak-RSS-B.
func BenchmarkRun(b *testing.B) {
	dir := benchWorkload(b)
	dumps, want, total := benchInputs(b, dir)
	bin := cliBinary(b)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		addr, stopBroker := benchLoaded(b, dumps)
		b.StartTimer()
		w := startBenchWorker(b, bin, dir, addr, b.TempDir())
		w.waitFor(b, 10*time.Minute, "all read and decided", done(total, len(want)))
		secs := time.Since(w.Started()).Seconds()
		b.StopTimer()
		rss := w.stop(b)
		checkFinalDrift(b, addr, want)
		stopBroker()
		b.ReportMetric(float64(total)/secs, "events/s")
		b.ReportMetric(rss, "peak-RSS-B")
	}
}

// BenchmarkWorkerRestart measures a crash: a worker (a static member,
// --instance-id) is killed with SIGKILL half-way through BenchmarkRun's
// workload and started again on its state at once. It reports
// resume-ingest-s (from the kill until the new process reads input again)
// and resume-s (until it also has opened every changes partition it owns
// on its state, and so publishes again), then requires the run to finish
// with exactly the ground truth's drift. BenchmarkStateRecovery measures
// the same for 1M keys, and moves.
//
//	go test -run '^$' -bench BenchmarkWorkerRestart -benchtime 1x -count 3 ./cmd/cdcrecon
func BenchmarkWorkerRestart(b *testing.B) {
	dir := benchWorkload(b)
	dumps, want, total := benchInputs(b, dir)
	bin := cliBinary(b)
	for range b.N {
		b.StopTimer()
		addr, stopBroker := benchLoaded(b, dumps)
		state := b.TempDir()
		w := startBenchWorker(b, bin, dir, addr, state, "--instance-id", "bench-1")
		m := w.waitFor(b, 10*time.Minute, "half read", func(m harness.Metrics) bool { return m.Sum("cdcrecon_events_total") >= float64(total/2) })
		killed := time.Now()
		w.Kill()
		if m.Sum("cdcrecon_events_total") >= float64(total) {
			b.Fatalf("the worker read the whole workload (%d records) before it was killed: too small to measure a resume", total)
		}
		w = startBenchWorker(b, bin, dir, addr, state, "--instance-id", "bench-1")
		w.waitFor(b, 5*time.Minute, "reading again", func(m harness.Metrics) bool { return m.Sum("cdcrecon_events_total") > 0 })
		ingest := time.Since(killed).Seconds()
		w.waitFor(b, 5*time.Minute, "rebuilt", rebuilt)
		resumed := time.Since(killed).Seconds()
		w.waitFor(b, 10*time.Minute, "all read", done(-1, -1))
		checkFinalDrift(b, addr, want)
		w.stop(b)
		checkFinalDrift(b, addr, want)
		stopBroker()
		b.ReportMetric(ingest, "resume-ingest-s")
		b.ReportMetric(resumed, "resume-s")
	}
}
