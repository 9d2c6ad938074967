// Package topology assembles cdcrecon's pipeline from its stages: one
// Watermill router whose handlers are the ingest stage, on every input
// topic, and the reconcile stage, on the changes topic, over the Kafka
// transport. The offline check and the streaming worker run the same
// topology.
//
// Dependencies: pipeline/{kafka,ingest,reconciler,registry},
// processors/{config,normalize,debezium,dedupe,state}, Watermill.
package topology

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/cdcrecon/cdcrecon/pipeline/ingest"
	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
	"github.com/cdcrecon/cdcrecon/pipeline/ops"
	"github.com/cdcrecon/cdcrecon/pipeline/reconciler"
	"github.com/cdcrecon/cdcrecon/pipeline/registry"
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
	// Worker runs the streaming worker's periodic duties with the router:
	// idle watermarks (config idle), consumer lag and state size.
	Worker bool
}

// Pipeline is a running topology's parts.
type Pipeline struct {
	Router     *message.Router
	Ingest     *ingest.Stage
	Reconciler *reconciler.Stage
	Mapper     *normalize.Mapper
	pub        *kafka.Publisher
	subs       []*kafka.Subscriber
	clock      *clock
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
	p := &Pipeline{Mapper: m, pub: pub, run: make(chan struct{}), sessionTimeout: cfg.Kafka.SessionTimeout}
	inputs := map[normalize.Side][]string{}
	for _, t := range cfg.Tables {
		for side, topic := range map[normalize.Side]string{normalize.Source: t.Source.Topic, normalize.Target: t.Target.Topic} {
			n, ok := o.Partitions[topic]
			if !ok {
				p.Close()
				return nil, fmt.Errorf("topology: no partition count for topic %s", topic)
			}
			for i := range n {
				inputs[side] = append(inputs[side], ingest.InputName(topic, i))
			}
		}
	}
	for _, ins := range inputs {
		sort.Strings(ins)
	}
	p.Ingest, err = ingest.New(ingest.Config{Mapper: m, Decoder: o.Decoder, Store: o.Store,
		Dedupe: dedupe.Config{Retention: cfg.Dedupe.Retention}, Publisher: pub, Serde: o.Serde,
		ChangesTopic: cfg.Topics.Changes, Partitions: cfg.Kafka.Partitions, DLQTopic: cfg.Topics.DLQ,
		Ends: o.Ends, OnInvalid: o.OnInvalid, Metrics: o.Metrics})
	if err != nil {
		p.Close()
		return nil, err
	}
	p.Reconciler, err = reconciler.New(reconciler.Config{Config: cfg, Mapper: m, Publisher: pub, Serde: o.Serde, Store: o.Store,
		Partitions: cfg.Kafka.Partitions, KeysInMemory: cfg.State.KeysInMemory, Metrics: o.Metrics,
		Inputs: inputs, OnFinish: o.OnFinish})
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
	for _, t := range cfg.Tables {
		for _, topic := range []string{t.Source.Topic, t.Target.Topic} {
			s, err := sub(cfg.Kafka.Group+".ingest."+topic, p.Ingest.Assigned, p.Ingest.Revoked)
			if err != nil {
				p.Close()
				return nil, err
			}
			p.Router.AddConsumerHandler("ingest "+topic, topic, s, p.Ingest.Handle)
		}
	}
	s, err := sub(cfg.Kafka.Group+".reconcile", p.Reconciler.Assigned, p.Reconciler.Revoked)
	if err != nil {
		p.Close()
		return nil, err
	}
	p.Router.AddConsumerHandler("reconcile", cfg.Topics.Changes, s, p.Reconciler.Handle)
	if o.Worker {
		p.clock = newClock(p, o, log)
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
	if p.clock != nil {
		if err := p.clock.start(ctx); err != nil {
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
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.refused == nil {
		p.refused = fmt.Errorf("the broker refused this worker: %w", err)
		if p.stop != nil {
			p.stop()
		}
	}
}

// Close stops the router and closes the clients; safe to call twice.
func (p *Pipeline) Close() error {
	var errs []error
	if p.clock != nil {
		p.clock.stop()
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
	errs = append(errs, p.pub.Close())
	return errors.Join(errs...)
}
