// Package dedupe drops the events Debezium delivers more than once. A
// Window remembers event identities for a retention in event time, in the
// state store: each mark is keyed by its window and the start of its time
// bucket, so expiry deletes whole buckets of that window by range, never
// by scanning, and never touches another window's marks — windows that
// share a store run at their own event times.
//
// Each Window serves one input partition and keeps its horizon: the
// latest event time among its marks, and the identities marked at that
// instant. A re-sent event is never later than its first delivery, which
// made a mark no later than the horizon, so an event later than the
// horizon is new without a lookup, and so is one at the horizon whose
// identity is not among those marked there. Only events before the
// horizon (re-sends, out-of-order commits) are looked up, and events at
// it after a restart or a discarded batch, until the horizon moves on:
// the horizon itself is written with the marks, its identities are not.
//
// A mark is written only into the batch the caller commits with the input
// offsets of the events that made it (Flush), so it becomes durable
// together with them and never before: after a crash, events whose marks
// were lost are read again from offsets that were lost with them.
package dedupe

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"
)

// Reader is what a Window reads of the state store.
type Reader interface {
	Has(key []byte) (bool, error)
	Get(key []byte) ([]byte, bool, error)
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
	// Name names the input partition the Window serves; its marks and
	// its horizon are stored under it. It holds no 0 byte.
	Name string
}

// Window is a deduplication window. It is not safe for concurrent use.
type Window struct {
	store     Reader
	retention int64
	bucket    int64
	pending   map[mark]struct{}
	prefix    []byte // 'm', the window's name, 0: its marks' keys start so
	key       []byte // the key being looked up
	latest    int64  // latest event time seen
	expired   int64  // marks of buckets before this are deleted
	dups      int64
	// horizon is the latest event time among the marks, pending ones
	// included; committed is its value as last flushed.
	horizon, committed int64
	horizonKey         []byte
	// atHorizon holds the identities marked at the horizon, when known
	// (complete).
	atHorizon map[[16]byte]struct{}
	complete  bool
	lookups   int64
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
	if bytes.IndexByte([]byte(cfg.Name), 0) >= 0 {
		return nil, fmt.Errorf("dedupe: window name %q holds a 0 byte", cfg.Name)
	}
	bucket := max(cfg.Retention.Milliseconds()/int64(cfg.Buckets), 1)
	w := &Window{store: store, retention: cfg.Retention.Milliseconds(), bucket: bucket,
		pending: map[mark]struct{}{}, latest: math.MinInt64, prefix: append(append([]byte{'m'}, cfg.Name...), 0), expired: math.MinInt64,
		horizon: math.MinInt64, horizonKey: append([]byte{'h'}, cfg.Name...), atHorizon: map[[16]byte]struct{}{}}
	v, ok, err := store.Get(w.horizonKey)
	switch {
	case err != nil:
		return nil, fmt.Errorf("dedupe: reading the horizon of %s: %w", cfg.Name, err)
	case ok && len(v) != 8:
		return nil, fmt.Errorf("dedupe: the stored horizon of %s is %d bytes, want 8", cfg.Name, len(v))
	case ok:
		w.horizon = int64(binary.BigEndian.Uint64(v))
	default:
		w.complete = true // no marks at all
	}
	w.committed = w.horizon
	return w, nil
}

// Lookups returns how many events Seen looked up in the store.
func (w *Window) Lookups() int64 { return w.lookups }

// Duplicates returns how many events Seen reported as duplicates.
func (w *Window) Duplicates() int64 { return w.dups }

// Seen reports whether an event with this identity and event time was
// seen before, and marks it seen when not. Events older than the
// retention are never duplicates: their marks may be gone.
func (w *Window) Seen(identity [16]byte, eventTime int64) (bool, error) {
	w.latest = max(w.latest, eventTime)
	k := w.mark(identity, eventTime)
	switch {
	case eventTime > w.horizon:
		w.horizon = eventTime
		clear(w.atHorizon)
		w.atHorizon[identity] = struct{}{}
		w.complete = true
		w.pending[k] = struct{}{}
		return false, nil
	case eventTime == w.horizon && w.complete:
		if _, ok := w.atHorizon[identity]; ok {
			w.dups++
			return true, nil
		}
		w.atHorizon[identity] = struct{}{}
		w.pending[k] = struct{}{}
		return false, nil
	}
	if _, ok := w.pending[k]; ok {
		w.dups++
		return true, nil
	}
	w.lookups++
	w.key = append(append(w.key[:0], w.prefix...), k[:]...)
	found, err := w.store.Has(w.key)
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

// mark is a mark's key after the window's prefix: the bucket's start
// (big-endian, sign flipped so that keys sort by time), then the
// identity.
type mark [24]byte

func (w *Window) mark(identity [16]byte, t int64) mark {
	var k mark
	binary.BigEndian.PutUint64(k[:8], uint64(w.bucketOf(t))^(1<<63))
	copy(k[8:], identity[:])
	return k
}

// Discard forgets the marks made since the last Flush: their events were
// not handled, and will be seen again.
func (w *Window) Discard() {
	clear(w.pending)
	w.horizon = w.committed
	w.complete = false // the identities at the restored horizon are unknown
}

// bucketOf returns the start of the bucket holding t, negative times
// included.
func (w *Window) bucketOf(t int64) int64 {
	return t - ((t%w.bucket)+w.bucket)%w.bucket
}

// Flush writes the marks made since the last Flush into b, and deletes the
// buckets that fell out of the retention. The caller commits b together
// with the offsets of the events Seen looked at.
func (w *Window) Flush(b Writer) {
	// In key order: Pebble's memtable inserts a sorted run much faster
	// than random keys.
	keys := make([]mark, 0, len(w.pending))
	for k := range w.pending {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b mark) int { return bytes.Compare(a[:], b[:]) })
	for i := range keys {
		w.key = append(append(w.key[:0], w.prefix...), keys[i][:]...)
		b.Set(w.key, nil) // the batch copies it
	}
	clear(w.pending)
	if w.horizon != w.committed {
		var v [8]byte
		binary.BigEndian.PutUint64(v[:], uint64(w.horizon))
		b.Set(w.horizonKey, v[:])
		w.committed = w.horizon
	}
	if w.latest == math.MinInt64 {
		return
	}
	horizon := w.latest - w.retention
	cut := w.bucketOf(horizon) // buckets before cut hold only expired marks
	if cut > w.expired {
		lo := w.prefix[:len(w.prefix):len(w.prefix)]
		b.DeleteRange(lo, binary.BigEndian.AppendUint64(lo, uint64(cut)^(1<<63)))
		w.expired = cut
	}
}
