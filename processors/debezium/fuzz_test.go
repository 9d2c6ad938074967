package debezium_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/cdcrecon/cdcrecon/processors/debezium"
)

// FuzzJSONDecoder feeds arbitrary keys and values to the JSON decoder: it
// never panics, and every error it returns is a *MalformedError.
func FuzzJSONDecoder(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(corpusDir, "*", "*.json"))
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add([]byte(`{"id":1}`), b)
		}
	}
	f.Add([]byte(nil), []byte(`{"schema":null,"payload":null}`))
	dec := debezium.NewDecoder(debezium.Config{MaxSchemas: 4})
	f.Fuzz(func(t *testing.T, key, value []byte) {
		if len(value) > 0 && value[0] == 0 {
			value = value[1:] // leave Avro to FuzzAvroDecoder
		}
		if len(key) > 0 && key[0] == 0 {
			key = key[1:]
		}
		_, err := dec.Decode(context.Background(), key, value)
		if err != nil && !debezium.IsMalformed(err) {
			t.Fatalf("error is not a MalformedError: %v", err)
		}
	})
}

// FuzzAvroDecoder feeds arbitrary Avro bodies, framed in the Confluent wire
// format with the corpus's PostgreSQL envelope schema, to the decoder.
func FuzzAvroDecoder(f *testing.F) {
	reg := srfake.New()
	f.Cleanup(reg.Close)
	avsc, err := os.ReadFile(filepath.Join(corpusDir, "postgresql", "rw-1.9.7-avro-value-schema-variable-scale-decimal.avsc"))
	if err != nil {
		f.Fatal(err)
	}
	id, _, err := reg.RegisterSchema("orders-value", sr.Schema{Schema: string(avsc), Type: sr.TypeAvro})
	if err != nil {
		f.Fatal(err)
	}
	client, err := sr.NewClient(sr.URLs(reg.URL()))
	if err != nil {
		f.Fatal(err)
	}
	codec, err := goavro.NewCodec(string(avsc))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range []string{"rw-1.9.7-avro-json-snapshot-read-key-value.json", "rw-1.9.7-avro-json-delete-key-only-before-key-value.json"} {
		b, _ := os.ReadFile(filepath.Join(corpusDir, "postgresql", name))
		native, _, err := codec.NativeFromTextual(valueOf(b))
		if err != nil {
			f.Fatal(err)
		}
		bin, _ := codec.BinaryFromNative(nil, native)
		f.Add(bin)
	}
	dec := debezium.NewDecoder(debezium.Config{Registry: debezium.NewRegistry(client)})
	header := binary.BigEndian.AppendUint32([]byte{0}, uint32(id))
	f.Fuzz(func(t *testing.T, body []byte) {
		msg := append(append([]byte(nil), header...), body...)
		_, err := dec.Decode(context.Background(), nil, msg)
		if err != nil && !debezium.IsMalformed(err) {
			t.Fatalf("error is not a MalformedError: %v", err)
		}
	})
}

// valueOf returns the "value" member of a {"key","value"} corpus file.
func valueOf(b []byte) []byte {
	var kv map[string]json.RawMessage
	if json.Unmarshal(b, &kv) != nil {
		return nil
	}
	return kv["value"]
}
