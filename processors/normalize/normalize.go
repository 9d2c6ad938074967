package normalize

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/zeebo/xxh3"

	"github.com/cdcrecon/cdcrecon/processors/canon"
	"github.com/cdcrecon/cdcrecon/processors/config"
	"github.com/cdcrecon/cdcrecon/processors/debezium"
)

// Side is the source or the target of a table.
type Side uint8

// Sides. The values are part of event identities and never change.
const (
	Source Side = 1
	Target Side = 2
)

func (s Side) String() string {
	switch s {
	case Source:
		return "source"
	case Target:
		return "target"
	}
	return fmt.Sprintf("side(%d)", uint8(s))
}

// ChangeKind classifies a mapped change.
type ChangeKind uint8

// Kinds of change.
const (
	// Skip is a message with nothing for the reconciler: a tombstone, a
	// transaction marker, a schema change, a logical decoding message.
	Skip ChangeKind = iota
	// Row sets the key's state on its side: Row holds it, or nil when the
	// row is absent (deleted, soft-deleted).
	Row
	// Truncate removes every row of the side whose events precede it.
	Truncate
	// Heartbeat only advances the side's clock.
	Heartbeat
)

// Change is one event in a table's canonical terms.
type Change struct {
	Kind  ChangeKind
	Table string
	Side  Side
	Op    debezium.Op
	// Key holds the canonical key values in key column order; KeyBytes
	// their encoding (canon.AppendKey).
	Key      []canon.Value
	KeyBytes []byte
	// Row is the canonical row, nil when absent.
	Row canon.Row
	// Time is the event time, Unix ms.
	Time int64
	// Identity identifies the event for deduplication: (side, table, key,
	// op, connector position), or the value's hash when the connector has
	// no position.
	Identity [16]byte
	// Unresolved is set when Row holds unchanged-TOAST placeholders;
	// Resolve fills them from the side's previous row.
	Unresolved bool
	// Reread is set for a row an incremental snapshot read: the
	// database's row as of the read, which a re-read asked for.
	Reread bool
}

// Resolve replaces every unchanged-TOAST placeholder of c.Row by prev's
// value of the same column, when prev has one. Placeholders prev cannot
// resolve stay: Diff does not compare them.
func (c *Change) Resolve(prev canon.Row) {
	if !c.Unresolved {
		return
	}
	still := false
	for i, col := range c.Row {
		if col.Value.Kind() != canon.Unavailable {
			continue
		}
		if v, ok := prev.Get(col.Name); ok && v.Kind() != canon.Unavailable {
			c.Row[i].Value = v
		} else {
			still = true
		}
	}
	c.Unresolved = still
}

// Mapper routes topics to tables and maps their events. It is read-only
// after NewMapper and safe for concurrent use.
type Mapper struct {
	routes map[string]route
	tables []*Table
}

type route struct {
	table *Table
	side  Side
}

// NewMapper builds the mapping of every table of a validated config.
func NewMapper(cfg *config.Config) (*Mapper, error) {
	m := &Mapper{routes: map[string]route{}}
	for i := range cfg.Tables {
		t, err := newTable(&cfg.Tables[i])
		if err != nil {
			return nil, fmt.Errorf("table %s: %w", cfg.Tables[i].Name, err)
		}
		m.tables = append(m.tables, t)
		m.routes[cfg.Tables[i].Source.Topic] = route{t, Source}
		m.routes[cfg.Tables[i].Target.Topic] = route{t, Target}
	}
	return m, nil
}

// Route returns the table and side a topic feeds.
func (m *Mapper) Route(topic string) (*Table, Side, bool) {
	r, ok := m.routes[topic]
	return r.table, r.side, ok
}

// Tables returns the tables in configuration order.
func (m *Mapper) Tables() []*Table { return m.tables }

// Table is one configured table's mapping.
type Table struct {
	name    string
	key     []string
	keyPos  map[string]int
	keyCols []*column   // normalisation of each key column, nil for none
	sides   [3]sidePlan // indexed by Side
	columns map[string]*column
	compare map[string]bool // nil: all columns but ignored ones
	ignore  map[string]bool
	redact  map[string]bool
	// looseNames are the columns with a tolerance.
	looseNames []string
	caches     [3]sideCache // indexed by Side
	states     [3]sync.Pool // *mapState by Side, for Map
}

type sidePlan struct {
	// canonical maps this side's column names to canonical ones.
	canonical map[string]string
	// local maps canonical names back to this side's names.
	local map[string]string
	// softColumn is the canonical soft-delete column ("" for none).
	softColumn string
	softCol    *column // its normalisation
	softValue  canon.Value
}

// column is the normalisation of one canonical column.
type column struct {
	as        hint
	scale     int32
	hasScale  bool
	unit      time.Duration
	precision time.Duration
	round     bool // to the nearest precision, not truncated
	tolerance float64
	loose     bool // compared with a tolerance
	trim      bool
	fold      bool
}

// hint is a column's as: hint.
type hint uint8

// Hints; the zero hint is none.
const (
	noHint hint = iota
	asBoolHint
	asDecimalHint
	asTimestampHint
	asJSONHint
	asStringHint
)

var hints = map[string]hint{"": noHint, "bool": asBoolHint, "decimal": asDecimalHint,
	"timestamp": asTimestampHint, "json": asJSONHint, "string": asStringHint}

// changes reports whether applying c can change a value: false for a
// column with a tolerance only.
func (c *column) changes() bool {
	return c.as != noHint || c.precision > 0 || c.trim || c.fold
}

func newTable(tc *config.Table) (*Table, error) {
	t := &Table{
		name:    tc.Name,
		key:     tc.Key,
		keyPos:  map[string]int{},
		columns: map[string]*column{},
		ignore:  map[string]bool{},
		redact:  map[string]bool{},
	}
	for i, k := range tc.Key {
		t.keyPos[k] = i
	}
	for _, c := range tc.Ignore {
		t.ignore[c] = true
	}
	// A column the target owns is never compared, so never kept in the
	// canonical row: compensation, made of that row, never writes it.
	for _, c := range tc.Policy.Owned() {
		t.ignore[c] = true
	}
	for _, c := range tc.Redact {
		t.redact[c] = true
	}
	if len(tc.Compare) > 0 {
		t.compare = map[string]bool{}
		for _, c := range tc.Compare {
			t.compare[c] = true
		}
	}
	for name, n := range tc.Normalize {
		c := &column{as: hints[n.As], unit: n.UnitDuration(), precision: n.Precision(), round: n.TimestampRounding == "nearest",
			trim: n.Trim, fold: n.CaseInsensitive}
		if n.Scale != nil {
			c.scale, c.hasScale = int32(*n.Scale), true
		}
		if n.Tolerance != nil {
			c.tolerance, c.loose = *n.Tolerance, true
			t.looseNames = append(t.looseNames, name)
		}
		t.columns[name] = c
	}
	t.keyCols = make([]*column, len(t.key))
	for i, k := range t.key {
		t.keyCols[i] = t.columns[k]
	}
	for _, s := range []struct {
		side Side
		cfg  *config.Side
	}{{Source, &tc.Source}, {Target, &tc.Target}} {
		p := sidePlan{canonical: map[string]string{}, local: map[string]string{}}
		for from, to := range s.cfg.Rename {
			p.canonical[from] = to
			p.local[to] = from
		}
		if sd := s.cfg.SoftDelete; sd != nil {
			p.softColumn = p.canon(sd.Column)
			v := sd.Value
			if v == nil {
				v = true
			}
			sv, err := configValue(v)
			if err != nil {
				return nil, fmt.Errorf("soft_delete value: %w", err)
			}
			p.softCol = t.columns[p.softColumn]
			p.softValue = t.apply(p.softCol, sv)
		}
		t.sides[s.side] = p
		t.caches[s.side].cur.Store(&columnCache{byLocal: map[string]*colInfo{}})
		side := s.side
		t.states[side].New = func() any { return newMapState(t, side) }
	}
	return t, nil
}

func (p *sidePlan) canon(name string) string {
	if c, ok := p.canonical[name]; ok {
		return c
	}
	return name
}

// configValue turns a YAML scalar into a canonical value.
func configValue(v any) (canon.Value, error) {
	switch x := v.(type) {
	case bool:
		return canon.BoolValue(x), nil
	case int:
		return canon.IntValue(int64(x)), nil
	case float64:
		return canon.FloatValue(x, 64), nil
	case string:
		return canon.StringValue(x), nil
	}
	return canon.Value{}, fmt.Errorf("unsupported value %v", v)
}

// Name returns the table's name.
func (t *Table) Name() string { return t.name }

// KeyColumns returns the canonical key columns.
func (t *Table) KeyColumns() []string { return t.key }

// Redacted reports whether a canonical column is redacted in outputs.
func (t *Table) Redacted(col string) bool { return t.redact[col] }

// LocalName returns a side's name for a canonical column.
func (t *Table) LocalName(side Side, col string) string {
	if l, ok := t.sides[side].local[col]; ok {
		return l
	}
	return col
}

// SoftDelete returns a side's soft-delete column, by its canonical name,
// and the value that marks a row deleted; ok is false when the side has
// none.
func (t *Table) SoftDelete(side Side) (column string, value canon.Value, ok bool) {
	p := &t.sides[side]
	return p.softColumn, p.softValue, p.softColumn != ""
}

// ErrKeyMissing reports an event whose key columns are in neither the
// message key nor the row.
var ErrKeyMissing = errors.New("key column missing")

// Map maps a decoded event of a side of t. raw is the message value, whose
// hash identifies events of connectors without a position. An error is a
// permanent problem with the event (it belongs in the dead-letter queue).
// Map is safe for concurrent use; Worker.Map does the same work with less
// of it.
func (t *Table) Map(side Side, ev *debezium.Event, raw []byte) (Change, error) {
	st := t.states[side].Get().(*mapState)
	defer t.states[side].Put(st)
	for {
		st.begin()
		debezium.Project(st, ev)
		if !st.stale {
			c, err := st.finish(ev, raw)
			st.end()
			return c, err
		}
		st.end() // a column was learnt: map again with the new ranks
	}
}

// identity hashes (side, table, key, op, position) with xxh3-128, or
// (side, table, key, op, value hash) when the event has no position.
func (t *Table) identity(side Side, key []byte, ev *debezium.Event, raw []byte) [16]byte {
	var buf [256]byte
	b := append(buf[:0], byte(side))
	b = binary.AppendUvarint(b, uint64(len(t.name)))
	b = append(b, t.name...)
	b = binary.AppendUvarint(b, uint64(len(key)))
	b = append(b, key...)
	b = append(b, byte(ev.Op))
	if len(ev.Source.Position) > 0 {
		b = append(b, 'p')
		b = ev.Source.Position.AppendBinary(b)
	} else {
		b = append(b, 'v')
		b = binary.BigEndian.AppendUint64(b, xxh3.Hash(raw))
	}
	return xxh3.Hash128(b).Bytes()
}

// apply applies the normalisation c (nil: none).
func (t *Table) apply(c *column, v canon.Value) canon.Value {
	if c == nil || v.Kind() == canon.Null || v.Kind() == canon.Unavailable {
		return v
	}
	if v.Kind() == canon.Array && c.as != asJSONHint && c.as != asStringHint {
		elems := v.Elems()
		out := make([]canon.Value, len(elems))
		for i, e := range elems {
			out[i] = c.apply(e)
		}
		return canon.ArrayValue(out)
	}
	return c.apply(v)
}

func (c *column) apply(v canon.Value) canon.Value {
	switch c.as {
	case asBoolHint:
		v = asBool(v)
	case asDecimalHint:
		v = c.asDecimal(v)
	case asTimestampHint:
		v = c.asTimestamp(v)
	case asJSONHint:
		v = asJSON(v)
	case asStringHint:
		v = asString(v)
	}
	switch {
	case c.precision > 0 && c.round:
		v = canon.Round(v, c.precision)
	case c.precision > 0:
		v = canon.Truncate(v, c.precision)
	}
	if c.trim {
		v = canon.Trim(v)
	}
	if c.fold {
		v = canon.Fold(v)
	}
	return v
}

// Values a hint cannot convert are kept as they are, so that they show up
// as a difference rather than disappear.

func asBool(v canon.Value) canon.Value {
	switch v.Kind() {
	case canon.Number:
		if n, ok := v.Int(); ok && (n == 0 || n == 1) {
			return canon.BoolValue(n == 1)
		}
	case canon.String:
		switch strings.ToLower(strings.TrimSpace(v.Str())) {
		case "1", "t", "true", "y", "yes":
			return canon.BoolValue(true)
		case "0", "f", "false", "n", "no":
			return canon.BoolValue(false)
		}
	}
	return v
}

func (c *column) asDecimal(v canon.Value) canon.Value {
	switch v.Kind() {
	case canon.String:
		if n, ok := canon.ParseNumber([]byte(v.Str())); ok {
			return n
		}
		if c.hasScale { // base64 Connect Decimal bytes without their schema
			if b, err := base64.StdEncoding.DecodeString(v.Str()); err == nil && len(b) > 0 {
				return canon.DecimalFromBytes(b, c.scale)
			}
		}
	case canon.Bytes:
		if c.hasScale && v.Str() != "" {
			return canon.DecimalFromBytes([]byte(v.Str()), c.scale)
		}
	}
	return v
}

func (c *column) asTimestamp(v canon.Value) canon.Value {
	switch v.Kind() {
	case canon.Number:
		n, ok := v.Int()
		if !ok {
			return v
		}
		u := int64(c.unit)
		if c.unit == 24*time.Hour {
			return canon.InstantOf(n*86400, 0)
		}
		per := int64(time.Second) / u // units per second
		sec, rem := n/per, n%per
		if rem < 0 {
			sec, rem = sec-1, rem+per
		}
		return canon.InstantOf(sec, rem*u)
	case canon.String:
		if ts, err := debezium.ParseTimestamp(strings.TrimSpace(v.Str())); err == nil {
			return ts
		}
	}
	return v
}

func asJSON(v canon.Value) canon.Value {
	switch v.Kind() {
	case canon.String:
		if j, err := canon.JSONValue(v.Str()); err == nil {
			return j
		}
		return v
	case canon.JSON:
		return v
	}
	if j, err := canon.JSONValue(string(canon.AppendJSON(nil, v))); err == nil {
		return j
	}
	return v
}

func asString(v canon.Value) canon.Value {
	switch v.Kind() {
	case canon.String:
		return v
	case canon.JSON:
		return canon.StringValue(v.Str())
	}
	b := canon.AppendJSON(nil, v)
	if len(b) >= 2 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err == nil {
			return canon.StringValue(s)
		}
	}
	return canon.StringValue(string(b))
}

// ColumnRole is what mapping makes of one of a side's columns.
type ColumnRole uint8

// Column roles.
const (
	// Compared columns make the canonical row.
	Compared ColumnRole = iota + 1
	// KeyColumn columns make the key.
	KeyColumn
	// SoftDeleteColumn is the side's soft-delete flag.
	SoftDeleteColumn
	// Dropped columns are not compared: ignored, owned by the target, or
	// outside compare.
	Dropped
)

// CanonicalColumn returns the canonical name of a side's column and what
// mapping makes of it.
func (t *Table) CanonicalColumn(side Side, local string) (string, ColumnRole) {
	plan := &t.sides[side]
	name := plan.canon(local)
	switch _, isKey := t.keyPos[name]; {
	case isKey:
		return name, KeyColumn
	case plan.softColumn != "" && name == plan.softColumn:
		return name, SoftDeleteColumn
	case t.ignore[name] || t.compare != nil && !t.compare[name]:
		return name, Dropped
	}
	return name, Compared
}
