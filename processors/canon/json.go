package canon

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/valyala/fastjson"
)

// AppendJSON appends v's display form — what drift records and the
// command line show — as JSON:
//
//   - Null, Bool: null, true, false.
//   - Number: a JSON number in plain notation (12.3, -0.005), or in
//     exponent notation beyond 21 digits; NaN and ±Inf as strings.
//   - String: a JSON string. Bytes: base64 (standard, padded) string.
//   - Instant: RFC 3339 string in UTC with as many fraction digits as
//     needed ("2024-03-01T10:00:00.5Z").
//   - Duration: "[-]HH:MM:SS[.fraction]"; hours may exceed 23.
//   - JSON: the canonical JSON text itself.
//   - Array, Object: JSON arrays and objects of display forms.
//   - Geometry: {"srid": n, "wkb": base64} (srid null when absent).
//   - Unavailable: the string "__debezium_unavailable_value".
func AppendJSON(b []byte, v Value) []byte {
	switch v.kind {
	case Null:
		return append(b, "null"...)
	case Bool:
		if v.i == 1 {
			return append(b, "true"...)
		}
		return append(b, "false"...)
	case Number:
		return appendNumberJSON(b, v)
	case String:
		return appendJSONString(b, v.s)
	case Bytes:
		return appendBase64(b, v.s)
	case Instant:
		b = append(b, '"')
		b = time.Unix(v.i, int64(v.n)).UTC().AppendFormat(b, time.RFC3339Nano)
		return append(b, '"')
	case Duration:
		return appendDuration(b, v.i)
	case JSON:
		return append(b, v.s...)
	case Array:
		b = append(b, '[')
		for i, e := range v.Elems() {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendJSON(b, e)
		}
		return append(b, ']')
	case Object:
		return appendFieldsJSON(b, v.Fields())
	case Geometry:
		b = append(b, `{"srid":`...)
		if v.i < 0 {
			b = append(b, "null"...)
		} else {
			b = strconv.AppendInt(b, v.i, 10)
		}
		b = append(b, `,"wkb":`...)
		b = appendBase64(b, v.s)
		return append(b, '}')
	case Unavailable:
		return appendJSONString(b, UnavailablePlaceholder)
	}
	return append(b, "null"...)
}

// AppendRowJSON appends r as a JSON object of display forms.
func AppendRowJSON(b []byte, r Row) []byte { return appendFieldsJSON(b, r) }

func appendFieldsJSON(b []byte, fs []Field) []byte {
	b = append(b, '{')
	for i, f := range fs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, f.Name)
		b = append(b, ':')
		b = AppendJSON(b, f.Value)
	}
	return append(b, '}')
}

func appendBase64(b []byte, s string) []byte {
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, []byte(s))
	return append(b, '"')
}

func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // cannot fail for a string
	return append(b, q...)
}

// appendNumberJSON writes digits × 10^exp in plain notation when that takes
// at most 21 digits, else as d.ddde±x.
func appendNumberJSON(b []byte, v Value) []byte {
	switch v.s {
	case "NaN", "+Inf", "-Inf":
		return appendJSONString(b, v.s)
	case "":
		return strconv.AppendInt(b, v.i, 10)
	}
	d := v.s
	if d[0] == '-' {
		b = append(b, '-')
		d = d[1:]
	}
	exp := v.i
	switch {
	case exp >= 0 && int64(len(d))+exp <= 21:
		b = append(b, d...)
		for ; exp > 0; exp-- {
			b = append(b, '0')
		}
	case exp < 0 && -exp < int64(len(d)):
		p := len(d) + int(exp)
		b = append(b, d[:p]...)
		b = append(b, '.')
		b = append(b, d[p:]...)
	case exp < 0 && -exp-int64(len(d)) <= 6:
		b = append(b, "0."...)
		for z := -exp - int64(len(d)); z > 0; z-- {
			b = append(b, '0')
		}
		b = append(b, d...)
	default:
		b = append(b, d[0])
		if len(d) > 1 {
			b = append(b, '.')
			b = append(b, d[1:]...)
		}
		b = append(b, 'e')
		e := exp + int64(len(d)) - 1
		if e >= 0 {
			b = append(b, '+')
		}
		b = strconv.AppendInt(b, e, 10)
	}
	return b
}

func appendDuration(b []byte, ns int64) []byte {
	b = append(b, '"')
	u := uint64(ns)
	if ns < 0 {
		b = append(b, '-')
		u = uint64(-ns)
	}
	sec := u / 1e9
	frac := u % 1e9
	h, m, s := sec/3600, sec/60%60, sec%60
	if h < 10 {
		b = append(b, '0')
	}
	b = strconv.AppendUint(b, h, 10)
	b = append(b, ':', byte('0'+m/10), byte('0'+m%10), ':', byte('0'+s/10), byte('0'+s%10))
	if frac != 0 {
		var f [9]byte
		for i := 8; i >= 0; i-- {
			f[i] = byte('0' + frac%10)
			frac /= 10
		}
		n := 9
		for n > 0 && f[n-1] == '0' {
			n--
		}
		b = append(b, '.')
		b = append(b, f[:n]...)
	}
	return append(b, '"')
}

// ErrInvalidJSON reports text that is not a JSON document.
var ErrInvalidJSON = errors.New("invalid JSON")

// JSONValue returns the JSON value of text in canonical form: objects with
// keys sorted (the last of duplicate keys wins), numbers in the canonical
// number form (1.50 and 1.5e0 are both 1.5), strings re-escaped minimally,
// no insignificant whitespace. It is safe for concurrent use.
func JSONValue(text string) (Value, error) {
	p := jsonParsers.Get()
	defer jsonParsers.Put(p)
	v, err := p.Parse(text)
	if err != nil {
		return Value{}, ErrInvalidJSON
	}
	b, err := appendCanonicalJSON(nil, v, 0)
	if err != nil {
		return Value{}, err
	}
	return Value{kind: JSON, s: string(b)}, nil
}

var jsonParsers fastjson.ParserPool

func appendCanonicalJSON(b []byte, v *fastjson.Value, depth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, errors.New("JSON nested too deeply")
	}
	switch v.Type() {
	case fastjson.TypeNull:
		return append(b, "null"...), nil
	case fastjson.TypeFalse:
		return append(b, "false"...), nil
	case fastjson.TypeTrue:
		return append(b, "true"...), nil
	case fastjson.TypeNumber:
		var tok [64]byte
		n, ok := ParseNumber(v.MarshalTo(tok[:0]))
		if !ok {
			return nil, ErrInvalidJSON
		}
		return appendNumberJSON(b, n), nil
	case fastjson.TypeString:
		s, _ := v.StringBytes()
		return appendJSONString(b, string(s)), nil
	case fastjson.TypeArray:
		arr, _ := v.Array()
		b = append(b, '[')
		for i, e := range arr {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendCanonicalJSON(b, e, depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	}
	type kv struct {
		k string
		v *fastjson.Value
	}
	o, _ := v.Object()
	kvs := make([]kv, 0, o.Len())
	o.Visit(func(k []byte, e *fastjson.Value) { kvs = append(kvs, kv{string(k), e}) })
	for i := 1; i < len(kvs); i++ { // stable insertion sort
		for j := i; j > 0 && kvs[j].k < kvs[j-1].k; j-- {
			kvs[j], kvs[j-1] = kvs[j-1], kvs[j]
		}
	}
	b = append(b, '{')
	first := true
	for i, e := range kvs {
		if i+1 < len(kvs) && kvs[i+1].k == e.k {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendJSONString(b, e.k)
		b = append(b, ':')
		var err error
		if b, err = appendCanonicalJSON(b, e.v, depth+1); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}
