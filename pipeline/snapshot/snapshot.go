// Package snapshot keeps the reconciler's partitions' state on the state
// topic, so that a partition that moves to another worker, or comes back
// to one whose own state is behind, is restored in time proportional to
// its keys and caught up from the offset its snapshot reflects, rather
// than rebuilt from the first change.
//
// A snapshot of a changes partition is a copy of the partition's keys in
// the state store as of one checkpoint, written to the state partition of
// the same number as chunks and then a trailer:
//
//	chunk   key "<slot>/<index>"  seq, base, previous trailer's offset, index, entries
//	trailer key "<slot>/end"      seq, offset, base, first chunk's offset, chunk count, checksum, engine state
//
// where offset is the changes offset the snapshot reflects, base the one
// its chunks were taken at (the same, unless no key changed since the
// chunks: a trailer alone then moves the offset on), and slot the
// snapshot's sequence number modulo 2. The topic is compacted, and the
// two slots keep the latest complete snapshot intact while the next is
// written. A restore reads the partition's last record, follows it to the
// latest trailer (a chunk names the trailer before it) and reads that
// snapshot's chunks alone, so its time does not depend on how far the
// broker's cleaner is behind.
//
// Once a snapshot with new chunks is complete, the changes before the
// one it replaces are deleted from the changes topic: a restore needs
// only the changes from the snapshot it restores on, and the one before
// is kept spare, so that the changes topic's first retained offset is
// always that of a snapshot on the state topic (a replay from the
// earliest point restores it).
package snapshot

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/zeebo/xxh3"

	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
	"github.com/cdcrecon/cdcrecon/pipeline/ops"
	"github.com/cdcrecon/cdcrecon/processors/consistency"
	"github.com/cdcrecon/cdcrecon/processors/state"
)

// Config configures a Keeper.
type Config struct {
	Client kafka.ClientConfig
	// Topic is the state topic; Changes the changes topic, whose
	// partitions it keeps snapshots of and deletes old records from.
	Topic, Changes string
	Store          *state.Store
	// Interval is the longest a partition whose state changed goes
	// without a snapshot. A snapshot is also due once the partition has
	// read Ratio times as many changes since the last one as it has keys
	// (at least MinChanges), so that catching up never costs more than
	// a few restores' worth.
	Interval   time.Duration
	Ratio      int64
	MinChanges int64
	// NoPurge keeps the changes topic's records (tests of retention).
	NoPurge bool
	Logger  *slog.Logger
	// Metrics counts the snapshots written and the restores; may be nil.
	Metrics *ops.Metrics
}

// Defaults of Config.
const (
	DefaultRatio      = 4
	DefaultMinChanges = 100_000
)

// chunkBytes is the size of a chunk's entries before compression.
const chunkBytes = 512 << 10

// MaxRecordBytes is the largest record the state topic must take: a chunk
// holds at least one key, and a key's state holds its rows.
const MaxRecordBytes = 16 << 20

// MaxMessageBytes is the state topic's max.message.bytes: a record of
// MaxRecordBytes and its batch's overhead.
const MaxMessageBytes = MaxRecordBytes + 1<<10

// TopicConfigs are the state topic's settings when cdcrecon creates it:
// compacted, taking the largest record, in segments small enough (64 MiB,
// or an hour) for the cleaner to reach.
func TopicConfigs() map[string]*string {
	policy, maxBytes := "compact", strconv.Itoa(MaxMessageBytes)
	segBytes, segMs := strconv.Itoa(64<<20), strconv.FormatInt(time.Hour.Milliseconds(), 10)
	return map[string]*string{"cleanup.policy": &policy, "max.message.bytes": &maxBytes, "segment.bytes": &segBytes, "segment.ms": &segMs}
}

// Keeper writes and restores snapshots. It is safe for concurrent use.
type Keeper struct {
	cfg Config
	log *slog.Logger
	cl  *kgo.Client

	mu    sync.Mutex
	parts map[int32]*part
	wg    sync.WaitGroup
	ctx   context.Context
	stop  context.CancelFunc
}

// part is what the Keeper knows of one partition's snapshots.
type part struct {
	// last is the latest trailer written or read, at offset lastAt (-1:
	// none); known tells that it was looked up or written.
	last   trailer
	lastAt int64
	known  bool
	// since and from are when the last snapshot was taken and the
	// offset it reflects (or when the partition's first checkpoint was
	// seen, and its offset); written counts the keys written since.
	since   time.Time
	from    int64
	written int64
	running bool
	cancel  context.CancelFunc
}

// New returns a Keeper; Close stops it.
func New(cfg Config) (*Keeper, error) {
	if cfg.Store == nil || cfg.Topic == "" || cfg.Changes == "" {
		return nil, errors.New("snapshot: Store, Topic and Changes are required")
	}
	if cfg.Ratio <= 0 {
		cfg.Ratio = DefaultRatio
	}
	if cfg.MinChanges <= 0 {
		cfg.MinChanges = DefaultMinChanges
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := append(cfg.Client.ClientOpts(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchMaxBytes(MaxRecordBytes),
		kgo.ProducerBatchCompression(kgo.Lz4Compression()),
		kgo.MaxBufferedBytes(64<<20))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	k := &Keeper{cfg: cfg, log: log, cl: cl, parts: map[int32]*part{}}
	k.ctx, k.stop = context.WithCancel(context.Background())
	return k, nil
}

// Close stops the snapshots being written and waits for them.
func (k *Keeper) Close() {
	k.stop()
	k.wg.Wait()
	k.cl.Close()
}

func (k *Keeper) part(id int32) *part {
	p := k.parts[id]
	if p == nil {
		p = &part{lastAt: -1, since: time.Now(), from: -1}
		k.parts[id] = p
	}
	return p
}

// Released forgets a partition this member no longer owns, stopping a
// snapshot of it under way: its next owner writes them.
func (k *Keeper) Released(id int32) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if p := k.parts[id]; p != nil && p.cancel != nil {
		p.cancel()
	}
	delete(k.parts, id)
}

// Checkpointed is told of every checkpoint of a partition, while the
// partition's handler holds it: its state in the store now reflects the
// changes before next, and the checkpoint wrote keys keys. When a
// snapshot is due it takes a view of the store there and then, and
// writes it in the background.
func (k *Keeper) Checkpointed(id int32, next, keys int64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	p := k.part(id)
	p.written += keys
	if p.from < 0 {
		p.from = next
	}
	if p.running || next <= p.from {
		return
	}
	due := max(k.cfg.Ratio*p.last.entries, k.cfg.MinChanges)
	if next-p.from < due && time.Since(p.since) < k.cfg.Interval {
		return
	}
	view := k.cfg.Store.View()
	// A trailer alone moves the offset on while no key changed, until
	// the chunks it names are as far behind as a snapshot is due at:
	// then they are taken again, and the snapshot before them retires.
	full := p.written > 0 || !p.known || p.last.seq == 0 || next-p.last.base >= due
	p.running, p.written, p.since, p.from = true, 0, time.Now(), next
	ctx, cancel := context.WithCancel(k.ctx)
	p.cancel = cancel
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		defer view.Close()
		err := k.write(ctx, id, p, view, next, full)
		k.mu.Lock()
		p.running = false
		if err != nil && ctx.Err() == nil {
			// Taken again at the next checkpoint after an interval.
			p.written++
			k.log.Warn("writing a snapshot failed", "partition", id, "offset", next, "error", err)
		}
		k.mu.Unlock()
	}()
}

// write writes a snapshot of partition id reflecting offset next from
// view: chunks and a trailer when full, a trailer naming the last
// snapshot's chunks when not. Then it deletes the changes the snapshot
// before the last no longer needs.
func (k *Keeper) write(ctx context.Context, id int32, p *part, view *state.View, next int64, full bool) error {
	k.mu.Lock()
	known, last, lastAt := p.known, p.last, p.lastAt
	k.mu.Unlock()
	if !known {
		var err error
		if last, lastAt, err = k.latest(ctx, id); err != nil {
			return err
		}
		full = true
	}
	meta, _, err := view.Get(metaKey(id))
	if err != nil {
		return err
	}
	t := trailer{seq: last.seq, offset: next, base: last.base, first: last.first, chunks: last.chunks, sum: last.sum, entries: last.entries, meta: meta}
	if full {
		t.seq, t.base = last.seq+1, next
		if err := k.writeChunks(ctx, id, view, &t, lastAt); err != nil {
			return err
		}
	}
	rec := &kgo.Record{Topic: k.cfg.Topic, Partition: id, Key: []byte(strconv.FormatInt(t.seq%2, 10) + "/end"), Value: t.append(nil)}
	if err := k.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("writing the trailer of partition %d's snapshot: %w", id, err)
	}
	k.mu.Lock()
	p.known, p.last, p.lastAt = true, t, rec.Offset
	k.mu.Unlock()
	k.cfg.Metrics.Snapshot(t.seq != last.seq)
	// The changes before the snapshot now spare are not needed: only
	// when the spare changed (a trailer alone keeps the chunks, and the
	// spare, of the snapshot before).
	if k.cfg.NoPurge || t.seq == last.seq || last.seq == 0 || last.offset <= 0 {
		return nil
	}
	adm := kadm.NewClient(k.cl)
	var before kadm.Offsets
	before.AddOffset(k.cfg.Changes, id, last.offset, -1)
	resp, err := adm.DeleteRecords(ctx, before)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("deleting the changes of partition %d before offset %d: %w", id, last.offset, err)
	}
	return nil
}

// writeChunks writes the partition's keys as of view as chunks of
// snapshot t, filling in t's first offset, count, checksum and entries.
func (k *Keeper) writeChunks(ctx context.Context, id int32, view *state.View, t *trailer, prevAt int64) error {
	slot := strconv.FormatInt(t.seq%2, 10) + "/"
	var (
		sum     = xxh3.New()
		buf     []byte
		n       int
		pending sync.WaitGroup
		mu      sync.Mutex
		failed  error
	)
	t.first, t.chunks, t.entries = -1, 0, 0
	send := func() error {
		h := chunkHeader{seq: t.seq, base: t.base, prevAt: prevAt, index: t.chunks}
		v := h.append(make([]byte, 0, len(buf)+40))
		body := len(v)
		v = binary.AppendUvarint(v, uint64(n))
		v = append(v, buf...)
		_, _ = sum.Write(v[body:])
		rec := &kgo.Record{Topic: k.cfg.Topic, Partition: id, Key: []byte(slot + strconv.FormatInt(t.chunks, 10)), Value: v}
		t.chunks++
		buf, n = buf[:0], 0
		if t.first < 0 {
			// The first chunk's offset goes in the trailer: wait for it.
			if err := k.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
				return err
			}
			t.first = rec.Offset
			return nil
		}
		pending.Add(1)
		k.cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			defer pending.Done()
			if err != nil {
				mu.Lock()
				if failed == nil {
					failed = err
				}
				mu.Unlock()
			}
		})
		return nil
	}
	for _, space := range consistency.KeySpaces {
		lower, upper := consistency.SpaceBounds(space, id)
		err := view.Scan(lower, upper, func(key, value []byte) error {
			buf = binary.AppendUvarint(buf, uint64(len(key)))
			buf = append(buf, key...)
			buf = binary.AppendUvarint(buf, uint64(len(value)))
			buf = append(buf, value...)
			n++
			t.entries++
			if len(buf) >= chunkBytes {
				return send()
			}
			return nil
		})
		if err != nil {
			pending.Wait()
			return fmt.Errorf("writing partition %d's snapshot: %w", id, err)
		}
	}
	if n > 0 {
		if err := send(); err != nil {
			pending.Wait()
			return fmt.Errorf("writing partition %d's snapshot: %w", id, err)
		}
	}
	pending.Wait()
	if failed != nil {
		return fmt.Errorf("writing partition %d's snapshot: %w", id, failed)
	}
	t.sum = sum.Sum64()
	return nil
}

func metaKey(id int32) []byte {
	lower, _ := consistency.SpaceBounds(consistency.MetaSpace, id)
	return lower
}

// Restore replaces partition id's state in the store with the newest
// complete snapshot on the state topic that reflects an offset in
// (after, atMost], and reports whether there was one. A snapshot that
// does not check out (a chunk missing or altered) is passed over for the
// one before it.
func (k *Keeper) Restore(ctx context.Context, id int32, after, atMost int64) (bool, error) {
	t, at, err := k.latest(ctx, id)
	if err != nil {
		return false, err
	}
	k.mu.Lock()
	p := k.part(id)
	if !p.running {
		p.known, p.last, p.lastAt = true, t, at
	}
	k.mu.Unlock()
	for tries := 0; t.seq > 0 && tries < 8; tries++ {
		if t.offset <= after {
			return false, nil
		}
		if t.offset <= atMost {
			started := time.Now()
			err := k.load(ctx, id, t, at)
			if err == nil {
				k.cfg.Metrics.Restored()
				k.log.Info("restored a partition's state from the state topic", "partition", id, "offset", t.offset,
					"entries", t.entries, "chunks", t.chunks, "took", time.Since(started).Round(time.Millisecond).String())
				return true, nil
			}
			if !errors.Is(err, errDamaged) {
				return false, err
			}
			k.log.Warn("a snapshot does not check out; trying the one before", "partition", id, "offset", t.offset, "error", err)
		}
		if t, at, err = k.previous(ctx, id, t); err != nil {
			return false, err
		}
	}
	return false, nil
}

// errDamaged is a snapshot whose chunks do not match its trailer.
var errDamaged = errors.New("the snapshot's chunks do not match its trailer")

// load reads snapshot t, whose trailer is at offset at, into the store.
func (k *Keeper) load(ctx context.Context, id int32, t trailer, at int64) error {
	chunks := make([][]byte, t.chunks)
	if t.chunks > 0 {
		err := kafka.ReadRange(ctx, k.cfg.Client, k.cfg.Topic, id, t.first, at, true, func(r *kgo.Record) error {
			h, body, ok := readChunk(r.Value)
			if ok && h.seq == t.seq && h.base == t.base && h.index < t.chunks && chunks[h.index] == nil {
				chunks[h.index] = body
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("reading partition %d's snapshot: %w", id, err)
		}
	}
	sum := xxh3.New()
	for i, c := range chunks {
		if c == nil {
			return fmt.Errorf("%w: chunk %d of %d is missing", errDamaged, i, t.chunks)
		}
		_, _ = sum.Write(c)
	}
	if sum.Sum64() != t.sum {
		return fmt.Errorf("%w: checksum", errDamaged)
	}
	b := k.cfg.Store.NewBatch()
	defer b.Close()
	consistency.Drop(b, id)
	b.DeleteOffset(k.cfg.Changes, id)
	if err := b.Commit(); err != nil {
		return err
	}
	entries := int64(0)
	for i, c := range chunks {
		n, w := binary.Uvarint(c)
		if w <= 0 {
			return fmt.Errorf("%w: chunk %d is malformed", errDamaged, i)
		}
		rest := c[w:]
		for j := uint64(0); j < n; j++ {
			key, r1, ok1 := readBytes(rest)
			value, r2, ok2 := readBytes(r1)
			if !ok1 || !ok2 {
				return fmt.Errorf("%w: chunk %d is malformed", errDamaged, i)
			}
			b.Set(key, value)
			rest = r2
			entries++
		}
		if err := b.Commit(); err != nil {
			return err
		}
	}
	if entries != t.entries {
		return fmt.Errorf("%w: %d entries, the trailer says %d", errDamaged, entries, t.entries)
	}
	// The engine's own state last: a restore cut short leaves none, and
	// the partition is seen to have no state.
	b.Set(metaKey(id), t.meta)
	b.SetOffset(k.cfg.Changes, id, t.offset)
	return b.Commit()
}

func readBytes(b []byte) (s, rest []byte, ok bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return nil, nil, false
	}
	return b[k : k+int(n)], b[k+int(n):], true
}

// latest finds the partition's latest trailer and its offset (seq 0:
// none): the partition's last record is a trailer, or a chunk of a
// snapshot cut short, which names the trailer before it.
func (k *Keeper) latest(ctx context.Context, id int32) (trailer, int64, error) {
	start, end, err := kafka.Bounds(ctx, k.cl, k.cfg.Topic, id)
	if err != nil || end <= start {
		return trailer{}, -1, err
	}
	var last *kgo.Record
	err = kafka.ReadRange(ctx, k.cfg.Client, k.cfg.Topic, id, max(start, end-16), end, true, func(r *kgo.Record) error {
		last = r
		return nil
	})
	if err != nil || last == nil {
		return trailer{}, -1, err
	}
	if t, ok := readTrailer(last.Value); ok {
		return t, last.Offset, nil
	}
	h, _, ok := readChunk(last.Value)
	if !ok {
		return trailer{}, -1, fmt.Errorf("state topic %s partition %d: its last record (offset %d) is not a snapshot's", k.cfg.Topic, id, last.Offset)
	}
	return k.trailerAt(ctx, id, h.prevAt)
}

// previous finds the trailer before t's snapshot: its first chunk names
// it.
func (k *Keeper) previous(ctx context.Context, id int32, t trailer) (trailer, int64, error) {
	if t.first < 0 {
		return trailer{}, -1, nil
	}
	var h chunkHeader
	found := false
	err := kafka.ReadRange(ctx, k.cfg.Client, k.cfg.Topic, id, t.first, t.first+1, true, func(r *kgo.Record) error {
		h, _, found = readChunk(r.Value)
		return nil
	})
	if err != nil || !found || h.seq != t.seq {
		return trailer{}, -1, err
	}
	return k.trailerAt(ctx, id, h.prevAt)
}

func (k *Keeper) trailerAt(ctx context.Context, id int32, at int64) (trailer, int64, error) {
	if at < 0 {
		return trailer{}, -1, nil
	}
	var t trailer
	found := false
	err := kafka.ReadRange(ctx, k.cfg.Client, k.cfg.Topic, id, at, at+1, true, func(r *kgo.Record) error {
		if r.Offset == at {
			t, found = readTrailer(r.Value)
		}
		return nil
	})
	if err != nil || !found {
		return trailer{}, -1, err
	}
	return t, at, nil
}
