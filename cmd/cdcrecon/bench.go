package main

import (
	"errors"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cdcrecon/cdcrecon/cmd/cdcrecon/internal/harness"
)

func newBenchCmd(g *globals) *cobra.Command {
	var o harness.Options
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the streaming worker: events/s, detection latency, peak RSS, recall and precision",
		Long: strings.TrimSpace(`
Simulates a fixed workload (the seed makes it the same bytes every time)
and measures a worker process ("cdcrecon run") on it against an embedded
broker, --runs times, then prints the median and every run's figure.

Each run has three parts:

  throughput  The workload is loaded first; a new worker reads all of it.
              events/s counts every input record from the first one the
              worker's metrics show read until it has read all and decided
              every drift. Peak RSS is the worker's VmHWM. Recall and
              precision compare the drift left open with the ground truth.
  baseline    The same topics, read to their end by a plain franz-go
              consumer that parses each key and value with fastjson: the
              raw consume+parse rate, measured on the same broker.
  latency     A new worker on empty topics; the workload is produced at
              --rate records/s in its commit order, then a heartbeat per
              side. A drift becomes decidable when every input partition
              of both sides holds an event committed after the drift's
              instant (or the heartbeat passed it): the moment the broker
              acknowledged that event. Its latency runs from then until a
              consumer of the drift topic receives the record. Opened and
              resolved records both count.

The worker runs with no wall-clock idle watermark (idle.safety_margin 0),
as the simulated commit times are not the wall clock. Exit status 1 when
a run's recall or precision is below 1; the speed targets (>= 100k
events/s, p99 latency <= 1s) are reported, not enforced.`),
		Example: examples(`
  cdcrecon bench
  cdcrecon bench --runs 1 --events 100000 --keys 20000
  cdcrecon bench --json bench.json`),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Runs < 1 || o.Rate < 1 || o.Partitions < 1 {
				return usageError("--runs, --rate and --partitions must be at least 1")
			}
			if len(o.Brokers) > 0 && o.Runs != 1 {
				return usageError("--brokers takes --runs 1: each run needs a cluster without the workload's topics")
			}
			err := harness.Bench(cmd.Context(), o, g.stdout)
			switch {
			case errors.Is(err, harness.ErrImperfect):
				return &exitError{code: exitDrift, err: err}
			case err != nil:
				return &exitError{code: exitFailure, err: err}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Events, "events", 300000, "source row events to simulate (the target's follow them)")
	f.IntVar(&o.Keys, "keys", 60000, "distinct rows over the three tables")
	f.IntVar(&o.Partitions, "partitions", 2, "partitions of each input topic")
	f.IntVar(&o.Runs, "runs", 3, "runs to take the median of")
	f.IntVar(&o.Rate, "rate", 50000, "records/s the latency part produces")
	f.Uint64Var(&o.Seed, "seed", 1, "random seed of the simulation")
	f.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "give up on a part of a run after this long")
	f.StringVar(&o.JSON, "json", "", "also write every run's figures to this file, as JSON")
	f.StringSliceVar(&o.Brokers, "brokers", nil, "also run the throughput part on this Kafka cluster (host:port, comma separated), which must not have the workload's topics; with --runs 1")
	f.StringVar(&o.Bin, "worker-binary", "", "the cdcrecon binary to run the worker with (default: this one)")
	_ = f.MarkHidden("worker-binary")
	return cmd
}
