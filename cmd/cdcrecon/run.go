package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
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
	var w workerFlags
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
changes topic whose partition count differs from kafka.partitions. An
input topic that does not exist yet (its connector creates it with its
first records) is waited for, with a warning every 10 s, for 5 minutes,
then refused. Its state (dedupe marks, reconciler keys)
lives in state.dir.

Several workers with the same configuration form one consumer group and
split the partitions; each needs its own state directory (--state-dir).
A partition's state belongs to the worker that owns it. When a partition
is assigned — at start, after a crash, when it moves between workers —
its new owner rebuilds the reconciler's state by reading the changes
topic's partition from its start, publishing only what was not decided
before the offset the group had committed. Outputs published again after
a crash carry the same ids.

An input partition read to its end counts as complete up to its side's
latest Debezium heartbeat (idle.heartbeats) or the wall clock minus
idle.safety_margin, so that a side without traffic does not hold back
decisions forever.

On SIGINT or SIGTERM it stops taking new batches, lets those under way
finish, commits and closes, within 10 seconds.`),
		Example: examples(`
  # the example topics in a local broker, then the worker on them (Ctrl-C stops it)
  cdcrecon broker &
  cdcrecon produce examples/dumps/source.jsonl examples/dumps/target.jsonl
  cdcrecon run --config examples/orders.yaml --log-level info

  # a second worker of the same group, with its own state
  cdcrecon run --config examples/orders.yaml --state-dir ./worker2-state --http-listen 127.0.0.1:9465`),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cfgFile)
			if err != nil {
				return err
			}
			w.apply(cfg)
			return runWorker(cmd.Context(), g, cfg, nil)
		},
	}
	cmd.Flags().StringVar(&cfgFile, "config", "", "configuration file (required)")
	w.flags(cmd)
	return cmd
}

// workerFlags override, per process, the settings that workers sharing one
// configuration file cannot share.
type workerFlags struct {
	stateDir, listen, instanceID string
}

func (w *workerFlags) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&w.stateDir, "state-dir", "", "state directory, instead of the configuration's state.dir")
	cmd.Flags().StringVar(&w.instanceID, "instance-id", "", "a name for this worker, its own in the group: restarted under it within kafka.session_timeout, it takes its partitions back without a rebalance")
	cmd.Flags().StringVar(&w.listen, "http-listen", "", `metrics listener host:port, instead of the configuration's http.listen ("off" for none)`)
}

func (w *workerFlags) apply(cfg *config.Config) {
	if w.stateDir != "" {
		cfg.State.Dir = w.stateDir
	}
	cfg.InstanceID = w.instanceID
	switch w.listen {
	case "":
	case "off":
		cfg.HTTP.Listen = ""
	default:
		cfg.HTTP.Listen = w.listen
	}
}

// runWorker runs the worker until ctx ends; before, when set, prepares
// the group once the topics are known (replay rewinds it).
func runWorker(ctx context.Context, g *globals, cfg *config.Config, before func(context.Context, *kadm.Client) error) error {
	fail := func(err error) error {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return &exitError{code: exitFailure, err: err}
	}
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
	partitions, err := awaitTopics(ctx, log, func() (map[string]int32, error) {
		return retry(ctx, log, func() (map[string]int32, error) { return ensureTopics(ctx, adm, cfg) })
	})
	if err == nil && before != nil {
		err = before(ctx, adm)
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

	st, err := state.Open(cfg.State.Dir, state.Options{OnFatal: func(f *state.Failure) {
		// Pebble cannot go on, and holds its locks: report and exit at
		// once, as a crash would (nothing acknowledged is lost).
		fmt.Fprintf(g.stderr, "cdcrecon: %s: state.dir %s: %v: %v\n", cfg.File, cfg.State.Dir, state.ErrStorage, f)
		os.Exit(exitFailure)
	}})
	if err != nil {
		if strings.Contains(err.Error(), "lock") {
			err = fmt.Errorf("%w (another worker uses this state directory: give each worker its own with --state-dir)", err)
		}
		return fail(fmt.Errorf("%s: state.dir: %w", cfg.File, err))
	}
	storeFailed := false
	defer func() {
		if !storeFailed {
			st.Close()
		}
	}()
	rc, err := registry.NewClient(cfg.SchemaRegistry)
	if err != nil {
		return fail(err)
	}
	dec := registry.DecoderConfig(rc)
	metrics := ops.NewMetrics()
	pl, err := topology.New(topology.Options{
		Config: cfg, Client: cc, Store: st, Serde: registry.NewSerde(rc), Decoder: dec,
		Partitions: partitions, Logger: log, Metrics: metrics, Worker: true, InstanceID: cfg.InstanceID,
		Replay: before != nil, // a rewound group publishes its outputs again
	})
	if err != nil {
		return fail(err)
	}
	if cfg.HTTP.Listen != "" {
		srv, err := ops.Serve(cfg.HTTP.Listen, metrics, func() error {
			if err := pl.Err(); err != nil {
				return err
			}
			if !pl.Router.IsRunning() {
				return errors.New("the pipeline is not running")
			}
			return metrics.Failing()
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
		if err == nil {
			err = errors.New("the pipeline stopped")
		}
		if errors.Is(err, state.ErrStorage) {
			// The store failed: closing it may hang or panic, and
			// nothing more can be kept in it.
			err = fmt.Errorf("%s: state.dir %s: %w", cfg.File, cfg.State.Dir, err)
			storeFailed = true
		}
		closeWithin(shutdownTimeout, func() { pl.Close() })
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

// closeWithin runs close, waiting for it at most d.
func closeWithin(d time.Duration, fn func()) {
	done := make(chan struct{})
	go func() { fn(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// ensureTopics checks the input topics and the changes topic, creates the
// internal topics that are missing, and returns every input topic's
// partition count.
func ensureTopics(ctx context.Context, adm *kadm.Client, cfg *config.Config) (map[string]int32, error) {
	top := topology.Define(cfg)
	partitions, err := top.InputPartitions(ctx, adm, func(topic string) (int32, error) {
		return 0, &missingTopic{topic: topic, file: cfg.File}
	})
	if err != nil {
		return nil, err
	}
	if err := top.EnsureInternal(ctx, adm); err != nil {
		return nil, err
	}
	return partitions, top.EnsureSignals(ctx, adm)
}

// missingTopic is an input topic that does not exist (yet).
type missingTopic struct{ topic, file string }

func (e *missingTopic) Error() string {
	return fmt.Sprintf("input topic %s does not exist (%s: tables)", e.topic, e.file)
}

// topicWait is how long a starting worker waits for its input topics: a
// connector creates its topics with its first records, and a worker
// deployed with it, or before it, must not give up first.
const topicWait = 5 * time.Minute

// awaitTopics calls ensure until no input topic is missing, saying every
// 10 s which it waits for, for topicWait at most.
func awaitTopics(ctx context.Context, log interface{ Warn(string, ...any) }, ensure func() (map[string]int32, error)) (map[string]int32, error) {
	deadline := time.Now().Add(topicWait)
	var said time.Time
	for {
		partitions, err := ensure()
		var missing *missingTopic
		if !errors.As(err, &missing) {
			return partitions, err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%w, after waiting %s for it", err, topicWait)
		}
		if time.Since(said) >= 10*time.Second {
			log.Warn("waiting for an input topic to be created (by its connector, usually)", "topic", missing.topic, "config", missing.file,
				"gives_up_in", time.Until(deadline).Round(time.Second).String())
			said = time.Now()
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(time.Second):
		}
	}
}

// retry calls fn until it succeeds, fails for good, or 30 seconds have
// passed: brokers that are starting or electing leaders answer with
// retriable errors.
func retry[T any](ctx context.Context, log interface{ Warn(string, ...any) }, fn func() (T, error)) (T, error) {
	deadline := time.Now().Add(30 * time.Second)
	wait := 100 * time.Millisecond
	for {
		v, err := fn()
		var dial *net.OpError
		if err == nil || !(kerr.IsRetriable(err) || errors.As(err, &dial)) || time.Now().After(deadline) {
			return v, err
		}
		log.Warn("retrying", "error", err, "in", wait)
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}
