package canon

import (
	"math"
	"math/big"
	"strconv"
	"time"
)

// Kind is the type of a canonical value. The numeric values are part of the
// binary encoding (see encode.go) and never change.
type Kind uint8

// Kinds. Every temporal Debezium type becomes an Instant (dates, timestamps)
// or a Duration (times of day); every numeric type becomes a Number.
const (
	Null        Kind = 0
	Bool        Kind = 1
	Number      Kind = 2
	String      Kind = 3
	Bytes       Kind = 4
	Instant     Kind = 5
	Duration    Kind = 6
	JSON        Kind = 7
	Array       Kind = 8
	Object      Kind = 9
	Geometry    Kind = 10
	Unavailable Kind = 11
)

var kindNames = [...]string{"null", "bool", "number", "string", "bytes", "instant", "duration", "json", "array", "object", "geometry", "unavailable"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// UnavailablePlaceholder is the string Debezium writes for an unchanged
// TOASTed column that the connector could not read.
const UnavailablePlaceholder = "__debezium_unavailable_value"

// Value is one normalised column value. The zero Value is Null. Values are
// immutable; equal values have equal encodings (see AppendBinary).
//
// Field use by kind:
//   - Bool: i is 0 or 1.
//   - Number, one canonical form per value: an integer that fits an int64
//     is held in i with s empty (no allocation for the common case);
//     any other number has s holding its significant digits with a
//     leading '-' when negative (or "NaN", "+Inf", "-Inf") and i its
//     decimal exponent, the value being s × 10^i. Digits carry no leading
//     or trailing zeros, which makes 12.30 and 12.3000 one value.
//   - String, Bytes: s.
//   - JSON: s holds canonical JSON text (see CanonicalJSON).
//   - Instant: i seconds and n nanoseconds since the Unix epoch, UTC.
//   - Duration: i nanoseconds.
//   - Array: x.elems. Object: x.fields, sorted by name.
//   - Geometry: s holds WKB bytes, i the SRID (-1 when absent).
type Value struct {
	kind Kind
	n    int32
	i    int64
	s    string
	x    *composite // Array and Object only: keeps scalar Values small
}

type composite struct {
	elems  []Value
	fields []Field
}

// Field is a named value inside an Object.
type Field struct {
	Name  string
	Value Value
}

// Kind reports v's kind.
func (v Value) Kind() Kind { return v.kind }

// IsNull reports whether v is Null.
func (v Value) IsNull() bool { return v.kind == Null }

// Constructors.

// NullValue returns the Null value.
func NullValue() Value { return Value{} }

// BoolValue returns a Bool.
func BoolValue(b bool) Value {
	if b {
		return Value{kind: Bool, i: 1}
	}
	return Value{kind: Bool}
}

// StringValue returns a String.
func StringValue(s string) Value { return Value{kind: String, s: s} }

// BytesValue returns a Bytes value; b is copied.
func BytesValue(b []byte) Value { return Value{kind: Bytes, s: string(b)} }

// UnavailableValue returns the unchanged-TOAST placeholder.
func UnavailableValue() Value { return Value{kind: Unavailable} }

// InstantValue returns an Instant of t in UTC.
func InstantValue(t time.Time) Value {
	return Value{kind: Instant, i: t.Unix(), n: int32(t.Nanosecond())}
}

// InstantOf returns an Instant from seconds and nanoseconds since the epoch;
// nanos outside [0, 1e9) are carried into seconds.
func InstantOf(sec int64, nanos int64) Value {
	sec += nanos / 1e9
	nanos %= 1e9
	if nanos < 0 {
		nanos += 1e9
		sec--
	}
	return Value{kind: Instant, i: sec, n: int32(nanos)}
}

// DurationValue returns a Duration of d nanoseconds.
func DurationValue(d int64) Value { return Value{kind: Duration, i: d} }

// GeometryValue returns a Geometry from WKB bytes and an SRID (-1: none).
func GeometryValue(wkb []byte, srid int64) Value {
	return Value{kind: Geometry, s: string(wkb), i: srid}
}

// ArrayValue returns an Array holding elems (not copied).
func ArrayValue(elems []Value) Value { return Value{kind: Array, x: &composite{elems: elems}} }

// ObjectValue returns an Object of fields, which it sorts by name in place.
// Duplicate names keep the last value.
func ObjectValue(fields []Field) Value {
	sortFields(fields)
	out := fields[:0]
	for i, f := range fields {
		if i+1 < len(fields) && fields[i+1].Name == f.Name {
			continue
		}
		out = append(out, f)
	}
	return Value{kind: Object, x: &composite{fields: out}}
}

// IntValue returns the Number n.
func IntValue(n int64) Value { return Value{kind: Number, i: n} }

// FloatValue returns the Number closest to f with the fewest digits that
// read back as f at the given bit size (32 or 64): a FLOAT column's 1.1
// stays 1.1 rather than 1.100000023841858.
func FloatValue(f float64, bitSize int) Value {
	switch {
	case math.IsNaN(f):
		return Value{kind: Number, s: "NaN"}
	case math.IsInf(f, 1):
		return Value{kind: Number, s: "+Inf"}
	case math.IsInf(f, -1):
		return Value{kind: Number, s: "-Inf"}
	}
	var buf [40]byte
	v, _ := ParseNumber(strconv.AppendFloat(buf[:0], f, 'e', -1, bitSize))
	return v
}

// DecimalValue returns the Number unscaled × 10^-scale.
func DecimalValue(unscaled *big.Int, scale int32) Value {
	var buf [64]byte
	return numberFromDigits(unscaled.Append(buf[:0], 10), -int64(scale))
}

// DecimalFromBytes returns the Number held by Kafka Connect's Decimal
// encoding: a big-endian two's-complement unscaled integer and a scale.
func DecimalFromBytes(b []byte, scale int32) Value {
	if len(b) <= 8 {
		var n int64
		if len(b) > 0 && b[0]&0x80 != 0 {
			n = -1
		}
		for _, c := range b {
			n = n<<8 | int64(c)
		}
		if scale == 0 {
			return IntValue(n)
		}
		var buf [24]byte
		return numberFromDigits(strconv.AppendInt(buf[:0], n, 10), -int64(scale))
	}
	u := new(big.Int).SetBytes(b)
	if b[0]&0x80 != 0 {
		u.Sub(u, new(big.Int).Lsh(big.NewInt(1), uint(len(b)*8)))
	}
	return DecimalValue(u, scale)
}

// ParseNumber parses a decimal number in JSON syntax, also accepting a
// leading '+', leading zeros and surrounding spaces ("12.30", "-1e5",
// " 007 "), and the words NaN, Infinity, +Inf, -Inf.
func ParseNumber(b []byte) (Value, bool) {
	if n, ok := plainInt(b); ok {
		return IntValue(n), true
	}
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	switch string(b) {
	case "NaN":
		return Value{kind: Number, s: "NaN"}, true
	case "Infinity", "+Infinity", "Inf", "+Inf":
		return Value{kind: Number, s: "+Inf"}, true
	case "-Infinity", "-Inf":
		return Value{kind: Number, s: "-Inf"}, true
	}
	var digits [64]byte
	d := digits[:0]
	neg := false
	i := 0
	if i < len(b) && (b[i] == '-' || b[i] == '+') {
		neg = b[i] == '-'
		i++
	}
	var exp int64
	sawDigit, sawPoint := false, false
	for ; i < len(b); i++ {
		c := b[i]
		switch {
		case c >= '0' && c <= '9':
			sawDigit = true
			if len(d) == 0 && c == '0' {
				if sawPoint {
					exp--
				}
				continue
			}
			d = append(d, c)
			if sawPoint {
				exp--
			}
		case c == '.' && !sawPoint:
			sawPoint = true
		case c == 'e' || c == 'E':
			if !sawDigit {
				return Value{}, false
			}
			e, err := strconv.ParseInt(string(b[i+1:]), 10, 32)
			if err != nil {
				return Value{}, false
			}
			exp += e
			i = len(b)
		default:
			return Value{}, false
		}
	}
	if !sawDigit {
		return Value{}, false
	}
	if len(d) == 0 {
		return IntValue(0), true
	}
	if neg {
		d = append(d, 0)
		copy(d[1:], d)
		d[0] = '-'
	}
	return numberFromDigits(d, exp), true
}

// plainInt parses the common case of an integer fast: an optional '-' and
// 1 to 18 digits without a leading zero (or a lone 0); ok is false for any
// other text.
func plainInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	d := b
	if neg {
		d = b[1:]
	}
	if len(d) == 0 || len(d) > 18 || d[0] == '0' && len(d) > 1 {
		return 0, false
	}
	var n int64
	for _, c := range d {
		if c-'0' > 9 {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// numberFromDigits builds a Number from an optionally signed digit string
// and an exponent, dropping leading and trailing zeros.
func numberFromDigits(d []byte, exp int64) Value {
	neg := len(d) > 0 && d[0] == '-'
	if neg {
		d = d[1:]
	}
	for len(d) > 0 && d[0] == '0' {
		d = d[1:]
	}
	for len(d) > 0 && d[len(d)-1] == '0' {
		d = d[:len(d)-1]
		exp++
	}
	if len(d) == 0 {
		return IntValue(0)
	}
	if n, ok := smallInt(d, exp, neg); ok {
		return IntValue(n)
	}
	if neg {
		return Value{kind: Number, s: "-" + string(d), i: exp}
	}
	return Value{kind: Number, s: string(d), i: exp}
}

// smallInt returns digits × 10^exp as an int64 when it is an integer that
// fits one.
func smallInt(d []byte, exp int64, neg bool) (int64, bool) {
	if exp < 0 || int64(len(d))+exp > 19 {
		return 0, false
	}
	var u uint64 // at most 19 digits: below 10^19 < 2^64, no overflow
	for _, c := range d {
		u = u*10 + uint64(c-'0')
	}
	for ; exp > 0; exp-- {
		u *= 10
	}
	if neg {
		if u > 1<<63 {
			return 0, false
		}
		return int64(-u), true // two's complement: exact down to MinInt64
	}
	if u > math.MaxInt64 {
		return 0, false
	}
	return int64(u), true
}

// numberParts returns a Number's digits (with sign) and exponent, writing
// the digits of the integer form into buf.
func numberParts(v Value, buf []byte) ([]byte, int64) {
	if v.s != "" {
		return append(buf, v.s...), v.i
	}
	d := strconv.AppendInt(buf, v.i, 10)
	if v.i == 0 {
		return d, 0
	}
	var exp int64
	for d[len(d)-1] == '0' {
		d = d[:len(d)-1]
		exp++
	}
	return d, exp
}

// Bool returns v's boolean and whether v is a Bool.
func (v Value) Bool() (bool, bool) { return v.i == 1, v.kind == Bool }

// Str returns the text of a String, Bytes or JSON value.
func (v Value) Str() string { return v.s }

// Int returns v as an int64 when v is a Number holding an integer that fits.
func (v Value) Int() (int64, bool) { return v.i, v.kind == Number && v.s == "" }

// Float64 returns a Number as the nearest float64.
func (v Value) Float64() (float64, bool) {
	if v.kind != Number {
		return 0, false
	}
	switch v.s {
	case "":
		return float64(v.i), true
	case "NaN":
		return math.NaN(), true
	case "+Inf":
		return math.Inf(1), true
	case "-Inf":
		return math.Inf(-1), true
	}
	f, err := strconv.ParseFloat(v.s+"e"+strconv.FormatInt(v.i, 10), 64)
	return f, err == nil || f != 0
}

// Time returns an Instant as a time.Time in UTC.
func (v Value) Time() (time.Time, bool) {
	return time.Unix(v.i, int64(v.n)).UTC(), v.kind == Instant
}

// Nanos returns a Duration's nanoseconds.
func (v Value) Nanos() (int64, bool) { return v.i, v.kind == Duration }

// Elems returns an Array's elements; the caller must not modify them.
func (v Value) Elems() []Value {
	if v.x == nil {
		return nil
	}
	return v.x.elems
}

// Fields returns an Object's fields sorted by name; the caller must not
// modify them.
func (v Value) Fields() []Field {
	if v.x == nil {
		return nil
	}
	return v.x.fields
}

// SRID returns a Geometry's SRID (-1 when absent).
func (v Value) SRID() int64 { return v.i }

// Equal reports whether a and b are the same canonical value.
func Equal(a, b Value) bool {
	if a.kind != b.kind || a.i != b.i || a.n != b.n || a.s != b.s {
		return false
	}
	ae, be := a.Elems(), b.Elems()
	af, bf := a.Fields(), b.Fields()
	if len(ae) != len(be) || len(af) != len(bf) {
		return false
	}
	for i := range ae {
		if !Equal(ae[i], be[i]) {
			return false
		}
	}
	for i := range af {
		if af[i].Name != bf[i].Name || !Equal(af[i].Value, bf[i].Value) {
			return false
		}
	}
	return true
}

func sortFields(fs []Field) {
	// Insertion sort: objects are small and often already sorted; stable,
	// so that the last of duplicate names wins in ObjectValue.
	for i := 1; i < len(fs); i++ {
		for j := i; j > 0 && fs[j].Name < fs[j-1].Name; j-- {
			fs[j], fs[j-1] = fs[j-1], fs[j]
		}
	}
}
