package schemas_test

import (
	"runtime"
	"testing"

	"github.com/cdcrecon/cdcrecon/schemas"
)

// FuzzDecode feeds arbitrary bytes to the decoders, which tail --decode
// runs on whatever a topic holds: an error, never a panic, and whatever
// decodes encodes again.
func FuzzDecode(f *testing.F) {
	for _, r := range goldenCases {
		b, err := schemas.AppendSingleObject(nil, schemas.Latest(r.SchemaName()), r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xc3, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, s, err := schemas.DecodeSingleObject(b)
		if err != nil {
			return
		}
		if _, err := schemas.AppendBinary(nil, s, r); err != nil {
			t.Errorf("decoded %#v but cannot encode it again: %v", r, err)
		}
	})
}

// TestHostileArrayCountAllocatesLittle: a record whose array block claims
// billions of items (the input FuzzDecode found) is refused without
// allocating for them.
func TestHostileArrayCountAllocatesLittle(t *testing.T) {
	b := []byte("\xc3\x01o\xf2Y\xe4\x9d|\xca4\x14d-5f2c9a01\forders\x02\x04id\x02\f102042 0a1b2c3d4e5f6071\x00\x00\x00\x00\x02\xce\xc8\xce\xce\x04\fsid\x02\f1000ship111111111111111\ntotal\x02\b12.3 2222222222222222\x00\x00\xf6զ\x97\xbfc\x00\x00")
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, _, err := schemas.DecodeSingleObject(b); err == nil {
		t.Fatal("decoded a record claiming billions of array items")
	}
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<20 {
		t.Errorf("decoding it allocated %d MiB", n>>20)
	}
}
