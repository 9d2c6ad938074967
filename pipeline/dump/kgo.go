package dump

import (
	"github.com/twmb/franz-go/pkg/kgo"
)

// FromKafka converts a consumed record. The result aliases r's byte slices.
func FromKafka(r *kgo.Record) Record {
	rec := Record{
		Topic:         r.Topic,
		Partition:     r.Partition,
		Offset:        r.Offset,
		Timestamp:     r.Timestamp,
		LogAppendTime: r.Attrs.TimestampType() == 1,
		Key:           r.Key,
		Value:         r.Value,
	}
	for _, h := range r.Headers {
		rec.Headers = append(rec.Headers, Header{Key: h.Key, Value: h.Value})
	}
	return rec
}

// ToKafka converts rec into a record to produce to rec's topic and partition,
// keeping its key, value, headers and timestamp (a zero timestamp lets the
// client stamp the record). The offset is the broker's to assign.
func (rec Record) ToKafka() *kgo.Record {
	r := &kgo.Record{
		Topic:     rec.Topic,
		Partition: rec.Partition,
		Key:       rec.Key,
		Value:     rec.Value,
		Timestamp: rec.Timestamp,
	}
	for _, h := range rec.Headers {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
	}
	return r
}
