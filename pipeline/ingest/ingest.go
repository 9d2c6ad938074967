// Package ingest is the first stage: it reads the Debezium topics of both
// sides, decodes and maps each message onto its table, drops duplicates,
// and repartitions the changes onto the changes topic by (table, key), so
// that both sides of a key meet in one reconciler. After each batch of an
// input partition it sends every changes partition a watermark: how far
// in event time that input is complete.
//
// Event times are made non-decreasing within each input partition here,
// the one place that sees the partition whole: a change never takes effect
// before the one it follows.
//
// A batch is handled as a whole: its changes, watermarks and dead letters
// are published, then its dedupe marks are committed to the state store
// with its next offset, then it is acked. A failure before the commit
// nacks the batch and forgets its marks, so the redelivery is handled the
// same way.
//
// An input partition's state (dedupe marks, its latest event time) is the
// owning member's. When a partition is assigned, a member whose store has
// read it at least as far as the group committed goes on from where its
// store says; otherwise another member read it since, and this one
// rebuilds the state by reading the partition from its first record,
// publishing nothing before the committed offset (the previous owner
// did). A member that crashed after publishing and before committing
// publishes those changes again; the reconciler skips them by their input
// offsets.
//
// Idle sides: Idle publishes, for every owned input partition read to its
// high watermark, a watermark at the side's latest heartbeat or at the
// wall clock minus a safety margin, so that a side without traffic does
// not hold back decisions forever.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
	"github.com/cdcrecon/cdcrecon/pipeline/ops"
	"github.com/cdcrecon/cdcrecon/pipeline/owned"
	"github.com/cdcrecon/cdcrecon/pipeline/registry"
	"github.com/cdcrecon/cdcrecon/processors/canon"
	"github.com/cdcrecon/cdcrecon/processors/changes"
	"github.com/cdcrecon/cdcrecon/processors/debezium"
	"github.com/cdcrecon/cdcrecon/processors/dedupe"
	"github.com/cdcrecon/cdcrecon/processors/normalize"
	"github.com/cdcrecon/cdcrecon/processors/state"
	"github.com/cdcrecon/cdcrecon/schemas"
)

// Config configures a Stage.
type Config struct {
	Mapper  *normalize.Mapper
	Decoder debezium.Config
	Store   *state.Store
	Dedupe  dedupe.Config
	// Publisher publishes changes and watermarks (as records) and dead
	// letters (as messages).
	Publisher Publisher
	// Serde encodes dead letters.
	Serde *registry.Serde
	// ChangesTopic and its partition count; DLQTopic.
	ChangesTopic string
	Partitions   int
	DLQTopic     string
	// Ends, when set, gives for input partitions ("topic/partition") the
	// offset after their last record: reaching it sends the input's end
	// (an offline run's end of input).
	Ends map[string]int64
	// OnInvalid, when set, is called with every dead letter; it may be
	// called from several goroutines at once.
	OnInvalid func(*schemas.DeadLetter)
	// Metrics, when set, receives the stage's counts and latencies.
	Metrics *ops.Metrics
}

// Stats counts what a Stage handled.
type Stats struct {
	Events     atomic.Int64 // input records read
	Duplicates atomic.Int64
	Invalid    atomic.Int64
}

// Stage is the ingest stage. Handle is safe for concurrent use by the
// handlers of different input partitions.
type Stage struct {
	cfg   Config
	Stats Stats
	parts owned.Map[string, *input] // by changes.InputName
}

// input is the stage's state for one input partition.
type input struct {
	owned.Part // held by Handle and Idle
	// next is the next offset to read: written by Handle, read without
	// waiting on a batch (which may be waiting on the brokers) for the lag.
	next     atomic.Int64
	suppress int64 // records before this offset publish nothing: the previous owner did
	idle     int64 // latest watermark Idle published
	broken   error // the partition's state could not be read
	name     string
	table    *normalize.Table
	topic    string
	part     int32
	side     normalize.Side
	worker   *normalize.Worker
	window   *dedupe.Window
	latest   int64 // effective event time so far
	ended    bool
	h        canon.Hasher
}

// Publisher is a Watermill Publisher that also takes records.
// *kafka.Publisher is one.
type Publisher interface {
	message.Publisher
	PublishRecords(topic string, recs ...*kgo.Record) error
}

// New returns a Stage.
func New(cfg Config) (*Stage, error) {
	if cfg.Mapper == nil || cfg.Store == nil || cfg.Publisher == nil || cfg.Serde == nil {
		return nil, errors.New("ingest: Mapper, Store, Publisher and Serde are required")
	}
	if cfg.ChangesTopic == "" || cfg.DLQTopic == "" || cfg.Partitions <= 0 {
		return nil, errors.New("ingest: ChangesTopic, DLQTopic and a positive Partitions are required")
	}
	return &Stage{cfg: cfg}, nil
}

func (s *Stage) input(topic string, partition int32) (*input, error) {
	return s.parts.GetOrCreate(changes.InputName(topic, partition), func() (*input, error) { return s.newInput(topic, partition) })
}

// Assigned prepares an input partition assigned to this member, whose
// group had committed offset committed (-1 when none), and returns where
// to read it from (see the package documentation). A
// kafka.SubscriberConfig.Assigned hook.
func (s *Stage) Assigned(topic string, partition int32, committed int64) int64 {
	// Retired first: its stored position is read once the batch the old
	// state may be handling has committed.
	s.parts.Retire(changes.InputName(topic, partition))
	in, err := s.newInput(topic, partition)
	if err != nil {
		return kafka.Committed // Handle reports the error
	}
	next, latest, ok, err := s.cfg.Store.Position(topic, partition)
	start := kafka.FromStart
	switch {
	case err != nil:
		// Without its position the partition cannot go on: Handle
		// returns the error, so its messages are redelivered, not lost.
		in.broken = fmt.Errorf("ingest %s: reading its stored position: %w", in.name, err)
		start = kafka.Committed
	case ok && next >= committed:
		in.latest, start = latest, next
		in.next.Store(next)
	default:
		in.suppress = committed
	}
	s.parts.Replace(in.name, in)
	return start
}

// Revoked drops an input partition this member no longer owns. A
// kafka.SubscriberConfig.Revoked hook.
func (s *Stage) Revoked(topic string, partition int32) {
	s.parts.Retire(changes.InputName(topic, partition))
}

func (s *Stage) newInput(topic string, partition int32) (*input, error) {
	name := changes.InputName(topic, partition)
	table, side, ok := s.cfg.Mapper.Route(topic)
	if !ok {
		return nil, fmt.Errorf("topic %s: %w", topic, normalize.ErrUnknownTopic)
	}
	dc := s.cfg.Dedupe
	dc.Name = name
	w, err := dedupe.New(s.cfg.Store, dc)
	if err != nil {
		return nil, err
	}
	return &input{name: name, table: table, topic: topic, part: partition, side: side, suppress: -1, idle: math.MinInt64,
		worker: s.cfg.Mapper.NewWorker(debezium.NewDecoder(s.cfg.Decoder)), window: w, latest: math.MinInt64}, nil
}

// Handle handles one batch message of an input partition (a Watermill
// no-publish handler).
func (s *Stage) Handle(msg *message.Message) error {
	topic := msg.Metadata.Get(kafka.MetaTopic)
	p, err := strconv.ParseInt(msg.Metadata.Get(kafka.MetaPartition), 10, 32)
	if err != nil {
		return fmt.Errorf("ingest: message without a partition: %w", err)
	}
	in, err := s.input(topic, int32(p))
	if err != nil {
		return err
	}
	live := in.Enter()
	defer in.Leave()
	if !live {
		return fmt.Errorf("ingest %s: no longer assigned", in.name)
	}
	if in.broken != nil {
		return in.broken
	}
	all, err := kafka.DecodeBatch(msg.Payload)
	if err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	if len(all) == 0 {
		return nil
	}
	ctx := msg.Context()
	latest, ended := in.latest, in.ended
	fail := func(err error) error { // the redelivery must find things as they were
		in.window.Discard()
		in.latest, in.ended = latest, ended
		return err
	}
	started := time.Now()
	// Records before the suppress offset rebuild the state only.
	n := 0
	for n < len(all) && all[n].Offset < in.suppress {
		n++
	}
	if n > 0 {
		var ignored int
		if _, _, err := s.batch(ctx, in, all[:n], &ignored); err != nil {
			return fail(err)
		}
	}
	recs := all[n:]
	dups := 0
	var out []*kgo.Record
	var dead []*schemas.DeadLetter
	if len(recs) > 0 {
		if out, dead, err = s.batch(ctx, in, recs, &dups); err != nil {
			return fail(err)
		}
	}
	if err := s.publish(ctx, in, out, dead); err != nil {
		return fail(err)
	}
	b := s.cfg.Store.NewBatch()
	defer b.Close()
	in.window.Flush(b)
	next := all[len(all)-1].Offset + 1
	b.SetPosition(topic, int32(p), next, in.latest)
	if err := b.Commit(); err != nil {
		return fail(fmt.Errorf("ingest %s: %w", in.name, err))
	}
	in.next.Store(next)
	// Counted once the batch is through: a redelivered batch is not
	// counted twice.
	s.Stats.Events.Add(int64(len(recs)))
	s.Stats.Duplicates.Add(int64(dups))
	s.Stats.Invalid.Add(int64(len(dead)))
	m := s.cfg.Metrics
	m.Ingested(in.table.Name(), in.side.String(), len(recs), dups, len(dead))
	if in.latest != math.MinInt64 {
		m.Watermark(in.side.String(), in.name, time.UnixMilli(in.latest))
	}
	m.Batch("ingest", time.Since(started))
	return nil
}

// batch maps a batch's records: the changes messages to publish, and the
// dead letters.
func (s *Stage) batch(ctx context.Context, in *input, recs []kafka.Record, dups *int) (out []*kgo.Record, dead []*schemas.DeadLetter, err error) {
	before := in.latest
	var row []byte
	arena := make([]byte, 0, 256*len(recs))
	for i := range recs {
		r := &recs[i]
		c, err := in.worker.Map(ctx, in.topic, r.Key, r.Value)
		if err != nil {
			if !permanent(err) {
				return nil, nil, fmt.Errorf("ingest %s offset %d: %w", in.name, r.Offset, err)
			}
			dead = append(dead, s.deadLetter(in, r, err))
			continue
		}
		switch c.Kind {
		case normalize.Skip:
			continue
		case normalize.Heartbeat:
			in.latest = max(in.latest, c.Time)
			continue
		}
		eff := max(c.Time, in.latest)
		in.latest = eff
		dup, err := in.window.Seen(c.Identity, c.Time)
		if err != nil {
			return nil, nil, fmt.Errorf("ingest %s offset %d: %w", in.name, r.Offset, err)
		}
		if dup {
			*dups++
			continue
		}
		var rc changes.Change
		rc, row = in.change(&c, changes.Origin{Topic: in.topic, Partition: in.part, Offset: r.Offset}, eff, row)
		// Keys and values of the batch's records share one arena: when it
		// grows, earlier records keep the old array, never written again.
		start := len(arena)
		arena = changes.Key(arena, c.Table, c.KeyBytes)
		key := arena[start:len(arena):len(arena)]
		start = len(arena)
		arena = changes.AppendChange(arena, &rc)
		value := arena[start:len(arena):len(arena)]
		if rc.Broadcast() {
			for p := range s.cfg.Partitions {
				out = append(out, kafka.PartitionRecord(key, value, int32(p)))
			}
			continue
		}
		out = append(out, kafka.PartitionRecord(key, value, changes.Partition(key, s.cfg.Partitions)))
	}
	end, hasEnd := s.cfg.Ends[in.name]
	last := recs[len(recs)-1].Offset
	ended := hasEnd && last+1 >= end && !in.ended
	if in.latest != before || ended {
		m := changes.Mark{Side: in.side, Input: in.name, Time: in.latest}
		if ended {
			m.Time, in.ended = changes.End, true
		}
		out = append(out, s.marks(m)...)
	}
	return out, dead, nil
}

// change is the changes-topic record of a mapped, deduplicated change
// read at origin, at effective event time eff; row is a buffer for its
// canonical row, returned for reuse.
func (in *input) change(c *normalize.Change, origin changes.Origin, eff int64, row []byte) (changes.Change, []byte) {
	rc := changes.Change{Table: c.Table, Side: c.Side, Time: eff, Key: c.KeyBytes, Origin: origin, Reread: c.Reread}
	switch {
	case c.Kind == normalize.Truncate:
		rc.Kind = changes.Truncate
	case c.Row == nil:
		rc.Kind = changes.Absent
	default:
		rc.Kind, rc.Unresolved = changes.Upsert, c.Unresolved
		row = canon.AppendRow(row[:0], c.Row)
		rc.Row = row
		rc.Digest = in.table.Digest(&in.h, c.Row)
	}
	return rc, row
}

// Finish sends the end of an input that has no records, or none left to
// read, on every changes partition (an offline run's end of input).
func (s *Stage) Finish(ctx context.Context, topic string, partition int32) error {
	in, err := s.input(topic, partition)
	if err != nil {
		return err
	}
	in.ended = true
	return s.publish(ctx, in, s.marks(changes.Mark{Side: in.side, Input: in.name, Time: changes.End}), nil)
}

func (s *Stage) marks(m changes.Mark) []*kgo.Record {
	b := changes.AppendMark(nil, m)
	out := make([]*kgo.Record, s.cfg.Partitions)
	for p := range out {
		out[p] = kafka.PartitionRecord(nil, b, int32(p))
	}
	return out
}

func (s *Stage) publish(ctx context.Context, in *input, out []*kgo.Record, dead []*schemas.DeadLetter) error {
	if len(dead) > 0 {
		msgs := make([]*message.Message, 0, len(dead))
		for _, d := range dead {
			v, err := s.cfg.Serde.Encode(ctx, nil, s.cfg.DLQTopic, d)
			if err != nil {
				s.cfg.Metrics.Published(s.cfg.DLQTopic, err, errors.Is(err, registry.ErrUnavailable))
				return fmt.Errorf("ingest %s: encoding dead letter: %w", in.name, err)
			}
			m := message.NewMessage("", v)
			m.Metadata.Set(kafka.MetaKey, in.name+"/"+strconv.FormatInt(d.Offset, 10))
			m.Metadata.Set("cdcrecon.origin.topic", d.Topic)
			m.Metadata.Set("cdcrecon.origin.partition", strconv.FormatInt(int64(d.Partition), 10))
			m.Metadata.Set("cdcrecon.origin.offset", strconv.FormatInt(d.Offset, 10))
			m.Metadata.Set("cdcrecon.reason", d.Reason)
			msgs = append(msgs, m)
		}
		err := s.cfg.Publisher.Publish(s.cfg.DLQTopic, msgs...)
		s.cfg.Metrics.Published(s.cfg.DLQTopic, err, false)
		if err != nil {
			return fmt.Errorf("ingest %s: publishing dead letters: %w", in.name, err)
		}
		for _, d := range dead {
			if s.cfg.OnInvalid != nil {
				s.cfg.OnInvalid(d)
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	err := s.cfg.Publisher.PublishRecords(s.cfg.ChangesTopic, out...)
	s.cfg.Metrics.Published(s.cfg.ChangesTopic, err, false)
	if err != nil {
		return fmt.Errorf("ingest %s: publishing changes: %w", in.name, err)
	}
	return nil
}

func (s *Stage) deadLetter(in *input, r *kafka.Record, err error) *schemas.DeadLetter {
	d := &schemas.DeadLetter{Topic: in.topic, Partition: in.part, Offset: r.Offset, Timestamp: r.Timestamp.UTC(),
		Key: r.Key, Value: r.Value, Stage: "decode", Reason: err.Error()}
	if !debezium.IsMalformed(err) {
		d.Stage = "map"
	}
	for _, h := range r.Headers {
		d.Headers = append(d.Headers, schemas.Header{Key: h.Key, Value: h.Value})
	}
	return d
}

// permanent tells the errors of bad input, which go to the dead-letter
// queue, from transient ones — a registry out of reach, a cancelled
// context — which are retried. Anything the decoder or mapper says about
// a message is about the message.
func permanent(err error) bool {
	return !errors.Is(err, registry.ErrUnavailable) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// Lag is how far one owned input partition is behind its high watermark.
type Lag struct {
	Topic     string
	Partition int32
	Records   int64
}

// Lags returns how far each input partition this member owns is behind
// its high watermark (ends, by "topic/partition"). It never waits on a
// batch being handled.
func (s *Stage) Lags(ends map[string]int64) []Lag {
	var lags []Lag
	for _, in := range s.parts.All() {
		if end, known := ends[in.name]; known {
			lags = append(lags, Lag{Topic: in.topic, Partition: in.part, Records: max(end-in.next.Load(), 0)})
		}
	}
	return lags
}

// Idle is called periodically by a running worker with the high watermark
// of every input partition ("topic/partition") and the time each side is
// known to be complete to when its partitions are read to their end: its
// latest heartbeat or the wall clock minus the safety margin
// (math.MinInt64 when neither). For every partition this member owns and
// has read to its high watermark, it publishes a watermark at that time
// when it is later than the partition's own. It stops at the first
// watermark it cannot publish: the others would wait on the same brokers.
func (s *Stage) Idle(ctx context.Context, ends map[string]int64, caughtUp func(normalize.Side) int64) error {
	for _, in := range s.parts.All() {
		if err := s.idle(ctx, in, ends, caughtUp); err != nil {
			return err
		}
	}
	return nil
}

func (s *Stage) idle(ctx context.Context, in *input, ends map[string]int64, caughtUp func(normalize.Side) int64) error {
	live := in.Enter()
	defer in.Leave()
	end, known := ends[in.name]
	if !live || !known {
		return nil
	}
	t := caughtUp(in.side)
	if next := in.next.Load(); next < end || next < in.suppress || t <= in.idle || t <= in.latest {
		return nil
	}
	m := changes.Mark{Side: in.side, Input: in.name, Time: t}
	if err := s.publish(ctx, in, s.marks(m), nil); err != nil {
		return err
	}
	in.idle = t
	return nil
}
