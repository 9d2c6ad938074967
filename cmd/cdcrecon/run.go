package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/pipeline/ops"
	"github.com/cdcrecon/cdcrecon/pipeline/registry"
	"github.com/cdcrecon/cdcrecon/pipeline/topology"
	"github.com/cdcrecon/cdcrecon/processors/config"
	"github.com/cdcrecon/cdcrecon/processors/state"
)

// shutdownTimeout bounds a graceful stop: draining the handlers under way,
// committing, flushing and closing.
const shutdownTimeout = 10 * time.Second

func newRunCmd(g *globals) *cobra.Command {
	var cfgFile string
	cmd := &cobra.Command{
		Use:   "run --config FILE",
		Short: "Run the streaming worker",
		Long: strings.TrimSpace(`
Runs the reconciliation pipeline against Kafka until SIGINT or SIGTERM: the
ingest stage on the source and target topics of every table, the reconcile
stage on the changes topic, drift, compensation and checksum records on the
output topics as the watermarks of both sides allow.

At start it creates the internal topics that are missing (the changes
topic with kafka.partitions partitions, the output topics) and refuses a
changes topic whose partition count differs from kafka.partitions, or an
input topic that does not exist. Its state (dedupe marks, reconciler keys)
lives in state.dir.

On SIGINT or SIGTERM it stops taking new batches, lets those under way
finish, commits and closes, within 10 seconds.

This first version rebuilds the reconciler's state from the start of the
changes topic each time it starts (outputs are emitted again, under the
same ids), and a side with no traffic holds back the decisions that need
its watermark.`),
		Example: examples(`
  # the example topics in a local broker, then the worker on them (Ctrl-C stops it)
  cdcrecon broker &
  cdcrecon produce examples/dumps/source.jsonl examples/dumps/target.jsonl
  cdcrecon run --config examples/orders.yaml --log-level info`),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cfgFile)
			if err != nil {
				return err
			}
			return runWorker(cmd.Context(), g, cfg)
		},
	}
	cmd.Flags().StringVar(&cfgFile, "config", "", "configuration file (required)")
	return cmd
}

func runWorker(ctx context.Context, g *globals, cfg *config.Config) error {
	fail := func(err error) error { return &exitError{code: exitFailure, err: err} }
	log, err := g.logger()
	if err != nil {
		return usageError("%v", err)
	}
	cc, err := kafkaClient(cfg, log)
	if err != nil {
		return fail(err)
	}
	cl, err := kgo.NewClient(cc.ClientOpts()...)
	if err != nil {
		return fail(fmt.Errorf("connecting to %v: %w", cfg.Kafka.Brokers, err))
	}
	adm := kadm.NewClient(cl)
	partitions, err := ensureTopics(ctx, adm, cfg)
	if err == nil {
		// The reconciler rebuilds its state from the changes topic's
		// start: its group's committed offsets are dropped.
		err = resetGroup(ctx, adm, cfg.Kafka.Group+".reconcile")
	}
	cl.Close()
	if err != nil {
		if cfg.Kafka.SASL != nil || cfg.Kafka.TLS != nil {
			// Some brokers drop the connection on failed authentication
			// instead of answering.
			err = fmt.Errorf("%w (the brokers refused or dropped the connection: check kafka.tls and the kafka.sasl credentials)", err)
		}
		return fail(err)
	}

	st, err := state.Open(cfg.State.Dir, state.Options{})
	if err != nil {
		return fail(err)
	}
	defer st.Close()
	if err := st.DeletePrefix([]byte{'k'}); err != nil { // the reconciler's keys, rebuilt
		return fail(err)
	}
	rc, err := registry.NewClient(cfg.SchemaRegistry)
	if err != nil {
		return fail(err)
	}
	dec := decoderConfig(rc)
	metrics := ops.NewMetrics()
	pl, err := topology.New(topology.Options{
		Config: cfg, Client: cc, Store: st, Serde: registry.NewSerde(rc), Decoder: dec,
		Partitions: partitions, Logger: log, Metrics: metrics,
	})
	if err != nil {
		return fail(err)
	}
	if cfg.HTTP.Listen != "" {
		srv, err := ops.Serve(cfg.HTTP.Listen, metrics, func() error {
			if !pl.Router.IsRunning() {
				return errors.New("the pipeline is not running")
			}
			return nil
		})
		if err != nil {
			pl.Close()
			return fail(fmt.Errorf("%s: http.listen: %w", cfg.File, err))
		}
		defer srv.Close(context.Background())
		log.Info("serving /metrics, /healthz and /readyz", "addr", srv.Addr())
	}
	runErr := make(chan error, 1)
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { runErr <- pl.Run(runCtx) }()
	log.Info("running", "brokers", cfg.Kafka.Brokers, "group", cfg.Kafka.Group, "tables", len(cfg.Tables))
	select {
	case err := <-runErr:
		pl.Close()
		if err == nil {
			err = errors.New("the pipeline stopped")
		}
		return fail(err)
	case <-ctx.Done():
	}
	log.Info("stopping")
	stopped := make(chan error, 1)
	go func() {
		cancel()
		stopped <- pl.Close()
	}()
	select {
	case err := <-stopped:
		<-runErr
		if err != nil {
			return fail(fmt.Errorf("stopping: %w", err))
		}
		return nil
	case <-time.After(shutdownTimeout):
		return fail(fmt.Errorf("stopping: not done within %s", shutdownTimeout))
	}
}

// ensureTopics checks the input topics and the changes topic, creates the
// internal topics that are missing, and returns every input topic's
// partition count.
func ensureTopics(ctx context.Context, adm *kadm.Client, cfg *config.Config) (map[string]int32, error) {
	partitions, err := inputPartitions(ctx, adm, cfg, func(topic string) (int32, error) {
		return 0, fmt.Errorf("input topic %s does not exist (%s: tables)", topic, cfg.File)
	})
	if err != nil {
		return nil, err
	}
	return partitions, ensureInternal(ctx, adm, cfg)
}

// resetGroup drops a consumer group's committed offsets, so that it starts
// from the earliest offsets. A group that does not exist is already so.
func resetGroup(ctx context.Context, adm *kadm.Client, group string) error {
	resp, err := adm.DeleteGroup(ctx, group)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return fmt.Errorf("resetting consumer group %s: %w", group, err)
	}
	return nil
}
