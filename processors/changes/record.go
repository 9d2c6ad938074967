package changes

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cdcrecon/cdcrecon/processors/internal/wire"
	"github.com/cdcrecon/cdcrecon/processors/normalize"
)

// Records carry a change or a mark, in a binary encoding of their own
// (no other program reads the topic):
//
//	change:    0x02 'C' side kind time(varint) origin table key row digest(8, LE) flags
//	watermark: 0x02 'W' side input time(varint)
//
// where origin is topic, partition (varint) and offset (varint), flags
// has bit 0 for Unresolved and bit 1 for Reread; strings
// and byte strings are a uvarint length and the bytes. The leading byte
// is the format version. Version 1 ended a change with its event's
// 16-byte dedupe identity, which nothing read; it is still decoded, the
// identity skipped, so a topic written before the upgrade stays readable.
// testdata/golden holds the encodings of both versions.
const version = 2

// Bits of a change's last byte, its flags.
const (
	flagUnresolved = 1 << iota
	flagReread
)

// AppendChange appends c's encoding to b.
func AppendChange(b []byte, c *Change) []byte {
	b = append(b, version, 'C', byte(c.Side), byte(c.Kind))
	b = binary.AppendVarint(b, c.Time)
	b = wire.AppendBytes(b, []byte(c.Origin.Topic))
	b = binary.AppendVarint(b, int64(c.Origin.Partition))
	b = binary.AppendVarint(b, c.Origin.Offset)
	b = wire.AppendBytes(b, []byte(c.Table))
	b = wire.AppendBytes(b, c.Key)
	b = wire.AppendBytes(b, c.Row)
	b = binary.LittleEndian.AppendUint64(b, c.Digest)
	var flags byte
	if c.Unresolved {
		flags |= flagUnresolved
	}
	if c.Reread {
		flags |= flagReread
	}
	return append(b, flags)
}

// AppendMark appends m's encoding to b.
func AppendMark(b []byte, m Mark) []byte {
	b = append(b, version, 'W', byte(m.Side))
	b = wire.AppendBytes(b, []byte(m.Input))
	return binary.AppendVarint(b, m.Time)
}

// Decode decodes a record: a change or a mark. The change's byte slices
// alias b.
func Decode(b []byte) (c *Change, m *Mark, err error) {
	r := wire.Reader{B: b}
	v := r.Byte()
	if v != 1 && v != version {
		return nil, nil, fmt.Errorf("changes record: version %d, want %d", v, version)
	}
	switch r.Byte() {
	case 'C':
		c = &Change{Side: normalize.Side(r.Byte()), Kind: Effect(r.Byte())}
		c.Time = r.Varint()
		c.Origin.Topic = string(r.Bytes())
		c.Origin.Partition = int32(r.Varint())
		c.Origin.Offset = r.Varint()
		c.Table = string(r.Bytes())
		c.Key = r.Bytes()
		c.Row = r.Bytes()
		c.Digest = r.Uint64()
		flags := r.Byte()
		c.Unresolved, c.Reread = flags&flagUnresolved != 0, flags&flagReread != 0
		if v == 1 {
			r.Take(16) // the identity
		}
		if c.Kind != Upsert {
			c.Row = nil
		}
	case 'W':
		m = &Mark{Side: normalize.Side(r.Byte())}
		m.Input = string(r.Bytes())
		m.Time = r.Varint()
	default:
		r.Fail()
	}
	if r.Err == nil && r.I != len(b) {
		r.Err = errors.New("trailing bytes")
	}
	if r.Err != nil {
		return nil, nil, fmt.Errorf("changes record: %w", r.Err)
	}
	return c, m, nil
}
