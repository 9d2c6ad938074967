package debezium

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unsafe"

	"github.com/tidwall/gjson"

	"github.com/cdcrecon/cdcrecon/processors/canon"
)

// maxDepth bounds nesting of values so hostile input cannot exhaust the
// stack.
const maxDepth = 64

var errNotJSON = errors.New("not valid JSON")

// splitEnvelope finds a JsonConverter envelope {"schema": S, "payload": P}.
// It returns the raw schema and payload and ok true, or ok false when b is
// not such an envelope (a schemaless message). The envelope's schema is not
// validated here: the caller looks it up by its bytes first.
func splitEnvelope(b []byte) (schema, payload []byte, ok bool) {
	s := unsafe.String(unsafe.SliceData(b), len(b))
	top := gjson.Parse(s)
	if !top.IsObject() {
		return nil, nil, false
	}
	var sch, pay gjson.Result
	n, end := 0, 0
	top.ForEach(func(k, v gjson.Result) bool {
		n++
		switch k.Str {
		case "schema":
			sch = v
		case "payload":
			pay = v
		default:
			return false
		}
		if e := v.Index + len(v.Raw); e > end {
			end = e
		}
		return true
	})
	if n != 2 || !sch.Exists() || !pay.Exists() || sch.Index <= 0 || pay.Index <= 0 {
		return nil, nil, false
	}
	if rest := bytes.TrimSpace(b[end:]); len(rest) != 1 || rest[0] != '}' {
		return nil, nil, false
	}
	return b[sch.Index : sch.Index+len(sch.Raw)], b[pay.Index : pay.Index+len(pay.Raw)], true
}

// schemaFor returns the parsed node of a raw JsonConverter schema, from the
// cache when these exact bytes were seen before.
func (d *Decoder) schemaFor(raw []byte) (*node, error) {
	if n, ok := d.schemas[string(raw)]; ok {
		return n, nil
	}
	if !gjson.ValidBytes(raw) {
		return nil, errNotJSON
	}
	var n *node
	if !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		var err error
		if n, err = parseConnectSchema(raw); err != nil {
			return nil, atField("schema", err)
		}
	}
	if len(d.schemas) >= d.cfg.MaxSchemas {
		clear(d.schemas)
	}
	d.schemas[string(raw)] = n
	return n, nil
}

// parseJSON returns the message's payload as a parsed gjson value over a
// private copy, and its schema node (nil when schemaless).
func (d *Decoder) parseJSON(b []byte) (gjson.Result, *node, error) {
	schemaRaw, payloadRaw, env := splitEnvelope(b)
	if !env {
		if !gjson.ValidBytes(b) {
			return gjson.Result{}, nil, errNotJSON
		}
		return gjson.Parse(string(b)), nil, nil
	}
	n, err := d.schemaFor(schemaRaw)
	if err != nil {
		return gjson.Result{}, nil, err
	}
	if !gjson.ValidBytes(payloadRaw) {
		return gjson.Result{}, nil, errNotJSON
	}
	return gjson.Parse(string(payloadRaw)), n, nil
}

func (d *Decoder) decodeJSONKey(b []byte, mongo bool) (Row, error) {
	p, n, err := d.parseJSON(b)
	if err != nil {
		return nil, malformed("key", err)
	}
	if p.Type == gjson.Null {
		return nil, nil
	}
	if !p.IsObject() {
		return nil, malformed("key", errors.New("not a JSON object"))
	}
	row, err := jsonRow(n, p)
	if err != nil {
		return nil, malformed("key", err)
	}
	if mongo {
		// A MongoDB key holds the document id as extended JSON text.
		for i, c := range row {
			if c.Value.Kind() == canon.String {
				if v, err := mongoValue(c.Value.Str()); err == nil {
					row[i].Value = v
				}
			}
		}
	}
	return row, nil
}

// jsonFields is what one pass over a payload object collects.
type jsonFields struct {
	op, before, after, source, tsMs, status, id gjson.Result
	shape                                       shape
}

func (d *Decoder) decodeJSONValue(b []byte, ev *Event) error {
	p, n, err := d.parseJSON(b)
	if err != nil {
		return malformed("value", err)
	}
	if p.Type == gjson.Null {
		ev.Kind = Tombstone // the legacy {"schema":null,"payload":null}
		return nil
	}
	if !p.IsObject() {
		return malformed("value", errors.New("not a JSON object"))
	}
	var f jsonFields
	p.ForEach(func(k, v gjson.Result) bool {
		f.shape.see(k.Str)
		switch k.Str {
		case "op":
			f.op = v
		case "before":
			f.before = v
		case "after":
			f.after = v
		case "source":
			f.source = v
		case "ts_ms":
			f.tsMs = v
		case "status":
			f.status = v
		case "id":
			f.id = v
		}
		return true
	})
	f.shape.heartbeatSchema = n != nil && strings.HasSuffix(n.name, "Heartbeat")
	if err := d.jsonEvent(n, p, &f, ev); err != nil {
		return malformed("value", err)
	}
	return nil
}

func (d *Decoder) jsonEvent(n *node, p gjson.Result, f *jsonFields, ev *Event) error {
	envMs := f.tsMs.Int()
	switch f.shape.kind() {
	case Change:
		return d.jsonEnvelope(n, f, ev)
	case Transaction:
		ev.Kind = Transaction
		ev.TxStatus, ev.TxID = f.status.String(), f.id.String()
		if ev.TxStatus != "BEGIN" && ev.TxStatus != "END" {
			return atField("status", fmt.Errorf("unknown transaction status %q", ev.TxStatus))
		}
		ev.Time = envMs
		return nil
	case SchemaChange:
		ev.Kind = SchemaChange
		var sb sourceBlock
		if err := jsonSource(f.source, &sb); err != nil {
			return atField("source", err)
		}
		ev.Source = sb.source()
		ev.Time = sb.time(envMs)
		return nil
	case Heartbeat:
		ev.Kind = Heartbeat
		ev.Time = envMs
		return nil
	}
	if f.shape.badEnvelope() {
		return atField("op", errors.New("envelope without source, before or after"))
	}
	return d.jsonUnwrapped(n, p, ev)
}

func (d *Decoder) jsonEnvelope(n *node, f *jsonFields, ev *Event) error {
	op := f.op.String()
	var sb sourceBlock
	if err := jsonSource(f.source, &sb); err != nil {
		return atField("source", err)
	}
	ev.Source = sb.source()
	ev.Time = sb.time(f.tsMs.Int())
	if op == "m" {
		ev.Kind = Message
		return nil
	}
	if len(op) != 1 || !strings.Contains("cudrt", op) {
		return atField("op", fmt.Errorf("unknown operation %q", op))
	}
	ev.Kind, ev.Op = Change, Op(op[0])
	mongo := ev.Source.Connector == "mongodb"
	var err error
	if ev.Before, err = jsonImage(n.field("before"), f.before, mongo); err != nil {
		return atField("before", err)
	}
	if ev.After, err = jsonImage(n.field("after"), f.after, mongo); err != nil {
		return atField("after", err)
	}
	return checkImages(ev)
}

// checkImages enforces what each operation needs.
func checkImages(ev *Event) error {
	switch ev.Op {
	case Create, Read:
		if ev.After == nil {
			return fmt.Errorf("op %q without after", string(ev.Op))
		}
	case Update:
		if ev.After == nil {
			return errors.New(`op "u" without after`)
		}
	}
	return nil
}

// jsonImage decodes a before or after image; MongoDB images are documents
// in extended JSON text.
func jsonImage(n *node, r gjson.Result, mongo bool) (Row, error) {
	if !r.Exists() || r.Type == gjson.Null {
		return nil, nil
	}
	if r.Type == gjson.String && mongo {
		return mongoDocument(r.Str)
	}
	if !r.IsObject() {
		return nil, errors.New("row is not an object")
	}
	return jsonRow(n, r)
}

// jsonUnwrapped decodes an ExtractNewRecordState row: the row's columns
// plus "__"-prefixed metadata fields.
func (d *Decoder) jsonUnwrapped(n *node, p gjson.Result, ev *Event) error {
	ev.Kind, ev.Op, ev.Unwrapped = Change, Update, true
	var sb sourceBlock
	var row Row
	var deleted bool
	var envMs int64
	var ferr error
	p.ForEach(func(k, v gjson.Result) bool {
		name := k.Str
		if meta, ok := strings.CutPrefix(name, "__"); ok {
			text := v.String()
			switch meta = strings.TrimPrefix(meta, "source_"); meta {
			case "op":
				if len(text) != 1 || !strings.Contains("cudrt", text) {
					ferr = atField(name, fmt.Errorf("unknown operation %q", text))
					return false
				}
				ev.Op = Op(text[0])
			case "deleted":
				deleted = text == "true"
			case "ts_ms":
				envMs = v.Int()
			default:
				if v.Type != gjson.Null {
					sb.set(meta, text)
				}
			}
			return true
		}
		val, err := jsonValue(n.field(name), v, 0)
		if err != nil {
			ferr = atField(name, err)
			return false
		}
		row = append(row, canon.Column{Name: name, Value: val})
		return true
	})
	if ferr != nil {
		return ferr
	}
	ev.Source = sb.source()
	ev.Time = sb.time(envMs)
	if deleted || ev.Op == Delete {
		ev.Op, ev.Before = Delete, row
		return nil
	}
	ev.After = row
	return nil
}

func jsonSource(r gjson.Result, sb *sourceBlock) error {
	if !r.Exists() || r.Type == gjson.Null {
		return nil
	}
	if !r.IsObject() {
		return errors.New("not an object")
	}
	r.ForEach(func(k, v gjson.Result) bool {
		if v.Type != gjson.Null {
			sb.set(k.Str, v.String())
		}
		return true
	})
	return nil
}

// jsonRow decodes an object into a row, converting each field by the
// struct schema n (nil: schemaless).
func jsonRow(n *node, r gjson.Result) (Row, error) {
	row := make(Row, 0, 16)
	var ferr error
	r.ForEach(func(k, v gjson.Result) bool {
		val, err := jsonValue(n.field(k.Str), v, 0)
		if err != nil {
			ferr = atField(k.Str, err)
			return false
		}
		row = append(row, canon.Column{Name: k.Str, Value: val})
		return true
	})
	return row, ferr
}

// jsonValue converts one JSON value by its schema node (nil: schemaless).
func jsonValue(n *node, r gjson.Result, depth int) (canon.Value, error) {
	if r.Type == gjson.Null {
		return canon.Value{}, nil
	}
	if depth > maxDepth {
		return canon.Value{}, errors.New("value nested too deeply")
	}
	if n == nil || n.typ == tAny {
		return schemalessValue(r, depth)
	}
	switch n.typ {
	case tInt8, tInt16, tInt32, tInt64:
		if r.Type != gjson.Number {
			return canon.Value{}, wrongType(n, r)
		}
		x, err := strconv.ParseInt(r.Raw, 10, 64)
		if err != nil {
			if n.name == "" { // e.g. BIGINT UNSIGNED beyond int64: keep the digits
				if v, ok := canon.ParseNumber([]byte(r.Raw)); ok {
					return v, nil
				}
			}
			return canon.Value{}, fmt.Errorf("bad integer %s", r.Raw)
		}
		return fromInt(n, x)
	case tFloat32, tFloat64:
		if r.Type != gjson.Number {
			return canon.Value{}, wrongType(n, r)
		}
		f, err := strconv.ParseFloat(r.Raw, 64)
		if err != nil {
			return canon.Value{}, fmt.Errorf("bad number %s", r.Raw)
		}
		return fromFloat(n, f), nil
	case tBool:
		if r.Type != gjson.True && r.Type != gjson.False {
			return canon.Value{}, wrongType(n, r)
		}
		return canon.BoolValue(r.Type == gjson.True), nil
	case tString:
		if r.Type != gjson.String {
			return canon.Value{}, wrongType(n, r)
		}
		return fromString(n, r.Str)
	case tBytes:
		if r.Type == gjson.Number && n.name == nameDecimal { // decimal.format=NUMERIC
			if v, ok := canon.ParseNumber([]byte(r.Raw)); ok {
				return v, nil
			}
		}
		if r.Type != gjson.String {
			return canon.Value{}, wrongType(n, r)
		}
		b, err := base64.StdEncoding.DecodeString(r.Str)
		if err != nil {
			return canon.Value{}, errors.New("bytes not in base64")
		}
		return fromBytes(n, b)
	case tArray:
		if !r.IsArray() {
			return canon.Value{}, wrongType(n, r)
		}
		var elems []canon.Value
		var ferr error
		i := 0
		r.ForEach(func(_, e gjson.Result) bool {
			v, err := jsonValue(n.items, e, depth+1)
			if err != nil {
				ferr = atField(strconv.Itoa(i), err)
				return false
			}
			i++
			elems = append(elems, v)
			return true
		})
		if ferr != nil {
			return canon.Value{}, ferr
		}
		if len(elems) == 1 && elems[0].Kind() == canon.Unavailable {
			return elems[0], nil // an unchanged TOASTed array
		}
		return canon.ArrayValue(elems), nil
	case tMap, tStruct:
		if !r.IsObject() {
			return canon.Value{}, wrongType(n, r)
		}
		var fields []canon.Field
		var ferr error
		r.ForEach(func(k, e gjson.Result) bool {
			fn := n.items
			if n.typ == tStruct {
				fn = n.field(k.Str)
			}
			v, err := jsonValue(fn, e, depth+1)
			if err != nil {
				ferr = atField(k.Str, err)
				return false
			}
			fields = append(fields, canon.Field{Name: k.Str, Value: v})
			return true
		})
		if ferr != nil {
			return canon.Value{}, ferr
		}
		return structValue(n, fields)
	}
	return schemalessValue(r, depth)
}

// structValue turns decoded struct fields into one value: a decimal or a
// geometry for those logical types, else an Object.
func structValue(n *node, fields []canon.Field) (canon.Value, error) {
	get := func(name string) (canon.Value, bool) {
		for _, f := range fields {
			if f.Name == name {
				return f.Value, true
			}
		}
		return canon.Value{}, false
	}
	if v, ok, err := fromStruct(n, get); ok {
		return v, err
	}
	return canon.ObjectValue(fields), nil
}

func wrongType(n *node, r gjson.Result) error {
	return fmt.Errorf("%s value where the schema says %s", r.Type, typeName(n.typ))
}

func typeName(t ctype) string {
	for name, v := range ctypes {
		if v == t && name != "float" && name != "double" {
			return name
		}
	}
	return "any"
}

// schemalessValue converts JSON as it is: numbers stay numbers (exact
// digits), strings stay strings.
func schemalessValue(r gjson.Result, depth int) (canon.Value, error) {
	if depth > maxDepth {
		return canon.Value{}, errors.New("value nested too deeply")
	}
	switch r.Type {
	case gjson.Null:
		return canon.Value{}, nil
	case gjson.True:
		return canon.BoolValue(true), nil
	case gjson.False:
		return canon.BoolValue(false), nil
	case gjson.Number:
		v, ok := canon.ParseNumber([]byte(r.Raw))
		if !ok {
			return canon.Value{}, fmt.Errorf("bad number %s", r.Raw)
		}
		return v, nil
	case gjson.String:
		if r.Str == canon.UnavailablePlaceholder {
			return canon.UnavailableValue(), nil
		}
		return canon.StringValue(r.Str), nil
	}
	if r.IsArray() {
		var elems []canon.Value
		var ferr error
		r.ForEach(func(_, e gjson.Result) bool {
			v, err := schemalessValue(e, depth+1)
			if err != nil {
				ferr = err
				return false
			}
			elems = append(elems, v)
			return true
		})
		if len(elems) == 1 && elems[0].Kind() == canon.Unavailable {
			return elems[0], ferr
		}
		return canon.ArrayValue(elems), ferr
	}
	var fields []canon.Field
	var ferr error
	r.ForEach(func(k, e gjson.Result) bool {
		v, err := schemalessValue(e, depth+1)
		if err != nil {
			ferr = atField(k.Str, err)
			return false
		}
		fields = append(fields, canon.Field{Name: k.Str, Value: v})
		return true
	})
	return canon.ObjectValue(fields), ferr
}
