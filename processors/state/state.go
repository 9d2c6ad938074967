// Package state is cdcrecon's Pebble store: dedupe marks, reconciler state
// and the input offsets they describe live in one database and are written
// in one batch, so that after a crash they agree.
//
// Stages declare the two or three methods they need as interfaces; Store
// and Batch are the concrete types behind them.
//
// Key spaces (the first byte): 'm' dedupe marks (by window), 'h' dedupe
// horizons, 'k' reconciler keys, 'o' offsets. Retired: 'd', the dedupe
// marks of all windows in one space, which Open deletes.
package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Options configure Open.
type Options struct {
	// FS is the filesystem; default the disk. Tests pass vfs.NewMem().
	FS vfs.FS
	// Sync makes every Commit wait for the disk. Default false: a crash
	// of the process loses nothing, a crash of the machine may lose the
	// last commits, which the input offsets stored with them then replay.
	Sync bool
	// NoWAL skips Pebble's write-ahead log: a crash loses everything not
	// yet flushed. For runs that never resume (an offline check).
	NoWAL bool
	// OnFatal is called with a failure Pebble cannot return as an error
	// (a WAL that cannot be created on a full or removed disk, a missing
	// table file) and must not return: Pebble holds its locks then, so a
	// panic would leave it unusable and unwinding it can crash the
	// process anyway. A worker reports the failure and exits (what it had
	// acknowledged is durable: it loses nothing). Default: panic with a
	// *Failure.
	OnFatal func(*Failure)
}

// Store is an open Pebble database. It is safe for concurrent use.
type Store struct {
	db    *pebble.DB
	cache *pebble.Cache
	sync  *pebble.WriteOptions
	fs    vfs.FS
	dir   string
}

// Sizes of the block cache and of each memtable (Pebble's defaults are 8
// and 4 MiB). Pebble reserves the memory of its memtables, the one being
// written and those being flushed, inside the block cache, so the cache
// must be well above twice the memtable size or nothing stays cached.
const (
	cacheSize    = 96 << 20
	memTableSize = 16 << 20
)

// Open opens (creating when missing) the store in dir.
func Open(dir string, o Options) (*Store, error) {
	// A block cache big enough for the filter and index blocks of the
	// dedupe marks: nearly every lookup is a miss, answered by a table's
	// bloom filter when its blocks are cached, by disk reads when not.
	// The cache is released after the database is closed, not before:
	// Pebble frees it when the last reference goes.
	cache := pebble.NewCache(cacheSize)
	fatal := o.OnFatal
	if fatal == nil {
		fatal = func(f *Failure) { panic(f) }
	}
	opts := &pebble.Options{FS: o.FS, Logger: quiet{fatal}, Cache: cache, MemTableSize: memTableSize, DisableWAL: o.NoWAL}
	opts.EnsureDefaults()
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		cache.Unref()
		return nil, fmt.Errorf("opening state in %s: %w", dir, err)
	}
	wo := pebble.NoSync
	if o.Sync {
		wo = pebble.Sync
	}
	fs := o.FS
	if fs == nil {
		fs = vfs.Default
	}
	st := &Store{db: db, cache: cache, sync: wo, fs: fs, dir: dir}
	if err := st.retire([]byte{'d'}); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

// retire deletes a key space an earlier version wrote, when any of it is
// left. The dedupe marks of all windows shared 'd', and the window
// furthest ahead in event time expired the others' marks; their windows
// now keep marks apart. Re-sends of events marked before the upgrade are
// then not recognised, once.
func (s *Store) retire(prefix []byte) error {
	upper := []byte{prefix[0] + 1}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("reading state in %s: %w: %w", s.dir, ErrStorage, err)
	}
	left := it.First()
	if err := it.Close(); err != nil {
		return fmt.Errorf("reading state in %s: %w: %w", s.dir, ErrStorage, err)
	}
	if !left {
		return nil
	}
	if err := s.db.DeleteRange(prefix, upper, pebble.Sync); err != nil {
		return fmt.Errorf("deleting retired state in %s: %w: %w", s.dir, ErrStorage, err)
	}
	return nil
}

// Check reports a store whose directory is gone (removed while the
// worker runs): Pebble goes on writing to files already open, and only
// fails when it next creates one, which can be minutes later.
func (s *Store) Check() error {
	if _, err := s.fs.Stat(s.fs.PathJoin(s.dir, "LOCK")); err != nil {
		return fmt.Errorf("checking the state directory %s: %w: %w", s.dir, ErrStorage, err)
	}
	return s.room()
}

// reserve is the free space the store's disk must keep: a write-ahead
// log rotated and a memtable flushed need it. Pebble cannot return an
// error when it finds the disk full there — it panics, and unwinding
// that panic crashes the process on a lock it already released — so the
// store refuses commits before it gets that far.
const reserve = 4 * memTableSize

// room reports a disk with less free space than reserve, as ErrStorage.
// A filesystem that cannot tell is let through.
func (s *Store) room() error {
	u, err := s.fs.GetDiskUsage(s.dir)
	if err != nil || u.AvailBytes >= reserve {
		return nil
	}
	return fmt.Errorf("state directory %s: %w: %d MiB free on its disk, under the %d MiB the store keeps for its log and flushes",
		s.dir, ErrStorage, u.AvailBytes>>20, reserve>>20)
}

// Close closes the store; it is safe to call twice.
func (s *Store) Close() error {
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.cache.Unref()
	s.db = nil
	return err
}

// Get returns a copy of key's value, and whether it exists.
func (s *Store) Get(key []byte) ([]byte, bool, error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading state: %w: %w", ErrStorage, err)
	}
	defer closer.Close()
	return append([]byte(nil), v...), true, nil
}

// Has reports whether key exists.
func (s *Store) Has(key []byte) (bool, error) {
	_, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading state: %w: %w", ErrStorage, err)
	}
	closer.Close()
	return true, nil
}

// Scan calls fn with every key in [lower, upper) and its value, in key
// order. The slices are valid only during the call.
func (s *Store) Scan(lower, upper []byte, fn func(key, value []byte) error) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("reading state: %w: %w", ErrStorage, err)
	}
	return scan(it, fn)
}

func scan(it *pebble.Iterator, fn func(key, value []byte) error) error {
	for it.First(); it.Valid(); it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("reading state: %w: %w", ErrStorage, err)
	}
	return nil
}

// View is a consistent read-only view of the store as of its creation,
// unaffected by later commits. Close releases it.
type View struct{ s *pebble.Snapshot }

// View returns a view of the store as of now.
func (s *Store) View() *View { return &View{s.db.NewSnapshot()} }

// Get returns a copy of key's value as of the view, and whether it
// exists.
func (v *View) Get(key []byte) ([]byte, bool, error) {
	val, closer, err := v.s.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading state: %w: %w", ErrStorage, err)
	}
	defer closer.Close()
	return append([]byte(nil), val...), true, nil
}

// Scan calls fn with every key in [lower, upper) as of the view and its
// value, in key order. The slices are valid only during the call.
func (v *View) Scan(lower, upper []byte, fn func(key, value []byte) error) error {
	it, err := v.s.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("reading state: %w: %w", ErrStorage, err)
	}
	return scan(it, fn)
}

// Close releases the view.
func (v *View) Close() error { return v.s.Close() }

// DeletePrefix removes every key that starts with prefix.
func (s *Store) DeletePrefix(prefix []byte) error {
	upper := append([]byte(nil), prefix...)
	for i := len(upper) - 1; i >= 0; i-- {
		if upper[i] < 0xff {
			upper[i]++
			upper = upper[:i+1]
			break
		}
		if i == 0 {
			return errors.New("state: cannot delete a prefix of 0xff bytes")
		}
	}
	b := s.NewBatch()
	defer b.Close()
	b.DeleteRange(prefix, upper)
	return b.Commit()
}

// NewBatch starts a batch of writes, applied atomically by Commit.
func (s *Store) NewBatch() *Batch { return &Batch{s: s, b: s.db.NewBatch()} }

// Batch is a set of writes committed together. It is not safe for
// concurrent use.
type Batch struct {
	s *Store
	b *pebble.Batch
}

// Set writes key.
func (b *Batch) Set(key, value []byte) { _ = b.b.Set(key, value, nil) }

// Delete removes key.
func (b *Batch) Delete(key []byte) { _ = b.b.Delete(key, nil) }

// DeleteRange removes every key in [start, end).
func (b *Batch) DeleteRange(start, end []byte) { _ = b.b.DeleteRange(start, end, nil) }

// SetOffset records the next offset to read of an input partition.
func (b *Batch) SetOffset(topic string, partition int32, next int64) {
	b.Set(offsetKey(topic, partition), binary.BigEndian.AppendUint64(nil, uint64(next)))
}

// DeleteOffset removes the offset recorded of an input partition.
func (b *Batch) DeleteOffset(topic string, partition int32) { b.Delete(offsetKey(topic, partition)) }

// Commit applies the batch and readies it for reuse.
func (b *Batch) Commit() error {
	if err := b.s.room(); err != nil {
		return err
	}
	if err := b.b.Commit(b.s.sync); err != nil {
		return fmt.Errorf("committing state: %w: %w", ErrStorage, err)
	}
	b.b.Reset()
	return nil
}

// Close discards what was not committed.
func (b *Batch) Close() { _ = b.b.Close() }

// SetPosition records the next offset to read of an input partition and
// the latest event time read from it.
func (b *Batch) SetPosition(topic string, partition int32, next, latest int64) {
	v := binary.BigEndian.AppendUint64(nil, uint64(next))
	b.Set(offsetKey(topic, partition), binary.BigEndian.AppendUint64(v, uint64(latest)))
}

// Offset returns the next offset to read of an input partition, and
// whether one was recorded.
func (s *Store) Offset(topic string, partition int32) (int64, bool, error) {
	next, _, ok, err := s.Position(topic, partition)
	return next, ok, err
}

// Position returns the next offset to read of an input partition and the
// latest event time recorded with it (math.MinInt64 when none), and
// whether an offset was recorded.
func (s *Store) Position(topic string, partition int32) (next, latest int64, ok bool, err error) {
	v, ok, err := s.Get(offsetKey(topic, partition))
	if err != nil || !ok {
		return 0, math.MinInt64, false, err
	}
	switch len(v) {
	case 8:
		return int64(binary.BigEndian.Uint64(v)), math.MinInt64, true, nil
	case 16:
		return int64(binary.BigEndian.Uint64(v)), int64(binary.BigEndian.Uint64(v[8:])), true, nil
	}
	return 0, math.MinInt64, false, fmt.Errorf("reading offset of %s/%d: %d bytes", topic, partition, len(v))
}

// DiskUsage is the bytes the store takes on disk.
func (s *Store) DiskUsage() uint64 { return s.db.Metrics().DiskSpaceUsage() }

func offsetKey(topic string, partition int32) []byte {
	k := append([]byte{'o'}, topic...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint32(k, uint32(partition))
}

// ErrStorage marks an error of the store itself — a failed read or
// write, a missing file, a full disk — as opposed to one of its data. No
// retry mends it: the worker stops. A Pebble failure it cannot return
// (Pebble's Fatalf) panics with a *Failure, which wraps ErrStorage.
var ErrStorage = errors.New("state storage failed")

// Failure is the value Pebble's fatal errors panic with.
type Failure struct{ Msg string }

func (f *Failure) Error() string { return "pebble: " + f.Msg }

// Unwrap makes a Failure an ErrStorage.
func (f *Failure) Unwrap() error { return ErrStorage }

// quiet keeps Pebble's informational logging off stderr; errors reach us
// as returned errors, or as a *Failure panic.
type quiet struct{ fatal func(*Failure) }

func (quiet) Infof(string, ...any)  {}
func (quiet) Errorf(string, ...any) {}
func (q quiet) Fatalf(format string, args ...any) {
	q.fatal(&Failure{Msg: fmt.Sprintf(format, args...)})
}
