package consistency

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/zeebo/xxh3"

	"github.com/cdcrecon/cdcrecon/processors/changes"
	"github.com/cdcrecon/cdcrecon/processors/internal/wire"
	"github.com/cdcrecon/cdcrecon/processors/normalize"
	"github.com/cdcrecon/cdcrecon/schemas"
)

// State in the store.
//
// The store holds an engine's whole state as of its last Checkpoint, so
// that an engine opened on it later goes on exactly where that one left
// off. Memory holds only the keys the engine is working on — those with
// pending changes, a source history the grace still needs, a timer, or a
// checksum window not yet closed (busy keys) — and, up to MaxKeys, idle
// ones, whose whole state is their current source and target rows, the
// instant they are decided through and their open drift, if any.
// Checkpoint writes every key changed since the last one, then drops idle
// keys from memory, those idle longest first, while the engine holds more
// than MaxKeys; Apply reads a key back when a change for it arrives, and
// a truncate reads back every key of its table. Which keys are in memory
// never changes what is decided.
//
// Store keys, each after its first byte the partition (4 bytes,
// big-endian):
//
//	'k' table NUL key: the key's state
//	'b' table NUL key: empty; the key was busy at the checkpoint, so an
//	    engine opened on the store loads it at once
//	'c': the engine's own state — watermarks, the decided instant,
//	    truncates still in effect, counts — and the caller's bytes

// Store holds the state of an engine's partition. *state.Store satisfies
// it.
type Store interface {
	Get(key []byte) ([]byte, bool, error)
	Scan(lower, upper []byte, fn func(key, value []byte) error) error
}

// Writer receives what Checkpoint writes. *state.Batch satisfies it.
type Writer interface {
	Set(key, value []byte)
	Delete(key []byte)
	DeleteRange(start, end []byte)
}

// Versions of a stored key's encoding: 1 held idle keys only; 2 held the
// open drift in the drift schema's version 2 and no re-read.
const (
	keyStateV1 = 1
	keyStateV2 = 2
	keyStateV3 = 3
)

// Key spaces of a partition's state.
const (
	spaceKeys byte = 'k'
	spaceBusy byte = 'b'
	spaceMeta byte = 'c'
)

// Spaces are the first bytes of every key a partition's state has in the
// store, each followed by the partition: KeySpaces hold its keys, and
// MetaSpace the engine's own state, which an engine opens on last.
var (
	Spaces    = []byte{spaceKeys, spaceBusy, spaceMeta}
	KeySpaces = []byte{spaceBusy, spaceKeys}
)

// MetaSpace holds an engine's own state: one key, the space's bounds'
// lower one.
const MetaSpace = spaceMeta

func (e *Engine) storeKey(space byte, id string) []byte {
	k := make([]byte, 0, 5+len(id))
	k = append(k, space)
	k = binary.BigEndian.AppendUint32(k, uint32(e.cfg.Partition))
	return append(k, id...)
}

// SpaceBounds are the bounds of a partition's keys in a space.
func SpaceBounds(space byte, partition int32) (lower, upper []byte) {
	lower = binary.BigEndian.AppendUint32([]byte{space}, uint32(partition))
	upper = binary.BigEndian.AppendUint32([]byte{space}, uint32(partition)+1)
	if uint32(partition) == math.MaxUint32 {
		upper = []byte{space + 1}
	}
	return lower, upper
}

// Drop deletes a partition's state from the store w writes to.
func Drop(w Writer, partition int32) {
	for _, space := range Spaces {
		w.DeleteRange(SpaceBounds(space, partition))
	}
}

// touch marks a key changed since the last checkpoint.
func (e *Engine) touch(ks *keyState) {
	if ks.dirty || e.cfg.Store == nil {
		return
	}
	ks.dirty = true
	e.dirty = append(e.dirty, ks)
}

// idle tells whether a key's state is only its current rows.
func (ks *keyState) idle() bool {
	return len(ks.wins) == 0 && len(ks.pending) == 0 && len(ks.src) == 1 && ks.timer == math.MaxInt64
}

// Checkpoint writes to w every key changed since the last checkpoint and
// the engine's own state with extra (the caller's, returned by Resumed
// when an engine opens on the store), then drops idle keys from memory,
// those idle longest first, until the engine holds at most MaxKeys keys
// or none is idle; it returns how many it dropped. The caller commits w
// before the engine is used again: until then those keys exist only in
// w. Without a Store, Checkpoint does nothing.
func (e *Engine) Checkpoint(w Writer, extra []byte) (int, error) {
	if e.cfg.Store == nil {
		e.idle = e.idle[:0]
		return 0, nil
	}
	for _, ks := range e.dirty {
		ks.dirty = false
		v, err := e.encodeKey(ks)
		if err != nil {
			return 0, err
		}
		w.Set(e.storeKey(spaceKeys, ks.id), v)
		e.spilled[xxh3.HashString(ks.id)] = struct{}{}
		if busy := !ks.idle(); busy != ks.indexed {
			if busy {
				w.Set(e.storeKey(spaceBusy, ks.id), nil)
			} else {
				w.Delete(e.storeKey(spaceBusy, ks.id))
			}
			ks.indexed = busy
		}
	}
	clear(e.dirty)
	e.dirty = e.dirty[:0]
	w.Set(e.storeKey(spaceMeta, ""), e.appendMeta(nil, extra))
	n := 0
	kept := e.idle[:0]
	for _, ks := range e.idle {
		switch {
		case e.keys[ks.id] != ks || !ks.idle():
			// Gone, or busy again: queued anew when its windows close.
			ks.queued = false
		case len(e.keys) > e.cfg.MaxKeys:
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

// Dirty is how many keys changed since the last checkpoint: what the next
// one writes.
func (e *Engine) Dirty() int { return len(e.dirty) }

// Resumed returns the caller's bytes of the checkpoint the engine opened
// on, and whether it opened on one (false: it started empty).
func (e *Engine) Resumed() ([]byte, bool) { return e.resumed, e.resumed != nil }

// load reads a key back from the store; nil when it has none.
func (e *Engine) load(ts *tableState, id string) (*keyState, error) {
	if e.cfg.Store == nil {
		return nil, nil
	}
	if _, ok := e.spilled[xxh3.HashString(id)]; !ok && !e.preexisting {
		return nil, nil // never stored: a new key
	}
	v, ok, err := e.cfg.Store.Get(e.storeKey(spaceKeys, id))
	if err != nil || !ok {
		return nil, err
	}
	return e.decodeKey(ts, id, v)
}

// openStore prepares the filter of stored keys — the hashes of the keys
// this engine stored, which spare a store lookup for every new key — and
// opens the engine on the checkpoint the store holds, if any. A store
// that already holds keys of the partition disables the filter.
func (e *Engine) openStore() error {
	e.spilled = map[uint64]struct{}{}
	if e.cfg.Store == nil {
		return nil
	}
	lower, upper := SpaceBounds(spaceKeys, e.cfg.Partition)
	errFound := errors.New("found")
	err := e.cfg.Store.Scan(lower, upper, func(_, _ []byte) error { return errFound })
	switch {
	case errors.Is(err, errFound):
		e.preexisting = true
	case err != nil:
		return fmt.Errorf("reconcile: opening the store: %w", err)
	}
	meta, ok, err := e.cfg.Store.Get(e.storeKey(spaceMeta, ""))
	if err != nil {
		return fmt.Errorf("reconcile: opening the store: %w", err)
	}
	if !ok {
		return nil
	}
	if err := e.readMeta(meta); err != nil {
		return fmt.Errorf("reconcile partition %d: %w", e.cfg.Partition, err)
	}
	lower, upper = SpaceBounds(spaceBusy, e.cfg.Partition)
	return e.cfg.Store.Scan(lower, upper, func(k, _ []byte) error {
		id := string(k[5:])
		ts := e.tables[tableOf(id)]
		if ts == nil {
			return fmt.Errorf("%w: %q is of no table configured", errKeyState, id)
		}
		v, ok, err := e.cfg.Store.Get(e.storeKey(spaceKeys, id))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: busy key %q has no state", errKeyState, id)
		}
		ks, err := e.decodeKey(ts, id, v)
		if err != nil {
			return err
		}
		ks.indexed = true
		e.keys[id] = ks
		for _, start := range ks.wins {
			w := ts.windows[start]
			if w == nil {
				w = &window{table: ts, start: start, keys: map[string]*keyState{}}
				ts.windows[start] = w
				e.closes.push(windowClose{at: start + e.window + e.grace, w: w})
			}
			w.keys[id] = ks
		}
		if ks.timer != math.MaxInt64 {
			e.timers.push(timer{at: ks.timer, ks: ks})
		}
		return nil
	})
}

// tableOf is the table of a key id (table, NUL, key).
func tableOf(id string) string {
	if i := strings.IndexByte(id, 0); i >= 0 {
		return id[:i]
	}
	return id
}

// loadTable reads back every stored key of a table that is not in memory.
func (e *Engine) loadTable(ts *tableState) error {
	if e.cfg.Store == nil {
		return nil
	}
	lower := e.storeKey(spaceKeys, ts.t.Name()+"\x00")
	upper := e.storeKey(spaceKeys, ts.t.Name()+"\x01")
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

// encodeKey (version 3): the decided-through instant, the timer, the
// open drift as an Avro drift record in single-object encoding (empty
// when none) and its re-read, the target's state, the source's history,
// the pending changes in the changes topic's encoding and the open
// windows' starts.
func (e *Engine) encodeKey(ks *keyState) ([]byte, error) {
	b := []byte{keyStateV3}
	b = binary.AppendVarint(b, ks.at)
	b = binary.AppendVarint(b, ks.timer)
	if ks.drift == nil {
		b = binary.AppendUvarint(b, 0)
	} else {
		d, err := schemas.AppendSingleObject(nil, driftSchema, &ks.drift.rec)
		if err != nil {
			return nil, fmt.Errorf("storing the open drift of %q: %w", ks.id, err)
		}
		b = wire.AppendBytes(b, d)
		b = appendVerify(b, ks.drift.v)
	}
	b = appendState(b, &ks.tgt)
	b = binary.AppendUvarint(b, uint64(len(ks.src)))
	for i := range ks.src {
		b = appendState(b, &ks.src[i])
	}
	b = binary.AppendUvarint(b, uint64(len(ks.pending)))
	var c []byte
	for i := range ks.pending {
		c = changes.AppendChange(c[:0], &ks.pending[i])
		b = wire.AppendBytes(b, c)
	}
	b = binary.AppendUvarint(b, uint64(len(ks.wins)))
	for _, w := range ks.wins {
		b = binary.AppendVarint(b, w)
	}
	return b, nil
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

// ErrStored is stored state that cannot be read: corrupt, or written
// under another configuration. Unlike a failure of the store itself
// (state.ErrStorage), dropping the state mends it.
var ErrStored = errors.New("the stored state cannot be read")

var errKeyState = fmt.Errorf("%w: a stored key state is corrupt", ErrStored)

// decodeKey reads a stored key of either version; version 1 (idle keys
// only) is the decided-through instant, the current source and target
// states and the open drift.
func (e *Engine) decodeKey(ts *tableState, id string, v []byte) (*keyState, error) {
	fail := func() (*keyState, error) { return nil, fmt.Errorf("%w: %q", errKeyState, id) }
	r := &wire.Reader{B: v}
	ks := newKeyState(ts, id, []byte(id[len(ts.t.Name())+1:]))
	version := byte(0)
	if len(v) > 0 {
		version = v[0]
	}
	drift := func() bool {
		d := r.Bytes()
		if len(d) == 0 || r.Err != nil {
			return true
		}
		var rec schemas.Record
		var err error
		if version == keyStateV3 {
			rec, _, err = schemas.DecodeSingleObject(d)
		} else {
			rec, err = schemas.Decode(driftV2, d)
		}
		drift, ok := rec.(*schemas.Drift)
		if err != nil || !ok {
			return false
		}
		ks.drift = &openDrift{rec: *drift}
		if version == keyStateV3 {
			var ok bool
			if ks.drift.v, ok = readVerify(r); !ok {
				return false
			}
		}
		return true
	}
	switch r.Byte() {
	case keyStateV1:
		ks.at = r.Varint()
		ks.src[0] = readState(r)
		ks.tgt = readState(r)
		if !drift() {
			return fail()
		}
	case keyStateV2, keyStateV3:
		ks.at = r.Varint()
		ks.timer = r.Varint()
		if !drift() {
			return fail()
		}
		ks.tgt = readState(r)
		n := r.Uvarint()
		if n == 0 || n > uint64(len(v)) {
			return fail()
		}
		ks.src = make([]state, n)
		for i := range ks.src {
			ks.src[i] = readState(r)
		}
		if n := r.Uvarint(); n > 0 && n <= uint64(len(v)) {
			ks.pending = make([]changes.Change, 0, n)
			for range n {
				c, _, err := changes.Decode(r.Bytes())
				if err != nil || c == nil {
					return fail()
				}
				c.Key, c.Row = ks.key, bytes.Clone(c.Row)
				ks.pending = append(ks.pending, *c)
			}
		}
		if n := r.Uvarint(); n > 0 && n <= uint64(len(v)) {
			ks.wins = make([]int64, n)
			for i := range ks.wins {
				ks.wins[i] = r.Varint()
			}
		}
	default:
		return fail()
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

// metaVersion is the encoding of an engine's own state; version 1 had no
// re-read requests and anchors.
const metaVersion = 2

// appendMeta encodes the engine's own state: the decided instant, every
// input's watermark by side, the truncates still in effect by table, the
// counts, then extra.
func (e *Engine) appendMeta(b, extra []byte) []byte {
	b = append(b, metaVersion)
	b = binary.AppendVarint(b, e.done)
	for _, side := range []normalize.Side{normalize.Source, normalize.Target} {
		ins := slices.SortedFunc(maps.Keys(e.marks[side]), func(a, b inputKey) int {
			return changes.Origin{Topic: a.topic, Partition: a.part}.Compare(changes.Origin{Topic: b.topic, Partition: b.part})
		})
		b = binary.AppendUvarint(b, uint64(len(ins)))
		for _, in := range ins {
			b = wire.AppendBytes(b, []byte(in.topic))
			b = binary.AppendVarint(b, int64(in.part))
			b = binary.AppendVarint(b, e.marks[side][in])
		}
	}
	names := slices.Sorted(maps.Keys(e.tables))
	var c []byte
	for _, name := range names {
		trs := e.tables[name].truncates
		if len(trs) == 0 {
			continue
		}
		b = wire.AppendBytes(b, []byte(name))
		b = binary.AppendUvarint(b, uint64(len(trs)))
		for i := range trs {
			c = changes.AppendChange(c[:0], &trs[i])
			b = wire.AppendBytes(b, c)
		}
	}
	b = wire.AppendBytes(b, nil) // no more tables
	st := &e.stats
	for _, n := range []int64{st.Changes, st.Late, st.Opened, st.Resolved, st.Open, st.Spilled, st.Loaded} {
		b = binary.AppendVarint(b, n)
	}
	open := slices.Sorted(maps.Keys(e.openBy))
	b = binary.AppendUvarint(b, uint64(len(open)))
	for _, name := range open {
		b = wire.AppendBytes(b, []byte(name))
		b = binary.AppendVarint(b, e.openBy[name])
	}
	b = e.appendRequests(b)
	return wire.AppendBytes(b, extra)
}

var errMeta = fmt.Errorf("%w: the engine's own state is corrupt", ErrStored)

// readMeta opens the engine on the state appendMeta wrote.
func (e *Engine) readMeta(v []byte) error {
	r := &wire.Reader{B: v}
	version := r.Byte()
	if version != 1 && version != metaVersion {
		return errMeta
	}
	e.done = r.Varint()
	for _, side := range []normalize.Side{normalize.Source, normalize.Target} {
		n := r.Uvarint()
		for i := uint64(0); i < n && r.Err == nil; i++ {
			k := inputKey{topic: string(r.Bytes()), part: int32(r.Varint())}
			e.marks[side][k] = r.Varint()
		}
	}
	for r.Err == nil {
		name := string(r.Bytes())
		if name == "" {
			break
		}
		ts := e.tables[name]
		if ts == nil {
			return fmt.Errorf("%w: truncates of table %q, which is not configured", errMeta, name)
		}
		n := r.Uvarint()
		for i := uint64(0); i < n && r.Err == nil; i++ {
			c, _, err := changes.Decode(r.Bytes())
			if err != nil || c == nil {
				return errMeta
			}
			c.Key, c.Row = nil, nil
			ts.truncates = append(ts.truncates, *c)
		}
	}
	st := &e.stats
	for _, n := range []*int64{&st.Changes, &st.Late, &st.Opened, &st.Resolved, &st.Open, &st.Spilled, &st.Loaded} {
		*n = r.Varint()
	}
	n := r.Uvarint()
	for i := uint64(0); i < n && r.Err == nil; i++ {
		name := string(r.Bytes())
		e.openBy[name] = r.Varint()
	}
	if version == metaVersion {
		if err := e.readRequests(r); err != nil {
			return err
		}
	}
	extra := r.Bytes()
	if !r.Done() {
		return errMeta
	}
	e.resumed = append([]byte{}, extra...)
	return nil
}

// driftSchema encodes stored open drifts; driftV2 decodes those of key
// state version 2.
var (
	driftSchema = mustSchema(schemas.Latest("drift"))
	driftV2     = mustSchema(schemas.Version("drift", 2))
)

func mustSchema(s *schemas.Schema) *schemas.Schema {
	if s == nil {
		panic("reconcile: no drift schema")
	}
	return s
}

// appendVerify encodes an open drift's re-read: a 0 without one.
func appendVerify(b []byte, v *verifyState) []byte {
	if v == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	for _, t := range []int64{v.due, v.deadline, v.verdictAt, v.answered[normalize.Source], v.answered[normalize.Target]} {
		b = binary.AppendVarint(b, t)
	}
	for _, side := range bothSides {
		b = wire.AppendBytes(b, []byte(v.req[side]))
	}
	var bits byte
	for i, set := range []bool{v.read[normalize.Source], v.read[normalize.Target], v.changed[normalize.Source], v.changed[normalize.Target], v.done} {
		if set {
			bits |= 1 << i
		}
	}
	return append(b, bits)
}

func readVerify(r *wire.Reader) (*verifyState, bool) {
	switch r.Byte() {
	case 0:
		return nil, r.Err == nil
	case 1:
	default:
		return nil, false
	}
	v := &verifyState{}
	for _, t := range []*int64{&v.due, &v.deadline, &v.verdictAt, &v.answered[normalize.Source], &v.answered[normalize.Target]} {
		*t = r.Varint()
	}
	for _, side := range bothSides {
		v.req[side] = string(r.Bytes())
	}
	bits := r.Byte()
	for i, p := range []*bool{&v.read[normalize.Source], &v.read[normalize.Target], &v.changed[normalize.Source], &v.changed[normalize.Target], &v.done} {
		*p = bits&(1<<i) != 0
	}
	return v, r.Err == nil
}

// appendRequests encodes the re-read counts, the outstanding requests,
// by id, then every table's anchors.
func (e *Engine) appendRequests(b []byte) []byte {
	st := &e.stats
	for _, n := range []int64{st.Requests, st.Confirmed, st.StreamGaps, st.Unverified} {
		b = binary.AppendVarint(b, n)
	}
	ids := slices.Sorted(maps.Keys(e.reqs))
	b = binary.AppendUvarint(b, uint64(len(ids)))
	for _, id := range ids {
		rq := e.reqs[id]
		b = wire.AppendBytes(b, []byte(id))
		b = wire.AppendBytes(b, []byte(rq.table.t.Name()))
		b = append(b, byte(rq.side))
		b = binary.AppendVarint(b, rq.at)
		b = binary.AppendVarint(b, rq.answered)
		for _, ks := range [][]string{rq.keys, rq.got} {
			b = binary.AppendUvarint(b, uint64(len(ks)))
			for _, k := range ks {
				b = wire.AppendBytes(b, []byte(k))
			}
		}
	}
	names := slices.Sorted(maps.Keys(e.tables))
	b = binary.AppendUvarint(b, uint64(len(names)))
	for _, name := range names {
		b = wire.AppendBytes(b, []byte(name))
		for _, side := range bothSides {
			as := e.tables[name].anchors[side]
			b = binary.AppendUvarint(b, uint64(len(as)))
			for _, a := range as {
				b = wire.AppendBytes(b, []byte(a.id))
				b = binary.AppendVarint(b, a.time)
			}
		}
	}
	return b
}

func (e *Engine) readRequests(r *wire.Reader) error {
	st := &e.stats
	for _, n := range []*int64{&st.Requests, &st.Confirmed, &st.StreamGaps, &st.Unverified} {
		*n = r.Varint()
	}
	n := r.Uvarint()
	for i := uint64(0); i < n && r.Err == nil; i++ {
		rq := &request{id: string(r.Bytes())}
		table := string(r.Bytes())
		rq.side = normalize.Side(r.Byte())
		rq.at, rq.answered = r.Varint(), r.Varint()
		if rq.table = e.tables[table]; rq.table == nil {
			return fmt.Errorf("%w: a re-read request of table %q, which is not configured", errMeta, table)
		}
		for k := r.Uvarint(); k > 0 && r.Err == nil; k-- {
			rq.keys = append(rq.keys, string(r.Bytes()))
		}
		for k := r.Uvarint(); k > 0 && r.Err == nil; k-- {
			rq.got = append(rq.got, string(r.Bytes()))
		}
		e.reqs[rq.id] = rq
		for _, id := range rq.keys {
			k := reqKey{rq.side, id}
			e.reqByKey[k] = append(e.reqByKey[k], rq.id)
		}
	}
	for n := r.Uvarint(); n > 0 && r.Err == nil; n-- {
		ts := e.tables[string(r.Bytes())]
		for _, side := range bothSides {
			var as []anchor
			for k := r.Uvarint(); k > 0 && k <= maxAnchors && r.Err == nil; k-- {
				as = append(as, anchor{id: string(r.Bytes()), time: r.Varint()})
			}
			if ts != nil {
				ts.anchors[side] = as
			}
		}
	}
	return r.Err
}
