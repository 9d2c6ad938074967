package consistency

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/zeebo/xxh3"

	"github.com/cdcrecon/cdcrecon/processors/canon"
	"github.com/cdcrecon/cdcrecon/processors/normalize"
	"github.com/cdcrecon/cdcrecon/schemas"
)

// openDrift is a drift as opened: what its records repeat until resolved.
type openDrift struct {
	rec schemas.Drift
	v   *verifyState // nil: the table's drifts are not re-read
}

// DriftID derives a drift's id from (table, key, opening instant): 32 hex
// digits of xxh3-128.
func DriftID(table string, key []byte, opened int64) string {
	b := make([]byte, 0, len(table)+len(key)+10)
	b = append(b, table...)
	b = append(b, 0)
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	b = binary.BigEndian.AppendUint64(b, uint64(opened))
	return hash128Hex(b)
}

// CompensationID derives a compensation command's id from its drift's.
func CompensationID(driftID string) string {
	return hash128Hex([]byte("compensation\x00" + driftID))
}

func hash128Hex(b []byte) string {
	h := xxh3.Hash128(b).Bytes()
	return hex.EncodeToString(h[:])
}

func (e *Engine) open(ks *keyState, t int64) {
	ts := ks.table
	src, tgt := ks.current(normalize.Source), &ks.tgt
	d := schemas.Drift{
		ID:       DriftID(ts.t.Name(), ks.key, t),
		Table:    ts.t.Name(),
		Key:      e.keyColumns(ts.t, ks.key, canonical),
		Status:   schemas.Open,
		Columns:  []string{},
		Source:   e.rowColumns(ts.t, src.row, canonical, true),
		Target:   e.rowColumns(ts.t, tgt.row, canonical, true),
		OpenedAt: ms(t),
	}
	grace := time.Duration(e.grace) * time.Millisecond
	switch {
	case tgt.row == nil:
		d.Kind = schemas.MissingInTarget
		d.Reason = fmt.Sprintf("the source has a row the target has not had within the %s grace", grace)
	case src.row == nil:
		d.Kind = schemas.ExtraInTarget
		d.Reason = fmt.Sprintf("the target has a row the source has not had within the %s grace", grace)
	default:
		d.Kind = schemas.ValueMismatch
		a, _ := canon.DecodeRow(src.row)
		b, _ := canon.DecodeRow(tgt.row)
		d.Columns = ts.t.Diff(a, b)
		d.Reason = fmt.Sprintf("%s: no source state of the last %s matches", strings.Join(d.Columns, ", "), grace)
	}
	e.stats.Opened++
	e.stats.Open++
	e.openBy[ks.table.t.Name()]++
	if ts.verify {
		e.dropAnchor(ks)
		// Compensation waits for the verdict (verify.go).
		d.Policy, d.Decision, d.Verification = ts.policyName, schemas.Verifying, schemas.Pending
		ks.drift = &openDrift{rec: d, v: newVerifyState(e.dueAt(t))}
		e.cfg.Emit(&d)
		return
	}
	e.decide(ks, &d)
	ks.drift = &openDrift{rec: d}
	e.cfg.Emit(&d)
	if d.Decision == schemas.Compensate {
		e.cfg.Emit(e.compensation(ks, &d, src))
	}
}

func (e *Engine) resolveDrift(ks *keyState, t int64) {
	d := ks.drift.rec
	if v := ks.drift.v; v != nil && !v.done {
		if sides := v.gapSides(); sides != "" {
			d.Verification, d.VerifiedSide, d.VerifiedAt = schemas.StreamGap, sides, ptrTime(ms(t))
			d.Reason = "the re-read rows agree: the " + streams(sides) + " did not show the database's row"
			e.stats.StreamGaps++
		} else {
			d.Verification = "" // resolved by the streams before a verdict
		}
	}
	at := ms(t)
	d.Status, d.ResolvedAt = schemas.Resolved, &at
	if d.Decision == schemas.Compensate {
		// The drift was given a compensation: its resolution names it,
		// the key under which the audit topic says what apply did.
		d.CompensationID = CompensationID(d.ID)
	}
	ks.drift = nil
	e.stats.Resolved++
	e.stats.Open--
	e.openBy[ks.table.t.Name()]--
	e.cfg.Emit(&d)
}

// compensation is the command that would make the target row match the
// source's: the source row in the target's names, a delete, or setting the
// target's soft-delete column.
func (e *Engine) compensation(ks *keyState, d *schemas.Drift, src *state) *schemas.Compensation {
	ts := ks.table
	c := &schemas.Compensation{
		ID:            CompensationID(d.ID),
		DriftID:       d.ID,
		Table:         d.Table,
		TargetTopic:   ts.targetTopic,
		Key:           e.keyColumns(ts.t, ks.key, normalize.Target),
		DriftOpenedAt: d.OpenedAt,
		Policy:        d.Policy,
	}
	if ts.verify {
		c.Verification = schemas.Confirmed
	}
	switch {
	case d.Kind != schemas.ExtraInTarget:
		c.Action = schemas.Upsert
		c.Row = e.rowColumns(ts.t, src.row, normalize.Target, false)
	default:
		c.Action = schemas.Delete
		if col, v, ok := ts.t.SoftDelete(normalize.Target); ok {
			c.Action = schemas.SoftDelete
			c.Row = schemas.Columns{e.column(ts.t, localName(ts.t, normalize.Target, col), col, v, false)}
		}
	}
	return c
}

// canonical, in place of a side, names columns by their canonical names.
const canonical normalize.Side = 0

func localName(t *normalize.Table, side normalize.Side, col string) string {
	if side == canonical {
		return col
	}
	return t.LocalName(side, col)
}

// keyColumns names a key's values by the side's column names.
func (e *Engine) keyColumns(t *normalize.Table, key []byte, side normalize.Side) schemas.Columns {
	vals, err := canon.DecodeKey(key)
	if err != nil {
		return schemas.Columns{}
	}
	cols := make(schemas.Columns, 0, len(vals))
	for i, name := range t.KeyColumns() {
		if i < len(vals) {
			cols = append(cols, e.column(t, localName(t, side, name), name, vals[i], false))
		}
	}
	return cols
}

// rowColumns shows a row by the side's column names; nil when absent.
// Drift records show it redacted, compensation commands in full: they are
// the repair.
func (e *Engine) rowColumns(t *normalize.Table, row []byte, side normalize.Side, redact bool) schemas.Columns {
	if row == nil {
		return nil
	}
	r, err := canon.DecodeRow(row)
	if err != nil {
		return schemas.Columns{}
	}
	cols := make(schemas.Columns, 0, len(r))
	for _, c := range r {
		cols = append(cols, e.column(t, localName(t, side, c.Name), c.Name, c.Value, redact))
	}
	sort.SliceStable(cols, func(i, j int) bool { return cols[i].Name < cols[j].Name })
	return cols
}

func (e *Engine) column(t *normalize.Table, name, canonical string, v canon.Value, redact bool) schemas.Column {
	c := schemas.Column{Name: name, Digest: fmt.Sprintf("%016x", e.h.Value(v))}
	if redact && t.Redacted(canonical) {
		c.Redacted = true
	} else {
		c.Value = string(canon.AppendJSON(nil, v))
	}
	return c
}

// close publishes a window's checksum: over its keys, the source's states
// at its end and the target's at its end plus grace.
func (e *Engine) close(w *window, at int64) {
	end := w.start + e.window
	var src, tgt schemas.SideDigest
	var drifts []string
	for _, id := range sortedKeys(w.keys) {
		ks := w.keys[id]
		e.sweep(ks, at)
		addDigest(&src, ks.key, ks.sourceAt(end))
		addDigest(&tgt, ks.key, &ks.tgt)
		if ks.drift != nil {
			drifts = append(drifts, ks.drift.rec.ID)
		}
		e.touch(ks)
		ks.wins = slices.DeleteFunc(ks.wins, func(s int64) bool { return s == w.start })
		if len(ks.wins) == 0 && !ks.queued {
			ks.queued = true
			e.idle = append(e.idle, ks)
		}
	}
	delete(w.table.windows, w.start)
	if drifts == nil {
		drifts = []string{}
	}
	sort.Strings(drifts)
	e.cfg.Emit(&schemas.Checksum{
		Table:       w.table.t.Name(),
		Partition:   e.cfg.Partition,
		WindowStart: ms(w.start),
		WindowEnd:   ms(end),
		Source:      src,
		Target:      tgt,
		Consistent:  src == tgt,
		DriftIDs:    drifts,
	})
}

// addDigest adds a key's row to a side's digest: the sum, modulo 2^128, of
// xxh3-128 over (key, row digest) of every key with a row.
func addDigest(d *schemas.SideDigest, key []byte, st *state) {
	if st.row == nil {
		return
	}
	b := binary.LittleEndian.AppendUint64(append([]byte(nil), key...), st.digest)
	h := xxh3.Hash128(b)
	hi := binary.BigEndian.Uint64(d.Digest[:8])
	lo := binary.BigEndian.Uint64(d.Digest[8:])
	lo2 := lo + h.Lo
	carry := uint64(0)
	if lo2 < lo {
		carry = 1
	}
	binary.BigEndian.PutUint64(d.Digest[:8], hi+h.Hi+carry)
	binary.BigEndian.PutUint64(d.Digest[8:], lo2)
	d.Count++
}
