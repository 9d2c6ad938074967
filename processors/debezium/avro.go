package debezium

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/linkedin/goavro/v2"

	"github.com/cdcrecon/cdcrecon/processors/canon"
	// Bounds the item count of one Avro array block goavro decodes
	// (schemas.MaxArrayBlock, process-wide, set by its init): goavro sizes
	// an array from the count the data claims, so without it a few hostile
	// bytes could make it allocate gigabytes.
	_ "github.com/cdcrecon/cdcrecon/schemas"
)

// confluentMagic starts a Confluent wire-format message: the magic byte,
// a 4-byte big-endian schema id, then the Avro binary encoding.
const confluentMagic = 0x00

type avroSchema struct {
	codec *goavro.Codec
	root  *node
}

func newAvroSchema(text string) (*avroSchema, error) {
	codec, err := goavro.NewCodec(text)
	if err != nil {
		return nil, fmt.Errorf("compiling Avro schema: %w", err)
	}
	root, err := parseAvroSchema(text)
	if err != nil {
		return nil, err
	}
	return &avroSchema{codec: codec, root: root}, nil
}

// avroNative decodes a Confluent wire-format message to goavro's native
// form and the schema's root node.
func (d *Decoder) avroNative(ctx context.Context, part string, b []byte) (any, *node, error) {
	if len(b) < 5 {
		return nil, nil, &MalformedError{Part: part, Err: errors.New("shorter than the 5-byte header of the Confluent wire format")}
	}
	if d.cfg.Registry == nil {
		return nil, nil, &MalformedError{Part: part, Err: errors.New("an Avro message (Confluent wire format), but no schema registry is configured")}
	}
	id := int(binary.BigEndian.Uint32(b[1:5]))
	s, err := d.cfg.Registry.schema(ctx, id)
	if err != nil {
		var m *MalformedError
		if errors.As(err, &m) {
			m.Part = part
			m.Err = fmt.Errorf("schema id %d: %w", id, m.Err)
			return nil, nil, m
		}
		return nil, nil, fmt.Errorf("fetching schema id %d: %w", id, err)
	}
	native, rest, err := s.codec.NativeFromBinary(b[5:])
	if err != nil {
		return nil, nil, &MalformedError{Part: part, Err: fmt.Errorf("decoding Avro with schema id %d: %w", id, err)}
	}
	if len(rest) != 0 {
		return nil, nil, &MalformedError{Part: part, Err: fmt.Errorf("%d bytes after the Avro record", len(rest))}
	}
	return native, s.root, nil
}

func (d *Decoder) decodeAvroKey(ctx context.Context, b []byte) (Row, error) {
	native, root, err := d.avroNative(ctx, "key", b)
	if err != nil {
		return nil, err
	}
	m, ok := native.(map[string]any)
	if !ok {
		v, err := avroValue(root, native, 0)
		if err != nil {
			return nil, malformed("key", err)
		}
		return Row{{Name: "key", Value: v}}, nil
	}
	row, err := avroRow(root, m)
	if err != nil {
		return nil, malformed("key", err)
	}
	return row, nil
}

func (d *Decoder) decodeAvroValue(ctx context.Context, b []byte, ev *Event) error {
	native, root, err := d.avroNative(ctx, "value", b)
	if err != nil {
		return err
	}
	if native == nil {
		ev.Kind = Tombstone
		return nil
	}
	m, ok := native.(map[string]any)
	if !ok || root.typ != tStruct {
		return malformed("value", errors.New("the Avro value is not a record"))
	}
	if err := avroEvent(root, m, ev); err != nil {
		return malformed("value", err)
	}
	return nil
}

func avroEvent(root *node, m map[string]any, ev *Event) error {
	var sh shape
	for k := range m {
		sh.see(classify(k))
	}
	sh.heartbeatSchema = strings.HasSuffix(root.name, "Heartbeat")
	envMs, _ := avroInt(m["ts_ms"])
	op, _ := unwrapUnion(m["op"]).(string)
	var sb sourceBlock
	if src, ok := unwrapUnion(m["source"]).(map[string]any); ok {
		for k, v := range src {
			if t, ok := avroText(v); ok {
				sb.set(k, t)
			}
		}
	}
	switch sh.kind() {
	case RowEvent:
		ev.Source, ev.Time = sb.source(nil), sb.time(envMs)
		if op == "m" {
			ev.Kind = Message
			return nil
		}
		o, err := changeOp(op)
		if err != nil {
			return atField("op", err)
		}
		ev.Kind, ev.Op = RowEvent, o
		if ev.Before, err = avroImage(root.field("before"), m["before"]); err != nil {
			return atField("before", err)
		}
		if ev.After, err = avroImage(root.field("after"), m["after"]); err != nil {
			return atField("after", err)
		}
		return checkImages(ev)
	case Transaction, SchemaChange, Heartbeat:
		status, _ := avroText(m["status"])
		id, _ := avroText(m["id"])
		return nonRow(ev, sh.kind(), &sb, envMs, status, id)
	}
	if sh.badEnvelope() {
		return atField("op", errors.New("envelope without source, before or after"))
	}
	// ExtractNewRecordState output.
	ev.Kind, ev.Op, ev.Unwrapped = RowEvent, Update, true
	u := unwrapped{sb: sb, envMs: envMs}
	var row Row
	for _, f := range root.fields { // schema order, for a stable row
		v, present := m[f.name]
		if !present {
			continue
		}
		text, _ := avroText(v)
		if isMeta, err := u.meta(ev, f.name, text); isMeta || err != nil {
			if err != nil {
				return err
			}
			continue
		}
		val, err := avroValue(f.node, v, 0)
		if err != nil {
			return atField(f.name, err)
		}
		row = append(row, canon.Column{Name: f.name, Value: val})
	}
	u.finish(ev, row)
	return nil
}

func avroImage(n *node, v any) (Row, error) {
	if m, ok := v.(map[string]any); ok && n != nil && n.union && len(m) == 1 {
		for _, inner := range m {
			v = inner
		}
	}
	if v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("row is not a record")
	}
	return avroRow(n, m)
}

// avroRow converts a record to a row in schema field order.
func avroRow(n *node, m map[string]any) (Row, error) {
	if n == nil {
		return nil, errors.New("record without schema")
	}
	row := make(Row, 0, len(n.fields))
	for _, f := range n.fields {
		v, ok := m[f.name]
		if !ok {
			continue
		}
		val, err := avroValue(f.node, v, 0)
		if err != nil {
			return nil, atField(f.name, err)
		}
		row = append(row, canon.Column{Name: f.name, Value: val})
	}
	return row, nil
}

// unwrapUnion strips goavro's {"type name": value} union wrapper.
func unwrapUnion(v any) any {
	if m, ok := v.(map[string]any); ok && len(m) == 1 {
		for k, inner := range m {
			if isAvroTypeName(k) {
				return inner
			}
		}
	}
	return v
}

// isAvroTypeName tells a union wrapper's key from a record field name:
// wrappers are keyed by primitive names or by (usually dotted) full names.
func isAvroTypeName(k string) bool {
	switch k {
	case "int", "long", "float", "double", "boolean", "string", "bytes", "array", "map":
		return true
	}
	return strings.Contains(k, ".")
}

func avroInt(v any) (int64, bool) {
	switch x := unwrapUnion(v).(type) {
	case int32:
		return int64(x), true
	case int64:
		return x, true
	}
	return 0, false
}

// avroText renders a primitive as source-block text; ok is false for null
// and non-primitives.
func avroText(v any) (string, bool) {
	switch x := unwrapUnion(v).(type) {
	case string:
		return x, true
	case int32:
		return strconv.FormatInt(int64(x), 10), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case bool:
		return strconv.FormatBool(x), true
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), true
	case time.Time:
		return strconv.FormatInt(x.UnixMilli(), 10), true
	}
	return "", false
}

// avroValue converts a goavro native value by its schema node.
func avroValue(n *node, v any, depth int) (canon.Value, error) {
	if depth > maxDepth {
		return canon.Value{}, errors.New("value nested too deeply")
	}
	if n == nil {
		n = &node{typ: tAny}
	}
	if m, ok := v.(map[string]any); ok && n.union && len(m) == 1 {
		for _, inner := range m {
			v = inner
		}
	}
	switch x := v.(type) {
	case nil:
		return canon.Value{}, nil
	case bool:
		return canon.BoolValue(x), nil
	case int32:
		return fromInt(n, int64(x))
	case int64:
		return fromInt(n, x)
	case float32:
		return canon.FloatValue(float64(x), 32), nil
	case float64:
		return fromFloat(n, x), nil
	case string:
		return fromString(n, x)
	case []byte:
		return fromBytes(n, x)
	case time.Time: // Avro logical date / timestamp types
		return canon.InstantValue(x), nil
	case time.Duration: // Avro logical time types
		return canon.DurationValue(int64(x)), nil
	case *big.Rat: // Avro logical decimal
		return ratValue(x, n.scale)
	case []any:
		elems := make([]canon.Value, 0, len(x))
		for i, e := range x {
			ev, err := avroValue(n.items, e, depth+1)
			if err != nil {
				return canon.Value{}, atField(strconv.Itoa(i), err)
			}
			elems = append(elems, ev)
		}
		if len(elems) == 1 && elems[0].Kind() == canon.Unavailable {
			return elems[0], nil
		}
		return canon.ArrayValue(elems), nil
	case map[string]any:
		fields := make([]canon.Field, 0, len(x))
		for k, e := range x {
			fn := n.items
			if n.typ == tStruct {
				fn = n.field(k)
			}
			fv, err := avroValue(fn, e, depth+1)
			if err != nil {
				return canon.Value{}, atField(k, err)
			}
			fields = append(fields, canon.Field{Name: k, Value: fv})
		}
		return structValue(n, fields)
	}
	return canon.Value{}, fmt.Errorf("unsupported Avro value %T", v)
}

func ratValue(r *big.Rat, scale int32) (canon.Value, error) {
	if scale < 0 {
		scale = 0
	}
	text := r.FloatString(int(scale))
	v, ok := canon.ParseNumber([]byte(text))
	if !ok {
		return canon.Value{}, fmt.Errorf("bad decimal %s", text)
	}
	return v, nil
}
