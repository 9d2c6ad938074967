package snapshot

import (
	"encoding/binary"
)

// Record encodings: a magic byte, a version, a kind, then the fields as
// varints (offsets may be -1) and byte strings as a uvarint length and
// the bytes.
const (
	magic   = 'S'
	version = 1
	kChunk  = 'c'
	kTrail  = 't'
)

// chunkHeader leads a chunk: its snapshot (seq and base), the offset of
// the trailer written before the snapshot began (-1: none), and its
// index. The entries follow: a count, then each key and value.
type chunkHeader struct {
	seq, base, prevAt, index int64
}

func (h chunkHeader) append(b []byte) []byte {
	b = append(b, magic, version, kChunk)
	for _, v := range []int64{h.seq, h.base, h.prevAt, h.index} {
		b = binary.AppendVarint(b, v)
	}
	return b
}

// readChunk decodes a chunk's header and returns its body: the entry
// count and entries.
func readChunk(v []byte) (chunkHeader, []byte, bool) {
	if len(v) < 3 || v[0] != magic || v[1] != version || v[2] != kChunk {
		return chunkHeader{}, nil, false
	}
	rest := v[3:]
	var f [4]int64
	for i := range f {
		x, n := binary.Varint(rest)
		if n <= 0 {
			return chunkHeader{}, nil, false
		}
		f[i], rest = x, rest[n:]
	}
	return chunkHeader{seq: f[0], base: f[1], prevAt: f[2], index: f[3]}, rest, true
}

// trailer completes a snapshot: its sequence number, the changes offset
// it reflects, the offset its chunks were taken at, the first chunk's
// offset on the state topic (-1: no chunks), the chunk count, the xxh3 of
// the chunks' bodies in order, the entry count, and the engine's own
// state.
type trailer struct {
	seq, offset, base, first, chunks int64
	sum                              uint64
	entries                          int64
	meta                             []byte
}

func (t *trailer) append(b []byte) []byte {
	b = append(b, magic, version, kTrail)
	for _, v := range []int64{t.seq, t.offset, t.base, t.first, t.chunks} {
		b = binary.AppendVarint(b, v)
	}
	b = binary.LittleEndian.AppendUint64(b, t.sum)
	b = binary.AppendVarint(b, t.entries)
	b = binary.AppendUvarint(b, uint64(len(t.meta)))
	return append(b, t.meta...)
}

func readTrailer(v []byte) (trailer, bool) {
	if len(v) < 3 || v[0] != magic || v[1] != version || v[2] != kTrail {
		return trailer{}, false
	}
	rest := v[3:]
	var f [5]int64
	for i := range f {
		x, n := binary.Varint(rest)
		if n <= 0 {
			return trailer{}, false
		}
		f[i], rest = x, rest[n:]
	}
	t := trailer{seq: f[0], offset: f[1], base: f[2], first: f[3], chunks: f[4]}
	if len(rest) < 8 {
		return trailer{}, false
	}
	t.sum, rest = binary.LittleEndian.Uint64(rest), rest[8:]
	x, n := binary.Varint(rest)
	if n <= 0 {
		return trailer{}, false
	}
	t.entries, rest = x, rest[n:]
	meta, rest, ok := readBytes(rest)
	if !ok || len(rest) != 0 || t.seq <= 0 || t.chunks < 0 {
		return trailer{}, false
	}
	t.meta = append([]byte(nil), meta...)
	return t, true
}
