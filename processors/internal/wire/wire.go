// Package wire reads and writes the binary encodings of cdcrecon's own
// records — the changes topic's and the reconciler's stored key state —
// without panicking on any input: a Reader records the first fault and
// yields zero values after it.
package wire

import (
	"encoding/binary"
	"fmt"
)

// AppendBytes appends s with its uvarint length.
func AppendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Reader reads an encoding from B; Err is its first fault.
type Reader struct {
	B   []byte
	I   int
	Err error
}

// Done reports whether everything was read without a fault.
func (r *Reader) Done() bool { return r.Err == nil && r.I == len(r.B) }

// Fail records a fault at the current byte.
func (r *Reader) Fail() {
	if r.Err == nil {
		r.Err = fmt.Errorf("malformed at byte %d", r.I)
	}
	r.I = len(r.B)
}

// Take returns the next n bytes, aliasing B.
func (r *Reader) Take(n int) []byte {
	if n < 0 || r.I+n > len(r.B) {
		r.Fail()
		return nil
	}
	s := r.B[r.I : r.I+n : r.I+n]
	r.I += n
	return s
}

// Byte reads one byte.
func (r *Reader) Byte() byte {
	if s := r.Take(1); s != nil {
		return s[0]
	}
	return 0
}

// Varint reads a signed varint.
func (r *Reader) Varint() int64 {
	v, n := binary.Varint(r.B[r.I:])
	if n <= 0 {
		r.Fail()
		return 0
	}
	r.I += n
	return v
}

// Bytes reads a byte string written by AppendBytes, aliasing B.
func (r *Reader) Bytes() []byte {
	n, k := binary.Uvarint(r.B[r.I:])
	if k <= 0 || n > uint64(len(r.B)) {
		r.Fail()
		return nil
	}
	r.I += k
	return r.Take(int(n))
}

// Uint64 reads 8 bytes, little-endian.
func (r *Reader) Uint64() uint64 {
	if s := r.Take(8); s != nil {
		return binary.LittleEndian.Uint64(s)
	}
	return 0
}

// Uvarint reads an unsigned varint.
func (r *Reader) Uvarint() uint64 {
	v, n := binary.Uvarint(r.B[r.I:])
	if n <= 0 {
		r.Fail()
		return 0
	}
	r.I += n
	return v
}
