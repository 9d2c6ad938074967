package debezium

import (
	"strings"
	"testing"
)

// checkAvroSchema checks the types the decoder reads off an .avsc: want
// maps dotted field paths to a Connect type or logical name.
func checkAvroSchema(t *testing.T, text string, want map[string]string) {
	t.Helper()
	root, err := parseAvroSchema(text)
	if err != nil {
		t.Fatalf("parsing: %v", err)
	}
	if len(want) == 0 {
		t.Fatal("expectation lists no types")
	}
	for path, w := range want {
		n := root
		for _, part := range strings.Split(path, ".") {
			n = n.field(part)
		}
		if n == nil {
			t.Errorf("%s: no such field", path)
			continue
		}
		got := typeName(n.typ)
		if n.name != "" && n.typ != tStruct || n.typ == tStruct && w != "struct" {
			got = n.name
		}
		if got != w {
			t.Errorf("%s = %s, want %s", path, got, w)
		}
	}
}

// CheckAvroSchema exposes checkAvroSchema to the external test package.
var CheckAvroSchema = checkAvroSchema

// SchemaCount reports how many JsonConverter schemas a decoder has parsed.
func SchemaCount(d *Decoder) int { return len(d.schemas) }
