package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync/atomic"

	"github.com/spf13/cobra"

	"github.com/cdcrecon/cdcrecon/pipeline/dump"
	"github.com/cdcrecon/cdcrecon/pipeline/offline"
	"github.com/cdcrecon/cdcrecon/processors/config"
	"github.com/cdcrecon/cdcrecon/schemas"
)

func newCheckCmd(g *globals) *cobra.Command {
	var (
		cfgFile, reportFile, dlqFile, policyFile string
		maxRecord                                int
		history                                  bool
	)
	cmd := &cobra.Command{
		Use:   "check --config FILE [--history] [--report FILE] [--dlq FILE] [--policy OTHER.yaml] DUMP...",
		Short: "Reconcile topic dumps offline and print the drift",
		Long: strings.TrimSpace(`
Runs the reconciliation pipeline over dumps of the source and target topics
in kcat's -J line format, as the streaming worker would over the topics:
the same stages, over a Kafka-protocol broker started in this process, with
its state in a temporary directory (a check always starts clean). The end
of the dumps is the end of input: final states are compared.

Prints one JSON object per drift still open at the end (with --history,
every opened and resolved record, in order of their instants): id, table,
key, kind, columns, status, opened_at, resolved_at, the source and target
rows (redacted columns as digests), and a reason.

Malformed messages are named on stderr by topic/partition/offset with the
reason, written to --dlq as kcat -J lines (with a cdcrecon.reason header),
counted as invalid, and never stop the run. Exit status: 0 when no drift is
open, 1 when drift is open, 2 on usage, configuration or I/O errors (a dump
line that cannot be read included).

With --policy OTHER.yaml, check decides the dumps twice, under the
configuration's policies and under OTHER's (a file of policies by table,
"tables: {orders: {rule: manual}}"; tables it leaves out keep theirs), and
prints, for each drift the two decide differently, one JSON object with
both decisions and compensation commands ("current", "other"). Nothing is
published. Exit status then: 0 when OTHER changes no compensation, 1 when
it does.`),
		Example: examples(`
  cdcrecon check --config examples/orders.yaml examples/dumps/source.jsonl examples/dumps/target.jsonl
  cdcrecon check --config examples/orders.yaml --history --report report.json --dlq bad.jsonl examples/dumps/*.jsonl
  cdcrecon check --config examples/orders.yaml --policy examples/policy/manual.yaml examples/dumps/source.jsonl examples/policy/target.jsonl`),
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, dumps []string) error {
			cfg, err := loadConfig(cfgFile)
			if err != nil {
				return err
			}
			if err := checkMaxRecord(maxRecord); err != nil {
				return err
			}
			o := checkOptions{history, reportFile, dlqFile, maxRecord}
			if policyFile != "" {
				other, err := cfg.WithPolicies(policyFile)
				if err != nil {
					return &exitError{code: exitFailure, err: err}
				}
				return checkPolicy(cmd.Context(), g, cfg, other, dumps, o)
			}
			return check(cmd.Context(), g, cfg, dumps, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgFile, "config", "", "configuration file (required)")
	f.BoolVar(&history, "history", false, "print every opened and resolved drift record, in order, not only the drift open at the end")
	f.StringVar(&reportFile, "report", "", "write a JSON summary (events, duplicates, invalid, open_drift, resolved_drift, ...) to this file")
	f.StringVar(&dlqFile, "dlq", "", "write malformed messages to this file as kcat -J lines")
	f.StringVar(&policyFile, "policy", "", "decide the dumps under this file's policies too, and print what compensation they would change")
	f.IntVar(&maxRecord, "max-record-bytes", offline.DefaultMaxRecord,
		"the largest record (key, value, headers and about 100 bytes of framing) a dump may hold; a larger one is a bad line")
	return cmd
}

type checkOptions struct {
	history             bool
	reportFile, dlqFile string
	maxRecord           int
}

// check runs offline.Check and prints its drift: the records open at the
// end, or with --history every record.
func check(ctx context.Context, g *globals, cfg *config.Config, dumps []string, o checkOptions) error {
	res, err := runCheck(ctx, g, cfg, dumps, o)
	if err != nil {
		return err
	}
	return printDrift(g, res, o)
}

// runCheck runs offline.Check over the dumps, writing --dlq.
func runCheck(ctx context.Context, g *globals, cfg *config.Config, dumps []string, o checkOptions) (*offline.Result, error) {
	log, err := g.logger()
	if err != nil {
		return nil, usageError("%v", err)
	}
	fail := func(err error) error { return &exitError{code: exitFailure, err: err} }
	var dlq *bufio.Writer
	if o.dlqFile != "" {
		f, err := os.Create(o.dlqFile)
		if err != nil {
			return nil, fail(fmt.Errorf("creating --dlq file: %w", err))
		}
		defer f.Close()
		dlq = bufio.NewWriter(f)
		defer dlq.Flush()
	}
	res, err := offline.Check(ctx, offline.Options{
		Config: cfg, Dumps: dumps, Stdin: g.stdin, MaxRecord: o.maxRecord, LimitName: "--max-record-bytes", Logger: log, Warn: g.stderr,
		Progress: func(label string, n *atomic.Int64) func() { return progress(g.stderr, label, n) },
		OnInvalid: func(d *schemas.DeadLetter) {
			if dlq == nil {
				return
			}
			rec := dump.Record{Topic: d.Topic, Partition: d.Partition, Offset: d.Offset, Timestamp: d.Timestamp, Key: d.Key, Value: d.Value}
			for _, h := range d.Headers {
				rec.Headers = append(rec.Headers, dump.Header{Key: h.Key, Value: h.Value})
			}
			rec.Headers = append(rec.Headers, dump.Header{Key: "cdcrecon.reason", Value: []byte(d.Reason)})
			_, _ = dlq.Write(dump.AppendLine(nil, rec))
		},
	})
	if err != nil {
		return nil, fail(err)
	}
	return res, nil
}

func printDrift(g *globals, res *offline.Result, o checkOptions) error {
	fail := func(err error) error { return &exitError{code: exitFailure, err: err} }
	shown := res.Open
	if o.history {
		shown = res.History
	}
	if err := printJSONLines(g, shown); err != nil {
		return err
	}
	if o.reportFile != "" {
		b, _ := json.MarshalIndent(res.Report, "", "  ")
		if err := os.WriteFile(o.reportFile, append(b, '\n'), 0o644); err != nil {
			return fail(fmt.Errorf("writing --report: %w", err))
		}
	}
	if err := res.Compared(); err != nil {
		return fail(err)
	}
	switch {
	case res.BadLines > 0:
		return fail(fmt.Errorf("%d dump lines could not be read and were skipped", res.BadLines))
	case len(res.Open) > 0:
		return &exitError{code: exitDrift}
	}
	return nil
}

// printJSONLines writes one JSON object per item on stdout.
func printJSONLines[T any](g *globals, items []T) error {
	out := bufio.NewWriter(g.stdout)
	for _, it := range items {
		line, err := json.Marshal(it)
		if err != nil {
			return &exitError{code: exitFailure, err: err}
		}
		out.Write(append(line, '\n'))
	}
	if err := out.Flush(); err != nil {
		return &exitError{code: exitFailure, err: fmt.Errorf("writing output: %w", err)}
	}
	return nil
}
