package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/pipeline/apply"
	"github.com/cdcrecon/cdcrecon/pipeline/ops"
	"github.com/cdcrecon/cdcrecon/pipeline/registry"
	"github.com/cdcrecon/cdcrecon/schemas"
)

func newApplyCmd(g *globals) *cobra.Command {
	var cfgFile, table, listen, instanceID string
	var dry, exit bool
	var limit int
	var rate float64
	cmd := &cobra.Command{
		Use:   "apply --config FILE [--dry-run] [--table T] [--limit N] [--rate R]",
		Short: "Repair the target databases from the compensation topic",
		Long: strings.TrimSpace(`
Reads the compensation topic as a consumer group (apply.group, default
<kafka.group>-apply) and runs each command against its table's target
database (tables[].target.database, or apply.database for all), in one
transaction per command:

  - it reads the target row, locked, and maps it as the table's target
    side maps Debezium's events;
  - compare-and-set: only while that row is as the command's drift
    recorded it (the compared columns equal, or still absent or present)
    does it write; otherwise the command is superseded, since someone or
    replication changed the row after the drift. Replaying the topic
    therefore applies nothing twice;
  - only drifts still open are applied, only confirmed ones when the table
    re-reads its drifts, and only under the policy in force (a command
    decided under another policy version is skipped); columns the table
    does not compare are never written;
  - every value is written as the target column's type takes it and must
    read back equal under the normalisation, or the command fails with
    nothing written.

One key's commands run in order; commands of different keys run
concurrently up to apply.concurrency, at most apply.rate (or --rate) per
second. A transient database error is retried apply.retries times with
backoff; a permanent one (a constraint, a missing column) fails the command,
recorded, and the others go on. Every outcome — applied, superseded,
skipped, failed — goes to the audit topic (topics.audit), then the batch's
offsets are committed: a crash repeats at most the batch under way, whose
applied commands are then found superseded.

--dry-run prints each command from the group's committed offsets to the
topic's end with the statement and parameters it would run (redacted
columns masked) and whether compare-and-set lets it through, and a summary
per table; it reads the target databases and writes nothing, publishes
nothing and commits nothing. --table runs one table's commands under a
group of its own (<group>.<table>). Without --exit or --limit, apply runs
until SIGINT or SIGTERM.

Exit codes: 0 done, 1 a command failed (with --exit, --limit or
--dry-run), 2 usage, configuration or connection error.`),
		Example: examples(`
  # what would run, changing nothing
  cdcrecon apply --config cdcrecon.yaml --dry-run

  # repair what the topic holds now, then stop
  TARGET_PASSWORD=secret cdcrecon apply --config cdcrecon.yaml --exit

  # run continuously, one table, at most 10 commands a second
  cdcrecon apply --config cdcrecon.yaml --table orders --rate 10`),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cfgFile)
			if err != nil {
				return err
			}
			if rate < 0 {
				return usageError("--rate: must be positive, got %g", rate)
			}
			if rate > 0 {
				cfg.Apply.Rate = rate
			}
			if limit < 0 {
				return usageError("--limit: must not be negative, got %d", limit)
			}
			if instanceID == "" {
				host, _ := os.Hostname()
				instanceID = fmt.Sprintf("%s-%d", host, os.Getpid())
			}
			log, err := g.logger()
			if err != nil {
				return usageError("%v", err)
			}
			fail := func(err error) error { return &exitError{code: exitFailure, err: err} }
			cc, err := kafkaClient(cfg, log)
			if err != nil {
				return fail(err)
			}
			rc, err := registry.NewClient(cfg.SchemaRegistry)
			if err != nil {
				return fail(err)
			}
			ctx := cmd.Context()
			if !dry {
				if err := ensureAudit(ctx, cc.ClientOpts(), cfg.Topics.Compensation, cfg.Topics.Audit); err != nil {
					return fail(err)
				}
			}
			var metrics *ops.Metrics
			if listen != "" && !dry {
				metrics = ops.NewMetrics()
				srv, err := ops.Serve(listen, metrics, func() error { return nil })
				if err != nil {
					return usageError("--http-listen: %v", err)
				}
				defer srv.Close(context.Background())
			}
			sum, err := apply.Run(ctx, apply.Options{Config: cfg, Client: cc, Serde: registry.NewSerde(rc), InstanceID: instanceID,
				DryRun: dry, Table: table, Limit: limit, Exit: exit, Out: g.stdout, Logger: log, Metrics: metrics})
			if err != nil {
				return fail(err)
			}
			apply.WriteSummary(g.stdout, sum, dry)
			if sum.Total(schemas.Failed) > 0 {
				return &exitError{code: exitDrift, err: fmt.Errorf("%d commands failed", sum.Total(schemas.Failed))}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgFile, "config", "", "configuration file (required)")
	cmd.Flags().BoolVar(&dry, "dry-run", false, "print what each command would do, reading the targets and writing nothing")
	cmd.Flags().StringVar(&table, "table", "", "apply only this table's commands, under a consumer group of its own")
	cmd.Flags().IntVar(&limit, "limit", 0, "stop after this many commands (0: no limit)")
	cmd.Flags().Float64Var(&rate, "rate", 0, "commands per second at most, instead of apply.rate")
	cmd.Flags().BoolVar(&exit, "exit", false, "stop once the commands on the topic at start are decided")
	cmd.Flags().StringVar(&instanceID, "instance-id", "", "this applier's name in audit records (default host-pid)")
	cmd.Flags().StringVar(&listen, "http-listen", "", "serve /metrics on this host:port")
	return cmd
}

// ensureAudit creates the audit topic when missing, with the compensation
// topic's partition count: a key's audit records then keep its order.
func ensureAudit(ctx context.Context, opts []kgo.Opt, compensation, audit string) error {
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	td, err := adm.ListTopics(ctx, compensation, audit)
	if err != nil {
		return fmt.Errorf("listing topics: %w", err)
	}
	if td.Has(audit) && td[audit].Err == nil {
		return nil
	}
	parts := int32(1)
	if c, ok := td[compensation]; ok && c.Err == nil {
		parts = int32(len(c.Partitions))
	}
	resp, err := adm.CreateTopic(ctx, parts, -1, nil, audit)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("creating the audit topic %s: %w", audit, err)
	}
	return nil
}
