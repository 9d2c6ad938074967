package kafka

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Record is one Kafka record of a batch message.
type Record struct {
	Offset    int64
	Timestamp time.Time
	// Key and Value are nil for null; they alias the message payload.
	Key     []byte
	Value   []byte
	Headers []kgo.RecordHeader
}

// Batch payload layout (all integers are varints, signed unless marked):
//
//	byte    'B', byte version (1)
//	uvarint record count
//	per record:
//	  offset, timestamp in Unix milliseconds,
//	  key length (-1 for null), key bytes,
//	  value length (-1 for null), value bytes,
//	  uvarint header count, per header:
//	    uvarint name length, name bytes, value length (-1 for null), value bytes
//
// The topic and partition are the message's MetaTopic and MetaPartition.
const (
	batchMagic   = 'B'
	batchVersion = 1
)

func appendBytes(b, v []byte) []byte {
	if v == nil {
		return binary.AppendVarint(b, -1)
	}
	b = binary.AppendVarint(b, int64(len(v)))
	return append(b, v...)
}

// encodeBatch appends the batch payload of rs to b.
func encodeBatch(b []byte, rs []*kgo.Record) []byte {
	b = append(b, batchMagic, batchVersion)
	b = binary.AppendUvarint(b, uint64(len(rs)))
	for _, r := range rs {
		b = binary.AppendVarint(b, r.Offset)
		b = binary.AppendVarint(b, r.Timestamp.UnixMilli())
		b = appendBytes(b, r.Key)
		b = appendBytes(b, r.Value)
		b = binary.AppendUvarint(b, uint64(len(r.Headers)))
		for _, h := range r.Headers {
			b = binary.AppendUvarint(b, uint64(len(h.Key)))
			b = append(b, h.Key...)
			b = appendBytes(b, h.Value)
		}
	}
	return b
}

func batchSize(rs []*kgo.Record) int {
	n := 2 + binary.MaxVarintLen64
	for _, r := range rs {
		n += 5*binary.MaxVarintLen64 + len(r.Key) + len(r.Value)
		for _, h := range r.Headers {
			n += 2*binary.MaxVarintLen64 + len(h.Key) + len(h.Value)
		}
	}
	return n
}

var errShortBatch = errors.New("truncated batch payload")

type batchReader struct {
	b   []byte
	err error
}

func (r *batchReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errShortBatch
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *batchReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errShortBatch
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *batchReader) take(n uint64) []byte {
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = errShortBatch
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *batchReader) bytes() []byte {
	n := r.varint()
	if n == -1 || r.err != nil {
		return nil
	}
	if n < -1 {
		r.err = fmt.Errorf("negative length %d in batch payload", n)
		return nil
	}
	return r.take(uint64(n))
}

// DecodeBatch decodes the payload of a batch-mode message. The records'
// slices alias payload.
func DecodeBatch(payload []byte) ([]Record, error) {
	if len(payload) < 2 || payload[0] != batchMagic {
		return nil, errors.New("decoding batch: not a batch payload")
	}
	if payload[1] != batchVersion {
		return nil, fmt.Errorf("decoding batch: unknown version %d", payload[1])
	}
	r := batchReader{b: payload[2:]}
	count := r.uvarint()
	// Every record takes at least 5 bytes; this bounds the allocation on
	// corrupt input.
	if count > uint64(len(r.b))/5+1 {
		return nil, fmt.Errorf("decoding batch: record count %d exceeds payload", count)
	}
	out := make([]Record, 0, count)
	for i := uint64(0); i < count && r.err == nil; i++ {
		rec := Record{Offset: r.varint()}
		rec.Timestamp = time.UnixMilli(r.varint())
		rec.Key = r.bytes()
		rec.Value = r.bytes()
		nh := r.uvarint()
		if nh > uint64(len(r.b)) {
			r.err = errShortBatch
		}
		for j := uint64(0); j < nh && r.err == nil; j++ {
			k := r.take(r.uvarint())
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: string(k), Value: r.bytes()})
		}
		out = append(out, rec)
	}
	if r.err != nil {
		return nil, fmt.Errorf("decoding batch: %w", r.err)
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("decoding batch: %d trailing bytes", len(r.b))
	}
	return out, nil
}
