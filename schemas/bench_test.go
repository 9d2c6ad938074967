package schemas_test

import (
	"testing"

	"github.com/cdcrecon/cdcrecon/schemas"
)

// BenchmarkDrift measures one drift record (the golden value_mismatch
// case) through single-object encoding and back, the per-record cost on
// the output topics.
func BenchmarkDrift(b *testing.B) {
	rec := goldenCases["drift.v2.resolved"]
	s := schemas.Latest(schemas.DriftName)
	enc, err := schemas.AppendSingleObject(nil, s, rec)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			if buf, err = schemas.AppendSingleObject(buf[:0], s, rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := schemas.DecodeSingleObject(enc); err != nil {
				b.Fatal(err)
			}
		}
	})
}
