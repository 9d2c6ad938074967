// Package reconciler is the second stage: it reads the changes topic and
// runs one consistency.Engine per partition, publishing what the engines
// decide — drift, compensation and checksum records — on the output
// topics in their Avro encoding.
//
// A batch is applied to its partition's engine, the engine advances as far
// as the watermarks allow, and the records it decided are published before
// the batch is acked. Then the keys the engine no longer works on go to
// the Pebble store, in one batch with the partition's next offset, so that
// memory holds only the keys in flight.
//
// A partition's state belongs to the member that owns the partition, and
// is rebuilt whenever the partition is assigned — at start, after a crash,
// when it moves between workers: the member drops what it stored of it
// and reads the partition from its first record, publishing nothing
// decided before the offset the group had committed (the previous owner
// published it). The engine is deterministic, so the rebuilt state is the
// one the previous owner had. The changes topic therefore keeps its
// records (no retention limit).
//
// Changes are at-least-once on the changes topic: an ingest member that
// crashes between publishing and committing publishes again. Each input
// partition's changes reach a changes partition in input-offset order, so
// a change whose input offset is not above the last one applied from that
// input is a re-publication, and is skipped.
package reconciler

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
	"github.com/cdcrecon/cdcrecon/pipeline/ops"
	"github.com/cdcrecon/cdcrecon/pipeline/owned"
	"github.com/cdcrecon/cdcrecon/pipeline/registry"
	"github.com/cdcrecon/cdcrecon/processors/changes"
	"github.com/cdcrecon/cdcrecon/processors/config"
	"github.com/cdcrecon/cdcrecon/processors/consistency"
	"github.com/cdcrecon/cdcrecon/processors/normalize"
	"github.com/cdcrecon/cdcrecon/processors/state"
	"github.com/cdcrecon/cdcrecon/schemas"
)

// Config configures a Stage.
type Config struct {
	Settings  *config.Config
	Mapper    *normalize.Mapper
	Publisher message.Publisher
	Serde     *registry.Serde
	// Store, when set, holds the keys the engines are not working on.
	Store *state.Store
	// KeysInMemory is how many keys the engines keep in memory, all
	// partitions together, before idle ones go to the Store (state
	// keys_in_memory). 0 keeps only the keys in flight.
	KeysInMemory int
	// Partitions is the changes topic's partition count, which the key
	// budget is shared over. Default 1.
	Partitions int
	// Metrics, when set, receives drift counts and batch latencies.
	Metrics *ops.Metrics
	// Inputs are the input partitions ("topic/partition") of each side;
	// a side's watermark waits for all of them.
	Inputs map[normalize.Side][]string
	// OnFinish, when set, is called once per changes partition whose
	// inputs have all ended, after its last records are published.
	OnFinish func(partition int32)
}

// Stage is the reconcile stage. Handle is safe for concurrent use by the
// handlers of different changes partitions.
type Stage struct {
	cfg      Config
	engines  owned.Map[int32, *partition]
	mu       sync.Mutex
	suppress map[int32]int64 // by partition: the offset committed at assignment
	lost     map[int32]error
}

type partition struct {
	owned.Part       // held by Handle; a retired partition takes no more batches
	suppress   int64 // what is decided at records before this offset is not published: the previous owner did
	applied    map[inputKey]int64
	id         int32
	next       int64 // next changes offset to apply: a redelivered batch is not applied twice
	engine     *consistency.Engine
	out        []schemas.Record
	ended      map[string]bool
	inputs     int
	// finishing: every input has ended and the engine finished; finished:
	// OnFinish was called, once the last records were published.
	finishing, finished bool
	broken              error // set when the partition's state was lost; sticky
	// What the periodic duties read as of the last batch handled, without waiting
	// on a batch, which may be waiting on the brokers.
	read  atomic.Int64
	stats atomic.Pointer[consistency.Stats]
}

// snapshot publishes the partition's progress and counts to the periodic duties.
// Called with the partition entered.
func (p *partition) snapshot() {
	p.read.Store(p.next)
	st := p.engine.Stats()
	p.stats.Store(&st)
}

// inputKey is an input partition.
type inputKey struct {
	topic string
	part  int32
}

// New returns a Stage.
func New(cfg Config) (*Stage, error) {
	if cfg.Settings == nil || cfg.Mapper == nil || cfg.Publisher == nil || cfg.Serde == nil {
		return nil, errors.New("reconciler: Config, Mapper, Publisher and Serde are required")
	}
	return &Stage{cfg: cfg, suppress: map[int32]int64{}, lost: map[int32]error{}}, nil
}

// Assigned prepares a changes partition assigned to this member, whose
// group had committed offset committed (-1 when none): its stored state is
// dropped and it is rebuilt from the partition's first record (the
// returned kafka.FromStart), publishing only what is decided from the
// committed offset on. A kafka.SubscriberConfig.Assigned hook.
func (s *Stage) Assigned(_ string, id int32, committed int64) int64 {
	s.engines.Retire(id)
	s.mu.Lock()
	s.suppress[id] = committed
	s.mu.Unlock()
	if s.cfg.Store != nil {
		if err := s.cfg.Store.DeletePrefix(binary.BigEndian.AppendUint32([]byte{'k'}, uint32(id))); err != nil {
			// The partition is marked broken when first used.
			s.mu.Lock()
			s.lost[id] = fmt.Errorf("reconciler partition %d: dropping stored state: %w", id, err)
			s.mu.Unlock()
			return kafka.FromStart
		}
	}
	s.mu.Lock()
	delete(s.lost, id)
	s.mu.Unlock()
	return kafka.FromStart
}

// Progress returns, for every partition this member owns, how many
// records of the changes topic it has not read (ends gives each
// partition's end offset), and how many partitions are still being
// rebuilt (not yet past the offset committed when they were assigned).
func (s *Stage) Progress(ends map[int32]int64) (lag map[int32]int64, rebuilding int) {
	owned := s.engines.All()
	s.mu.Lock()
	assigned := maps.Clone(s.suppress)
	s.mu.Unlock()
	lag = map[int32]int64{}
	for id := range assigned {
		// Owned but not started: none of it is read yet.
		if end, ok := ends[id]; ok {
			lag[id] = end
		}
	}
	for _, p := range owned {
		next := p.read.Load()
		if end, ok := ends[p.id]; ok {
			lag[p.id] = max(end-next, 0)
		}
		if next >= p.suppress {
			delete(assigned, p.id)
		}
	}
	for _, committed := range assigned {
		if committed > 0 { // not started, or not yet past it
			rebuilding++
		}
	}
	return lag, rebuilding
}

// Revoked drops a partition this member no longer owns. A
// kafka.SubscriberConfig.Revoked hook.
func (s *Stage) Revoked(_ string, id int32) {
	s.engines.Retire(id)
	s.mu.Lock()
	delete(s.suppress, id)
	s.mu.Unlock()
}

// Stats adds up the engines' counts as of their last batch.
func (s *Stage) Stats() consistency.Stats {
	var total consistency.Stats
	for _, p := range s.engines.All() {
		st := p.stats.Load()
		total.Changes += st.Changes
		total.Late += st.Late
		total.Opened += st.Opened
		total.Resolved += st.Resolved
		total.Open += st.Open
		if total.OpenByTable == nil {
			total.OpenByTable = map[string]int64{}
		}
		for t, n := range st.OpenByTable {
			total.OpenByTable[t] += n
		}
		total.Keys += st.Keys
		total.Spilled += st.Spilled
		total.Loaded += st.Loaded
	}
	return total
}

func (s *Stage) partition(id int32) (*partition, error) {
	return s.engines.GetOrCreate(id, func() (*partition, error) { return s.newPartition(id) })
}

func (s *Stage) newPartition(id int32) (*partition, error) {
	s.mu.Lock()
	p := &partition{id: id, ended: map[string]bool{}, applied: map[inputKey]int64{}, suppress: s.suppress[id], broken: s.lost[id]}
	s.mu.Unlock()
	rc := consistency.Config{Settings: s.cfg.Settings, Mapper: s.cfg.Mapper, Partition: id,
		Emit: func(r schemas.Record) { p.out = append(p.out, r) }}
	if s.cfg.Store != nil {
		rc.Store = s.cfg.Store
		rc.MaxKeys = s.cfg.KeysInMemory / max(s.cfg.Partitions, 1)
	}
	e, err := consistency.New(rc)
	if err != nil {
		return nil, err
	}
	for side, ins := range s.cfg.Inputs {
		e.Expect(side, ins...)
		p.inputs += len(ins)
	}
	p.engine = e
	p.snapshot()
	return p, nil
}

// Handle handles one batch message of a changes partition (a Watermill
// no-publish handler).
func (s *Stage) Handle(msg *message.Message) error {
	id, err := strconv.ParseInt(msg.Metadata.Get(kafka.MetaPartition), 10, 32)
	if err != nil {
		return fmt.Errorf("reconciler: message without a partition: %w", err)
	}
	p, err := s.partition(int32(id))
	if err != nil {
		return err
	}
	live := p.Enter()
	defer p.Leave()
	defer p.snapshot()
	if !live {
		return fmt.Errorf("reconciler partition %d: no longer assigned", id)
	}
	if p.broken != nil {
		return p.broken
	}
	started := time.Now()
	defer func() { s.cfg.Metrics.Batch("reconcile", time.Since(started)) }()
	recs, err := kafka.DecodeBatch(msg.Payload)
	if err != nil {
		return fmt.Errorf("reconciler: %w", err)
	}
	if len(recs) == 0 {
		return nil
	}
	for _, r := range recs {
		if r.Offset < p.next {
			continue // applied before a failed publish; its records are still in p.out
		}
		p.next = r.Offset + 1
		c, m, err := changes.Decode(r.Value)
		if err != nil {
			// Our own topic: a record we cannot read is a bug or
			// corruption; stopping beats deciding on partial input.
			return fmt.Errorf("reconciler partition %d offset %d: %w", id, r.Offset, err)
		}
		if m != nil {
			s.mark(p, m, r.Offset)
			continue
		}
		in := inputKey{c.Origin.Topic, c.Origin.Partition}
		if last, ok := p.applied[in]; ok && c.Origin.Offset <= last {
			continue // published again by an ingest member that crashed
		}
		p.applied[in] = c.Origin.Offset
		if err := p.engine.Apply(*c); err != nil {
			return fmt.Errorf("reconciler partition %d offset %d: %w", id, r.Offset, err)
		}
	}
	finishing := p.finishing
	if err := s.publish(msg.Context(), p); err != nil {
		return err
	}
	if err := s.flush(p); err != nil {
		return err
	}
	if finishing {
		p.finishing, p.finished = false, true
		if s.cfg.OnFinish != nil {
			s.cfg.OnFinish(p.id)
		}
	}
	return nil
}

// mark hands the engine a watermark read at offset off and decides what it
// allows, there and then: every decision is tied to the record that made
// it possible, whatever the batch it came in, so a rebuild decides each
// record at the same offset as the owner before it, and publishes exactly
// the records decided at or after the offset that owner committed.
func (s *Stage) mark(p *partition, m *changes.Mark, off int64) {
	before := len(p.out)
	p.engine.Watermark(m.Side, m.Input, m.Time)
	if m.Time == changes.End {
		p.ended[m.Input] = true
	}
	p.engine.Advance()
	if !p.finished && !p.finishing && p.inputs > 0 && len(p.ended) == p.inputs {
		p.engine.Finish()
		p.finishing = true
	}
	if off < p.suppress {
		p.out = p.out[:before] // decided and published by the previous owner
	}
}

// flush moves the partition's idle keys to the store with its next
// offset. A failed commit leaves the engine without those keys, so it
// stops the stage rather than let it decide on missing state.
func (s *Stage) flush(p *partition) error {
	if s.cfg.Store == nil {
		return nil
	}
	b := s.cfg.Store.NewBatch()
	defer b.Close()
	if _, err := p.engine.Flush(b); err != nil {
		return fmt.Errorf("reconciler partition %d: %w", p.id, err)
	}
	b.SetOffset(s.cfg.Settings.Topics.Changes, p.id, p.next)
	if err := b.Commit(); err != nil {
		p.broken = fmt.Errorf("reconciler partition %d: %w: %w", p.id, errStateLost, err)
		return p.broken
	}
	return nil
}

// errStateLost is a failed state commit: the partition cannot go on.
var errStateLost = errors.New("storing idle keys failed; the partition's state is incomplete")

func (s *Stage) publish(ctx context.Context, p *partition) error {
	if len(p.out) == 0 {
		return nil
	}
	byTopic := map[string][]*message.Message{}
	var order []string
	for _, r := range p.out {
		topic, key := s.route(r)
		v, err := s.cfg.Serde.Encode(ctx, nil, topic, r)
		if err != nil {
			s.cfg.Metrics.Published(topic, err, errors.Is(err, registry.ErrUnavailable))
			return fmt.Errorf("reconciler partition %d: %w", p.id, err)
		}
		m := message.NewMessage("", v)
		m.Metadata.Set(kafka.MetaKey, key)
		if byTopic[topic] == nil {
			order = append(order, topic)
		}
		byTopic[topic] = append(byTopic[topic], m)
	}
	for _, topic := range order {
		err := s.cfg.Publisher.Publish(topic, byTopic[topic]...)
		s.cfg.Metrics.Published(topic, err, false)
		if err != nil {
			return fmt.Errorf("reconciler partition %d: publishing to %s: %w", p.id, topic, err)
		}
	}
	for _, r := range p.out {
		if d, ok := r.(*schemas.Drift); ok {
			if d.Status == schemas.Open {
				s.cfg.Metrics.DriftOpened(d.Table)
			} else {
				s.cfg.Metrics.DriftResolved(d.Table)
			}
		}
	}
	p.out = p.out[:0]
	return nil
}

// route returns an output record's topic and key: the table and key for
// drift and compensation (so compaction keeps the latest per row), the
// table, partition and window for checksums.
func (s *Stage) route(r schemas.Record) (topic, key string) {
	t := s.cfg.Settings.Topics
	switch x := r.(type) {
	case *schemas.Drift:
		return t.Drift, rowKey(x.Table, x.Key)
	case *schemas.Compensation:
		return t.Compensation, rowKey(x.Table, x.Key)
	case *schemas.Checksum:
		return t.Checksums, fmt.Sprintf(`{"table":%q,"partition":%d,"window_start":%q}`, x.Table, x.Partition, x.WindowStart.Format("2006-01-02T15:04:05.000Z"))
	}
	return t.DLQ, ""
}

func rowKey(table string, key schemas.Columns) string {
	k, _ := json.Marshal(struct {
		Table string          `json:"table"`
		Key   schemas.Columns `json:"key"`
	}{table, key})
	return string(k)
}
