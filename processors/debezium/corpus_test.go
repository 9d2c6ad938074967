package debezium_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"

	"github.com/cdcrecon/cdcrecon/processors/canon"
	"github.com/cdcrecon/cdcrecon/processors/debezium"
)

// The corpus test walks every file of test/corpus/debezium and checks it
// against an expectation in testdata/corpus/<connector>.json, written by
// reading the sample (see that directory's README). A file without an
// expectation fails the test, so a new sample is covered as soon as it is
// added.

const corpusDir = "../../test/corpus/debezium"

// expectation is what one corpus file must decode to.
type expectation struct {
	// Role: "message" (default), "key" (a key-only file) or "avro_schema".
	Role string `json:"role"`
	// Avro names the .avsc files, in the same directory, of an Avro
	// JSON-encoded sample; the test encodes it in the Confluent wire format.
	Avro *struct{ Key, Value string } `json:"avro"`

	Kind      string          `json:"kind"`
	Op        string          `json:"op"`
	Key       json.RawMessage `json:"key"`
	Before    json.RawMessage `json:"before"`
	After     json.RawMessage `json:"after"`
	Time      int64           `json:"time"`
	Connector string          `json:"connector"`
	Table     string          `json:"table"`
	Snapshot  bool            `json:"snapshot"`
	Position  [][2]string     `json:"position"`
	Unwrapped bool            `json:"unwrapped"`
	Tx        []string        `json:"tx"`

	// Types maps field paths of an .avsc to their expected type or logical
	// name.
	Types map[string]string `json:"types"`
}

func loadExpectations(t *testing.T) map[string]expectation {
	t.Helper()
	all := map[string]expectation{}
	files, err := filepath.Glob("testdata/corpus/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no expectation files: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]expectation
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		conn := strings.TrimSuffix(filepath.Base(f), ".json")
		for name, e := range m {
			all[conn+"/"+name] = e
		}
	}
	return all
}

func corpusFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(corpusDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || filepath.Base(p) == "PROVENANCE.md" {
			return nil
		}
		rel, _ := filepath.Rel(corpusDir, p)
		files = append(files, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestCorpus(t *testing.T) {
	exp := loadExpectations(t)
	files := corpusFiles(t)
	if len(files) < 90 {
		t.Fatalf("corpus has %d files, want at least 90", len(files))
	}
	reg := &memRegistry{}
	schemas := debezium.NewSchemaCache(reg)
	for _, f := range files {
		e, ok := exp[f]
		if !ok {
			t.Errorf("%s: no expectation in testdata/corpus/%s.json", f, strings.Split(f, "/")[0])
			continue
		}
		delete(exp, f)
		t.Run(f, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(corpusDir, f))
			if err != nil {
				t.Fatal(err)
			}
			dec := debezium.NewDecoder(debezium.Config{Registry: schemas})
			switch e.Role {
			case "avro_schema":
				debezium.CheckAvroSchema(t, string(b), e.Types)
			case "key":
				row, err := dec.DecodeKey(context.Background(), b)
				if err != nil {
					t.Fatalf("decoding key: %v", err)
				}
				checkRow(t, "key", row, e.Key)
			case "", "message":
				key, value := messageOf(t, f, b, e, reg)
				ev, err := dec.Decode(context.Background(), key, value)
				if err != nil {
					t.Fatalf("decoding: %v", err)
				}
				checkEvent(t, ev, e)
			default:
				t.Fatalf("unknown role %q", e.Role)
			}
		})
	}
	for f := range exp {
		t.Errorf("expectation for %s, which is not in the corpus", f)
	}
}

// messageOf turns a corpus file into the key and value bytes a consumer
// would have read from Kafka.
func messageOf(t *testing.T, name string, b []byte, e expectation, reg *memRegistry) (key, value []byte) {
	t.Helper()
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, b // not an object: pass it as it is
	}
	if e.Avro != nil {
		dir := filepath.Join(corpusDir, filepath.Dir(name))
		return avroWire(t, reg, filepath.Join(dir, e.Avro.Key), top["key"]),
			avroWire(t, reg, filepath.Join(dir, e.Avro.Value), top["value"])
	}
	if _, ok := top["sourceOffset"]; ok { // a SourceRecord: what JsonConverter writes
		if !isNull(top["key"]) || !isNull(top["keySchema"]) {
			key = envelope(top["keySchema"], top["key"])
		}
		return key, envelope(top["valueSchema"], top["value"])
	}
	if len(top) == 2 && top["key"] != nil && top["value"] != nil {
		if !isNull(top["key"]) {
			key = top["key"]
		}
		if !isNull(top["value"]) {
			value = top["value"]
		}
		return key, value
	}
	return nil, b
}

func isNull(r json.RawMessage) bool { return r == nil || string(r) == "null" }

func envelope(schema, payload json.RawMessage) []byte {
	if schema == nil {
		schema = json.RawMessage("null")
	}
	if payload == nil {
		payload = json.RawMessage("null")
	}
	return []byte(`{"schema":` + string(schema) + `,"payload":` + string(payload) + `}`)
}

// avroWire encodes an Avro JSON-encoded sample with its .avsc in the
// Confluent wire format, registering the schema under a fixed id.
func avroWire(t *testing.T, reg *memRegistry, avsc string, text json.RawMessage) []byte {
	t.Helper()
	if isNull(text) {
		return nil
	}
	schema, err := os.ReadFile(avsc)
	if err != nil {
		t.Fatal(err)
	}
	codec, err := goavro.NewCodec(string(schema))
	if err != nil {
		t.Fatalf("%s: %v", avsc, err)
	}
	native, _, err := codec.NativeFromTextual(text)
	if err != nil {
		t.Fatalf("reading Avro JSON with %s: %v", avsc, err)
	}
	bin, err := codec.BinaryFromNative(nil, native)
	if err != nil {
		t.Fatal(err)
	}
	id := reg.Register(string(schema))
	out := []byte{0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(out[1:], uint32(id))
	return append(out, bin...)
}

func checkEvent(t *testing.T, ev debezium.Event, e expectation) {
	t.Helper()
	if got := ev.Kind.String(); got != e.Kind {
		t.Errorf("kind = %s, want %s", got, e.Kind)
	}
	if got := ev.Op.String(); got != e.Op {
		t.Errorf("op = %q, want %q", got, e.Op)
	}
	checkRow(t, "key", ev.Key, e.Key)
	checkRow(t, "before", ev.Before, e.Before)
	checkRow(t, "after", ev.After, e.After)
	if ev.Time != e.Time {
		t.Errorf("time = %d, want %d", ev.Time, e.Time)
	}
	if ev.Source.Connector != e.Connector || ev.Source.Table != e.Table || ev.Source.Snapshot != e.Snapshot {
		t.Errorf("source = %s/%s snapshot %v, want %s/%s snapshot %v",
			ev.Source.Connector, ev.Source.Table, ev.Source.Snapshot, e.Connector, e.Table, e.Snapshot)
	}
	var pos [][2]string
	for _, p := range ev.Source.Position {
		pos = append(pos, [2]string{p.Name, p.Value})
	}
	if !slices.Equal(pos, e.Position) {
		t.Errorf("position = %q, want %q", pos, e.Position)
	}
	if ev.Unwrapped != e.Unwrapped {
		t.Errorf("unwrapped = %v, want %v", ev.Unwrapped, e.Unwrapped)
	}
	if e.Tx != nil && (ev.TxStatus != e.Tx[0] || ev.TxID != e.Tx[1]) {
		t.Errorf("transaction = %s %s, want %q", ev.TxStatus, ev.TxID, e.Tx)
	}
}

// checkRow compares a decoded row with an expected one written in the
// typed notation of testdata/corpus/README.md.
func checkRow(t *testing.T, what string, got debezium.Row, want json.RawMessage) {
	t.Helper()
	if isNull(want) {
		if got != nil {
			t.Errorf("%s = %s, want none", what, rowJSON(got))
		}
		return
	}
	wantRow, err := parseTypedRow(want)
	if err != nil {
		t.Fatalf("expectation for %s: %v", what, err)
	}
	if got == nil {
		t.Errorf("%s missing, want %s", what, want)
		return
	}
	gotByName := map[string]canon.Value{}
	for _, c := range got {
		gotByName[c.Name] = c.Value
	}
	for name, w := range wantRow {
		g, ok := gotByName[name]
		if !ok {
			t.Errorf("%s.%s missing, want %s %s", what, name, w.Kind(), canon.AppendJSON(nil, w))
			continue
		}
		if !canon.Equal(g, w) {
			t.Errorf("%s.%s = %s %s, want %s %s", what, name, g.Kind(), canon.AppendJSON(nil, g), w.Kind(), canon.AppendJSON(nil, w))
		}
	}
	for name := range gotByName {
		if _, ok := wantRow[name]; !ok {
			t.Errorf("%s.%s decoded but not expected", what, name)
		}
	}
}

func rowJSON(r debezium.Row) string {
	b := []byte{'{'}
	for i, c := range r {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, "%q:", c.Name)
		b = canon.AppendJSON(b, c.Value)
	}
	return string(append(b, '}'))
}

func parseTypedRow(raw json.RawMessage) (map[string]canon.Value, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	out := map[string]canon.Value{}
	for k, v := range m {
		cv, err := parseTyped(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		out[k] = cv
	}
	return out, nil
}

// parseTyped reads the typed notation: JSON null, booleans, numbers,
// strings, arrays and objects stand for themselves; single-key objects
// {"$instant": RFC 3339}, {"$duration": Go duration like "18h0m22.5s"},
// {"$bytes": base64}, {"$json": any JSON}, {"$geometry": [srid, base64]}
// and {"$unavailable": true} for the other kinds.
func parseTyped(raw json.RawMessage) (canon.Value, error) {
	raw = bytes.TrimSpace(raw)
	switch {
	case string(raw) == "null":
		return canon.NullValue(), nil
	case string(raw) == "true", string(raw) == "false":
		return canon.BoolValue(string(raw) == "true"), nil
	case raw[0] == '"':
		var s string
		err := json.Unmarshal(raw, &s)
		return canon.StringValue(s), err
	case raw[0] == '[':
		var elems []json.RawMessage
		if err := json.Unmarshal(raw, &elems); err != nil {
			return canon.Value{}, err
		}
		vals := make([]canon.Value, len(elems))
		for i, e := range elems {
			v, err := parseTyped(e)
			if err != nil {
				return canon.Value{}, err
			}
			vals[i] = v
		}
		return canon.ArrayValue(vals), nil
	case raw[0] == '{':
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			return canon.Value{}, err
		}
		if len(m) == 1 {
			for k, v := range m {
				if strings.HasPrefix(k, "$") {
					return parseTag(k, v)
				}
			}
		}
		var fields []canon.Field
		for k, v := range m {
			fv, err := parseTyped(v)
			if err != nil {
				return canon.Value{}, err
			}
			fields = append(fields, canon.Field{Name: k, Value: fv})
		}
		return canon.ObjectValue(fields), nil
	}
	v, ok := canon.ParseNumber(raw)
	if !ok {
		return canon.Value{}, fmt.Errorf("bad number %s", raw)
	}
	return v, nil
}

func parseTag(tag string, v json.RawMessage) (canon.Value, error) {
	var s string
	switch tag {
	case "$json":
		return canon.JSONValue(string(v))
	case "$unavailable":
		return canon.UnavailableValue(), nil
	case "$geometry":
		var g []json.RawMessage
		if err := json.Unmarshal(v, &g); err != nil || len(g) != 2 {
			return canon.Value{}, fmt.Errorf("bad $geometry %s", v)
		}
		srid := int64(-1)
		if string(g[0]) != "null" {
			if err := json.Unmarshal(g[0], &srid); err != nil {
				return canon.Value{}, err
			}
		}
		var b64 string
		if err := json.Unmarshal(g[1], &b64); err != nil {
			return canon.Value{}, err
		}
		wkb, err := base64.StdEncoding.DecodeString(b64)
		return canon.GeometryValue(wkb, srid), err
	}
	if err := json.Unmarshal(v, &s); err != nil {
		return canon.Value{}, fmt.Errorf("%s: %w", tag, err)
	}
	switch tag {
	case "$instant":
		ts, err := time.Parse(time.RFC3339Nano, s)
		return canon.InstantValue(ts), err
	case "$duration":
		d, err := time.ParseDuration(s)
		return canon.DurationValue(int64(d)), err
	case "$bytes":
		b, err := base64.StdEncoding.DecodeString(s)
		return canon.BytesValue(b), err
	}
	return canon.Value{}, fmt.Errorf("unknown tag %s", tag)
}
