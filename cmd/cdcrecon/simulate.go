package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/spf13/cobra"

	"github.com/cdcrecon/cdcrecon/cmd/cdcrecon/internal/harness"
	"github.com/cdcrecon/cdcrecon/pipeline/dump"
	"github.com/cdcrecon/cdcrecon/processors/simulate"
)

func newSimulateCmd(g *globals) *cobra.Command {
	var (
		opts simulate.Options
		out  string
	)
	cmd := &cobra.Command{
		Use:   "simulate --out DIR [flags]",
		Short: "Generate Debezium traffic with injected faults and its ground truth",
		Long: strings.TrimSpace(`
Generates the Debezium change topics of a PostgreSQL-shaped source and a
MySQL-shaped target replicated from it (JsonConverter, no schemas), with
faults injected at the given rates, and writes into DIR:

  config.yaml    a configuration that reconciles them
  source.jsonl   the source topics, as a kcat -J dump
  target.jsonl   the target topics, as a kcat -J dump
  truth.jsonl    the rows drifted at the end: table, key, and how the final
                 rows differ (kind, columns)

The target lags the source within the grace unless an event is delayed.
The same flags give the same bytes. --events counts the source's row
events; the target writes about as many, less those dropped.`),
		Example: examples(`
  cdcrecon simulate --out /tmp/sim --events 20000 --keys 4000 --drop 0.001 --corrupt 0.001 --duplicate 0.01 --poison 3
  cdcrecon check --config /tmp/sim/config.yaml /tmp/sim/source.jsonl /tmp/sim/target.jsonl`),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usageError("--out is required")
			}
			return simulateDumps(g, opts, out)
		},
	}
	f := cmd.Flags()
	f.StringVar(&out, "out", "", "directory to write config.yaml, source.jsonl, target.jsonl and truth.jsonl into (required)")
	f.Uint64Var(&opts.Seed, "seed", 1, "random seed; the same seed and sizes give the same output")
	f.IntVar(&opts.Tables, "tables", 3, "tables, 1 to 3: orders, customers, payments")
	f.IntVar(&opts.Keys, "keys", 1000, "distinct rows over all tables")
	f.IntVar(&opts.Events, "events", 10000, "row events written by the source")
	f.IntVar(&opts.Partitions, "partitions", 1, "partitions of every input topic")
	f.IntVar(&opts.Rate, "rate", 1000, "source events per second of event time")
	f.DurationVar(&opts.Grace, "grace", 0, "the configuration's grace (default 30s)")
	f.Float64Var(&opts.Faults.Drop, "drop", 0, "probability that the target loses an event")
	f.Float64Var(&opts.Faults.Corrupt, "corrupt", 0, "probability that the target writes one wrong value")
	f.Float64Var(&opts.Faults.Delay, "delay", 0, "probability that the target applies a key's last event beyond the grace")
	f.Float64Var(&opts.Faults.Duplicate, "duplicate", 0, "probability, per event, that the connector restarts and re-sends its latest events")
	f.IntVar(&opts.Faults.Poison, "poison", 0, "malformed messages to spread over the topics")
	return cmd
}

func simulateDumps(g *globals, opts simulate.Options, out string) error {
	fail := func(err error) error { return &exitError{code: exitFailure, err: err} }
	cfg, err := simulate.Config(opts)
	if err != nil {
		return usageError("--%v", err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fail(fmt.Errorf("creating --out: %w", err))
	}
	if err := os.WriteFile(filepath.Join(out, "config.yaml"), []byte(cfg), 0o644); err != nil {
		return fail(err)
	}
	files := map[bool]*bufio.Writer{}
	for _, side := range []struct {
		source bool
		name   string
	}{{true, "source.jsonl"}, {false, "target.jsonl"}} {
		f, err := os.Create(filepath.Join(out, side.name))
		if err != nil {
			return fail(err)
		}
		defer f.Close()
		w := bufio.NewWriterSize(f, 1<<20)
		files[side.source] = w
	}
	var written atomic.Int64
	stop := progress(g.stderr, "generated", &written)
	var line []byte
	truth, err := simulate.Generate(opts, func(m simulate.Message) error {
		written.Add(1)
		r := harness.Record(m)
		line = dump.AppendLine(line[:0], r)
		_, err := files[strings.HasPrefix(r.Topic, "pg.")].Write(line)
		return err
	})
	stop()
	if err != nil {
		return fail(err)
	}
	for _, w := range files {
		if err := w.Flush(); err != nil {
			return fail(fmt.Errorf("writing dumps: %w", err))
		}
	}
	var tb []byte
	for _, d := range truth.Drift {
		j, _ := json.Marshal(d)
		tb = append(append(tb, j...), '\n')
	}
	if err := os.WriteFile(filepath.Join(out, "truth.jsonl"), tb, 0o644); err != nil {
		return fail(err)
	}
	fmt.Fprintf(g.stdout, "wrote %d messages to %s: %d source and %d target row events, %d tombstones, %d duplicates, %d poison; faults: %d dropped, %d corrupted, %d delayed; %d drifts open at the end (truth.jsonl)\n",
		truth.Records(), out, truth.SourceEvents, truth.TargetEvents, truth.Tombstones, truth.Duplicates, truth.Poison,
		truth.Dropped, truth.Corrupted, truth.Delayed, len(truth.Drift))
	return nil
}
