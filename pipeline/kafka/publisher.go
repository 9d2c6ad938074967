package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrClosed is returned by Publish and Subscribe after Close.
var ErrClosed = errors.New("kafka: closed")

// Publisher is a Watermill Publisher on franz-go's idempotent producer. It is
// safe for concurrent use.
type Publisher struct {
	cl      *kgo.Client
	timeout time.Duration

	mu     sync.RWMutex
	closed bool
}

var _ message.Publisher = (*Publisher)(nil)

// NewPublisher connects lazily: it does not fail when the brokers are down,
// Publish does (after DeliveryTimeout).
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("configuring publisher: %w", err)
	}
	timeout := cfg.DeliveryTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	// kgo.RecordDeliveryTimeout counts from the record timestamp, which
	// MetaTimestamp may set in the past; Publish bounds the wait with a
	// context instead.
	opts := append([]kgo.Opt{
		// Idempotence is franz-go's default; RequiredAcks(AllISRAcks) is
		// what it requires, stated here because correctness depends on it.
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.AllowAutoTopicCreation(),
		kgo.RecordPartitioner(partitioner{kgo.StickyKeyPartitioner(nil)}),
	}, cfg.ClientOpts()...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("creating publisher client: %w", err)
	}
	return &Publisher{cl: cl, timeout: timeout}, nil
}

// Publish produces msgs to topic, in order, and returns once the broker
// acknowledged all of them, or with the first error. The record key is the
// MetaKey metadata entry; the partition is MetaPartition when set (it must
// exist), else chosen by Kafka's default hash of the key; the timestamp is
// MetaTimestamp when set; other metadata entries outside the "kafka."
// prefix become headers.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return ErrClosed
	}
	recs := make([]*kgo.Record, len(msgs))
	for i, msg := range msgs {
		r, err := messageRecord(topic, msg)
		if err != nil {
			return fmt.Errorf("publishing message %s to %s: %w", msg.UUID, topic, err)
		}
		recs[i] = r
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	if err := p.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("publishing to %s: %w", topic, err)
	}
	return nil
}

// PublishRecords produces records to topic, in order, like Publish but
// without Watermill messages: for a stage's own high-volume topic, where a
// message and its metadata map per record would cost more than the record.
// Build them with PartitionRecord.
func (p *Publisher) PublishRecords(topic string, recs ...*kgo.Record) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return ErrClosed
	}
	for _, r := range recs {
		r.Topic = topic
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	if err := p.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("publishing to %s: %w", topic, err)
	}
	return nil
}

// PartitionRecord is a record for PublishRecords bound for the given
// partition, which must exist.
func PartitionRecord(key, value []byte, partition int32) *kgo.Record {
	return &kgo.Record{Key: key, Value: value, Partition: partition, Context: explicitCtx}
}

// explicitPartition marks, in a record's Context, a partition chosen by
// the message (MetaPartition).
type explicitPartition struct{}

var explicitCtx = context.WithValue(context.Background(), explicitPartition{}, true)

func isExplicit(r *kgo.Record) bool {
	return r.Context != nil && r.Context.Value(explicitPartition{}) != nil
}

// partitioner keeps a record's explicit partition, and hashes the key of
// every other as Kafka's default partitioner does.
type partitioner struct{ kgo.Partitioner }

func (p partitioner) ForTopic(topic string) kgo.TopicPartitioner {
	return topicPartitioner{p.Partitioner.ForTopic(topic)}
}

type topicPartitioner struct{ kgo.TopicPartitioner }

func (p topicPartitioner) RequiresConsistency(r *kgo.Record) bool {
	return isExplicit(r) || p.TopicPartitioner.RequiresConsistency(r)
}

func (p topicPartitioner) Partition(r *kgo.Record, n int) int {
	if isExplicit(r) {
		if int(r.Partition) >= n {
			return int(r.Partition) % n // a partition that does not exist: the caller's bug, kept deterministic
		}
		return int(r.Partition)
	}
	return p.TopicPartitioner.Partition(r, n)
}

// Close waits for Publish calls under way, then closes the client. It is safe
// to call more than once.
func (p *Publisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	p.cl.Close()
	return nil
}
