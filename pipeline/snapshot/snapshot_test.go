package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/pipeline/broker"
	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
	"github.com/cdcrecon/cdcrecon/processors/changes"
	"github.com/cdcrecon/cdcrecon/processors/consistency"
	"github.com/cdcrecon/cdcrecon/processors/state"
)

const (
	stateTopic   = "t.state"
	changesTopic = "t.changes"
)

// rig is an embedded broker with a compacted state topic and a changes
// topic of two partitions, each holding changes records.
type rig struct {
	t   *testing.T
	b   *broker.Broker
	cfg kafka.ClientConfig
	cl  *kgo.Client
}

func newRig(t *testing.T, changes int) *rig {
	t.Helper()
	b, err := broker.Start(broker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	cfg := kafka.ClientConfig{Brokers: []string{b.Addr()}}
	cl, err := kgo.NewClient(append(cfg.ClientOpts(), kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	if _, err := adm.CreateTopic(ctx, 2, 1, TopicConfigs(), stateTopic); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, changesTopic); err != nil {
		t.Fatal(err)
	}
	for part := int32(0); part < 2; part++ {
		for i := 0; i < changes; i++ {
			cl.Produce(ctx, &kgo.Record{Topic: changesTopic, Partition: part, Value: []byte("change")}, nil)
		}
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, b: b, cfg: cfg, cl: cl}
}

func (r *rig) keeper(store *state.Store) *Keeper {
	r.t.Helper()
	k, err := New(Config{Client: r.cfg, Topic: stateTopic, Changes: changesTopic, Store: store,
		Interval: time.Nanosecond, MinChanges: 1})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(k.Close)
	return k
}

// start is the changes partition's first retained offset.
func (r *rig) start(part int32) int64 {
	r.t.Helper()
	start, _, err := kafka.Bounds(context.Background(), r.cl, changesTopic, part)
	if err != nil {
		r.t.Fatal(err)
	}
	return start
}

func openStore(t *testing.T) *state.Store {
	t.Helper()
	s, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// fill writes n keys of partition part in every key space, with values
// of size bytes drawn from rng, and the engine's own state.
func fill(t *testing.T, s *state.Store, part int32, n, size int, rng *rand.Rand, meta string) {
	t.Helper()
	b := s.NewBatch()
	defer b.Close()
	for _, space := range consistency.KeySpaces {
		lower, _ := consistency.SpaceBounds(space, part)
		for i := 0; i < n; i++ {
			v := make([]byte, size)
			for j := range v {
				v[j] = byte(rng.IntN(256))
			}
			b.Set(fmt.Appendf(bytes.Clone(lower), "key-%06d", i), v)
		}
	}
	b.Set(metaKey(part), []byte(meta))
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
}

// contents is every key and value of partition part in the store, in
// every space, and its changes offset.
func contents(t *testing.T, s *state.Store, part int32) (map[string]string, int64) {
	t.Helper()
	m := map[string]string{}
	for _, space := range consistency.Spaces {
		lower, upper := consistency.SpaceBounds(space, part)
		err := s.Scan(lower, upper, func(k, v []byte) error {
			m[string(k)] = string(v)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	off, ok, err := s.Offset(changesTopic, part)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		off = -1
	}
	return m, off
}

// snap takes a snapshot of partition part reflecting offset next and
// waits until it is written.
func snap(t *testing.T, k *Keeper, part int32, next, keys int64) {
	t.Helper()
	k.Checkpointed(part, next, keys)
	deadline := time.Now().Add(20 * time.Second)
	for {
		k.mu.Lock()
		p := k.parts[part]
		done := p != nil && !p.running && p.known && p.last.offset == next
		k.mu.Unlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the snapshot of partition %d at %d was not written", part, next)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRestoreCopiesThePartitionExactly: a fresh store restored from the
// state topic holds exactly what the source store held for the
// partition at the snapshot (other partitions untouched, its stale keys
// gone), and the offset it reflects.
func TestRestoreCopiesThePartitionExactly(t *testing.T) {
	r := newRig(t, 50)
	rng := rand.New(rand.NewPCG(1, 2))
	src := openStore(t)
	fill(t, src, 0, 3000, 300, rng, "meta-0") // several chunks
	fill(t, src, 1, 10, 10, rng, "meta-1")
	k := r.keeper(src)
	k.Checkpointed(0, 1, 1) // first checkpoint: the partition's start
	snap(t, k, 0, 40, 1)
	want, _ := contents(t, src, 0)

	// Keys written after the snapshot are not in it.
	fill(t, src, 0, 3100, 10, rng, "meta-later")

	dst := openStore(t)
	fill(t, dst, 0, 5000, 5, rng, "stale") // replaced wholesale
	fill(t, dst, 1, 7, 7, rng, "other")
	other, _ := contents(t, dst, 1)
	r.restored(dst, math.MaxInt64, want, 40)
	if now, _ := contents(t, dst, 1); len(now) != len(other) {
		t.Errorf("partition 1 changed: %d keys, had %d", len(now), len(other))
	}

	// A store already past every snapshot restores nothing.
	if ok, err := r.keeper(openStore(t)).Restore(context.Background(), 0, 40, math.MaxInt64); err != nil || ok {
		t.Errorf("restore after the latest: %v %v", ok, err)
	}
}

// TestSnapshotsPurgeOnlyWhatNoSnapshotNeeds: each new snapshot deletes
// the changes before the one it makes spare, a trailer alone deletes
// nothing, and the changes topic's first offset is always one a
// snapshot on the state topic reflects: a restore there succeeds after
// the broker compacted the state topic.
func TestSnapshotsPurgeOnlyWhatNoSnapshotNeeds(t *testing.T) {
	r := newRig(t, 400)
	rng := rand.New(rand.NewPCG(3, 4))
	src := openStore(t)
	fill(t, src, 0, 200, 50, rng, "m1")
	k := r.keeper(src)
	k.Checkpointed(0, 1, 1)
	snap(t, k, 0, 100, 1)
	if got := r.start(0); got != 0 {
		t.Fatalf("the first snapshot deleted changes: start %d", got)
	}
	at200, _ := contents(t, src, 0)
	snap(t, k, 0, 200, 1)
	if got := r.start(0); got != 100 {
		t.Fatalf("after the second snapshot the changes start at %d, want 100", got)
	}
	// No key written: a trailer moves the offset on, deleting nothing.
	snap(t, k, 0, 250, 0)
	if got := r.start(0); got != 100 {
		t.Fatalf("a trailer alone moved the start to %d", got)
	}
	fill(t, src, 0, 220, 50, rng, "m3")
	snap(t, k, 0, 300, 5)
	if got := r.start(0); got != 250 {
		t.Fatalf("after the third snapshot the changes start at %d, want 250 (the spare's offset)", got)
	}
	if got := r.start(1); got != 0 {
		t.Errorf("partition 1's changes were deleted: start %d", got)
	}
	r.b.Cluster().Compact()

	// The spare reflects the first retained offset, and restores.
	r.restored(nil, 250, at200, 250)
	// Nothing reflects a point before it.
	if ok, err := r.keeper(openStore(t)).Restore(context.Background(), 0, -1, 249); err != nil || ok {
		t.Errorf("restore before the spare: %v %v", ok, err)
	}
}

// TestDamagedSnapshotFallsBack: a latest snapshot whose chunk was
// replaced on the state topic does not check out; the restore takes the
// snapshot before it.
func TestDamagedSnapshotFallsBack(t *testing.T) {
	r := newRig(t, 10)
	rng := rand.New(rand.NewPCG(5, 6))
	src := openStore(t)
	fill(t, src, 0, 100, 20, rng, "m1")
	before, _ := contents(t, src, 0)
	k := r.keeper(src)
	k.Checkpointed(0, 1, 1)
	snap(t, k, 0, 5, 1)
	fill(t, src, 0, 3000, 300, rng, "m2")
	snap(t, k, 0, 8, 1)

	// Chunk 1 of the latest snapshot (seq 2, slot 0) is replaced by one
	// of a later snapshot cut short; compaction drops the original.
	k.mu.Lock()
	last, lastAt := k.parts[0].last, k.parts[0].lastAt
	k.mu.Unlock()
	if last.chunks < 2 {
		t.Fatalf("the snapshot has %d chunks; the test needs two", last.chunks)
	}
	// (A second chunk after it: the broker never compacts the last batch.)
	for i := int64(1); i <= 2; i++ {
		v := chunkHeader{seq: last.seq + 2, base: 9, prevAt: lastAt, index: i}.append(nil)
		v = append(v, 0)
		if err := r.cl.ProduceSync(context.Background(), &kgo.Record{Topic: stateTopic, Partition: 0, Key: fmt.Appendf(nil, "0/%d", i), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	r.b.Cluster().Compact()

	// The snapshot before the damaged one.
	r.restored(nil, math.MaxInt64, before, 5)
}

// TestCutShortSnapshotLeavesTheLatest: chunks of a snapshot that never
// got its trailer (the worker died writing it) are passed over for the
// complete snapshot before them.
func TestCutShortSnapshotLeavesTheLatest(t *testing.T) {
	r := newRig(t, 10)
	rng := rand.New(rand.NewPCG(7, 8))
	src := openStore(t)
	fill(t, src, 0, 50, 20, rng, "m1")
	want, _ := contents(t, src, 0)
	k := r.keeper(src)
	k.Checkpointed(0, 1, 1)
	snap(t, k, 0, 7, 1)
	k.mu.Lock()
	last, lastAt := k.parts[0].last, k.parts[0].lastAt
	k.mu.Unlock()
	for i := int64(0); i < 3; i++ {
		v := chunkHeader{seq: last.seq + 1, base: 9, prevAt: lastAt, index: i}.append(nil)
		v = append(v, 0)
		if err := r.cl.ProduceSync(context.Background(), &kgo.Record{Topic: stateTopic, Partition: 0, Key: fmt.Appendf(nil, "0/%d", i), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	r.restored(nil, math.MaxInt64, want, 7)
}

// TestRestoreAfterRetention: on a broker that enforces the changes
// topic's retention (the settings the topology creates it with), changes
// older than the retention are deleted; a snapshot taken after them
// still restores and the changes after it are read on, while a read from
// before the first retained change says so.
func TestRestoreAfterRetention(t *testing.T) {
	b, err := broker.Start(broker.Config{CleanerInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cfg := kafka.ClientConfig{Brokers: []string{b.Addr()}}
	cl, err := kgo.NewClient(append(cfg.ClientOpts(), kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 1, 1, TopicConfigs(), stateTopic); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 1, 1, changes.TopicConfigs(time.Hour), changesTopic); err != nil {
		t.Fatal(err)
	}
	// 300 changes two hours old, then 300 of now, in batches of their own.
	old := time.Now().Add(-2 * time.Hour)
	for i := range 600 {
		r := &kgo.Record{Topic: changesTopic, Value: []byte("change")}
		if i < 300 {
			r.Timestamp = old
		}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		start, _, err := kafka.Bounds(ctx, cl, changesTopic, 0)
		if err != nil {
			t.Fatal(err)
		}
		if start == 300 {
			break
		}
		if start > 300 || time.Now().After(deadline) {
			t.Fatalf("the changes topic starts at %d; retention should have deleted the 300 old changes and no more", start)
		}
		time.Sleep(20 * time.Millisecond)
	}

	rng := rand.New(rand.NewPCG(9, 10))
	src := openStore(t)
	fill(t, src, 0, 100, 20, rng, "m")
	want, _ := contents(t, src, 0)
	k, err := New(Config{Client: cfg, Topic: stateTopic, Changes: changesTopic, Store: src, Interval: time.Nanosecond, MinChanges: 1, NoPurge: true})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	k.Checkpointed(0, 1, 1)
	snap(t, k, 0, 450, 1)

	(&rig{t: t, cfg: cfg}).restored(nil, math.MaxInt64, want, 450)
	read := 0
	if err := kafka.ReadRange(ctx, cfg, changesTopic, 0, 450, 600, false, func(*kgo.Record) error { read++; return nil }); err != nil || read != 150 {
		t.Fatalf("reading on from the snapshot: %d records, %v", read, err)
	}
	err = kafka.ReadRange(ctx, cfg, changesTopic, 0, 100, 600, false, func(*kgo.Record) error { return nil })
	if !errors.Is(err, kafka.ErrBeforeStart) {
		t.Fatalf("reading from before the retained changes: %v, want ErrBeforeStart", err)
	}
}

// restored restores partition 0 into dst (nil: a fresh store) with a
// Keeper on r's broker, taking the newest snapshot reflecting at most
// atMost, and requires it to hold exactly want at offset off.
func (r *rig) restored(dst *state.Store, atMost int64, want map[string]string, off int64) {
	r.t.Helper()
	if dst == nil {
		dst = openStore(r.t)
	}
	ok, err := r.keeper(dst).Restore(context.Background(), 0, -1, atMost)
	if err != nil || !ok {
		r.t.Fatalf("restore: %v %v", ok, err)
	}
	got, at := contents(r.t, dst, 0)
	if at != off || len(got) != len(want) {
		r.t.Fatalf("restored at %d with %d keys, want %d and %d", at, len(got), off, len(want))
	}
	for key, v := range want {
		if got[key] != v {
			r.t.Fatalf("key %q differs after the restore", key)
		}
	}
}
