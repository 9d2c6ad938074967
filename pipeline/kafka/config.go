package kafka

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kslog"
)

// ClientConfig is what every client needs to reach the cluster.
type ClientConfig struct {
	// Brokers are the seed brokers, host:port. Required.
	Brokers []string
	// Opts are extra franz-go options (TLS, SASL, client id, ...), applied
	// after ours so they can override them.
	Opts []kgo.Opt
	// Logger receives the client's logs, bridged into franz-go. Default:
	// discarded.
	Logger *slog.Logger
}

// Validate reports a configuration error, naming the field.
func (c ClientConfig) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("brokers: at least one broker address is required")
	}
	return nil
}

func (c ClientConfig) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

// ClientOpts returns the franz-go options for c: seed brokers, the logger
// bridge and the extra options.
func (c ClientConfig) ClientOpts() []kgo.Opt {
	opts := []kgo.Opt{kgo.SeedBrokers(c.Brokers...)}
	if c.Logger != nil {
		opts = append(opts, kgo.WithLogger(kslog.New(c.Logger)))
	}
	return append(opts, c.Opts...)
}

// StartOffset says where a consumer group without committed offsets starts.
type StartOffset string

// Start offsets.
const (
	Earliest StartOffset = "earliest"
	Latest   StartOffset = "latest"
)

// Backoff is an exponential backoff: Initial, doubling up to Max.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
}

func (b Backoff) next(d time.Duration) time.Duration {
	if d == 0 {
		return b.Initial
	}
	return min(2*d, b.Max)
}

// SubscriberConfig configures a Subscriber.
type SubscriberConfig struct {
	ClientConfig
	// ConsumerGroup is the group every Subscribe call joins. Required.
	ConsumerGroup string
	// StartFrom is where a group with no committed offset for a partition
	// starts. Default Earliest.
	StartFrom StartOffset
	// Batch switches to batch mode: one message carries a partition's
	// fetched records. Default false (one message per record).
	Batch bool
	// MaxBatchRecords caps the records in one batch message. Default 4096.
	MaxBatchRecords int
	// MaxBufferedRecords is how many fetched records the partitions of one
	// subscription may hold waiting for their workers before polling waits.
	// A partition whose handler holds back (slow, or nacking) can hold back
	// the others once this many are queued. Default 8192.
	MaxBufferedRecords int
	// NackBackoff spaces redeliveries of a nacked message. Default 100ms
	// doubling to 5s.
	NackBackoff Backoff
	// CommitInterval is how often acked offsets are committed in the
	// background; they are also committed on revoke and on Close. Default 1s,
	// at least 100ms.
	CommitInterval time.Duration
	// CloseTimeout bounds the final commit on Close. Default 10s.
	CloseTimeout time.Duration
	// DrainTimeout bounds how long a message being handled when its
	// partition is revoked (or the subscription closes) is waited for
	// before its context is cancelled; one acked in that time is
	// committed. Default 5s.
	DrainTimeout time.Duration
	// SessionTimeout is how long the group waits for a silent member
	// before giving its partitions to others. Default 10s.
	SessionTimeout time.Duration
	// RebalanceTimeout bounds a rebalance: how long the group waits for
	// its members to rejoin, a dead one included. Default twice the
	// session timeout.
	RebalanceTimeout time.Duration
	// InstanceID, when set, makes the member static: restarted with the
	// same id within the session timeout, it takes its partitions back
	// without a rebalance. Each member of a group needs its own.
	InstanceID string
	// Fatal, when set, is called once when the broker refuses the member
	// for good — a session timeout outside the broker's range, a missing
	// group or topic authorization, another member with the same
	// InstanceID — and the subscription then ends. Without it such an
	// error is logged and retried like any other.
	Fatal func(error)
	// Assigned, when set, is called for each partition assigned to the
	// member, before it is fetched, with the group's committed offset (-1
	// when none). It returns where to start: an offset, Committed for the
	// committed offset (StartFrom when none), or FromStart for the
	// partition's first record. The member never commits an offset below
	// the one committed at assignment, so a partition read again from an
	// earlier offset does not move its group backwards.
	Assigned func(topic string, partition int32, committed int64) (start int64)
	// Revoked, when set, is called for each partition revoked from or lost
	// by the member, after its messages stopped being delivered (a handler
	// may still be finishing the last one).
	Revoked func(topic string, partition int32)
}

// Start offsets that SubscriberConfig.Assigned may return.
const (
	Committed int64 = -1
	FromStart int64 = -2
)

func (c *SubscriberConfig) setDefaults() {
	if c.StartFrom == "" {
		c.StartFrom = Earliest
	}
	if c.MaxBatchRecords == 0 {
		c.MaxBatchRecords = 4096
	}
	if c.MaxBufferedRecords == 0 {
		c.MaxBufferedRecords = 8192
	}
	if c.NackBackoff == (Backoff{}) {
		c.NackBackoff = Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second}
	}
	if c.CommitInterval == 0 {
		c.CommitInterval = time.Second
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 5 * time.Second
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = 10 * time.Second
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 10 * time.Second
	}
	if c.RebalanceTimeout == 0 {
		c.RebalanceTimeout = 2 * c.SessionTimeout
	}
}

// Validate reports a configuration error, naming the field. It validates
// the config as given, with defaults applied to unset fields.
func (c SubscriberConfig) Validate() error {
	c.setDefaults()
	if err := c.ClientConfig.Validate(); err != nil {
		return err
	}
	switch {
	case c.ConsumerGroup == "":
		return errors.New("consumer_group: required")
	case c.StartFrom != Earliest && c.StartFrom != Latest:
		return fmt.Errorf("start_from: want %q or %q, got %q", Earliest, Latest, c.StartFrom)
	case c.MaxBatchRecords < 1:
		return fmt.Errorf("max_batch_records: must be at least 1, got %d", c.MaxBatchRecords)
	case c.MaxBufferedRecords < 1:
		return fmt.Errorf("max_buffered_records: must be at least 1, got %d", c.MaxBufferedRecords)
	case c.NackBackoff.Initial <= 0 || c.NackBackoff.Max < c.NackBackoff.Initial:
		return fmt.Errorf("nack_backoff: want 0 < initial <= max, got %s and %s", c.NackBackoff.Initial, c.NackBackoff.Max)
	case c.CommitInterval < 100*time.Millisecond:
		return fmt.Errorf("commit_interval: must be at least 100ms, got %s", c.CommitInterval)
	}
	return nil
}

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	ClientConfig
	// DeliveryTimeout bounds how long Publish waits for the broker to
	// acknowledge a record, retries included. Default 30s.
	DeliveryTimeout time.Duration
}

// Validate reports a configuration error, naming the field.
func (c PublisherConfig) Validate() error {
	if err := c.ClientConfig.Validate(); err != nil {
		return err
	}
	if c.DeliveryTimeout < 0 {
		return fmt.Errorf("delivery_timeout: negative (%s)", c.DeliveryTimeout)
	}
	return nil
}
