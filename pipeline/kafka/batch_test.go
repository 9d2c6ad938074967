package kafka

import (
	"bytes"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestBatchRoundTrip(t *testing.T) {
	in := []*kgo.Record{
		{Offset: 10, Timestamp: time.UnixMilli(1700000000001), Key: []byte("k"), Value: []byte("v"),
			Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("x")}, {Key: "null", Value: nil}}},
		{Offset: 11, Timestamp: time.UnixMilli(1700000000002), Key: nil, Value: nil},
		{Offset: 13, Timestamp: time.UnixMilli(-5), Key: []byte{}, Value: bytes.Repeat([]byte{0xff}, 300)},
	}
	payload := encodeBatch(nil, in)
	if len(payload) > batchSize(in) {
		t.Fatalf("payload %d bytes exceeds the size estimate %d", len(payload), batchSize(in))
	}
	out, err := DecodeBatch(payload)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("got %d records", len(out))
	}
	for i, r := range in {
		o := out[i]
		if o.Offset != r.Offset || !o.Timestamp.Equal(r.Timestamp) || !bytes.Equal(o.Key, r.Key) ||
			(o.Key == nil) != (r.Key == nil) || !bytes.Equal(o.Value, r.Value) || (o.Value == nil) != (r.Value == nil) {
			t.Errorf("record %d: got %+v, want %+v", i, o, r)
		}
		if len(o.Headers) != len(r.Headers) {
			t.Fatalf("record %d: %d headers", i, len(o.Headers))
		}
		for j, h := range r.Headers {
			if o.Headers[j].Key != h.Key || !bytes.Equal(o.Headers[j].Value, h.Value) || (o.Headers[j].Value == nil) != (h.Value == nil) {
				t.Errorf("record %d header %d: %+v", i, j, o.Headers[j])
			}
		}
	}
	for cut := 0; cut < len(payload); cut++ {
		if _, err := DecodeBatch(payload[:cut]); err == nil {
			t.Fatalf("truncated payload of %d bytes decoded", cut)
		}
	}
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add(encodeBatch(nil, []*kgo.Record{{Offset: 1, Key: []byte("k"), Value: []byte("v"),
		Headers: []kgo.RecordHeader{{Key: "a", Value: []byte("b")}}}}))
	f.Add([]byte{'B', 1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, payload []byte) {
		recs, err := DecodeBatch(payload)
		if err != nil {
			return
		}
		// A payload that decodes re-encodes to the same bytes.
		in := make([]*kgo.Record, len(recs))
		for i, r := range recs {
			in[i] = &kgo.Record{Offset: r.Offset, Timestamp: r.Timestamp, Key: r.Key, Value: r.Value, Headers: r.Headers}
		}
		if again := encodeBatch(nil, in); !bytes.Equal(again, payload) {
			// Varints have a single shortest form, but a decoder accepts
			// padded ones; only compare when the input was canonical.
			if _, err := DecodeBatch(again); err != nil {
				t.Fatalf("re-encoded batch does not decode: %v", err)
			}
		}
	})
}
