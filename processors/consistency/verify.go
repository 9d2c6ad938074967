package consistency

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/cdcrecon/cdcrecon/processors/canon"
	"github.com/cdcrecon/cdcrecon/processors/changes"
	"github.com/cdcrecon/cdcrecon/processors/config"
	"github.com/cdcrecon/cdcrecon/processors/normalize"
	"github.com/cdcrecon/cdcrecon/schemas"
)

// Verification by re-read.
//
// With re-reads on for its table, a drift still open verify.delay after it
// opened is requested: at that instant, rounded up to a whole second so
// that the drifts of one second go out together, its key joins one
// request per side and table (at most verify.max_keys keys each, the
// anchor below included), unless a request waiting for its answer names
// the key already, whose answer it then takes. The caller
// (Config.Request) turns a request into an execute-snapshot signal; the
// connector answers with incremental-snapshot reads, which arrive as
// changes with Reread set and apply like any other.
//
// A connector reads nothing for a row its database does not have, so a
// request is answered on a side by the first re-read it takes; a key
// whose own row did not come back is then absent there. A request also
// names an anchor, the side's latest row of a key without drift and in no
// request still waiting, so that an answer comes even when none of the
// drifted rows exists. A read does not say which signal caused it: each
// request takes one read of each of its keys, the earliest request first.
//
// Once both sides answered, the verdict waits verify.settle for the rest
// of the rows, then: a side that answered without the key's row is made
// absent, unless a later change of its stream says otherwise; a key now
// consistent resolves as stream_gap, naming the sides the re-reads
// changed; one still inconsistent is confirmed, and only then
// compensated. A drift whose request is not answered on both sides
// within verify.timeout is unverified. A re-read row that makes the key
// consistent on its own resolves it as stream_gap at once.
//
// All of it is decided by event time, from the changes alone: a replay of
// the same changes, re-reads included, decides the same, and whether the
// caller sent the signals changes nothing but what comes back.

// Request asks one side's connector to re-read keys of a table.
type Request struct {
	// ID is derived from (partition, table, side, instant, first key): a
	// replay makes the same requests with the same ids.
	ID    string
	Table string
	Side  normalize.Side
	// Keys are the keys to re-read, by the side's column names.
	Keys []schemas.Columns
	// At is the instant, in event time, the request was decided.
	At time.Time
}

// verifyState is an open drift's re-read.
type verifyState struct {
	due       int64     // when to request; MaxInt64 once requested
	deadline  int64     // when it is unverified without answers; MaxInt64 before the request and after a verdict
	verdictAt int64     // when both sides answered plus settle; MaxInt64 until then
	req       [3]string // the request of each side
	answered  [3]int64  // when each side's request was answered; MinInt64 before
	read      [3]bool   // the key's own row came back on the side
	changed   [3]bool   // a re-read changed the side's state
	done      bool      // a verdict was given
}

var bothSides = [...]normalize.Side{normalize.Source, normalize.Target}

func newVerifyState(due int64) *verifyState {
	return &verifyState{due: due, deadline: math.MaxInt64, verdictAt: math.MaxInt64,
		answered: [3]int64{math.MinInt64, math.MinInt64, math.MinInt64}}
}

// nextAt is the verification's next instant; MaxInt64 for none.
func (v *verifyState) nextAt() int64 {
	if v == nil || v.done {
		return math.MaxInt64
	}
	return min(v.due, v.verdictAt, v.deadline)
}

// request is one side's re-read request of some keys of a table.
type request struct {
	id       string
	table    *tableState
	side     normalize.Side
	at       int64
	keys     []string // key ids, sorted; the anchor among them
	answered int64    // MinInt64 before
	got      []string // the keys whose read it took, in order
}

// reqKey finds the requests naming a key on a side.
type reqKey struct {
	side normalize.Side
	id   string
}

// anchor is one of a side's latest rows of a table: a key and the time
// it was set; every request carries the latest.
type anchor struct {
	id   string
	time int64
}

// dueAt is when a drift opened at t is requested: t plus the delay,
// rounded up to a whole second.
func (e *Engine) dueAt(t int64) int64 {
	due := t + e.cfg.Settings.Verify.Delay.Milliseconds()
	return due + mod(-due, 1000)
}

// verifyStep handles the verification instants of a key at instant at.
func (e *Engine) verifyStep(ks *keyState, at int64) {
	d := ks.drift
	if d == nil || d.v == nil || d.v.done {
		return
	}
	v := d.v
	if v.due == at {
		v.due = math.MaxInt64
		v.deadline = at + e.cfg.Settings.Verify.Timeout.Milliseconds()
		if e.batch == nil {
			e.batch = map[*tableState][]*keyState{}
		}
		e.batch[ks.table] = append(e.batch[ks.table], ks)
		e.batchAt = at
	}
	if v.verdictAt == at {
		v.verdictAt = math.MaxInt64
		e.verdict(ks, at)
		if ks.drift == nil || v.done {
			return
		}
	}
	if v.deadline == at {
		v.deadline = math.MaxInt64
		e.unverified(ks, at)
	}
}

// flushRequests makes the requests of the keys batched at one instant:
// by table, in key order, max_keys keys a request, one per side.
func (e *Engine) flushRequests() {
	if len(e.batch) == 0 {
		return
	}
	at := e.batchAt
	tables := make([]*tableState, 0, len(e.batch))
	for ts := range e.batch {
		tables = append(tables, ts)
	}
	slices.SortFunc(tables, func(a, b *tableState) int { return strings.Compare(a.t.Name(), b.t.Name()) })
	max := max(1, e.cfg.Settings.Verify.MaxKeys-1) // and the anchor
	for _, ts := range tables {
		keys := e.batch[ts]
		slices.SortFunc(keys, func(a, b *keyState) int { return strings.Compare(a.id, b.id) })
		for len(keys) > 0 {
			chunk := keys[:min(max, len(keys))]
			keys = keys[len(chunk):]
			for _, side := range bothSides {
				e.makeRequest(ts, side, at, chunk)
			}
		}
	}
	clear(e.batch)
}

func (e *Engine) makeRequest(ts *tableState, side normalize.Side, at int64, chunk []*keyState) {
	// A key already in a request waiting for its answer (the anchor of
	// one, or asked for by an earlier drift) is not asked for again: its
	// drift takes that request's answer.
	fresh := chunk[:0:0]
	for _, ks := range chunk {
		if id := e.waiting(side, ks.id, at); id != "" {
			ks.drift.v.req[side] = id
			e.touch(ks)
			continue
		}
		fresh = append(fresh, ks)
	}
	if chunk = fresh; len(chunk) == 0 {
		return
	}
	r := &request{table: ts, side: side, at: at, answered: math.MinInt64}
	for _, ks := range chunk {
		r.keys = append(r.keys, ks.id)
	}
	if a := e.anchorFor(ts, side, at); a != "" && !slices.Contains(r.keys, a) {
		r.keys = append(r.keys, a)
		slices.Sort(r.keys)
	}
	b := binary.BigEndian.AppendUint32(nil, uint32(e.cfg.Partition))
	b = append(b, byte(side))
	r.id = "cdcrecon-" + DriftID(ts.t.Name(), append(b, chunk[0].id...), at)
	e.reqs[r.id] = r
	for _, id := range r.keys {
		k := reqKey{side, id}
		e.reqByKey[k] = append(e.reqByKey[k], r.id)
	}
	for _, ks := range chunk {
		ks.drift.v.req[side] = r.id
		e.touch(ks)
	}
	e.stats.Requests++
	if e.cfg.Request == nil {
		return
	}
	out := Request{ID: r.id, Table: ts.t.Name(), Side: side, At: ms(at)}
	for _, id := range r.keys {
		out.Keys = append(out.Keys, e.keyColumns(ts.t, []byte(id[len(ts.t.Name())+1:]), side))
	}
	e.cfg.Request(out)
}

// waiting returns the request, made before at and not past its timeout,
// that names a key on a side and waits for its answer; "" when none.
func (e *Engine) waiting(side normalize.Side, id string, at int64) string {
	timeout := e.cfg.Settings.Verify.Timeout.Milliseconds()
	var best *request // the earliest, for the same answer after a restart
	for _, rid := range e.reqByKey[reqKey{side, id}] {
		r := e.reqs[rid]
		if r == nil || r.answered != math.MinInt64 || r.at+timeout <= at || slices.Contains(r.got, id) {
			continue
		}
		if best == nil || r.at < best.at || r.at == best.at && r.id < best.id {
			best = r
		}
	}
	if best == nil {
		return ""
	}
	return best.id
}

// reread notes a re-read row of a key, applied at c.Time; changed tells
// whether it changed the side's state.
//
// A read does not say which signal caused it, and a key can be in two
// requests (the anchor of one, then drifted in the next) whose answers
// overlap: so each request takes one read of each of its keys, and a
// read goes to the earliest request, made before it and not past its
// timeout, that has not had that key's read yet. The first read a
// request takes answers it.
func (e *Engine) reread(ks *keyState, c *changes.Change, changed bool) {
	timeout := e.cfg.Settings.Verify.Timeout.Milliseconds()
	var r *request
	for _, id := range e.reqByKey[reqKey{c.Side, ks.id}] {
		q := e.reqs[id]
		if q == nil || c.Time < q.at || c.Time > q.at+timeout || slices.Contains(q.got, ks.id) {
			continue
		}
		if r == nil || q.at < r.at || q.at == r.at && q.id < r.id {
			r = q
		}
	}
	if r == nil {
		return // a read no request of this engine asked for, or one too late
	}
	r.got = append(r.got, ks.id)
	if d := ks.drift; d != nil && d.v != nil {
		// Any re-read since the drift opened shows the database's row;
		// the key's row is back for its own request only from that one.
		d.v.changed[c.Side] = d.v.changed[c.Side] || changed
		d.v.read[c.Side] = d.v.read[c.Side] || d.v.req[c.Side] == r.id
	}
	if r.answered != math.MinInt64 {
		return
	}
	r.answered = c.Time
	for _, kid := range r.keys {
		k := e.keys[kid]
		if k == nil || k.drift == nil || k.drift.v == nil || k.drift.v.req[c.Side] != r.id {
			continue
		}
		v := k.drift.v
		v.answered[c.Side] = c.Time
		if v.answered[normalize.Source] != math.MinInt64 && v.answered[normalize.Target] != math.MinInt64 && !v.done {
			v.verdictAt = max(v.answered[normalize.Source], v.answered[normalize.Target]) + e.cfg.Settings.Verify.Settle.Milliseconds()
			e.touch(k)
			if k != ks {
				e.schedule(k)
			}
		}
	}
}

// verdict decides a drift whose request both sides answered.
func (e *Engine) verdict(ks *keyState, at int64) {
	v := ks.drift.v
	for _, side := range bothSides {
		cur := ks.current(side)
		if v.read[side] || cur.row == nil || cur.start >= v.answered[side] {
			continue // the row came back, is absent already, or changed since
		}
		// The database has no row: its stream missed the delete.
		e.apply(ks, changes.Change{Table: ks.table.t.Name(), Side: side, Kind: changes.Absent, Key: ks.key, Time: at})
		v.changed[side] = true
	}
	e.evaluate(ks, at)
	if ks.drift == nil {
		return // resolved: a stream gap
	}
	v.done, v.deadline = true, math.MaxInt64
	d := &ks.drift.rec
	d.Verification, d.VerifiedAt = schemas.Confirmed, ptrTime(ms(at))
	d.Reason = "the re-read rows still differ: " + d.Reason
	e.stats.Confirmed++
	e.decide(ks, d)
	rec := *d
	e.cfg.Emit(&rec)
	if rec.Decision == schemas.Compensate {
		e.cfg.Emit(e.compensation(ks, &rec, ks.current(normalize.Source)))
	}
}

// unverified marks a drift whose request was not answered in time.
func (e *Engine) unverified(ks *keyState, at int64) {
	v := ks.drift.v
	v.done = true
	var missing []string
	for _, side := range bothSides {
		if v.answered[side] == math.MinInt64 {
			missing = append(missing, side.String())
		}
	}
	d := &ks.drift.rec
	d.Verification, d.VerifiedAt = schemas.Unverified, ptrTime(ms(at))
	d.VerifiedSide = sideNames(missing)
	d.Decision = schemas.ManualCheck
	d.Reason = fmt.Sprintf("no re-read from the %s connector within %s of the request: %s",
		strings.Join(missing, " and "), e.cfg.Settings.Verify.Timeout, d.Reason)
	e.stats.Unverified++
	rec := *d
	e.cfg.Emit(&rec)
}

func ptrTime(t time.Time) *time.Time { return &t }

// sideNames names one side, or both.
func sideNames(sides []string) string {
	if len(sides) == 2 {
		return "both"
	}
	return strings.Join(sides, "")
}

// streams names the change streams of sideNames' result.
func streams(sides string) string {
	if sides == "both" {
		return "source's and the target's change streams"
	}
	return sides + "'s change stream"
}

// gapSides names the sides a re-read changed; "" when none did.
func (v *verifyState) gapSides() string {
	var s []string
	for _, side := range bothSides {
		if v.changed[side] {
			s = append(s, side.String())
		}
	}
	return sideNames(s)
}

// expireRequests forgets the requests no answer can matter to any more.
func (e *Engine) expireRequests() {
	horizon := e.cfg.Settings.Verify.Timeout.Milliseconds() + e.cfg.Settings.Verify.Settle.Milliseconds()
	for id, r := range e.reqs {
		if r.at+horizon >= e.done && e.done != math.MaxInt64 {
			continue
		}
		delete(e.reqs, id)
		for _, kid := range r.keys {
			k := reqKey{r.side, kid}
			ids := slices.DeleteFunc(e.reqByKey[k], func(s string) bool { return s == id })
			if len(ids) == 0 {
				delete(e.reqByKey, k)
			} else {
				e.reqByKey[k] = ids
			}
		}
	}
}

// maxAnchors is how many of a side's latest rows a table keeps, so that
// a delete of the latest, or drifts of several, leave others.
const maxAnchors = 16

// anchorFor picks a request's anchor: the side's latest row of a key
// without drift (a key leaves the anchors when its drift opens), so that
// a drifted key is asked for by its own request alone, and in no other
// request still waiting for its answer: a re-read answers every waiting
// request that names its key, and must not answer one whose signal the
// connector has not read yet.
func (e *Engine) anchorFor(ts *tableState, side normalize.Side, at int64) string {
	for _, a := range ts.anchors[side] {
		if e.waiting(side, a.id, at) == "" {
			return a.id
		}
	}
	return ""
}

// dropAnchor takes a key whose drift opened out of its table's anchors.
func (e *Engine) dropAnchor(ks *keyState) {
	for _, side := range bothSides {
		ks.table.anchors[side] = slices.DeleteFunc(ks.table.anchors[side], func(a anchor) bool { return a.id == ks.id })
	}
}

// setAnchor keeps a side's latest rows of a table, latest first (by time,
// then key), of keys without drift, for requests.
func (e *Engine) setAnchor(ks *keyState, side normalize.Side, t int64, present bool) {
	as := slices.DeleteFunc(ks.table.anchors[side], func(a anchor) bool { return a.id == ks.id })
	if present && ks.drift == nil {
		i, _ := slices.BinarySearchFunc(as, anchor{ks.id, t}, func(a, b anchor) int {
			if a.time != b.time {
				return cmpOrdered(b.time, a.time)
			}
			return strings.Compare(b.id, a.id)
		})
		as = slices.Insert(as, i, anchor{ks.id, t})
		as = as[:min(len(as), maxAnchors)]
	}
	ks.table.anchors[side] = as
}

// decide applies the table's policy to a drift about to be compensated:
// it sets the drift's policy and decision.
func (e *Engine) decide(ks *keyState, d *schemas.Drift) {
	pol := ks.table.policy
	d.Policy = ks.table.policyName
	d.Decision = schemas.Compensate
	switch pol.RuleName() {
	case config.Manual:
		d.Decision = schemas.ManualCheck
	case config.NeverDelete:
		if d.Kind == schemas.ExtraInTarget {
			d.Decision = schemas.KeepRow
		}
	case config.NewestWins:
		if d.Kind != schemas.ValueMismatch {
			break
		}
		src, _ := canon.DecodeRow(ks.current(normalize.Source).row)
		tgt, _ := canon.DecodeRow(ks.tgt.row)
		a, okA := src.Get(pol.NewestBy)
		b, okB := tgt.Get(pol.NewestBy)
		if okA && okB {
			if c, ok := compareValues(b, a); ok && c > 0 {
				d.Decision = schemas.TargetNewer
			}
		}
	}
}

// compareValues orders two values of one kind: numbers, instants,
// durations and strings; ok is false for others or mixed kinds.
func compareValues(a, b canon.Value) (int, bool) {
	if a.Kind() != b.Kind() {
		return 0, false
	}
	switch a.Kind() {
	case canon.Number:
		x, _ := a.Float64()
		y, _ := b.Float64()
		return cmpOrdered(x, y), true
	case canon.Instant:
		x, _ := a.Time()
		y, _ := b.Time()
		return x.Compare(y), true
	case canon.Duration:
		x, _ := a.Nanos()
		y, _ := b.Nanos()
		return cmpOrdered(x, y), true
	case canon.String:
		return strings.Compare(a.Str(), b.Str()), true
	}
	return 0, false
}

func cmpOrdered[T int64 | float64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
