package canon

import (
	"encoding/binary"
	"slices"

	"github.com/zeebo/xxh3"
)

// Column is one named value of a Row: the same as an Object's Field, so
// a row encodes, decodes and displays as an object's fields do.
type Column = Field

// Row is a canonical row: its compared columns, sorted by canonical name.
type Row []Column

// Get returns the value of the named column and whether the row has it.
func (r Row) Get(name string) (Value, bool) {
	lo, hi := 0, len(r)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if r[m].Name < name {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(r) && r[lo].Name == name {
		return r[lo].Value, true
	}
	return Value{}, false
}

// Hasher computes digests with a reusable buffer. It is not safe for
// concurrent use.
//
// A value's digest is the 64-bit xxh3 of its encoding (AppendBinary). A
// row's digest is the xxh3 of, for each included column in name order,
// the uvarint length of the name, the name and the value's encoding: one
// pass over the row, whatever its width. Value digests of single columns
// serve field-level comparisons of rows kept only as digests.
type Hasher struct{ buf []byte }

// Value returns the digest of v.
func (h *Hasher) Value(v Value) uint64 {
	h.buf = AppendBinary(h.buf[:0], v)
	return xxh3.Hash(h.buf)
}

// Row returns the digest of r, leaving out the columns named in skip (a
// few names: each column is looked up in it).
func (h *Hasher) Row(r Row, skip []string) uint64 {
	b := h.buf[:0]
	for _, c := range r {
		if len(skip) > 0 && slices.Contains(skip, c.Name) {
			continue
		}
		b = appendString(b, c.Name)
		b = AppendBinary(b, c.Value)
	}
	h.buf = b
	return xxh3.Hash(b)
}

// AppendKey appends the encoding of a canonical key — its values in key
// column order — to b: a uvarint count, then each value's encoding.
func AppendKey(b []byte, key []Value) []byte {
	b = binary.AppendUvarint(b, uint64(len(key)))
	for _, v := range key {
		b = AppendBinary(b, v)
	}
	return b
}

// DecodeKey decodes a key written by AppendKey.
func DecodeKey(b []byte) ([]Value, error) {
	n, b, err := uvarint(b)
	if err != nil {
		return nil, err
	}
	if n > uint64(len(b)) {
		return nil, errTruncated
	}
	key := make([]Value, n)
	for i := range key {
		if key[i], b, err = DecodeBinary(b); err != nil {
			return nil, err
		}
	}
	if len(b) != 0 {
		return nil, errTrailing
	}
	return key, nil
}

// AppendRow appends the encoding of r to b: a uvarint column count, then per
// column the uvarint length of its name, the name and the value's encoding.
func AppendRow(b []byte, r Row) []byte { return appendFields(b, r) }

// DecodeRow decodes a row written by AppendRow.
func DecodeRow(b []byte) (Row, error) {
	r, b, err := decodeFields(b, 0)
	if err != nil {
		return nil, err
	}
	if len(b) != 0 {
		return nil, errTrailing
	}
	return r, nil
}
