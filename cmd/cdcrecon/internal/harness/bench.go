// Package harness runs cdcrecon workers as processes of their own and
// judges them: a worker watched through its metrics, its peak resident set,
// drift scored against the simulator's ground truth, and the bench command
// built on them. The command's tests share it.
package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fastjson"

	"github.com/cdcrecon/cdcrecon/pipeline/broker"
	"github.com/cdcrecon/cdcrecon/pipeline/dump"
	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
	"github.com/cdcrecon/cdcrecon/pipeline/load"
	"github.com/cdcrecon/cdcrecon/pipeline/offline"
	"github.com/cdcrecon/cdcrecon/pipeline/ops"
	"github.com/cdcrecon/cdcrecon/pipeline/registry"
	"github.com/cdcrecon/cdcrecon/processors/changes"
	"github.com/cdcrecon/cdcrecon/processors/config"
	"github.com/cdcrecon/cdcrecon/processors/simulate"
	"github.com/cdcrecon/cdcrecon/schemas"
)

// Options are the bench command's flags.
type Options struct {
	Events, Keys, Partitions, Runs, Rate int
	Seed                                 uint64
	// Timeout bounds each part of a run.
	Timeout time.Duration
	// JSON, when set, is a file every run's figures are written to.
	JSON string
	// Bin is the cdcrecon binary the worker runs as.
	Bin string
	// Brokers, when set, is an empty Kafka cluster the throughput part
	// also runs on, after the embedded broker.
	Brokers []string
}

// ErrImperfect is Bench's error when a run's recall or precision is
// below 1.
var ErrImperfect = errors.New("detection was not perfect")

// The targets of a benchmark run on the reference machine.
const (
	targetEventsPerSec = 100_000
	targetP99          = time.Second
)

// Run is one run's figures.
type Run struct {
	EventsPerSec   float64 `json:"events_per_s"`
	WorkerSeconds  float64 `json:"worker_s"`
	BaselinePerSec float64 `json:"raw_consume_parse_records_per_s"`
	PeakRSS        float64 `json:"peak_rss_bytes"`
	Recall         float64 `json:"recall"`
	Precision      float64 `json:"precision"`
	ProducedPerSec float64 `json:"latency_produced_records_per_s"`
	LatencyP50     float64 `json:"latency_p50_ms"`
	LatencyP99     float64 `json:"latency_p99_ms"`
	LatencyMax     float64 `json:"latency_max_ms"`
	Latencies      int     `json:"latency_records"`
	ByHeartbeat    int     `json:"latency_records_decided_by_heartbeats"`
	LiveRecall     float64 `json:"latency_recall"`
	LivePrecision  float64 `json:"latency_precision"`
	// The throughput part on --brokers: events/s, recall and precision.
	BrokersEventsPerSec float64 `json:"brokers_events_per_s,omitempty"`
	BrokersRecall       float64 `json:"brokers_recall,omitempty"`
	BrokersPrecision    float64 `json:"brokers_precision,omitempty"`
}

// benchInput is the simulated input, in memory.
type benchInput struct {
	records    []dump.Record
	heartbeats []dump.Record
	config     []byte
	truth      map[string]bool
	inputs     []string // the input topics
	partitions int      // input partitions over all topics
	// owned is how many partitions the worker owns: every input one and
	// every changes one (the configuration's default count).
	owned int
}

// Bench runs the benchmark o describes, printing progress and figures to
// out. Its error is ErrImperfect when every run finished but one did not
// detect exactly the true drifts.
func Bench(ctx context.Context, o Options, out io.Writer) error {
	bin := o.Bin
	if bin == "" {
		var err error
		if bin, err = os.Executable(); err != nil {
			return err
		}
	}
	dir, err := os.MkdirTemp("", "cdcrecon-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	w, err := simulateWorkload(o)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "cdcrecon bench: %d source events over %d rows (seed %d): %d input records in %d topic partitions; %d drifts open at the end\n",
		o.Events, o.Keys, o.Seed, len(w.records), w.partitions, len(w.truth))

	var runs []Run
	for i := range o.Runs {
		runDir := filepath.Join(dir, fmt.Sprintf("run%d", i+1))
		r, err := benchOnce(ctx, bin, runDir, w, o, func(format string, args ...any) {
			fmt.Fprintf(out, "run %d/%d: %s\n", i+1, o.Runs, fmt.Sprintf(format, args...))
		})
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted in run %d", i+1)
			}
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		runs = append(runs, r)
		_ = os.RemoveAll(runDir)
	}
	printBench(out, o, runs)
	if o.JSON != "" {
		data, _ := json.MarshalIndent(map[string]any{"events": o.Events, "keys": o.Keys, "partitions": o.Partitions, "seed": o.Seed,
			"rate": o.Rate, "records": len(w.records), "runs": runs}, "", "  ")
		if err := os.WriteFile(o.JSON, append(data, '\n'), 0o644); err != nil {
			return fmt.Errorf("--json: %w", err)
		}
	}
	for _, r := range runs {
		if r.Recall != 1 || r.Precision != 1 || r.LiveRecall != 1 || r.LivePrecision != 1 ||
			len(o.Brokers) > 0 && (r.BrokersRecall != 1 || r.BrokersPrecision != 1) {
			return ErrImperfect
		}
	}
	return nil
}

// simulateWorkload generates the benchmark's workload: the simulator with
// the fault rates of the check benchmark, every message kept in memory.
func simulateWorkload(o Options) (*benchInput, error) {
	opts := simulate.Options{Seed: o.Seed, Tables: 3, Keys: o.Keys, Events: o.Events, Partitions: o.Partitions,
		Faults: simulate.Faults{Drop: 0.0005, Corrupt: 0.0005, Delay: 0.005, Duplicate: 0.001, Poison: 10}}
	cfg, err := simulate.Config(opts)
	if err != nil {
		return nil, err
	}
	w := &benchInput{config: []byte(cfg), truth: map[string]bool{}}
	topics := map[string]bool{}
	truth, err := simulate.Generate(opts, func(m simulate.Message) error {
		r := Record(m)
		w.records = append(w.records, r)
		if !topics[r.Topic] {
			topics[r.Topic] = true
			w.inputs = append(w.inputs, r.Topic)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, d := range truth.Drift {
		line, _ := json.Marshal(d)
		row, _ := RowOf(line)
		w.truth[row] = true
	}
	sort.Strings(w.inputs)
	w.partitions = len(w.inputs) * o.Partitions
	w.owned = w.partitions + config.Default().Kafka.Partitions
	// Heartbeats far past the last commit: every partition read to its end
	// is complete to there.
	const far = 4102444800000 // 2100-01-01
	for _, hb := range []struct{ topic, server string }{{"hb.source", "pg"}, {"hb.target", "mysql"}} {
		w.heartbeats = append(w.heartbeats, dump.Record{Topic: hb.topic,
			Key: fmt.Appendf(nil, `{"serverName":%q}`, hb.server), Value: fmt.Appendf(nil, `{"ts_ms":%d}`, far)})
	}
	return w, nil
}

// benchOnce is one run: throughput and baseline on one broker, latency on
// another.
func benchOnce(ctx context.Context, bin, dir string, w *benchInput, o Options, say func(string, ...any)) (Run, error) {
	var r Run
	if err := benchThroughput(ctx, bin, filepath.Join(dir, "throughput"), w, o, &r, say); err != nil {
		return r, fmt.Errorf("throughput: %w", err)
	}
	if err := benchLatency(ctx, bin, filepath.Join(dir, "latency"), w, o, &r, say); err != nil {
		return r, fmt.Errorf("latency: %w", err)
	}
	if len(o.Brokers) > 0 {
		if err := benchOnBrokers(ctx, bin, filepath.Join(dir, "brokers"), w, o, &r, say); err != nil {
			return r, fmt.Errorf("throughput on %v: %w", o.Brokers, err)
		}
	}
	return r, nil
}

// benchOnBrokers runs the throughput part's worker on --brokers: the same
// workload, loaded the same way, measured the same way.
func benchOnBrokers(ctx context.Context, bin, dir string, w *benchInput, o Options, r *Run, say func(string, ...any)) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	p, err := load.New(kafka.ClientConfig{Brokers: o.Brokers}, load.Options{})
	if err != nil {
		return err
	}
	details, err := p.Admin().ListTopics(ctx, w.inputs...)
	if err == nil {
		for _, t := range w.inputs {
			if d, ok := details[t]; ok && d.Err == nil {
				err = fmt.Errorf("topic %s exists already: --brokers needs a cluster without the workload's topics", t)
				break
			}
		}
	}
	if err != nil {
		p.Close()
		return err
	}
	if err := benchLoad(ctx, p, w, o, say); err != nil {
		return err
	}
	var sub Run
	if err := runBenchWorker(ctx, bin, dir, o.Brokers[0], w, o, &sub); err != nil {
		return err
	}
	r.BrokersEventsPerSec, r.BrokersRecall, r.BrokersPrecision = sub.EventsPerSec, sub.Recall, sub.Precision
	say("on %v: worker %.0f events/s, recall %.2f precision %.2f", o.Brokers, sub.EventsPerSec, sub.Recall, sub.Precision)
	return nil
}

// benchLoad produces the workload and its heartbeats with p, which it
// closes, creating the input topics with the workload's partitions.
func benchLoad(ctx context.Context, p *load.Loader, w *benchInput, o Options, say func(string, ...any)) error {
	defer p.Close()
	if err := benchTopics(ctx, p, w, o); err != nil {
		return err
	}
	loadStart := time.Now()
	err := p.Records(ctx, w.records, "workload", 1)
	if err == nil {
		err = p.Records(ctx, w.heartbeats, "heartbeats", 1)
	}
	if err != nil {
		return err
	}
	say("loaded %d records in %.1fs", len(w.records), time.Since(loadStart).Seconds())
	return nil
}

// runBenchWorker runs a worker process on the loaded workload at addr until
// it has read and decided everything, and sets r's events/s, seconds,
// peak RSS, recall and precision.
func runBenchWorker(ctx context.Context, bin, dir, addr string, w *benchInput, o Options, r *Run) error {
	wp, err := startBenchProcess(bin, dir, addr, w)
	if err != nil {
		return err
	}
	defer wp.Kill()
	// The first sample with events read starts the clock; those events
	// are not counted.
	var first time.Time
	var firstEvents float64
	_, err = wp.WaitFor(ctx, o.Timeout, "all read and decided", func(m Metrics) bool {
		if n := m.Sum(ops.EventsTotal); first.IsZero() && n > 0 {
			first, firstEvents = time.Now(), n
		}
		return Done(w.owned, len(w.records), len(w.truth))(m)
	})
	if err != nil {
		return err
	}
	end := time.Now()
	r.WorkerSeconds = end.Sub(wp.started).Seconds()
	if firstEvents < float64(len(w.records)) {
		r.EventsPerSec = (float64(len(w.records)) - firstEvents) / end.Sub(first).Seconds()
	} else {
		r.EventsPerSec = float64(len(w.records)) / r.WorkerSeconds
	}
	if r.PeakRSS, err = wp.Stop(); err != nil {
		return err
	}
	r.Recall, r.Precision, err = benchDetection(ctx, kafka.ClientConfig{Brokers: []string{addr}}, w.truth)
	return err
}

// benchBroker starts an embedded broker keeping its log in dir, as check's
// does, with the workload's topics created.
func benchBroker(ctx context.Context, dir string, w *benchInput, o Options) (*broker.Broker, *load.Loader, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	b, err := broker.Start(broker.Config{DataDir: filepath.Join(dir, "broker")})
	if err != nil {
		return nil, nil, err
	}
	p, err := load.New(kafka.ClientConfig{Brokers: []string{b.Addr()}}, load.Options{})
	if err != nil {
		b.Close()
		return nil, nil, err
	}
	if err := benchTopics(ctx, p, w, o); err != nil {
		p.Close()
		b.Close()
		return nil, nil, err
	}
	return b, p, nil
}

// benchTopics creates the workload's input topics and heartbeat topics.
func benchTopics(ctx context.Context, p *load.Loader, w *benchInput, o Options) error {
	var err error
	for _, t := range w.inputs {
		err = errors.Join(err, p.EnsurePartition(ctx, t, int32(o.Partitions-1)))
	}
	for _, hb := range w.heartbeats {
		err = errors.Join(err, p.EnsurePartition(ctx, hb.Topic, 0))
	}
	return err
}

// startBenchProcess starts a worker process on the workload against addr, with
// no wall-clock idle watermark and the heartbeat topics.
func startBenchProcess(bin, dir, addr string, w *benchInput) (*Process, error) {
	head := fmt.Sprintf("kafka: {brokers: [%s], group: bench}\nstate: {dir: %s}\n"+
		"idle: {safety_margin: 0s, interval: 100ms, heartbeats: {source: [hb.source], target: [hb.target]}}\n",
		addr, filepath.Join(dir, "state"))
	cfg := filepath.Join(dir, "worker.yaml")
	if err := os.WriteFile(cfg, append([]byte(head), w.config...), 0o644); err != nil {
		return nil, err
	}
	return StartProcess(bin, cfg, filepath.Join(dir, "worker.log"), "--log-level", "warn")
}

func benchThroughput(ctx context.Context, bin, dir string, w *benchInput, o Options, r *Run, say func(string, ...any)) error {
	b, p, err := benchBroker(ctx, dir, w, o)
	if err != nil {
		return err
	}
	defer b.Close()
	if err := benchLoad(ctx, p, w, o, say); err != nil {
		return err
	}
	if err := runBenchWorker(ctx, bin, dir, b.Addr(), w, o, r); err != nil {
		return err
	}
	say("worker: %.0f events/s (%.1fs from its start), peak RSS %s, recall %.2f precision %.2f",
		r.EventsPerSec, r.WorkerSeconds, mib(r.PeakRSS), r.Recall, r.Precision)

	n, secs, err := ConsumeParse(ctx, b.Addr(), w.inputs)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	r.BaselinePerSec = float64(n) / secs
	say("raw consume+parse: %.0f records/s", r.BaselinePerSec)
	return nil
}

// benchDetection scores the drift left open on the drift topic against
// the ground truth.
func benchDetection(ctx context.Context, cc kafka.ClientConfig, truth map[string]bool) (recall, precision float64, err error) {
	history, err := offline.ReadDrift(ctx, cc, "cdcrecon.drift", registry.NewSerde(nil))
	if err != nil {
		return 0, 0, err
	}
	recall, precision, _ = Score(history, truth)
	return recall, precision, nil
}

func benchLatency(ctx context.Context, bin, dir string, w *benchInput, o Options, r *Run, say func(string, ...any)) error {
	b, p, err := benchBroker(ctx, dir, w, o)
	if err != nil {
		return err
	}
	defer b.Close()
	defer p.Close()
	wp, err := startBenchProcess(bin, dir, b.Addr(), w)
	if err != nil {
		return err
	}
	defer wp.Kill()
	if _, err := wp.WaitFor(ctx, o.Timeout, "owning every partition", Done(w.owned, 0, 0)); err != nil {
		return err
	}
	cctx, stopConsumer := context.WithCancel(ctx)
	defer stopConsumer()
	seen := &arrivals{}
	consumed := make(chan error, 1)
	go func() { consumed <- seen.consume(cctx, b.Addr(), "cdcrecon.drift") }()

	// Produce at the rate, in commit order; each batch's acknowledgement
	// is when its events are in the broker.
	marks := newWatermarks(w.partitions)
	start := time.Now()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for sent := 0; sent < len(w.records); {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		due := min(len(w.records), int(time.Since(start).Seconds()*float64(o.Rate)))
		if due <= sent {
			continue
		}
		batch := w.records[sent:due]
		if err := p.Records(ctx, batch, "workload", sent+1); err != nil {
			return err
		}
		marks.observe(batch, time.Now())
		sent = due
	}
	r.ProducedPerSec = float64(len(w.records)) / time.Since(start).Seconds()
	if err := p.Records(ctx, w.heartbeats, "heartbeats", 1); err != nil {
		return err
	}
	marks.end(time.Now())
	if _, err := wp.WaitFor(ctx, o.Timeout, "all read and decided", Done(w.owned, len(w.records), len(w.truth))); err != nil {
		return err
	}
	if _, err := wp.Stop(); err != nil {
		return err
	}
	cc := kafka.ClientConfig{Brokers: []string{b.Addr()}}
	if err := seen.await(ctx, cc, "cdcrecon.drift", consumed); err != nil {
		return err
	}
	stopConsumer()

	serde := registry.NewSerde(nil)
	var lat []time.Duration
	var history []*schemas.Drift
	for _, a := range seen.got {
		rec, _, _, err := serde.Decode(ctx, a.value)
		if err != nil {
			return fmt.Errorf("drift topic: %w", err)
		}
		d, ok := rec.(*schemas.Drift)
		if !ok {
			continue
		}
		history = append(history, d)
		at, ok := marks.decidable(offline.Instant(d).UnixMilli())
		if !ok {
			return fmt.Errorf("drift %s (%s at %s) was published, but no input had passed its instant", d.ID, d.Status, offline.Instant(d).Format(time.RFC3339Nano))
		}
		lat = append(lat, a.at.Sub(at))
		if at.Equal(marks.steps[len(marks.steps)-1].at) {
			r.ByHeartbeat++
		}
	}
	offline.SortHistory(history)
	r.LiveRecall, r.LivePrecision, _ = Score(history, w.truth)
	slices.Sort(lat)
	r.Latencies = len(lat)
	r.LatencyP50, r.LatencyP99 = millis(Percentile(lat, 50)), millis(Percentile(lat, 99))
	if len(lat) > 0 {
		r.LatencyMax = millis(lat[len(lat)-1])
	}
	say("latency at %.0f records/s: %d drift records (%d decidable only by the closing heartbeats), p50 %.0f ms, p99 %.0f ms, max %.0f ms; recall %.2f precision %.2f",
		r.ProducedPerSec, r.Latencies, r.ByHeartbeat, r.LatencyP50, r.LatencyP99, r.LatencyMax, r.LiveRecall, r.LivePrecision)
	return nil
}

// Percentile is the nearest-rank Percentile of sorted durations.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mib(b float64) string { return fmt.Sprintf("%.0f MiB", b/(1<<20)) }

// watermarks follows, as records are acknowledged, the smallest over the
// input partitions of the latest commit time each holds: the engine's
// bound on what both sides have completed.
type watermarks struct {
	partitions int
	latest     map[string]int64
	steps      []step // the bound rose to bound at at
	p          fastjson.Parser
}

type step struct {
	bound int64
	at    time.Time
}

func newWatermarks(partitions int) *watermarks {
	return &watermarks{partitions: partitions, latest: map[string]int64{}}
}

// observe takes records the broker acknowledged at at.
func (m *watermarks) observe(recs []dump.Record, at time.Time) {
	for _, r := range recs {
		if r.Value == nil {
			continue
		}
		v, err := m.p.ParseBytes(r.Value)
		if err != nil || !v.Exists("source", "ts_ms") {
			continue // poison: no event time
		}
		k := changes.InputName(r.Topic, r.Partition)
		if t, ok := m.latest[k]; !ok || v.GetInt64("source", "ts_ms") > t {
			m.latest[k] = v.GetInt64("source", "ts_ms")
		}
	}
	if len(m.latest) < m.partitions {
		return
	}
	bound := int64(math.MaxInt64)
	for _, t := range m.latest {
		bound = min(bound, t)
	}
	if len(m.steps) == 0 || bound > m.steps[len(m.steps)-1].bound {
		m.steps = append(m.steps, step{bound, at})
	}
}

// end is the heartbeats' acknowledgement: everything is complete.
func (m *watermarks) end(at time.Time) { m.steps = append(m.steps, step{math.MaxInt64, at}) }

// decidable is when an instant t became decidable: when every input
// partition first held an event committed after t.
func (m *watermarks) decidable(t int64) (time.Time, bool) {
	i := sort.Search(len(m.steps), func(i int) bool { return m.steps[i].bound > t })
	if i == len(m.steps) {
		return time.Time{}, false
	}
	return m.steps[i].at, true
}

// arrivals records when each record of a topic reached a consumer.
type arrivals struct {
	mu  sync.Mutex
	got []arrival
}

type arrival struct {
	value []byte
	at    time.Time
}

func (a *arrivals) consume(ctx context.Context, addr, topic string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		now := time.Now()
		if ctx.Err() != nil {
			return nil
		}
		if err := fs.Err0(); err != nil {
			return err
		}
		a.mu.Lock()
		for it := fs.RecordIter(); !it.Done(); {
			a.got = append(a.got, arrival{it.Next().Value, now})
		}
		a.mu.Unlock()
	}
}

// await waits until the consumer has received every record the topic
// holds.
func (a *arrivals) await(ctx context.Context, cc kafka.ClientConfig, topic string, consumed <-chan error) error {
	cl, err := kgo.NewClient(cc.ClientOpts()...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return err
	}
	var want int64
	ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
	for deadline := time.Now().Add(time.Minute); ; {
		a.mu.Lock()
		n := int64(len(a.got))
		a.mu.Unlock()
		if n >= want {
			return nil
		}
		select {
		case err := <-consumed:
			return fmt.Errorf("consuming %s: %v", topic, err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("consuming %s: %d of %d records within a minute", topic, n, want)
		}
	}
}

// printBench prints the medians, each run's figures and the targets.
func printBench(out io.Writer, o Options, runs []Run) {
	row := func(name string, unit func(float64) string, target string, met func(float64) bool, get func(Run) float64) {
		vals := make([]float64, len(runs))
		for i, r := range runs {
			vals[i] = get(r)
		}
		each := make([]string, len(vals))
		for i, v := range vals {
			each[i] = unit(v)
		}
		med := Median(vals)
		verdict := ""
		if met != nil {
			verdict = "met"
			if !met(med) {
				verdict = "MISSED"
			}
		}
		fmt.Fprintf(out, "%-36s %12s   %-8s %s   runs: %s\n", name, unit(med), target, verdict, strings.Join(each, " "))
	}
	num := func(v float64) string { return fmt.Sprintf("%.0f", v) }
	ms := func(v float64) string { return fmt.Sprintf("%.0f ms", v) }
	two := func(v float64) string { return fmt.Sprintf("%.2f", v) }
	one := func(v float64) bool { return v == 1 }
	fmt.Fprintf(out, "\nmedians of %d runs\n", len(runs))
	row("worker events/s", num, ">= 100k", func(v float64) bool { return v >= targetEventsPerSec }, func(r Run) float64 { return r.EventsPerSec })
	if len(o.Brokers) > 0 {
		row("worker events/s on --brokers", num, "", nil, func(r Run) float64 { return r.BrokersEventsPerSec })
	}
	row("raw consume+parse records/s", num, "", nil, func(r Run) float64 { return r.BaselinePerSec })
	row("worker / raw", two, "", nil, func(r Run) float64 { return r.EventsPerSec / r.BaselinePerSec })
	row("worker peak RSS", mib, "", nil, func(r Run) float64 { return r.PeakRSS })
	row(fmt.Sprintf("detection latency p50 (%dk rec/s)", o.Rate/1000), ms, "", nil, func(r Run) float64 { return r.LatencyP50 })
	row("detection latency p99", ms, "<= 1 s", func(v float64) bool { return v <= millis(targetP99) }, func(r Run) float64 { return r.LatencyP99 })
	row("detection latency max", ms, "", nil, func(r Run) float64 { return r.LatencyMax })
	row("recall", two, "1.0", one, func(r Run) float64 { return min(r.Recall, r.LiveRecall) })
	row("precision", two, "1.0", one, func(r Run) float64 { return min(r.Precision, r.LivePrecision) })
}

// Median is the median of v.
func Median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Record is a simulated message as a kcat -J dump's record.
func Record(m simulate.Message) dump.Record {
	return dump.Record{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Timestamp: m.Timestamp, Key: m.Key, Value: m.Value}
}
