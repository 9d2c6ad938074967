package canon

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The binary encoding of a Value is the input of every digest and the form
// in which rows are stored. It is stable: golden vectors in
// testdata/golden.txt pin it, and a change to it is a change of every
// digest ever published. Layout, after one byte holding the Kind:
//
//	Null, Unavailable    nothing
//	Bool                 one byte, 0 or 1
//	Number               zigzag varint exponent, uvarint length, digits
//	String, Bytes, JSON  uvarint length, bytes
//	Instant              zigzag varint seconds, uvarint nanoseconds
//	Duration             zigzag varint nanoseconds
//	Array                uvarint count, each element encoded
//	Object               uvarint count, then per field: uvarint length,
//	                     name, value encoded (fields sorted by name)
//	Geometry             zigzag varint SRID, uvarint length, WKB bytes
//
// Varints are those of encoding/binary.

// AppendBinary appends v's encoding to b.
func AppendBinary(b []byte, v Value) []byte {
	b = append(b, byte(v.kind))
	switch v.kind {
	case Bool:
		b = append(b, byte(v.i))
	case Number:
		var buf [24]byte
		d, exp := numberParts(v, buf[:0])
		b = binary.AppendVarint(b, exp)
		b = binary.AppendUvarint(b, uint64(len(d)))
		b = append(b, d...)
	case String, Bytes, JSON:
		b = appendString(b, v.s)
	case Instant:
		b = binary.AppendVarint(b, v.i)
		b = binary.AppendUvarint(b, uint64(v.n))
	case Duration:
		b = binary.AppendVarint(b, v.i)
	case Array:
		b = binary.AppendUvarint(b, uint64(len(v.Elems())))
		for _, e := range v.Elems() {
			b = AppendBinary(b, e)
		}
	case Object:
		b = appendFields(b, v.Fields())
	case Geometry:
		b = binary.AppendVarint(b, v.i)
		b = appendString(b, v.s)
	}
	return b
}

// appendFields encodes an Object's fields or a Row's columns: a uvarint
// count, then per field the uvarint length of its name, the name and the
// value's encoding.
func appendFields(b []byte, fs []Field) []byte {
	b = binary.AppendUvarint(b, uint64(len(fs)))
	for _, f := range fs {
		b = appendString(b, f.Name)
		b = AppendBinary(b, f.Value)
	}
	return b
}

// decodeFields decodes what appendFields wrote; names must be in strictly
// increasing order.
func decodeFields(b []byte, depth int) ([]Field, []byte, error) {
	n, b, err := uvarint(b)
	if err != nil {
		return nil, nil, err
	}
	if n > uint64(len(b))/2 { // a field takes at least two bytes
		return nil, nil, errTruncated
	}
	fields := make([]Field, n)
	for i := range fields {
		if fields[i].Name, b, err = str(b); err != nil {
			return nil, nil, err
		}
		if i > 0 && fields[i].Name <= fields[i-1].Name {
			return nil, nil, errOrder
		}
		if fields[i].Value, b, err = decodeBinary(b, depth); err != nil {
			return nil, nil, err
		}
	}
	return fields, b, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// errTruncated reports an encoding that ends early.
var (
	errTruncated = errors.New("truncated value")
	errTrailing  = errors.New("trailing bytes after value")
	errOrder     = errors.New("columns out of order")
)

// maxDepth bounds nesting so that hostile input cannot exhaust the stack.
const maxDepth = 64

// DecodeBinary decodes one value from the front of b and returns it with
// the rest of b. It validates what it reads: a value it returns re-encodes
// to the same bytes.
func DecodeBinary(b []byte) (Value, []byte, error) {
	return decodeBinary(b, 0)
}

func decodeBinary(b []byte, depth int) (Value, []byte, error) {
	if depth > maxDepth {
		return Value{}, nil, errors.New("value nested too deeply")
	}
	if len(b) == 0 {
		return Value{}, nil, errTruncated
	}
	v := Value{kind: Kind(b[0])}
	b = b[1:]
	var err error
	switch v.kind {
	case Null, Unavailable:
	case Bool:
		if len(b) == 0 || b[0] > 1 {
			return Value{}, nil, errors.New("bad bool")
		}
		v.i, b = int64(b[0]), b[1:]
	case Number:
		var exp int64
		var d string
		if exp, b, err = varint(b); err != nil {
			return Value{}, nil, err
		}
		if d, b, err = str(b); err != nil {
			return Value{}, nil, err
		}
		if !validDigits(d, exp) {
			return Value{}, nil, fmt.Errorf("bad number %q", d)
		}
		switch d {
		case "NaN", "+Inf", "-Inf":
			v.s = d
		default:
			v = numberFromDigits([]byte(d), exp)
		}
	case String, Bytes, JSON:
		if v.s, b, err = str(b); err != nil {
			return Value{}, nil, err
		}
	case Instant:
		if v.i, b, err = varint(b); err != nil {
			return Value{}, nil, err
		}
		var n uint64
		if n, b, err = uvarint(b); err != nil {
			return Value{}, nil, err
		}
		if n >= 1e9 {
			return Value{}, nil, errors.New("bad instant nanoseconds")
		}
		v.n = int32(n)
	case Duration:
		if v.i, b, err = varint(b); err != nil {
			return Value{}, nil, err
		}
	case Array:
		var n uint64
		if n, b, err = uvarint(b); err != nil {
			return Value{}, nil, err
		}
		if n > uint64(len(b)) { // every element takes at least one byte
			return Value{}, nil, errTruncated
		}
		elems := make([]Value, n)
		for i := range elems {
			if elems[i], b, err = decodeBinary(b, depth+1); err != nil {
				return Value{}, nil, err
			}
		}
		v.x = &composite{elems: elems}
	case Object:
		var fields []Field
		if fields, b, err = decodeFields(b, depth+1); err != nil {
			return Value{}, nil, err
		}
		v.x = &composite{fields: fields}
	case Geometry:
		if v.i, b, err = varint(b); err != nil {
			return Value{}, nil, err
		}
		if v.s, b, err = str(b); err != nil {
			return Value{}, nil, err
		}
	default:
		return Value{}, nil, fmt.Errorf("unknown kind %d", v.kind)
	}
	return v, b, nil
}

func validDigits(s string, exp int64) bool {
	switch s {
	case "0", "NaN", "+Inf", "-Inf":
		return exp == 0
	}
	d := s
	if d != "" && d[0] == '-' {
		d = d[1:]
	}
	if d == "" || d[0] == '0' || d[len(d)-1] == '0' {
		return false
	}
	for i := 0; i < len(d); i++ {
		if d[i] < '0' || d[i] > '9' {
			return false
		}
	}
	return true
}

func varint(b []byte) (int64, []byte, error) {
	n, k := binary.Varint(b)
	if k <= 0 {
		return 0, nil, errTruncated
	}
	if k != uvarintLen(zigzag(n)) {
		return 0, nil, errors.New("overlong varint")
	}
	return n, b[k:], nil
}

func uvarint(b []byte) (uint64, []byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return 0, nil, errTruncated
	}
	if k != uvarintLen(n) {
		return 0, nil, errors.New("overlong varint")
	}
	return n, b[k:], nil
}

func uvarintLen(n uint64) int {
	k := 1
	for ; n >= 0x80; n >>= 7 {
		k++
	}
	return k
}

func str(b []byte) (string, []byte, error) {
	n, b, err := uvarint(b)
	if err != nil {
		return "", nil, err
	}
	if n > uint64(len(b)) {
		return "", nil, errTruncated
	}
	return string(b[:n]), b[n:], nil
}

func zigzag(n int64) uint64 { return uint64(n<<1) ^ uint64(n>>63) }
