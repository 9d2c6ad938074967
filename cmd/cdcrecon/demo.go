package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cdcrecon/cdcrecon/cmd/cdcrecon/internal/harness"
	"github.com/cdcrecon/cdcrecon/pipeline/broker"
	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
	"github.com/cdcrecon/cdcrecon/pipeline/load"
	"github.com/cdcrecon/cdcrecon/pipeline/offline"
	"github.com/cdcrecon/cdcrecon/pipeline/ops"
	"github.com/cdcrecon/cdcrecon/pipeline/registry"
	"github.com/cdcrecon/cdcrecon/processors/config"
	"github.com/cdcrecon/cdcrecon/processors/simulate"
)

// demoOptions are the demo's flags.
type demoOptions struct {
	events, keys int
	seed         uint64
	timeout      time.Duration
	keep         bool
}

func newDemoCmd(g *globals) *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "See cdcrecon find drift: an embedded broker, simulated traffic and a worker, in one command",
		Long: strings.TrimSpace(`
Starts an embedded broker, simulates the Debezium topics of a
PostgreSQL-shaped source and a MySQL-shaped target with faults injected
(lost, corrupted and late replication, connector re-sends, poison
messages), loads them, and runs a streaming worker on them, showing its
progress every second: events read and their rate, lag, drift open and
resolved per table. Once the worker has read everything and decided, it
compares the drift left open with the simulator's ground truth and prints
the detection recall and precision, then where to look next.

It ends by itself (within a minute at the default sizes) or on Ctrl-C;
with --keep, the broker, the worker and the simulated dumps stay until
Ctrl-C. Exit status 0 when recall and precision are both 1, 1 when not.`),
		Example: examples(`
  cdcrecon demo
  cdcrecon demo --events 100000 --keys 20000
  # keep the broker and the worker up afterwards, to look around
  cdcrecon demo --keep`),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return demo(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.events, "events", 200000, "source row events to simulate")
	f.IntVar(&o.keys, "keys", 20000, "distinct rows over the three tables")
	f.Uint64Var(&o.seed, "seed", 1, "random seed of the simulation")
	f.DurationVar(&o.timeout, "timeout", 2*time.Minute, "give up when the worker has not finished by then")
	f.BoolVar(&o.keep, "keep", false, "keep the broker and the worker running after the result, until Ctrl-C")
	return cmd
}

func demo(ctx context.Context, g *globals, o demoOptions) error {
	fail := func(err error) error { return &exitError{code: exitFailure, err: err} }
	out := g.stdout
	dir, err := os.MkdirTemp("", "cdcrecon-demo-")
	if err != nil {
		return fail(err)
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}

	opts := simulate.Options{Seed: o.seed, Tables: 3, Keys: o.keys, Events: o.events, Partitions: 2,
		Faults: simulate.Faults{Drop: 0.002, Corrupt: 0.002, Delay: 0.01, Duplicate: 0.005, Poison: 5}}
	fmt.Fprintf(out, "simulating %d source events over %d rows in 3 tables, with faults, into %s\n", o.events, o.keys, dir)
	if err := simulateDumps(&globals{stdout: io.Discard, stderr: io.Discard, logLevel: "error"}, opts, dir); err != nil {
		return err
	}
	b, err := broker.Start(broker.Config{})
	if err != nil {
		return fail(err)
	}
	defer b.Close()
	cc := kafka.ClientConfig{Brokers: []string{b.Addr()}}
	p, err := load.New(cc, load.Options{})
	if err != nil {
		return fail(err)
	}
	for _, name := range []string{"source.jsonl", "target.jsonl"} {
		if _, err := p.File(ctx, filepath.Join(dir, name)); err != nil {
			p.Close()
			return fail(err)
		}
	}
	err = p.Flush(ctx)
	total := int(p.Produced.Load())
	p.Close()
	if err != nil {
		return fail(err)
	}
	fmt.Fprintf(out, "embedded broker on %s: %d messages loaded\n", b.Addr(), total)

	cfg, err := config.Load(filepath.Join(dir, "config.yaml"))
	if err != nil {
		return fail(err)
	}
	listen, err := harness.FreePort()
	if err != nil {
		return fail(err)
	}
	cfg.Kafka.Brokers, cfg.Kafka.Partitions = []string{b.Addr()}, 4
	cfg.State.Dir, cfg.HTTP.Listen = filepath.Join(dir, "state"), listen
	log, err := os.Create(filepath.Join(dir, "worker.log"))
	if err != nil {
		return fail(err)
	}
	defer log.Close()
	wctx, stopWorker := context.WithCancel(context.Background())
	defer stopWorker()
	exited := make(chan error, 1)
	go func() {
		exited <- runWorker(wctx, &globals{stdout: io.Discard, stderr: log, logLevel: g.logLevel}, cfg, nil)
	}()
	metrics := "http://" + listen + "/metrics"
	fmt.Fprintf(out, "worker running, metrics on %s\n\n", metrics)

	// Inputs: 6 topics of 2 partitions; changes: 4 partitions.
	const partitions = 6*2 + 4
	started := time.Now()
	deadline := time.NewTimer(o.timeout)
	defer deadline.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var last map[string]float64
	stable := 0
	prevEvents, prevAt := 0.0, started
	interrupted := false
wait:
	for {
		select {
		case <-ctx.Done():
			interrupted = true
			break wait
		case err := <-exited:
			return fail(fmt.Errorf("the worker stopped: %v (its log: %s)", err, log.Name()))
		case <-deadline.C:
			return fail(fmt.Errorf("the worker did not finish within %s (--timeout)", o.timeout))
		case <-tick.C:
		}
		m := harness.Scrape(metrics)
		if m == nil {
			continue
		}
		now := time.Now()
		fmt.Fprintln(out, progressLine(m, now.Sub(started), total, (m.Sum(ops.EventsTotal)-prevEvents)/now.Sub(prevAt).Seconds()))
		prevEvents, prevAt = m.Sum(ops.EventsTotal), now
		caughtUp := m.Sum(ops.EventsTotal) == float64(total) && m.Series(ops.ConsumerLagRecords) >= partitions &&
			m.Sum(ops.ConsumerLagRecords) == 0
		if caughtUp && last != nil && m.Sum(ops.DriftOpenedTotal) == last["opened"] && m.Sum(ops.DriftResolvedTotal) == last["resolved"] {
			stable++
		} else {
			stable = 0
		}
		last = map[string]float64{"opened": m.Sum(ops.DriftOpenedTotal), "resolved": m.Sum(ops.DriftResolvedTotal)}
		if stable >= 2 {
			break
		}
	}

	// What is open at the end, against the ground truth.
	history, err := offline.ReadDrift(context.Background(), cc, cfg.Topics.Drift, registry.NewSerde(nil))
	if err != nil {
		return fail(err)
	}
	truth, err := harness.TruthRows(filepath.Join(dir, "truth.jsonl"))
	if err != nil {
		return fail(err)
	}
	recall, precision, found := harness.Score(history, truth)
	state := "finished"
	if interrupted {
		state = "interrupted"
	}
	fmt.Fprintf(out, "\n%s after %s: %d drift records, %d rows drifted at the end; the ground truth has %d\n",
		state, time.Since(started).Round(100*time.Millisecond), len(history), found, len(truth))
	fmt.Fprintf(out, "recall %.2f  precision %.2f\n\n", recall, precision)
	fmt.Fprintf(out, "Where to look next:\n")
	if o.keep {
		fmt.Fprintf(out, "  cdcrecon check --config %[1]s/config.yaml %[1]s/source.jsonl %[1]s/target.jsonl    the same input, offline\n", dir)
	} else {
		fmt.Fprintf(out, "  cdcrecon simulate --out /tmp/cdcrecon-sim --events %d --keys %d --seed %d --partitions 2 --drop 0.002 --corrupt 0.002 --delay 0.01 --duplicate 0.005 --poison 5\n",
			o.events, o.keys, o.seed)
		fmt.Fprintf(out, "  cdcrecon check --config /tmp/cdcrecon-sim/config.yaml /tmp/cdcrecon-sim/source.jsonl /tmp/cdcrecon-sim/target.jsonl    the same input, offline\n")
	}
	if o.keep && !interrupted {
		fmt.Fprintf(out, "  cdcrecon tail --brokers %s --topic %s --decode --exit     the drift records\n", b.Addr(), cfg.Topics.Drift)
		fmt.Fprintf(out, "  cdcrecon tail --brokers %s --topic %s --decode --exit     the compensation commands\n", b.Addr(), cfg.Topics.Compensation)
		fmt.Fprintf(out, "  curl -s %s | grep ^cdcrecon_      the worker's metrics\n", metrics)
		fmt.Fprintf(out, "The broker and the worker stay up until Ctrl-C.\n")
		<-ctx.Done()
	} else {
		fmt.Fprintf(out, "  cdcrecon demo --keep    keeps the broker and the worker up, to tail the drift and compensation topics and read the metrics\n")
	}
	stopWorker()
	if err := <-exited; err != nil {
		return fail(err)
	}
	if !interrupted && (recall != 1 || precision != 1) {
		return &exitError{code: exitDrift, err: errors.New("detection was not perfect")}
	}
	return nil
}

func progressLine(m harness.Metrics, elapsed time.Duration, total int, rate float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%5.1fs  events %d/%d (%.0f/s)  lag %.0f  drift", elapsed.Seconds(), int(m.Sum(ops.EventsTotal)), total,
		rate, m.Sum(ops.ConsumerLagRecords))
	open, resolved := m.ByTable(ops.DriftOpenNow), m.ByTable(ops.DriftResolvedTotal)
	tables := make([]string, 0, len(open))
	for t := range open {
		tables = append(tables, t)
	}
	sort.Strings(tables)
	for _, t := range tables {
		fmt.Fprintf(&b, "  %s %.0f open/%.0f resolved", t, open[t], resolved[t])
	}
	if len(tables) == 0 {
		b.WriteString(" none yet")
	}
	return b.String()
}
