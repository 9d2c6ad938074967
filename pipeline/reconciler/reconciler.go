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
// A partition's state belongs to the member that owns the partition. Each
// checkpoint writes the keys changed since the last one and the engine's
// own state, with the partition's next offset, in one batch. When the
// partition is assigned — at start, after a crash, when it moves between
// workers — the member opens the engine on that stored state if it is
// intact, of this configuration and at least as far as the group had
// committed; otherwise it restores the newest snapshot of the partition
// from the state topic (Snapshots), and reads the changes from the offset
// the state reflects on. It publishes nothing decided before the offset
// the group had committed (the previous owner published it). The engine
// is deterministic, so the state it reaches is the one the previous owner
// had, and so are its records.
//
// Changes are at-least-once on the changes topic: an ingest member that
// crashes between publishing and committing publishes again. Each input
// partition's changes reach a changes partition in input-offset order, so
// a change whose input offset is not above the last one applied from that
// input is a re-publication, and is skipped.
package reconciler

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/zeebo/xxh3"

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
	// History reads the records of a changes partition with offsets in
	// [from, to), which a partition opened on an older state needs before
	// the first record its subscription delivers; kafka.ErrBeforeStart
	// when they are gone.
	History func(ctx context.Context, partition int32, from, to int64, fn func(offset int64, value []byte) error) error
	// Replay opens no state past the offset the group committed at
	// assignment, so that a rewound group's outputs are published again
	// (replay rewinds it).
	Replay bool
	// Snapshots, when set, restores partitions from the state topic and
	// is told of every checkpoint, so that it can write snapshots.
	Snapshots Snapshots
	// Signals, when set, sends the re-read requests the engines decide,
	// after the batch's records are published; Replay sends none.
	Signals Signals
}

// Signals sends re-read requests to the connectors (verify.Sender).
type Signals interface {
	Send(ctx context.Context, reqs []consistency.Request) error
}

// Snapshots keeps partitions' state on the state topic.
type Snapshots interface {
	// Restore replaces a partition's state in the Store with the newest
	// complete snapshot of it that reflects an offset in (after, atMost];
	// it reports whether it found one.
	Restore(ctx context.Context, partition int32, after, atMost int64) (bool, error)
	// Checkpointed tells, while the partition's handler holds it, that
	// the partition's state in the Store now reflects the changes before
	// offset next, and that the checkpoint wrote keys keys.
	Checkpointed(partition int32, next int64, keys int64)
	// Released tells that the member no longer owns the partition.
	Released(partition int32)
}

// Stage is the reconcile stage. Handle is safe for concurrent use by the
// handlers of different changes partitions.
type Stage struct {
	cfg     Config
	engines owned.Map[int32, *partition]
	// fingerprint names the configuration a checkpoint was written
	// under: one of other tables, window or partitions is not opened.
	fingerprint string
	mu          sync.Mutex
	suppress    map[int32]int64 // by partition: the offset committed at assignment
}

type partition struct {
	owned.Part       // held by Handle; a retired partition takes no more batches
	suppress   int64 // what is decided at records before this offset is not published: the previous owner did
	applied    map[inputKey]int64
	id         int32
	next       int64 // next changes offset to apply: a redelivered batch is not applied twice
	engine     *consistency.Engine
	out        []schemas.Record
	signals    []consistency.Request // decided, not yet sent
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
	fp, err := json.Marshal(struct {
		Tables     []config.Table
		Window     config.Window
		Partitions int
	}{cfg.Settings.Tables, cfg.Settings.Window, max(cfg.Partitions, 1)})
	if err != nil {
		return nil, fmt.Errorf("reconciler: %w", err)
	}
	return &Stage{cfg: cfg, fingerprint: fmt.Sprintf("%016x", xxh3.Hash(fp)), suppress: map[int32]int64{}}, nil
}

// Assigned prepares a changes partition assigned to this member, whose
// group had committed offset committed (-1 when none). A member whose own
// state reflects at least that offset goes on from the offset it
// reflects; otherwise the partition starts at the committed offset, and
// its first batch opens the state from the newest snapshot or the
// member's own, whichever is newer, and reads the changes between it and
// the batch (see open). A kafka.SubscriberConfig.Assigned hook.
func (s *Stage) Assigned(_ string, id int32, committed int64) int64 {
	s.engines.Retire(id)
	if s.cfg.Snapshots != nil {
		s.cfg.Snapshots.Released(id) // another member may have written since
	}
	s.mu.Lock()
	s.suppress[id] = committed
	s.mu.Unlock()
	if s.cfg.Store == nil {
		return kafka.Committed
	}
	next, ok, err := s.cfg.Store.Offset(s.cfg.Settings.Topics.Changes, id)
	if err != nil || !ok || next < committed || next < 0 || s.cfg.Replay && next != committed {
		return kafka.Committed // open reports a store that fails
	}
	return next
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
	if s.cfg.Snapshots != nil {
		s.cfg.Snapshots.Released(id)
	}
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
	return s.engines.GetOrCreate(id, func() (*partition, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		p := &partition{id: id, suppress: s.suppress[id]}
		p.stats.Store(&consistency.Stats{})
		return p, nil
	})
}

// open opens a partition's state before its first batch, whose first
// record is at offset first: the member's own state, replaced by the
// newest snapshot on the state topic when that is newer and the own state
// is behind the group, then the changes from the offset that state
// reflects to first, read apart from the subscription. Only the
// partition's own handler waits for it.
func (s *Stage) open(ctx context.Context, p *partition, first int64) error {
	if err := s.openEngine(p); err != nil {
		return err
	}
	// need is where the state must reach before the batch: the offset
	// the group committed, or with nothing committed (a new group, or
	// one a replay from the earliest point deleted) the first record
	// delivered, from which every output is published.
	need := p.suppress
	if need < 0 {
		need = first
	}
	atMost := int64(math.MaxInt64)
	if s.cfg.Replay || p.suppress < 0 {
		// Outputs from need on are published (again): no state past it
		// may be opened.
		atMost = need
		if p.next > atMost {
			if err := s.drop(p.id); err != nil {
				return err
			}
			if err := s.openEngine(p); err != nil {
				return err
			}
		}
	}
	if p.next < need && s.cfg.Snapshots != nil {
		restored, err := s.cfg.Snapshots.Restore(ctx, p.id, p.next, atMost)
		if err != nil {
			return fmt.Errorf("reconciler partition %d: restoring its state: %w", p.id, err)
		}
		if restored {
			if err := s.openEngine(p); err != nil {
				return err
			}
		}
	}
	if first <= p.next {
		return nil
	}
	if s.cfg.History == nil {
		return fmt.Errorf("reconciler partition %d: its state reflects offset %d, the subscription starts at %d, and nothing reads the changes between", p.id, p.next, first)
	}
	from, n := p.next, 0
	err := s.cfg.History(ctx, p.id, from, first, func(off int64, value []byte) error {
		if err := s.apply(p, off, value); err != nil {
			return err
		}
		if n++; n%catchUpBatch != 0 {
			return nil
		}
		if err := s.publish(ctx, p); err != nil {
			return err
		}
		return s.flush(p)
	})
	if errors.Is(err, kafka.ErrBeforeStart) {
		if s.cfg.Replay {
			return fmt.Errorf("reconciler partition %d: %w: the replay needs the changes from offset %d, and no snapshot on the state topic reflects an offset between them and the replay point; replay from a later point", p.id, ErrHistoryLost, from)
		}
		return fmt.Errorf("reconciler partition %d: %w: its state reflects offset %d, and no snapshot on the state topic is newer; "+
			"see the README, \"State and retention\"", p.id, ErrHistoryLost, from)
	}
	if err != nil {
		return fmt.Errorf("reconciler partition %d: reading changes %d to %d: %w", p.id, from, first, err)
	}
	if err := s.publish(ctx, p); err != nil {
		return err
	}
	return s.flush(p)
}

// catchUpBatch is how many changes records a partition reads on opening
// between checkpoints.
const catchUpBatch = 4096

// openEngine opens the partition's engine on the store: on the state of
// its last checkpoint, or empty when there is none or it was written
// under another configuration (it is dropped then).
func (s *Stage) openEngine(p *partition) error {
	for attempt := 0; ; attempt++ {
		e, err := s.newEngine(p)
		if err != nil {
			if errors.Is(err, consistency.ErrStored) && attempt == 0 {
				if err := s.drop(p.id); err != nil {
					return err
				}
				continue
			}
			return fmt.Errorf("reconciler partition %d: %w", p.id, err)
		}
		p.engine, p.next, p.inputs, p.out = e, 0, 0, nil
		p.ended, p.applied = map[string]bool{}, map[inputKey]int64{}
		p.finishing, p.finished = false, false
		extra, ok := e.Resumed()
		if ok {
			if err := s.readExtra(p, extra); err != nil {
				if attempt > 0 {
					return fmt.Errorf("reconciler partition %d: %w", p.id, err)
				}
				if err := s.drop(p.id); err != nil {
					return err
				}
				continue
			}
		}
		for side, ins := range s.cfg.Inputs {
			e.Expect(side, ins...)
			p.inputs += len(ins)
		}
		p.snapshot()
		return nil
	}
}

func (s *Stage) newEngine(p *partition) (*consistency.Engine, error) {
	rc := consistency.Config{Settings: s.cfg.Settings, Mapper: s.cfg.Mapper, Partition: p.id,
		Emit:    func(r schemas.Record) { p.out = append(p.out, r) },
		Request: func(r consistency.Request) { p.signals = append(p.signals, r) }}
	if s.cfg.Store != nil {
		rc.Store = s.cfg.Store
		rc.MaxKeys = s.cfg.KeysInMemory / max(s.cfg.Partitions, 1)
	}
	e, err := consistency.New(rc)
	if err != nil {
		return nil, err
	}
	return e, nil
}

// drop deletes a partition's stored state: written under another
// configuration, or unreadable.
func (s *Stage) drop(id int32) error {
	if s.cfg.Store == nil {
		return nil
	}
	b := s.cfg.Store.NewBatch()
	defer b.Close()
	consistency.Drop(b, id)
	b.DeleteOffset(s.cfg.Settings.Topics.Changes, id)
	if err := b.Commit(); err != nil {
		return fmt.Errorf("reconciler partition %d: dropping its stored state: %w", id, err)
	}
	return nil
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
	if p.engine == nil {
		if err := s.open(msg.Context(), p, recs[0].Offset); err != nil {
			if errors.Is(err, state.ErrStorage) || errors.Is(err, errStateLost) || errors.Is(err, ErrHistoryLost) {
				p.broken = err
			}
			p.engine = nil // opened again by the batch's redelivery
			return err
		}
	}
	defer p.snapshot()
	for _, r := range recs {
		if err := s.apply(p, r.Offset, r.Value); err != nil {
			return err
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

// apply applies the changes record at offset off, unless it was applied
// before (a redelivery, or a record the partition's state already
// reflects).
func (s *Stage) apply(p *partition, off int64, value []byte) error {
	if off < p.next {
		return nil // applied before a failed publish; its records are still in p.out
	}
	c, m, err := changes.Decode(value)
	if err != nil {
		// Our own topic: a record we cannot read is a bug or
		// corruption; stopping beats deciding on partial input. The
		// partition stays before it, so every retry stops there too.
		return fmt.Errorf("reconciler partition %d offset %d: %w", p.id, off, err)
	}
	if m != nil {
		s.mark(p, m, off)
		p.next = off + 1
		return nil
	}
	in := inputKey{c.Origin.Topic, c.Origin.Partition}
	if last, ok := p.applied[in]; ok && c.Origin.Offset <= last {
		p.next = off + 1
		return nil // published again by an ingest member that crashed
	}
	if err := p.engine.Apply(*c); err != nil {
		return fmt.Errorf("reconciler partition %d offset %d: %w", p.id, off, err)
	}
	p.applied[in] = c.Origin.Offset
	p.next = off + 1
	return nil
}

// mark hands the engine a watermark read at offset off and decides what it
// allows, there and then: every decision is tied to the record that made
// it possible, whatever the batch it came in, so a rebuild decides each
// record at the same offset as the owner before it, and publishes exactly
// the records decided at or after the offset that owner committed.
func (s *Stage) mark(p *partition, m *changes.Mark, off int64) {
	before, signals := len(p.out), len(p.signals)
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
		// Decided, published and sent by the previous owner.
		p.out, p.signals = p.out[:before], p.signals[:signals]
	}
}

// flush checkpoints the partition: the keys it changed and its own state,
// with its next offset, in one batch. A failed commit leaves the engine
// without the keys it dropped from memory, so it stops the stage rather
// than let it decide on missing state.
func (s *Stage) flush(p *partition) error {
	if s.cfg.Store == nil {
		return nil
	}
	b := s.cfg.Store.NewBatch()
	defer b.Close()
	written := p.engine.Dirty()
	if _, err := p.engine.Checkpoint(b, s.appendExtra(p)); err != nil {
		return fmt.Errorf("reconciler partition %d: %w", p.id, err)
	}
	b.SetOffset(s.cfg.Settings.Topics.Changes, p.id, p.next)
	if err := b.Commit(); err != nil {
		p.broken = fmt.Errorf("reconciler partition %d: %w: %w", p.id, errStateLost, err)
		return p.broken
	}
	if s.cfg.Snapshots != nil {
		s.cfg.Snapshots.Checkpointed(p.id, p.next, int64(written))
	}
	return nil
}

// extra is a partition's own state in its checkpoint, beside its
// engine's: the configuration's fingerprint, the next offset, whether the
// engine finished, the last input offset applied of every input
// partition, and the inputs that ended.
type extra struct {
	Fingerprint string    `json:"fingerprint"`
	Next        int64     `json:"next"`
	Finished    bool      `json:"finished,omitempty"`
	Applied     []applied `json:"applied"`
	Ended       []string  `json:"ended,omitempty"`
}

type applied struct {
	Topic     string `json:"t"`
	Partition int32  `json:"p"`
	Offset    int64  `json:"o"`
}

func (s *Stage) appendExtra(p *partition) []byte {
	x := extra{Fingerprint: s.fingerprint, Next: p.next, Finished: p.finished || p.finishing,
		Applied: make([]applied, 0, len(p.applied)), Ended: slices.Sorted(maps.Keys(p.ended))}
	for in, off := range p.applied {
		x.Applied = append(x.Applied, applied{in.topic, in.part, off})
	}
	slices.SortFunc(x.Applied, func(a, b applied) int {
		return cmp.Or(strings.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	b, _ := json.Marshal(x)
	return b
}

// errOtherConfig is a checkpoint written under another configuration.
var errOtherConfig = errors.New("the stored state was written under another configuration of tables, window or partitions")

func (s *Stage) readExtra(p *partition, v []byte) error {
	var x extra
	if err := json.Unmarshal(v, &x); err != nil {
		return fmt.Errorf("the stored state is corrupt: %w", err)
	}
	if x.Fingerprint != s.fingerprint {
		return errOtherConfig
	}
	p.next, p.finished = x.Next, x.Finished
	for _, a := range x.Applied {
		p.applied[inputKey{a.Topic, a.Partition}] = a.Offset
	}
	for _, in := range x.Ended {
		p.ended[in] = true
	}
	return nil
}

// ErrHistoryLost is a partition whose state cannot reach the offset it
// must resume from: the changes between were deleted from the changes
// topic, and no snapshot covers them. The partition cannot go on.
var ErrHistoryLost = errors.New("the changes the partition's state needs were deleted from the changes topic")

// errStateLost is a failed state commit: the partition cannot go on.
var errStateLost = errors.New("storing idle keys failed; the partition's state is incomplete")

func (s *Stage) publish(ctx context.Context, p *partition) error {
	if err := s.publishRecords(ctx, p); err != nil {
		return err
	}
	if len(p.signals) == 0 {
		return nil
	}
	if s.cfg.Signals != nil && !s.cfg.Replay {
		if err := s.cfg.Signals.Send(ctx, p.signals); err != nil {
			return fmt.Errorf("reconciler partition %d: %w", p.id, err)
		}
	}
	p.signals = p.signals[:0]
	return nil
}

func (s *Stage) publishRecords(ctx context.Context, p *partition) error {
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
		d, ok := r.(*schemas.Drift)
		switch {
		case !ok:
		case d.Status == schemas.Open && d.VerifiedAt == nil:
			s.cfg.Metrics.DriftOpened(d.Table)
		case d.Status == schemas.Open:
			s.cfg.Metrics.Verdict(d.Table, string(d.Verification), d.VerifiedSide)
		default:
			s.cfg.Metrics.DriftResolved(d.Table)
			if d.Verification == schemas.StreamGap { // a stream gap is its own resolution
				s.cfg.Metrics.Verdict(d.Table, string(d.Verification), d.VerifiedSide)
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
