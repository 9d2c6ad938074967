// Package topology assembles cdcrecon's pipeline from its stages: one
// Watermill router whose handlers are the ingest stage, on every input
// topic, and the reconcile stage, on the changes topic, over the Kafka
// transport. The offline check and the streaming worker run the same
// topology.
package topology

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/pipeline/ingest"
	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
	"github.com/cdcrecon/cdcrecon/pipeline/ops"
	"github.com/cdcrecon/cdcrecon/pipeline/reconciler"
	"github.com/cdcrecon/cdcrecon/pipeline/registry"
	"github.com/cdcrecon/cdcrecon/pipeline/snapshot"
	"github.com/cdcrecon/cdcrecon/pipeline/verify"
	"github.com/cdcrecon/cdcrecon/processors/changes"
	"github.com/cdcrecon/cdcrecon/processors/config"
	"github.com/cdcrecon/cdcrecon/processors/debezium"
	"github.com/cdcrecon/cdcrecon/processors/dedupe"
	"github.com/cdcrecon/cdcrecon/processors/normalize"
	"github.com/cdcrecon/cdcrecon/processors/state"
	"github.com/cdcrecon/cdcrecon/schemas"
)

// Options configure a Pipeline.
type Options struct {
	Config *config.Config
	Client kafka.ClientConfig
	Store  *state.Store
	Serde  *registry.Serde
	// Decoder reads the input; its Registry is needed for Avro input.
	Decoder debezium.Config
	// Partitions is the partition count of every input topic, by topic.
	Partitions map[string]int32
	// Ends gives input partitions an end (see ingest.Config.Ends).
	Ends      map[string]int64
	OnInvalid func(*schemas.DeadLetter)
	OnFinish  func(partition int32)
	Logger    *slog.Logger
	// Metrics, when set, receives the stages' metrics.
	Metrics *ops.Metrics
	// InstanceID, when set, makes the worker a static member of its
	// groups (see kafka.SubscriberConfig.InstanceID).
	InstanceID string
	// Replay opens no reconciler state past the offsets the group
	// committed (see reconciler.Config.Replay).
	Replay bool
	// Worker runs the streaming worker's periodic duties with the router:
	// idle watermarks (config idle), consumer lag and state size.
	Worker bool
}

// Pipeline is a running topology's parts.
type Pipeline struct {
	// Topology is the pipeline's shape, from Define.
	Topology   *Topology
	Router     *message.Router
	Ingest     *ingest.Stage
	Reconciler *reconciler.Stage
	Mapper     *normalize.Mapper
	pub        *kafka.Publisher
	subs       []*kafka.Subscriber
	duties     *periodic
	snapshots  *snapshot.Keeper
	// run is closed when Run returns; ran tells that Run was called,
	// closed that Close was.
	run         chan struct{}
	mu          sync.Mutex
	ran, closed bool
	// refused is the first error with which the broker refused a member
	// for good; stop ends Run then.
	refused        error
	stop           context.CancelFunc
	sessionTimeout time.Duration
	log            *slog.Logger
	metrics        *ops.Metrics
}

// New builds the pipeline; Run starts it.
func New(o Options) (*Pipeline, error) {
	cfg := o.Config
	m, err := normalize.NewMapper(cfg)
	if err != nil {
		return nil, err
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pub, err := kafka.NewPublisher(kafka.PublisherConfig{ClientConfig: o.Client})
	if err != nil {
		return nil, err
	}
	top := Define(cfg)
	p := &Pipeline{Topology: top, Mapper: m, pub: pub, run: make(chan struct{}), sessionTimeout: cfg.Kafka.SessionTimeout, log: log, metrics: o.Metrics}
	inputs := map[normalize.Side][]string{}
	for _, in := range top.Inputs {
		n, ok := o.Partitions[in.Topic]
		if !ok {
			p.Close()
			return nil, fmt.Errorf("topology: no partition count for topic %s", in.Topic)
		}
		for i := range n {
			inputs[in.Side] = append(inputs[in.Side], changes.InputName(in.Topic, i))
		}
	}
	for _, ins := range inputs {
		sort.Strings(ins)
	}
	p.Ingest, err = ingest.New(ingest.Config{Mapper: m, Decoder: o.Decoder, Store: o.Store,
		Dedupe: dedupe.Config{Retention: cfg.Dedupe.Retention}, Publisher: pub, Serde: o.Serde,
		ChangesTopic: top.Changes, Partitions: top.Partitions, DLQTopic: top.DLQ,
		Ends: o.Ends, OnInvalid: o.OnInvalid, Metrics: o.Metrics})
	if err != nil {
		p.Close()
		return nil, err
	}
	var snaps reconciler.Snapshots
	if o.Worker && o.Store != nil {
		p.snapshots, err = snapshot.New(snapshot.Config{Client: o.Client, Topic: top.State, Changes: top.Changes,
			Store: o.Store, Interval: cfg.State.SnapshotInterval, Logger: log, Metrics: o.Metrics})
		if err != nil {
			p.Close()
			return nil, err
		}
		snaps = p.snapshots
	}
	var signals reconciler.Signals
	if o.Worker && slices.ContainsFunc(cfg.Tables, func(t config.Table) bool { return t.Verifies() }) {
		signals = verify.New(cfg, pub, o.Metrics) // a check never sends signals
	}
	p.Reconciler, err = reconciler.New(reconciler.Config{Settings: cfg, Mapper: m, Publisher: pub, Serde: o.Serde, Store: o.Store,
		Partitions: top.Partitions, KeysInMemory: cfg.State.KeysInMemory, Metrics: o.Metrics,
		Inputs: inputs, OnFinish: o.OnFinish, Replay: o.Replay, Snapshots: snaps, Signals: signals,
		History: func(ctx context.Context, partition int32, from, to int64, fn func(int64, []byte) error) error {
			return kafka.ReadRange(ctx, o.Client, top.Changes, partition, from, to, false, func(r *kgo.Record) error { return fn(r.Offset, r.Value) })
		}})
	if err != nil {
		p.Close()
		return nil, err
	}
	p.Router, err = message.NewRouter(message.RouterConfig{}, watermill.NewSlogLogger(log))
	if err != nil {
		p.Close()
		return nil, err
	}
	sub := func(group string, assigned func(string, int32, int64) int64, revoked func(string, int32)) (*kafka.Subscriber, error) {
		s, err := kafka.NewSubscriber(kafka.SubscriberConfig{ClientConfig: o.Client, ConsumerGroup: group, Batch: true,
			Assigned: assigned, Revoked: revoked, SessionTimeout: cfg.Kafka.SessionTimeout, InstanceID: o.InstanceID,
			Fatal: p.refuse})
		if err == nil {
			p.subs = append(p.subs, s)
		}
		return s, err
	}
	for _, in := range top.Inputs {
		s, err := sub(in.Group, p.Ingest.Assigned, p.Ingest.Revoked)
		if err != nil {
			p.Close()
			return nil, err
		}
		p.Router.AddConsumerHandler("ingest "+in.Topic, in.Topic, s, p.guard("ingest", p.Ingest.Handle))
	}
	s, err := sub(top.ReconcileGroup, p.Reconciler.Assigned, p.Reconciler.Revoked)
	if err != nil {
		p.Close()
		return nil, err
	}
	p.Router.AddConsumerHandler("reconcile", top.Changes, s, p.guard("reconcile", p.Reconciler.Handle))
	if o.Worker {
		p.duties = newPeriodic(p, o, log)
	}
	return p, nil
}

// Run runs the router, and the worker's periodic duties, until ctx ends
// or Close.
func (p *Pipeline) Run(ctx context.Context) error {
	p.mu.Lock()
	if p.closed || p.ran {
		p.mu.Unlock()
		return errors.New("topology: the pipeline is closed or already running")
	}
	p.ran = true
	ctx, p.stop = context.WithCancel(ctx)
	p.mu.Unlock()
	defer p.stop()
	defer close(p.run)
	if p.duties != nil {
		if err := p.duties.start(ctx); err != nil {
			return err
		}
	}
	err := p.Router.Run(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.refused != nil {
		return p.refused
	}
	return err
}

// refuse stops the pipeline on an error no retry mends: a member the
// broker refuses would otherwise leave its stage without a consumer.
func (p *Pipeline) refuse(err error) {
	if errors.Is(err, kerr.InvalidSessionTimeout) {
		err = fmt.Errorf("%w; kafka.session_timeout is %s", err, p.sessionTimeout)
	}
	p.fail(fmt.Errorf("the broker refused this worker: %w", err))
}

// fail stops the pipeline with err, the first such error winning: Run
// returns it and Err reports it from now on.
func (p *Pipeline) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.refused == nil {
		p.refused = err
		if p.stop != nil {
			p.stop()
		}
	}
}

// Err is the error the pipeline is stopping with, if any: a /readyz
// check fails from the first one on.
func (p *Pipeline) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refused
}

// panicLimit is how many panics in a row (of any handler) stop the
// worker: a panic that repeats on every retry would otherwise hold its
// partition forever.
const panicLimit = 3

// guard wraps a stage's handler. A storage error (state.ErrStorage,
// returned or a Pebble failure's panic) stops the pipeline at once: no
// retry mends a full or lost disk, and going on would decide on state
// that was not kept. So does a partition whose history was deleted
// (reconciler.ErrHistoryLost): no retry brings it back. Any other panic is counted, logged once with its
// stack, and nacks the batch for a retry; panicLimit of them in a row
// stop the pipeline.
func (p *Pipeline) guard(stage string, h message.NoPublishHandlerFunc) message.NoPublishHandlerFunc {
	var repeats atomic.Int32
	return func(msg *message.Message) (err error) {
		defer func() {
			r := recover()
			if r == nil {
				if err == nil {
					repeats.Store(0)
				} else if errors.Is(err, state.ErrStorage) || errors.Is(err, reconciler.ErrHistoryLost) {
					p.fail(err)
				}
				return
			}
			p.metrics.Panic(stage)
			if e, ok := r.(error); ok {
				err = fmt.Errorf("%s stage panicked: %w", stage, e)
			} else {
				err = fmt.Errorf("%s stage panicked: %v", stage, r)
			}
			n := repeats.Add(1)
			if n == 1 {
				p.log.Error("handler panicked, retrying the batch", "stage", stage, "error", err, "stack", string(debug.Stack()))
			}
			switch {
			case errors.Is(err, state.ErrStorage):
				p.fail(err)
			case n >= panicLimit:
				p.fail(fmt.Errorf("%w (%d panics in a row)", err, n))
			}
		}()
		return h(msg)
	}
}

// Close stops the router and closes the clients; safe to call twice.
func (p *Pipeline) Close() error {
	var errs []error
	if p.duties != nil {
		p.duties.stop()
	}
	p.mu.Lock()
	ran := p.ran
	p.closed = true
	p.mu.Unlock()
	// A Watermill router closed before it runs, or while Run is starting
	// it, waits for handlers that never start for its whole close timeout:
	// it is closed only once running, or not at all.
	if p.Router != nil && ran {
		select {
		case <-p.Router.Running():
		case <-p.run:
		}
		errs = append(errs, p.Router.Close())
	}
	for _, s := range p.subs {
		errs = append(errs, s.Close())
	}
	if p.snapshots != nil {
		p.snapshots.Close()
	}
	errs = append(errs, p.pub.Close())
	return errors.Join(errs...)
}
