package schemas_test

import (
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
