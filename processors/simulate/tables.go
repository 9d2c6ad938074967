package simulate

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// table is one simulated table: its topics and columns.
type table struct {
	name, source, target string
	// keys are the key columns; a second key column makes a composite key
	// (key / 16, key % 16).
	keys    []string
	columns []column
}

// column is one non-key column. The source writes it under canonical, the
// target under target (a rename when they differ).
type column struct {
	canonical, target string
	compared          bool   // false: listed under ignore
	as                string // the normalize hint the configuration gives it
	precision         string // timestamp_precision
	gen               func(r randSource, key int32) value
}

// randSource is what the column generators draw from.
type randSource interface {
	IntN(int) int
	Int64N(int64) int64
}

// value is one column value: its logical text (equal texts mean equal
// values) and its JSON as each side writes it.
type value struct {
	logical  string
	src, tgt string
}

var statuses = []string{"new", "paid", "packed", "shipped", "delivered", "cancelled"}
var methods = []string{"card", "transfer", "wallet", "voucher"}
var tiers = []string{"bronze", "silver", "gold"}

var words = strings.Fields(`replica drift lag commit offset partition window
checksum snapshot connector binlog tombstone heartbeat watermark grace key row
column source target decimal instant schema registry compaction`)

func text(r randSource, min, max int) value {
	n := min + r.IntN(max-min+1)
	var b strings.Builder
	for b.Len() < n {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[r.IntN(len(words))])
	}
	s := strconv.Quote(b.String())
	return value{logical: b.String(), src: s, tgt: s}
}

func enum(r randSource, of []string) value {
	s := of[r.IntN(len(of))]
	q := strconv.Quote(s)
	return value{logical: s, src: q, tgt: q}
}

// money is a decimal: the source writes scale 2, the target scale 4, both
// as strings (decimal.handling.mode=string).
func money(r randSource, max int64) value {
	cents := r.Int64N(max * 100)
	s := fmt.Sprintf("%d.%02d", cents/100, cents%100)
	return value{logical: s, src: `"` + s + `"`, tgt: `"` + s + `00"`}
}

// flag is a boolean: true/false on the source, TINYINT(1) 1/0 on the target.
func flag(r randSource) value {
	if r.IntN(2) == 1 {
		return value{logical: "true", src: "true", tgt: "1"}
	}
	return value{logical: "false", src: "false", tgt: "0"}
}

// instant is a timestamp: microseconds on the source, milliseconds on the
// target, compared at millisecond precision.
func instant(r randSource) value {
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.Int64N(int64(300*24*time.Hour/time.Microsecond))) * time.Microsecond)
	return value{
		logical: t.Truncate(time.Millisecond).Format(time.RFC3339Nano),
		src:     `"` + t.Format("2006-01-02T15:04:05.000000Z") + `"`,
		tgt:     `"` + t.Format("2006-01-02T15:04:05.000Z") + `"`,
	}
}

func integer(r randSource, max int) value {
	s := strconv.Itoa(1 + r.IntN(max))
	return value{logical: s, src: s, tgt: s}
}

var tables = []table{
	{
		name: "orders", source: "pg.public.orders", target: "mysql.shop.orders",
		keys: []string{"id"},
		columns: []column{
			{canonical: "customer_id", target: "customer_id", compared: true, gen: func(r randSource, _ int32) value { return integer(r, 50000) }},
			{canonical: "status", target: "status", compared: true, gen: func(r randSource, _ int32) value { return enum(r, statuses) }},
			{canonical: "total", target: "order_total", compared: true, as: "decimal", gen: func(r randSource, _ int32) value { return money(r, 5000) }},
			{canonical: "paid", target: "paid", compared: true, as: "bool", gen: func(r randSource, _ int32) value { return flag(r) }},
			{canonical: "created_at", target: "created_at", compared: true, as: "timestamp", precision: "ms", gen: func(r randSource, _ int32) value { return instant(r) }},
			{canonical: "note", target: "note", compared: true, gen: func(r randSource, _ int32) value { return text(r, 20, 120) }},
			{canonical: "updated_at", target: "updated_at", compared: false, gen: func(r randSource, _ int32) value { return instant(r) }},
		},
	},
	{
		name: "customers", source: "pg.public.customers", target: "mysql.shop.customers",
		keys: []string{"id"},
		columns: []column{
			{canonical: "name", target: "full_name", compared: true, gen: func(r randSource, _ int32) value { return text(r, 8, 24) }},
			{canonical: "email", target: "email", compared: true, gen: func(r randSource, k int32) value {
				s := fmt.Sprintf("user%d.%d@example.com", k, r.IntN(100))
				return value{logical: s, src: `"` + s + `"`, tgt: `"` + s + `"`}
			}},
			{canonical: "tier", target: "tier", compared: true, gen: func(r randSource, _ int32) value { return enum(r, tiers) }},
			{canonical: "balance", target: "balance", compared: true, as: "decimal", gen: func(r randSource, _ int32) value { return money(r, 100000) }},
			{canonical: "verified", target: "verified", compared: true, as: "bool", gen: func(r randSource, _ int32) value { return flag(r) }},
			{canonical: "updated_at", target: "updated_at", compared: false, gen: func(r randSource, _ int32) value { return instant(r) }},
		},
	},
	{
		name: "payments", source: "pg.public.payments", target: "mysql.shop.payments",
		keys: []string{"order_id", "seq"},
		columns: []column{
			{canonical: "amount", target: "amount", compared: true, as: "decimal", gen: func(r randSource, _ int32) value { return money(r, 5000) }},
			{canonical: "method", target: "method", compared: true, gen: func(r randSource, _ int32) value { return enum(r, methods) }},
			{canonical: "captured", target: "captured", compared: true, as: "bool", gen: func(r randSource, _ int32) value { return flag(r) }},
			{canonical: "captured_at", target: "captured_at", compared: true, as: "timestamp", precision: "ms", gen: func(r randSource, _ int32) value { return instant(r) }},
			{canonical: "reference", target: "reference", compared: true, gen: func(r randSource, _ int32) value { return text(r, 10, 40) }},
		},
	},
}

// keyValues are the key column values of key k.
func (t *table) keyValues(k int32) []int64 {
	if len(t.keys) == 2 {
		return []int64{int64(k / 16), int64(k % 16)}
	}
	return []int64{int64(k)}
}

func (t *table) keyObject(k int32) map[string]any {
	m := map[string]any{}
	for i, v := range t.keyValues(k) {
		m[t.keys[i]] = v
	}
	return m
}

// keyJSON appends the message key: the key columns as an object.
func (t *table) keyJSON(b []byte, k int32) []byte {
	b = append(b, '{')
	for i, v := range t.keyValues(k) {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, t.keys[i])
		b = append(b, ':')
		b = strconv.AppendInt(b, v, 10)
	}
	return append(b, '}')
}

// row is version v of key k; a corrupt row has one value changed.
func (t *table) row(seed uint64, k, v int32, corrupt bool) []value {
	r := valueRNG(seed, t.index(), k, v)
	vals := make([]value, len(t.columns))
	for i, c := range t.columns {
		vals[i] = c.gen(r, k)
	}
	if corrupt {
		// One compared column takes another version's value, or a marker
		// when that happens to be equal.
		i := r.IntN(len(t.columns))
		for !t.columns[i].compared {
			i = (i + 1) % len(t.columns)
		}
		alt := t.columns[i].gen(valueRNG(seed^0xc0, t.index(), k, v), k)
		if alt.logical == vals[i].logical {
			alt = value{logical: "corrupted", src: `"corrupted"`, tgt: `"corrupted"`}
		}
		vals[i] = alt
	}
	return vals
}

func (t *table) index() uint8 {
	for i := range tables {
		if tables[i].name == t.name {
			return uint8(i)
		}
	}
	panic("simulate: unknown table " + t.name)
}

// rowJSON appends a row image of key k as the side's connector writes it:
// the key columns first, then the others under the side's names.
func (t *table) rowJSON(b []byte, k int32, vals []value, source bool) []byte {
	kj := t.keyJSON(nil, k)
	b = append(b, kj[:len(kj)-1]...) // the key object without its '}'
	for i, c := range t.columns {
		b = append(b, ',')
		name := c.canonical
		v := vals[i].src
		if !source {
			name, v = c.target, vals[i].tgt
		}
		b = strconv.AppendQuote(b, name)
		b = append(b, ':')
		b = append(b, v...)
	}
	return append(b, '}')
}

// Config is the configuration file that reconciles a workload of these
// options: its tables, their renames, ignored columns and hints.
func Config(opts Options) (string, error) {
	if err := opts.defaults(); err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Reconciles a workload of `cdcrecon simulate` (seed %d).\n", opts.Seed)
	fmt.Fprintf(&b, "window: {size: %s, grace: %s}\n", opts.Window, opts.Grace)
	b.WriteString("tables:\n")
	for _, t := range tables[:opts.Tables] {
		fmt.Fprintf(&b, "  - name: %s\n    key: [%s]\n", t.name, strings.Join(t.keys, ", "))
		fmt.Fprintf(&b, "    source: {topic: %s}\n    target:\n      topic: %s\n", t.source, t.target)
		var renames, ignore, hints []string
		for _, c := range t.columns {
			if c.target != c.canonical {
				renames = append(renames, c.target+": "+c.canonical)
			}
			if !c.compared {
				ignore = append(ignore, c.canonical)
			}
			var h []string
			if c.as != "" {
				h = append(h, "as: "+c.as)
			}
			if c.precision != "" {
				h = append(h, "timestamp_precision: "+c.precision)
			}
			if len(h) > 0 {
				hints = append(hints, fmt.Sprintf("      %s: {%s}\n", c.canonical, strings.Join(h, ", ")))
			}
		}
		if len(renames) > 0 {
			fmt.Fprintf(&b, "      rename: {%s}\n", strings.Join(renames, ", "))
		}
		if len(ignore) > 0 {
			fmt.Fprintf(&b, "    ignore: [%s]\n", strings.Join(ignore, ", "))
		}
		if len(hints) > 0 {
			b.WriteString("    normalize:\n")
			b.WriteString(strings.Join(hints, ""))
		}
	}
	return b.String(), nil
}
