package consistency

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/zeebo/xxh3"

	"github.com/cdcrecon/cdcrecon/processors/internal/wire"
	"github.com/cdcrecon/cdcrecon/schemas"
)

// Keyed state in the store.
//
// An engine holds in memory only the keys it is working on: those with
// pending changes, a source history the grace still needs, a timer, or a
// checksum window not yet closed. When the last window holding a key
// closes, the key is idle: its whole state is its current source and
// target rows, the instant it is decided through and its open drift, if
// any. Flush writes idle keys to the store and drops them from memory,
// those idle longest first, while the engine holds more than MaxKeys;
// Apply reads a key back when a change for it arrives, and a truncate
// reads back every key of its table. Which keys are in memory never
// changes what is decided.
//
// Store keys: 'k', the partition (4 bytes, big-endian), the table name, a
// NUL, the canonical key.

// Store holds the keys an engine is not working on. *state.Store
// satisfies it.
type Store interface {
	Get(key []byte) ([]byte, bool, error)
	Scan(lower, upper []byte, fn func(key, value []byte) error) error
}

// Writer receives what Flush writes. *state.Batch satisfies it.
type Writer interface {
	Set(key, value []byte)
}

const keyStateVersion = 1

func (e *Engine) storeKey(id string) []byte {
	k := make([]byte, 0, 5+len(id))
	k = append(k, 'k')
	k = binary.BigEndian.AppendUint32(k, uint32(e.cfg.Partition))
	return append(k, id...)
}

// idle tells whether a key's state is only its current rows.
func (ks *keyState) idle() bool {
	return ks.windows == 0 && len(ks.pending) == 0 && len(ks.src) == 1 && ks.timer == math.MaxInt64
}

// Flush writes idle keys to w and drops them from memory, those idle
// longest first, until the engine holds at most MaxKeys keys or none is
// idle; it returns how many. The caller commits w before the engine is
// used again: until then those keys exist only in w. Without a Store,
// Flush does nothing.
func (e *Engine) Flush(w Writer) (int, error) {
	if e.cfg.Store == nil {
		e.idle = e.idle[:0]
		return 0, nil
	}
	n := 0
	kept := e.idle[:0]
	for _, ks := range e.idle {
		switch {
		case e.keys[ks.id] != ks || !ks.idle():
			// Gone, or busy again: queued anew when its windows close.
			ks.queued = false
		case len(e.keys) > e.cfg.MaxKeys:
			v, err := e.encodeKey(ks)
			if err != nil {
				return n, err
			}
			w.Set(e.storeKey(ks.id), v)
			e.spilled[xxh3.HashString(ks.id)] = struct{}{}
			delete(e.keys, ks.id)
			ks.queued = false
			n++
		default:
			kept = append(kept, ks)
		}
	}
	clear(e.idle[len(kept):])
	e.idle = kept
	e.stats.Spilled += int64(n)
	return n, nil
}

// load reads a key back from the store; nil when it has none.
func (e *Engine) load(ts *tableState, id string) (*keyState, error) {
	if e.cfg.Store == nil {
		return nil, nil
	}
	if _, ok := e.spilled[xxh3.HashString(id)]; !ok && !e.preexisting {
		return nil, nil // never stored: a new key
	}
	v, ok, err := e.cfg.Store.Get(e.storeKey(id))
	if err != nil || !ok {
		return nil, err
	}
	return e.decodeKey(ts, id, v)
}

// openStore prepares the filter of stored keys: the hashes of the keys
// this engine stored, which spare a store lookup for every new key. A
// store that already holds keys of the partition (a restart) disables it.
func (e *Engine) openStore() error {
	e.spilled = map[uint64]struct{}{}
	if e.cfg.Store == nil {
		return nil
	}
	lower := e.storeKey("")
	upper := binary.BigEndian.AppendUint32([]byte{'k'}, uint32(e.cfg.Partition)+1)
	errFound := errors.New("found")
	err := e.cfg.Store.Scan(lower, upper, func(_, _ []byte) error { return errFound })
	switch {
	case errors.Is(err, errFound):
		e.preexisting = true
	case err != nil:
		return fmt.Errorf("reconcile: opening the store: %w", err)
	}
	return nil
}

// loadTable reads back every stored key of a table that is not in memory.
func (e *Engine) loadTable(ts *tableState) error {
	if e.cfg.Store == nil {
		return nil
	}
	lower := e.storeKey(ts.t.Name() + "\x00")
	upper := e.storeKey(ts.t.Name() + "\x01")
	return e.cfg.Store.Scan(lower, upper, func(k, v []byte) error {
		id := string(k[5:])
		if e.keys[id] != nil {
			return nil // memory holds the newer state
		}
		ks, err := e.decodeKey(ts, id, v)
		if err != nil {
			return err
		}
		e.keys[id] = ks
		e.stats.Loaded++
		return nil
	})
}

// encodeKey: version, decided-through instant, the source and target
// states, then the open drift as an Avro drift record (empty when none).
func (e *Engine) encodeKey(ks *keyState) ([]byte, error) {
	b := []byte{keyStateVersion}
	b = binary.AppendVarint(b, ks.at)
	b = appendState(b, &ks.src[0])
	b = appendState(b, &ks.tgt)
	if ks.drift == nil {
		return binary.AppendUvarint(b, 0), nil
	}
	d, err := schemas.AppendBinary(nil, driftSchema, &ks.drift.rec)
	if err != nil {
		return nil, fmt.Errorf("storing the open drift of %q: %w", ks.id, err)
	}
	b = binary.AppendUvarint(b, uint64(len(d)))
	return append(b, d...), nil
}

func appendState(b []byte, st *state) []byte {
	b = binary.AppendVarint(b, st.start)
	flags := byte(0)
	if st.row != nil {
		flags |= 1
	}
	if st.partial {
		flags |= 2
	}
	b = append(b, flags)
	b = binary.LittleEndian.AppendUint64(b, st.digest)
	b = binary.AppendUvarint(b, uint64(len(st.row)))
	return append(b, st.row...)
}

var errKeyState = errors.New("stored key state is corrupt")

func (e *Engine) decodeKey(ts *tableState, id string, v []byte) (*keyState, error) {
	fail := func() (*keyState, error) { return nil, fmt.Errorf("%w: %q", errKeyState, id) }
	r := &wire.Reader{B: v}
	if r.Byte() != keyStateVersion {
		return fail()
	}
	ks := newKeyState(ts, id, []byte(id[len(ts.t.Name())+1:]))
	ks.at = r.Varint()
	ks.src[0] = readState(r)
	ks.tgt = readState(r)
	if d := r.Bytes(); len(d) > 0 && r.Err == nil {
		rec, err := schemas.Decode(driftSchema, d)
		drift, ok := rec.(*schemas.Drift)
		if err != nil || !ok {
			return fail()
		}
		ks.drift = &openDrift{rec: *drift}
	}
	if !r.Done() {
		return fail()
	}
	return ks, nil
}

func readState(r *wire.Reader) state {
	st := state{start: r.Varint()}
	flags := r.Byte()
	if r.Err != nil {
		return st
	}
	st.digest = r.Uint64()
	row := r.Bytes()
	if flags&1 != 0 {
		st.row = append(make([]byte, 0, len(row)), row...)
	}
	st.partial = flags&2 != 0
	return st
}

// driftSchema encodes stored open drifts.
var driftSchema = func() *schemas.Schema {
	s := schemas.Latest("drift")
	if s == nil {
		panic("reconcile: no drift schema")
	}
	return s
}()
