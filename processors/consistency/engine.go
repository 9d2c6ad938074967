package consistency

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cdcrecon/cdcrecon/processors/canon"
	"github.com/cdcrecon/cdcrecon/processors/changes"
	"github.com/cdcrecon/cdcrecon/processors/config"
	"github.com/cdcrecon/cdcrecon/processors/normalize"
	"github.com/cdcrecon/cdcrecon/schemas"
)

// Config configures an Engine.
type Config struct {
	// Settings is the validated configuration: tables, window.size and
	// window.grace.
	Settings *config.Config
	// Mapper holds the configuration's tables (normalize.NewMapper).
	Mapper *normalize.Mapper
	// Partition is the changes-topic partition the engine owns; checksum
	// records name it.
	Partition int32
	// Emit receives every output record, in the order decided. It must
	// not retain the record's slices past the call unless it copies them.
	Emit func(schemas.Record)
	// Store, when set, holds the keys the engine is not working on (see
	// Flush); without it every key stays in memory.
	Store Store
	// MaxKeys is how many keys Flush leaves in memory, idle ones
	// included; 0 keeps only those the engine is working on.
	MaxKeys int
	// Request, when set, receives every re-read request decided (see
	// verify.go), in the order decided; without it requests are still
	// decided, and nothing is asked.
	Request func(Request)
}

// Stats counts what an Engine saw and decided.
type Stats struct {
	Changes  int64 // changes applied
	Late     int64 // changes older than their input's watermark, applied at it
	Opened   int64
	Resolved int64
	Open     int64 // drifts open now
	// OpenByTable is Open by table name.
	OpenByTable map[string]int64
	Keys        int64 // keys in memory
	Spilled     int64 // keys written to the store by Flush
	Loaded      int64 // keys read back from the store
	// Re-reads: requests made (one per side and table), and verdicts.
	Requests, Confirmed, StreamGaps, Unverified int64
}

// Engine reconciles the keys of one changes-topic partition. It is not
// safe for concurrent use.
type Engine struct {
	cfg    Config
	grace  int64
	window int64
	tables map[string]*tableState
	keys   map[string]*keyState
	timers queue[timer]
	closes queue[windowClose]
	// marks holds, by side, each input's latest event time; keyed by the
	// input's topic and partition, as a change's Origin names it, for
	// placing late changes (see Apply).
	marks [3]map[inputKey]int64
	done  int64       // every instant up to done is decided
	idle  []*keyState // keys whose last window closed, for Flush
	// spilled holds the hashes of the keys Flush stored; preexisting is
	// set when the store held keys of the partition before this engine.
	spilled     map[uint64]struct{}
	preexisting bool
	dirty       []*keyState // changed since the last checkpoint
	resumed     []byte      // the caller's bytes of the checkpoint opened on
	h           canon.Hasher
	stats       Stats
	openBy      map[string]int64 // by table: drifts open now
	// Re-reads (verify.go): requests by id and by the keys they name, and
	// the keys whose request is due at batchAt.
	reqs     map[string]*request
	reqByKey map[reqKey][]string
	batch    map[*tableState][]*keyState
	batchAt  int64
}

// inputKey is an input partition, as a change's Origin names it.
type inputKey struct {
	topic string
	part  int32
}

// parseInput splits an input name ("topic/partition") into its parts; a
// name of another form is a topic of partition -1, which no change names.
func parseInput(input string) inputKey {
	if i := strings.LastIndexByte(input, '/'); i >= 0 {
		if p, err := strconv.ParseInt(input[i+1:], 10, 32); err == nil {
			return inputKey{input[:i], int32(p)}
		}
	}
	return inputKey{input, -1}
}

type tableState struct {
	t           *normalize.Table
	targetTopic string
	truncates   []changes.Change // both sides, kept while they may meet new keys
	windows     map[int64]*window
	verify      bool // drifts are re-read
	policy      config.Policy
	policyName  string
	anchors     [3][]anchor // by side: the latest rows, for re-read requests
}

type window struct {
	table *tableState
	start int64
	keys  map[string]*keyState
}

// New returns an Engine with no keys, nothing decided and no input
// partitions known.
func New(cfg Config) (*Engine, error) {
	if cfg.Settings == nil || cfg.Mapper == nil || cfg.Emit == nil {
		return nil, errors.New("reconcile: Config, Mapper and Emit are required")
	}
	e := &Engine{
		cfg:      cfg,
		grace:    cfg.Settings.Window.Grace.Milliseconds(),
		window:   cfg.Settings.Window.Size.Milliseconds(),
		tables:   map[string]*tableState{},
		keys:     map[string]*keyState{},
		done:     math.MinInt64,
		openBy:   map[string]int64{},
		reqs:     map[string]*request{},
		reqByKey: map[reqKey][]string{},
		timers:   queue[timer]{less: timerFirst},
		closes:   queue[windowClose]{less: closeFirst},
	}
	if e.window <= 0 {
		return nil, fmt.Errorf("reconcile: window.size must be at least 1ms, got %s", cfg.Settings.Window.Size)
	}
	for i := range e.marks {
		e.marks[i] = map[inputKey]int64{}
	}
	for i, t := range cfg.Mapper.Tables() {
		tc := &cfg.Settings.Tables[i]
		e.tables[t.Name()] = &tableState{t: t, targetTopic: tc.Target.Topic, windows: map[int64]*window{},
			verify: tc.Verifies(), policy: tc.Policy, policyName: tc.Policy.Name(tc.Name)}
	}
	if err := e.openStore(); err != nil {
		return nil, err
	}
	return e, nil
}

// Stats returns the counts so far.
func (e *Engine) Stats() Stats {
	st := e.stats
	st.Keys = int64(len(e.keys))
	st.OpenByTable = maps.Clone(e.openBy)
	return st
}

// Expect declares input partitions of a side ("topic/partition"): the
// side's watermark stays at -∞ until each has reported one.
func (e *Engine) Expect(side normalize.Side, inputs ...string) {
	for _, in := range inputs {
		k := parseInput(in)
		if _, ok := e.marks[side][k]; !ok {
			e.marks[side][k] = math.MinInt64
		}
	}
}

// Watermark records that input, a partition of side, has delivered every
// change with event time ≤ t (changes of later time may follow). A side's
// watermark is the smallest over its inputs.
func (e *Engine) Watermark(side normalize.Side, input string, t int64) {
	k := parseInput(input)
	if cur, ok := e.marks[side][k]; !ok || t > cur {
		e.marks[side][k] = t
	}
}

// bound is the last instant both sides have completed.
func (e *Engine) bound() int64 {
	b := int64(math.MaxInt64)
	for _, side := range []normalize.Side{normalize.Source, normalize.Target} {
		if len(e.marks[side]) == 0 {
			return math.MinInt64
		}
		for _, t := range e.marks[side] {
			b = min(b, t)
		}
	}
	if b == math.MinInt64 {
		return b
	}
	return b - 1 // a change at exactly the watermark may still come
}

// Apply hands the engine one change. An error is a permanent problem with
// the change (an unknown table, a row that does not decode). The engine
// copies what it keeps of c; c may alias a buffer the caller reuses.
//
// A late change — one older than the watermark its input partition
// (c.Origin's topic and partition) reported before it — takes effect at
// that watermark. The watermark is a fact of the input's order, not of
// when the engine last advanced, so a rebuild from the same changes
// reproduces every decision whatever its batches; and no instant at or
// past an input's watermark is decided before that input's later changes
// are in.
func (e *Engine) Apply(c changes.Change) error {
	ts := e.tables[c.Table]
	if ts == nil {
		return fmt.Errorf("change of unknown table %q", c.Table)
	}
	if c.Side != normalize.Source && c.Side != normalize.Target {
		return fmt.Errorf("change of table %s: invalid side %d", c.Table, c.Side)
	}
	if m, ok := e.marks[c.Side][inputKey{c.Origin.Topic, c.Origin.Partition}]; ok && c.Time < m {
		c.Time = m
		e.stats.Late++
	}
	if c.Time <= e.done {
		// Only a change of an input the engine was never told of, after
		// Finish or from an input whose watermarks arrive under another
		// name; decided instants stay decided.
		c.Time = e.done + 1
		e.stats.Late++
	}
	e.stats.Changes++
	if c.Kind == changes.Truncate {
		if err := e.loadTable(ts); err != nil {
			return err
		}
		c.Key = nil // a truncate is of the whole table
		ts.truncates = append(ts.truncates, c)
		for _, ks := range e.keys {
			if ks.table == ts {
				e.pend(ks, c)
			}
		}
		return nil
	}
	switch c.Kind {
	case changes.Upsert:
		if _, err := canon.DecodeRow(c.Row); err != nil {
			return fmt.Errorf("change of table %s: row: %w", c.Table, err)
		}
	case changes.Absent:
	default:
		return fmt.Errorf("change of table %s: invalid kind %d", c.Table, c.Kind)
	}
	// What the engine keeps must not alias the caller's buffer (a whole
	// fetched batch, kept alive by one row otherwise).
	c.Row = bytes.Clone(c.Row)
	id := ts.t.Name() + "\x00" + string(c.Key)
	ks := e.keys[id]
	if ks == nil {
		loaded, err := e.load(ts, id)
		if err != nil {
			return err
		}
		if loaded != nil {
			// Idle when stored: no pending change, timer or window. A
			// truncate loads every stored key of its table, so a stored
			// key has met every truncate already.
			e.keys[id] = loaded
			e.stats.Loaded++
			c.Key = loaded.key
			e.pend(loaded, c)
			return nil
		}
		ks = newKeyState(ts, id, []byte(id[len(ts.t.Name())+1:]))
		e.keys[id] = ks
		for _, tr := range ts.truncates {
			ks.insert(tr)
		}
	}
	c.Key = ks.key
	e.pend(ks, c)
	return nil
}

func (e *Engine) pend(ks *keyState, c changes.Change) {
	e.touch(ks)
	ks.insert(c)
	e.schedule(ks)
}

// schedule (re)sets the key's timer to its next change point.
func (e *Engine) schedule(ks *keyState) {
	next := ks.next(e.grace)
	if next == ks.timer {
		return
	}
	ks.timer = next
	if next != math.MaxInt64 {
		e.timers.push(timer{at: next, ks: ks})
	}
}

// Advance decides every instant both sides' watermarks have passed.
func (e *Engine) Advance() { e.run(e.bound()) }

// Finish is the end of input: the states are final, so every instant is
// decided; drifts still open stay open.
func (e *Engine) Finish() { e.run(math.MaxInt64) }

func (e *Engine) run(bound int64) {
	for {
		kt, wt := int64(math.MaxInt64), int64(math.MaxInt64)
		if !e.timers.empty() {
			kt = e.timers.first().at
		}
		if !e.closes.empty() {
			wt = e.closes.first().at
		}
		if len(e.batch) > 0 && min(kt, wt) > e.batchAt {
			e.flushRequests() // every key due at batchAt is in
		}
		if min(kt, wt) > bound || min(kt, wt) == math.MaxInt64 {
			break
		}
		if kt <= wt {
			tm := e.timers.pop()
			if tm.ks.timer != tm.at {
				continue // superseded
			}
			tm.ks.timer = math.MaxInt64
			e.sweep(tm.ks, tm.at)
			e.schedule(tm.ks)
			continue
		}
		c := e.closes.pop()
		e.close(c.w, c.at)
	}
	e.flushRequests()
	if bound > e.done {
		e.done = bound
		e.expireRequests()
		for _, ts := range e.tables {
			kept := ts.truncates[:0]
			for _, tr := range ts.truncates {
				if tr.Time > e.done {
					kept = append(kept, tr)
				}
			}
			ts.truncates = kept
		}
	}
}

// sweep moves one key's decisions forward to instant t, through every
// change point on the way.
func (e *Engine) sweep(ks *keyState, t int64) {
	for {
		at := ks.next(e.grace)
		if at > t {
			return
		}
		e.touch(ks)
		for len(ks.pending) > 0 && ks.pending[0].Time == at {
			c := ks.pending[0]
			ks.pending = ks.pending[1:]
			e.apply(ks, c)
		}
		if len(ks.pending) == 0 {
			ks.pending = nil // most keys wait idle: keep no array for them
		}
		ks.prune(at, e.grace)
		ks.at = at
		e.evaluate(ks, at)
		e.verifyStep(ks, at)
	}
}

// apply makes a change the key's current state on its side.
func (e *Engine) apply(ks *keyState, c changes.Change) {
	ts := ks.table
	var prev state // the side's state before a re-read, to tell what it changed
	if c.Reread && ts.verify {
		prev = *ks.current(c.Side)
	}
	st := state{start: c.Time}
	if c.Kind == changes.Upsert {
		st.row, st.digest = c.Row, c.Digest
		if c.Unresolved {
			st.row, st.digest, st.partial = e.resolve(ks.table.t, c.Row, ks.current(c.Side).row)
		}
	}
	if c.Side == normalize.Source {
		ks.src = append(ks.src, st)
	} else {
		ks.tgt = st
	}
	if ts.verify {
		e.setAnchor(ks, c.Side, c.Time, st.row != nil)
		if c.Reread {
			e.reread(ks, &c, !e.equal(ts.t, &prev, &st))
		}
	}
	start := c.Time - mod(c.Time, e.window)
	w := ts.windows[start]
	if w == nil {
		w = &window{table: ts, start: start, keys: map[string]*keyState{}}
		ts.windows[start] = w
		e.closes.push(windowClose{at: start + e.window + e.grace, w: w})
	}
	if w.keys[ks.id] == nil {
		w.keys[ks.id] = ks
		ks.wins = append(ks.wins, start)
	}
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// resolve fills a row's unchanged-TOAST placeholders from the side's
// previous row; partial tells that some stay.
func (e *Engine) resolve(t *normalize.Table, row, prev []byte) (_ []byte, _ uint64, partial bool) {
	r, err := canon.DecodeRow(row)
	if err != nil {
		return row, 0, true // Apply checked it
	}
	var p canon.Row
	if prev != nil {
		p, _ = canon.DecodeRow(prev)
	}
	c := normalize.Change{Row: r, Unresolved: true}
	c.Resolve(p)
	return canon.AppendRow(nil, c.Row), t.Digest(&e.h, c.Row), c.Unresolved
}

// evaluate applies the consistency rule at instant t, the key's states
// being those of t.
func (e *Engine) evaluate(ks *keyState, t int64) {
	consistent := false
	for i := range ks.src {
		if ks.acceptable(i, t, e.grace) && e.equal(ks.table.t, &ks.src[i], &ks.tgt) {
			consistent = true
			break
		}
	}
	switch {
	case !consistent && ks.drift == nil:
		e.open(ks, t)
	case consistent && ks.drift != nil:
		e.resolveDrift(ks, t)
	}
}

func (e *Engine) equal(t *normalize.Table, a, b *state) bool {
	switch {
	case a.row == nil || b.row == nil:
		return a.row == nil && b.row == nil
	case !t.Loose() && !a.partial && !b.partial:
		return a.digest == b.digest
	}
	ra, err1 := canon.DecodeRow(a.row)
	rb, err2 := canon.DecodeRow(b.row)
	if err1 != nil || err2 != nil {
		return false
	}
	return t.Equal(ra, a.digest, rb, b.digest)
}

// sortedKeys returns map keys in order, for deterministic output.
func sortedKeys(m map[string]*keyState) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// ms turns an event time into the output records' time.
func ms(t int64) time.Time { return time.UnixMilli(t).UTC() }
