// Package dedupe drops the events Debezium delivers more than once. A
// Window remembers event identities for a retention in event time, in the
// state store: each mark is keyed by the start of its time bucket, so
// expiry deletes whole buckets by range, never by scanning.
//
// A mark is written only into the batch the caller commits with the input
// offsets of the events that made it (Flush), so it becomes durable
// together with them and never before: after a crash, events whose marks
// were lost are read again from offsets that were lost with them.
//
// Dependencies: none of ours; the store's interfaces are declared here.
package dedupe

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"
)

// Reader is what a Window reads of the state store.
type Reader interface {
	Has(key []byte) (bool, error)
}

// Writer is the batch a Window writes its marks into.
type Writer interface {
	Set(key, value []byte)
	DeleteRange(start, end []byte)
}

// Config configures a Window.
type Config struct {
	// Retention is how long, in event time, an identity is remembered,
	// counted back from the latest event time seen. Default 24h.
	Retention time.Duration
	// Buckets is how many time buckets the retention is split into;
	// expiry removes a bucket at a time. Default 24.
	Buckets int
}

// Window is a deduplication window. It is not safe for concurrent use.
type Window struct {
	store     Reader
	retention int64
	bucket    int64
	pending   map[[25]byte]struct{}
	latest    int64 // latest event time seen
	expired   int64 // marks of buckets before this are deleted
	dups      int64
}

// New returns a Window over store.
func New(store Reader, cfg Config) (*Window, error) {
	if cfg.Retention == 0 {
		cfg.Retention = 24 * time.Hour
	}
	if cfg.Buckets == 0 {
		cfg.Buckets = 24
	}
	if cfg.Retention < 0 || cfg.Buckets < 0 {
		return nil, fmt.Errorf("dedupe: negative retention or buckets")
	}
	bucket := max(cfg.Retention.Milliseconds()/int64(cfg.Buckets), 1)
	return &Window{store: store, retention: cfg.Retention.Milliseconds(), bucket: bucket,
		pending: map[[25]byte]struct{}{}, latest: math.MinInt64, expired: math.MinInt64}, nil
}

// Duplicates returns how many events Seen reported as duplicates.
func (w *Window) Duplicates() int64 { return w.dups }

// Seen reports whether an event with this identity and event time was
// seen before, and marks it seen when not. Events older than the
// retention are never duplicates: their marks may be gone.
func (w *Window) Seen(identity [16]byte, eventTime int64) (bool, error) {
	w.latest = max(w.latest, eventTime)
	k := w.key(identity, eventTime)
	if _, ok := w.pending[k]; ok {
		w.dups++
		return true, nil
	}
	found, err := w.store.Has(k[:])
	if err != nil {
		return false, fmt.Errorf("looking up dedupe mark: %w", err)
	}
	if found {
		w.dups++
		return true, nil
	}
	w.pending[k] = struct{}{}
	return false, nil
}

// key is 'd', the bucket's start (big-endian, sign flipped so that keys
// sort by time), then the identity.
func (w *Window) key(identity [16]byte, t int64) [25]byte {
	var k [25]byte
	start := w.bucketOf(t)
	k[0] = 'd'
	binary.BigEndian.PutUint64(k[1:9], uint64(start)^(1<<63))
	copy(k[9:], identity[:])
	return k
}

// Discard forgets the marks made since the last Flush: their events were
// not handled, and will be seen again.
func (w *Window) Discard() { clear(w.pending) }

// bucketOf returns the start of the bucket holding t, negative times
// included.
func (w *Window) bucketOf(t int64) int64 {
	return t - ((t%w.bucket)+w.bucket)%w.bucket
}

// Flush writes the marks made since the last Flush into b, and deletes the
// buckets that fell out of the retention. The caller commits b together
// with the offsets of the events Seen looked at.
func (w *Window) Flush(b Writer) {
	for k := range w.pending {
		b.Set(k[:], nil)
	}
	clear(w.pending)
	if w.latest == math.MinInt64 {
		return
	}
	horizon := w.latest - w.retention
	cut := w.bucketOf(horizon) // buckets before cut hold only expired marks
	if cut > w.expired {
		lo := [9]byte{'d'}
		hi := [9]byte{'d'}
		binary.BigEndian.PutUint64(hi[1:], uint64(cut)^(1<<63))
		b.DeleteRange(lo[:], hi[:])
		w.expired = cut
	}
}
