package debezium_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/linkedin/goavro/v2"

	"github.com/cdcrecon/cdcrecon/processors/canon"
	"github.com/cdcrecon/cdcrecon/processors/debezium"
)

// FuzzJSONDecoder feeds arbitrary keys and values to the JSON decoder: it
// never panics, every error it returns is a *MalformedError, it accepts no
// message that encoding/json rejects, and the strings and numbers of an
// unwrapped row are those encoding/json reads. A second decoder reads each
// message with DecodeProjected, which reuses its memory from message to
// message: it must agree with Decode on the error, the event and every
// column of the images.
func FuzzJSONDecoder(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(corpusDir, "*", "*.json"))
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add([]byte(`{"id":1}`), b)
		}
	}
	f.Add([]byte(nil), []byte(`{"schema":null,"payload":null}`))
	f.Add([]byte(nil), []byte(`{"a":"x\u00e9\ud83d\ude00\n","b":-1.5e3,"__op":"c","c":"\ud800"}`))
	dec := debezium.NewDecoder(debezium.Config{MaxSchemas: 4})
	pdec := debezium.NewDecoder(debezium.Config{MaxSchemas: 4})
	f.Fuzz(func(t *testing.T, key, value []byte) {
		if len(value) > 0 && value[0] == 0 {
			value = value[1:] // leave Avro to FuzzAvroDecoder
		}
		if len(key) > 0 && key[0] == 0 {
			key = key[1:]
		}
		ev, err := dec.Decode(context.Background(), key, value)
		checkProjected(t, pdec, key, value, ev, err)
		if err != nil {
			if !debezium.IsMalformed(err) {
				t.Fatalf("error is not a MalformedError: %v", err)
			}
			return
		}
		if strings.TrimSpace(string(value)) != "" && !json.Valid(value) {
			t.Fatalf("accepted invalid JSON %q", value)
		}
		if len(strings.TrimSpace(string(key))) > 0 && !json.Valid(key) {
			t.Fatalf("accepted invalid JSON key %q", key)
		}
		if !ev.Unwrapped || ev.After == nil {
			return
		}
		var ref map[string]any
		d := json.NewDecoder(strings.NewReader(string(value)))
		d.UseNumber()
		if d.Decode(&ref) != nil {
			return
		}
		last := map[string]canon.Value{} // duplicate names: the last wins, as in encoding/json
		for _, col := range ev.After {
			last[col.Name] = col.Value
		}
		for name, v := range last {
			col := canon.Column{Name: name, Value: v}
			switch want := ref[col.Name].(type) {
			case string:
				// encoding/json turns invalid UTF-8 into U+FFFD; the decoder
				// keeps bytes as they are, so only valid text compares.
				if col.Value.Kind() == canon.String && utf8.ValidString(col.Value.Str()) && col.Value.Str() != want {
					t.Fatalf("column %q = %q, encoding/json reads %q", col.Name, col.Value.Str(), want)
				}
			case json.Number:
				n, ok := canon.ParseNumber([]byte(want))
				if !ok || !canon.Equal(n, col.Value) {
					t.Fatalf("column %q = %s, encoding/json reads %s", col.Name, canon.AppendJSON(nil, col.Value), want)
				}
			}
		}
	})
}

// columns records what a Projector receives, as text.
type columns []string

func (c *columns) Column(img debezium.Image, name []byte) int {
	*c = append(*c, fmt.Sprintf("%d %q", img, name))
	return len(*c) - 1
}

func (c *columns) Value(img debezium.Image, h int, v *canon.Value) {
	(*c)[h] += " " + string(canon.AppendJSON(nil, *v)) + " " + v.Kind().String()
}

func (c *columns) Reset() { *c = (*c)[:0] }

// checkProjected decodes a message with DecodeProjected and requires what
// Decode gave (ev, err): the same error, the same event but its images, and
// the same columns for the projector as Project hands from ev.
func checkProjected(t *testing.T, pdec *debezium.Decoder, key, value []byte, ev debezium.Event, err error) {
	t.Helper()
	var got, want columns
	pev, perr := pdec.DecodeProjected(context.Background(), key, value, &got)
	if (err == nil) != (perr == nil) || err != nil && err.Error() != perr.Error() {
		t.Fatalf("DecodeProjected error %v, Decode error %v", perr, err)
	}
	if err != nil {
		return
	}
	debezium.Project(&want, &ev)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("projected columns\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	ev.Before, ev.After = nil, nil
	ev.HasBefore, ev.HasAfter = pev.HasBefore, pev.HasAfter
	if g, w := fmt.Sprintf("%+v", pev), fmt.Sprintf("%+v", ev); g != w {
		t.Fatalf("projected event %s, want %s", g, w)
	}
}

// FuzzAvroDecoder feeds arbitrary Avro bodies, framed in the Confluent wire
// format with the corpus's PostgreSQL envelope schema, to the decoder.
func FuzzAvroDecoder(f *testing.F) {
	reg := &memRegistry{}
	avsc, err := os.ReadFile(filepath.Join(corpusDir, "postgresql", "rw-1.9.7-avro-value-schema-variable-scale-decimal.avsc"))
	if err != nil {
		f.Fatal(err)
	}
	id := reg.Register(string(avsc))
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
	dec := debezium.NewDecoder(debezium.Config{Registry: debezium.NewSchemaCache(reg)})
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

// FuzzTimestamp checks the fast ZonedTimestamp parser against time.Parse.
func FuzzTimestamp(f *testing.F) {
	for _, s := range []string{"2024-03-01T10:00:00.123456Z", "2000-02-29T23:59:59Z", "1969-12-31T23:59:59.999999999Z", "0001-01-01T00:00:00Z", "2023-02-29T00:00:00Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := debezium.ParseTimestamp(s)
		want, werr := time.Parse(time.RFC3339Nano, s)
		if werr == nil && len(s) >= 20 && s[len(s)-1] == 'Z' && strings.IndexByte(s, ' ') < 0 {
			if err != nil {
				t.Fatalf("%q: %v, time.Parse reads %v", s, err, want)
			}
			if gt, _ := got.Time(); !gt.Equal(want) {
				t.Fatalf("%q: %v, time.Parse reads %v", s, gt, want)
			}
		}
	})
}
