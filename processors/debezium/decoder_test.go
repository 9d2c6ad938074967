package debezium_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"

	"github.com/cdcrecon/cdcrecon/processors/canon"
	"github.com/cdcrecon/cdcrecon/processors/debezium"
)

func readJSONL(t *testing.T, name string, each func(line int, raw []byte)) {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		each(n, sc.Bytes())
	}
}

// Each line of testdata/logical.jsonl is one Connect logical type: a field
// schema, a JSON value and the canonical value it must decode to.
func TestLogicalTypes(t *testing.T) {
	readJSONL(t, "testdata/logical.jsonl", func(line int, raw []byte) {
		var c struct {
			Why    string
			Schema map[string]any
			Value  json.RawMessage
			Want   json.RawMessage
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			t.Fatalf("line %d: %v", line, err)
		}
		t.Run(c.Why, func(t *testing.T) {
			c.Schema["field"] = "v"
			c.Schema["optional"] = true
			field, _ := json.Marshal(c.Schema)
			msg := `{"schema":{"type":"struct","fields":[{"field":"after","type":"struct","optional":true,"fields":[` + string(field) +
				`]},{"field":"op","type":"string"}]},"payload":{"op":"c","after":{"v":` + string(c.Value) + `},"source":{"connector":"postgresql"}}}`
			ev, err := debezium.NewDecoder(debezium.Config{}).Decode(context.Background(), nil, []byte(msg))
			if err != nil {
				t.Fatalf("decoding: %v", err)
			}
			want, err := parseTyped(c.Want)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := ev.After.Get("v")
			if !canon.Equal(got, want) {
				t.Errorf("got %s %s, want %s %s", got.Kind(), canon.AppendJSON(nil, got), want.Kind(), canon.AppendJSON(nil, want))
			}
		})
	})
}

// Each line of testdata/malformed.jsonl is a bad message and the reason
// its error must give; every such error is a permanent MalformedError.
func TestMalformedMessages(t *testing.T) {
	readJSONL(t, "testdata/malformed.jsonl", func(line int, raw []byte) {
		var c struct {
			Why, Key, Value, ValueHex, Want string
		}
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		if err := dec.Decode(&c); err != nil {
			t.Fatalf("line %d: %v", line, err)
		}
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		if h, ok := m["value_hex"].(string); ok {
			b, _ := hex.DecodeString(h)
			c.Value = string(b)
		}
		t.Run(c.Why, func(t *testing.T) {
			var key []byte
			if c.Key != "" {
				key = []byte(c.Key)
			}
			_, err := debezium.NewDecoder(debezium.Config{}).Decode(context.Background(), key, []byte(c.Value))
			if err == nil {
				t.Fatalf("no error, want %q", c.Want)
			}
			if !debezium.IsMalformed(err) {
				t.Errorf("%v is not a MalformedError", err)
			}
			if !strings.Contains(err.Error(), c.Want) {
				t.Errorf("error %q lacks %q", err, c.Want)
			}
		})
	})
}

// A JsonConverter schema repeated by every message is parsed once, and a
// message with another schema is decoded by its own.
func TestSchemaParsedOncePerDistinctSchema(t *testing.T) {
	dec := debezium.NewDecoder(debezium.Config{})
	msg := func(typ, name, v string) []byte {
		return []byte(`{"schema":{"type":"struct","fields":[{"field":"after","type":"struct","fields":[{"field":"t","type":"` + typ +
			`","name":"` + name + `"}]},{"field":"op","type":"string"}]},"payload":{"op":"c","after":{"t":` + v + `},"source":{}}}`)
	}
	for range 3 {
		ev, err := dec.Decode(context.Background(), nil, msg("int64", "io.debezium.time.MicroTimestamp", "1000000"))
		if err != nil {
			t.Fatal(err)
		}
		if v, _ := ev.After.Get("t"); v.Kind() != canon.Instant {
			t.Fatalf("t = %s", v.Kind())
		}
	}
	if got := debezium.SchemaCount(dec); got != 1 {
		t.Errorf("%d schemas parsed for one distinct schema", got)
	}
	ev, err := dec.Decode(context.Background(), nil, msg("int64", "io.debezium.time.Timestamp", "1000"))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := ev.After.Get("t"); !canon.Equal(v, canon.InstantOf(1, 0)) {
		t.Errorf("second schema not used: t = %s", canon.AppendJSON(nil, v))
	}
	if got := debezium.SchemaCount(dec); got != 2 {
		t.Errorf("%d schemas parsed, want 2", got)
	}
}

// Avro values carry Connect's logical types in connect.name and Avro's own
// in logicalType; both convert like their JSON forms.
func TestAvroLogicalTypes(t *testing.T) {
	schema := `{"type":"record","name":"Envelope","namespace":"shop.orders","fields":[
	  {"name":"before","type":["null",{"type":"record","name":"Value","fields":[
	    {"name":"id","type":"int"},
	    {"name":"price","type":["null",{"type":"record","name":"VariableScaleDecimal","namespace":"io.debezium.data","fields":[{"name":"scale","type":"int"},{"name":"value","type":"bytes"}],"connect.name":"io.debezium.data.VariableScaleDecimal"}],"default":null},
	    {"name":"amount","type":{"type":"bytes","scale":2,"precision":10,"connect.name":"org.apache.kafka.connect.data.Decimal","connect.parameters":{"scale":"2"},"logicalType":"decimal"}},
	    {"name":"created","type":{"type":"long","connect.name":"io.debezium.time.MicroTimestamp"}},
	    {"name":"day","type":{"type":"int","connect.name":"io.debezium.time.Date"}},
	    {"name":"seen","type":{"type":"long","logicalType":"timestamp-millis"}},
	    {"name":"flag","type":{"type":"int","connect.type":"int16"}},
	    {"name":"note","type":["null","string"],"default":null}]}],"default":null},
	  {"name":"after","type":["null","Value"],"default":null},
	  {"name":"source","type":{"type":"record","name":"Source","fields":[{"name":"connector","type":"string"},{"name":"ts_ms","type":"long"},{"name":"lsn","type":["null","long"],"default":null}]}},
	  {"name":"op","type":"string"},
	  {"name":"ts_ms","type":["null","long"],"default":null}]}`
	codec, err := goavro.NewCodec(schema)
	if err != nil {
		t.Fatal(err)
	}
	after := map[string]any{
		"id":      int32(7),
		"price":   goavro.Union("io.debezium.data.VariableScaleDecimal", map[string]any{"scale": int32(4), "value": []byte{0x01, 0xe0, 0x78}}),
		"amount":  big.NewRat(1230, 100),
		"created": int64(1709287200123456),
		"day":     int32(19783),
		"seen":    time.UnixMilli(1709287200123).UTC(),
		"flag":    int32(1),
		"note":    goavro.Union("string", "hello"),
	}
	bin, err := codec.BinaryFromNative(nil, map[string]any{
		"before": nil,
		"after":  goavro.Union("shop.orders.Value", after),
		"source": map[string]any{"connector": "postgresql", "ts_ms": int64(1709287200500), "lsn": goavro.Union("long", int64(42))},
		"op":     "c",
		"ts_ms":  goavro.Union("long", int64(1709287200600)),
	})
	if err != nil {
		t.Fatal(err)
	}
	reg := &memRegistry{}
	id := reg.Register(schema)
	msg := append(binary.BigEndian.AppendUint32([]byte{0}, uint32(id)), bin...)
	ev, err := debezium.NewDecoder(debezium.Config{Registry: debezium.NewSchemaCache(reg)}).Decode(context.Background(), nil, msg)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]canon.Value{
		"id":      canon.IntValue(7),
		"price":   canon.DecimalValue(big.NewInt(123), 1),
		"amount":  canon.DecimalValue(big.NewInt(123), 1),
		"created": canon.InstantOf(1709287200, 123456000),
		"day":     canon.InstantOf(1709251200, 0),
		"seen":    canon.InstantOf(1709287200, 123000000),
		"flag":    canon.IntValue(1),
		"note":    canon.StringValue("hello"),
	}
	for name, w := range want {
		if got, _ := ev.After.Get(name); !canon.Equal(got, w) {
			t.Errorf("%s = %s %s, want %s", name, got.Kind(), canon.AppendJSON(nil, got), canon.AppendJSON(nil, w))
		}
	}
	if ev.Op != debezium.Create || ev.Time != 1709287200500 || ev.Source.Position[0] != (debezium.PosField{Name: "lsn", Value: "42"}) {
		t.Errorf("event = %+v", ev)
	}
	// An unknown schema id is a permanent error; so is a body the schema
	// cannot read.
	bad := append(binary.BigEndian.AppendUint32([]byte{0}, 9999), bin...)
	if _, err := debezium.NewDecoder(debezium.Config{Registry: debezium.NewSchemaCache(reg)}).Decode(context.Background(), nil, bad); !debezium.IsMalformed(err) {
		t.Errorf("unknown schema id: %v", err)
	}
	if _, err := debezium.NewDecoder(debezium.Config{Registry: debezium.NewSchemaCache(reg)}).Decode(context.Background(), nil, msg[:len(msg)-3]); !debezium.IsMalformed(err) {
		t.Errorf("truncated body: %v", err)
	}
}

// A decoder remembers the keys of each object of the last message and
// compares the next message's keys against them. Whatever the keys, a
// decoder that has read other messages before must read each message as a
// new decoder does, through Decode and DecodeProjected alike: keys that
// share a prefix with a remembered one, keys around the 16 bytes compared
// as words, white space, escapes, reordered and missing keys.
func TestRememberedKeysNeverMisread(t *testing.T) {
	names := []string{"a", "ab", "b", "abcdefghijkl", "abcdefghijklm", "abcdefghijklmn", "abcdefghijklmnop",
		"abcdefghijklmnopq", "abcdefghijklmnopqrstuvwxyz", "op", "o", "opx", "after", "aft", "source", "sourc", `a\u0062`, `o\"p`}
	var messages []string
	for i := range 400 {
		var cols, src []string
		for j := range 1 + i%5 {
			name := names[(i*7+j*3)%len(names)]
			sep := ":"
			if (i+j)%11 == 0 {
				sep = " : "
			}
			cols = append(cols, fmt.Sprintf("%q%s%d", name, sep, i*10+j))
			cols[len(cols)-1] = strings.Replace(cols[len(cols)-1], `\\`, `\`, -1)
		}
		for j, f := range []string{"connector", "lsn", "txId", "db", "table"} {
			if (i+j)%4 != 0 {
				src = append(src, fmt.Sprintf("%q:%q", f, fmt.Sprint(i+j)))
			}
		}
		row := "{" + strings.Join(cols, ",") + "}"
		envelope := []string{`"before":null`, `"after":` + row, `"source":{` + strings.Join(src, ",") + `}`, `"op":"c"`}
		if i%3 == 0 {
			envelope[0], envelope[3] = envelope[3], envelope[0]
		}
		messages = append(messages, "{"+strings.Join(envelope, ",")+"}")
	}
	shared := debezium.NewDecoder(debezium.Config{})
	projected := debezium.NewDecoder(debezium.Config{})
	for i, m := range messages {
		key := []byte(fmt.Sprintf(`{"%s":%d}`, names[i%len(names)], i))
		want, werr := debezium.NewDecoder(debezium.Config{}).Decode(context.Background(), key, []byte(m))
		got, gerr := shared.Decode(context.Background(), key, []byte(m))
		if fmt.Sprint(got, gerr) != fmt.Sprint(want, werr) {
			t.Fatalf("message %d %s:\n got  %v %v\n want %v %v", i, m, got, gerr, want, werr)
		}
		checkProjected(t, projected, key, []byte(m), want, werr)
	}
}
