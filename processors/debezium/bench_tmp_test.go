package debezium

import (
	"context"
	"testing"
)

var benchMsg = []byte(`{"before":null,"after":{"id":100042,"customer_id":77123,"status":"shipped","total":"AeB4","currency":"EUR","created_at":1709287200123456,"updated_at":1709287299000000,"shipped_at":"2024-03-01T10:00:00.123456Z","paid":true,"weight":12.75,"note":"Leave the parcel at the side door, next to the blue gate, please.","street":"1428 Elm Street, Apartment 12B","city":"Springwood","postcode":"OH 44101","country":"US","email":"freddy.customer@example.org"},"source":{"version":"2.7.0.Final","connector":"postgresql","name":"shop","ts_ms":1709287200500,"snapshot":"false","db":"shop","sequence":"[\"24023119\",\"24023128\"]","schema":"public","table":"orders","txId":555,"lsn":24023128,"xmin":null},"op":"u","ts_ms":1709287200600,"transaction":null}`)

func BenchmarkTmpDecode(b *testing.B) {
	d := NewDecoder(Config{})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Decode(context.Background(), nil, benchMsg); err != nil { b.Fatal(err) }
	}
}
func BenchmarkTmpSkip(b *testing.B) {
	for b.Loop() { s := scanner{b: benchMsg}; s.skip(0); if s.err != nil { b.Fatal(s.err) } }
}
