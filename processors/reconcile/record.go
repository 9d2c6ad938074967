package reconcile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/cdcrecon/cdcrecon/processors/normalize"
)

// The changes topic between the ingest and reconcile stages carries two
// kinds of record, in a binary encoding of its own (it is internal: no
// other program reads it):
//
//	change:    0x01 'C' side kind time(varint) origin table key row digest(8, LE) unresolved identity(16)
//	watermark: 0x01 'W' side input time(varint)
//
// where origin is topic, partition (varint) and offset (varint); strings
// and byte strings are a uvarint length and the bytes. The leading 0x01 is
// the format version.

const recordVersion = 1

// Mark is a watermark: Input, a partition of Side's topics, has delivered
// every change with event time ≤ Time. Time math.MaxInt64 is its end.
type Mark struct {
	Side  normalize.Side
	Input string
	Time  int64
}

// End is the Time of a Mark at the end of an input.
const End = math.MaxInt64

// AppendChange appends c's changes-topic encoding to b, with the event's
// identity.
func AppendChange(b []byte, c *Change, identity [16]byte) []byte {
	b = append(b, recordVersion, 'C', byte(c.Side), byte(c.Kind))
	b = binary.AppendVarint(b, c.Time)
	b = appendBytes(b, []byte(c.Origin.Topic))
	b = binary.AppendVarint(b, int64(c.Origin.Partition))
	b = binary.AppendVarint(b, c.Origin.Offset)
	b = appendBytes(b, []byte(c.Table))
	b = appendBytes(b, c.Key)
	b = appendBytes(b, c.Row)
	b = binary.LittleEndian.AppendUint64(b, c.Digest)
	if c.Unresolved {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	return append(b, identity[:]...)
}

// AppendMark appends m's changes-topic encoding to b.
func AppendMark(b []byte, m Mark) []byte {
	b = append(b, recordVersion, 'W', byte(m.Side))
	b = appendBytes(b, []byte(m.Input))
	return binary.AppendVarint(b, m.Time)
}

func appendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// DecodeRecord decodes a changes-topic record: a change (with its
// identity) or a mark. The change's byte slices alias b.
func DecodeRecord(b []byte) (c *Change, identity [16]byte, m *Mark, err error) {
	r := reader{b: b}
	if v := r.byte(); v != recordVersion {
		return nil, identity, nil, fmt.Errorf("changes record: version %d, want %d", v, recordVersion)
	}
	switch r.byte() {
	case 'C':
		c = &Change{Side: normalize.Side(r.byte()), Kind: Kind(r.byte())}
		c.Time = r.varint()
		c.Origin.Topic = string(r.bytes())
		c.Origin.Partition = int32(r.varint())
		c.Origin.Offset = r.varint()
		c.Table = string(r.bytes())
		c.Key = r.bytes()
		c.Row = r.bytes()
		c.Digest = r.uint64()
		c.Unresolved = r.byte() == 1
		copy(identity[:], r.take(16))
		if c.Kind != Upsert {
			c.Row = nil
		}
	case 'W':
		m = &Mark{Side: normalize.Side(r.byte())}
		m.Input = string(r.bytes())
		m.Time = r.varint()
	default:
		r.fail()
	}
	if r.err == nil && r.i != len(b) {
		r.err = errors.New("trailing bytes")
	}
	if r.err != nil {
		return nil, identity, nil, fmt.Errorf("changes record: %w", r.err)
	}
	return c, identity, m, nil
}

type reader struct {
	b   []byte
	i   int
	err error
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = fmt.Errorf("malformed at byte %d", r.i)
	}
	r.i = len(r.b)
}

func (r *reader) take(n int) []byte {
	if n < 0 || r.i+n > len(r.b) {
		r.fail()
		return nil
	}
	s := r.b[r.i : r.i+n : r.i+n]
	r.i += n
	return s
}

func (r *reader) byte() byte {
	if s := r.take(1); s != nil {
		return s[0]
	}
	return 0
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b[r.i:])
	if n <= 0 {
		r.fail()
		return 0
	}
	r.i += n
	return v
}

func (r *reader) bytes() []byte {
	n, k := binary.Uvarint(r.b[r.i:])
	if k <= 0 || n > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	r.i += k
	return r.take(int(n))
}

func (r *reader) uint64() uint64 {
	if s := r.take(8); s != nil {
		return binary.LittleEndian.Uint64(s)
	}
	return 0
}
