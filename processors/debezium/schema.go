package debezium

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ctype is a Kafka Connect schema type.
type ctype uint8

const (
	tAny ctype = iota // unknown: convert as schemaless JSON
	tInt8
	tInt16
	tInt32
	tInt64
	tFloat32
	tFloat64
	tBool
	tString
	tBytes
	tArray
	tMap
	tStruct
)

var ctypes = map[string]ctype{
	"int8": tInt8, "int16": tInt16, "int32": tInt32, "int64": tInt64,
	"float": tFloat32, "float32": tFloat32, "double": tFloat64, "float64": tFloat64,
	"boolean": tBool, "string": tString, "bytes": tBytes,
	"array": tArray, "map": tMap, "struct": tStruct,
}

// node is one schema node, from a Connect JSON schema or an Avro schema.
type node struct {
	typ ctype
	// name is the Connect logical name (io.debezium.time.MicroTimestamp,
	// org.apache.kafka.connect.data.Decimal, ...) or the struct's name.
	name   string
	scale  int32 // Decimal scale
	fields []field
	byName map[string]int
	items  *node // array items, map values
	// union marks an Avro union position: goavro wraps its non-null values
	// as {"type name": value}.
	union bool
}

type field struct {
	name string
	node *node
}

func (n *node) field(name string) *node {
	if n == nil {
		return nil
	}
	if i, ok := n.byName[name]; ok {
		return n.fields[i].node
	}
	return nil
}

// fieldInOrder finds a struct field by name, trying first the one after
// the field found last (*next): payloads list fields in schema order, so
// this usually costs one comparison instead of a lookup.
func (n *node) fieldInOrder(next *int, name []byte) *field {
	if n == nil {
		return nil
	}
	if *next < len(n.fields) && n.fields[*next].name == string(name) {
		*next++
		return &n.fields[*next-1]
	}
	if i, ok := n.byName[string(name)]; ok {
		*next = i + 1
		return &n.fields[i]
	}
	return nil
}

func (n *node) index() {
	n.byName = make(map[string]int, len(n.fields))
	for i, f := range n.fields {
		n.byName[f.name] = i
	}
}

// Logical type names.
const (
	nameDecimal      = "org.apache.kafka.connect.data.Decimal"
	nameConnectDate  = "org.apache.kafka.connect.data.Date"
	nameConnectTime  = "org.apache.kafka.connect.data.Time"
	nameConnectTs    = "org.apache.kafka.connect.data.Timestamp"
	nameVarDecimal   = "io.debezium.data.VariableScaleDecimal"
	nameJSON         = "io.debezium.data.Json"
	nameUUID         = "io.debezium.data.Uuid"
	nameBits         = "io.debezium.data.Bits"
	nameDate         = "io.debezium.time.Date"
	nameTime         = "io.debezium.time.Time"
	nameMicroTime    = "io.debezium.time.MicroTime"
	nameNanoTime     = "io.debezium.time.NanoTime"
	nameTimestamp    = "io.debezium.time.Timestamp"
	nameMicroTs      = "io.debezium.time.MicroTimestamp"
	nameNanoTs       = "io.debezium.time.NanoTimestamp"
	nameZonedTs      = "io.debezium.time.ZonedTimestamp"
	nameZonedTime    = "io.debezium.time.ZonedTime"
	nameIsoDate      = "io.debezium.time.IsoDate"
	nameIsoTime      = "io.debezium.time.IsoTime"
	nameIsoTimestamp = "io.debezium.time.IsoTimestamp"
	nameMicroDur     = "io.debezium.time.MicroDuration"
	nameInterval     = "io.debezium.time.Interval"
	nameGeometry     = "io.debezium.data.geometry.Geometry"
	nameGeography    = "io.debezium.data.geometry.Geography"
	namePoint        = "io.debezium.data.geometry.Point"
	// Avro's own logical types, mapped onto the same conversions.
	avroDate       = "avro:date"
	avroTimeMillis = "avro:time-millis"
	avroTimeMicros = "avro:time-micros"
	avroTsMillis   = "avro:timestamp-millis"
	avroTsMicros   = "avro:timestamp-micros"
	avroTsNanos    = "avro:timestamp-nanos"
)

// connectSchema is the JsonConverter notation of a Connect schema.
type connectSchema struct {
	Type       string            `json:"type"`
	Name       string            `json:"name"`
	Field      string            `json:"field"`
	Parameters map[string]string `json:"parameters"`
	Fields     []connectSchema   `json:"fields"`
	Items      *connectSchema    `json:"items"`
	Values     *connectSchema    `json:"values"`
}

// parseConnectSchema parses a JsonConverter "schema" object.
func parseConnectSchema(text []byte) (*node, error) {
	var cs connectSchema
	if err := json.Unmarshal(text, &cs); err != nil {
		return nil, fmt.Errorf("parsing schema: %w", err)
	}
	return connectNode(&cs, 0)
}

func connectNode(cs *connectSchema, depth int) (*node, error) {
	if depth > 32 {
		return nil, errors.New("schema nested too deeply")
	}
	t, ok := ctypes[cs.Type]
	if !ok {
		return nil, fmt.Errorf("unknown schema type %q", cs.Type)
	}
	n := &node{typ: t, name: cs.Name}
	if s, ok := cs.Parameters["scale"]; ok && cs.Name == nameDecimal {
		sc, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("decimal scale %q: %w", s, err)
		}
		n.scale = int32(sc)
	}
	switch t {
	case tStruct:
		for i := range cs.Fields {
			f, err := connectNode(&cs.Fields[i], depth+1)
			if err != nil {
				return nil, atField(cs.Fields[i].Field, err)
			}
			n.fields = append(n.fields, field{name: cs.Fields[i].Field, node: f})
		}
		n.index()
	case tArray:
		if cs.Items == nil {
			return nil, errors.New("array schema without items")
		}
		it, err := connectNode(cs.Items, depth+1)
		if err != nil {
			return nil, err
		}
		n.items = it
	case tMap:
		if cs.Values != nil {
			v, err := connectNode(cs.Values, depth+1)
			if err != nil {
				return nil, err
			}
			n.items = v
		}
	}
	return n, nil
}

// parseAvroSchema parses an Avro schema (as registered by the Confluent
// AvroConverter) into nodes, reading the connect.name, connect.type and
// connect.parameters attributes that carry Connect's logical types.
func parseAvroSchema(text string) (*node, error) {
	var v any
	if err := json.Unmarshal([]byte(text), &v); err != nil {
		return nil, fmt.Errorf("parsing Avro schema: %w", err)
	}
	p := avroParser{named: map[string]*node{}}
	return p.node(v, "", 0)
}

type avroParser struct {
	named map[string]*node
}

func (p *avroParser) node(v any, ns string, depth int) (*node, error) {
	if depth > 32 {
		return nil, errors.New("schema nested too deeply")
	}
	switch s := v.(type) {
	case string:
		return p.primitive(s, ns)
	case []any: // union: Debezium's are [null, T]
		var out *node
		for _, b := range s {
			if b == "null" {
				continue
			}
			if out != nil {
				return &node{typ: tAny, union: true}, nil // a general union: keep values as decoded
			}
			n, err := p.node(b, ns, depth+1)
			if err != nil {
				return nil, err
			}
			out = n
		}
		if out == nil {
			return &node{typ: tAny, union: true}, nil
		}
		u := *out // named types are shared: mark a copy
		u.union = true
		return &u, nil
	case map[string]any:
		return p.complex(s, ns, depth)
	}
	return nil, fmt.Errorf("bad Avro schema element %v", v)
}

func (p *avroParser) primitive(s, ns string) (*node, error) {
	switch s {
	case "int":
		return &node{typ: tInt32}, nil
	case "long":
		return &node{typ: tInt64}, nil
	case "float":
		return &node{typ: tFloat32}, nil
	case "double":
		return &node{typ: tFloat64}, nil
	case "boolean":
		return &node{typ: tBool}, nil
	case "string":
		return &node{typ: tString}, nil
	case "bytes":
		return &node{typ: tBytes}, nil
	case "null":
		return &node{typ: tAny}, nil
	}
	if n, ok := p.named[s]; ok {
		return n, nil
	}
	if n, ok := p.named[ns+"."+s]; ok {
		return n, nil
	}
	return nil, fmt.Errorf("unknown Avro type %q", s)
}

func (p *avroParser) complex(s map[string]any, ns string, depth int) (*node, error) {
	typ, _ := s["type"].(string)
	var n *node
	switch typ {
	case "record", "error":
		full := fullName(s, ns)
		n = &node{typ: tStruct, name: full}
		p.named[full] = n
		if i := strings.LastIndexByte(full, '.'); i >= 0 {
			ns = full[:i]
		}
		fs, _ := s["fields"].([]any)
		for _, f := range fs {
			fm, ok := f.(map[string]any)
			if !ok {
				return nil, errors.New("bad Avro record field")
			}
			fname, _ := fm["name"].(string)
			fn, err := p.node(fm["type"], ns, depth+1)
			if err != nil {
				return nil, atField(fname, err)
			}
			n.fields = append(n.fields, field{name: fname, node: fn})
		}
		n.index()
	case "enum":
		n = &node{typ: tString}
		p.register(s, ns, n)
	case "fixed":
		n = &node{typ: tBytes}
		p.register(s, ns, n)
	case "array":
		it, err := p.node(s["items"], ns, depth+1)
		if err != nil {
			return nil, err
		}
		n = &node{typ: tArray, items: it}
	case "map":
		it, err := p.node(s["values"], ns, depth+1)
		if err != nil {
			return nil, err
		}
		n = &node{typ: tMap, items: it}
	default:
		prim, err := p.primitive(typ, ns)
		if err != nil {
			return nil, err
		}
		c := *prim
		n = &c
	}
	if ct, ok := s["connect.type"].(string); ok {
		if t, ok := ctypes[ct]; ok && n.typ != tStruct {
			n.typ = t
		}
	}
	if cn, ok := s["connect.name"].(string); ok {
		n.name = cn
	}
	if params, ok := s["connect.parameters"].(map[string]any); ok {
		if sc, ok := params["scale"].(string); ok {
			v, err := strconv.ParseInt(sc, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("decimal scale %q: %w", sc, err)
			}
			n.scale = int32(v)
		}
	}
	if lt, ok := s["logicalType"].(string); ok {
		switch lt {
		case "decimal":
			if n.name == "" {
				n.name = nameDecimal
			}
			if sc, ok := s["scale"].(float64); ok {
				n.scale = int32(sc)
			}
		case "date", "time-millis", "time-micros", "timestamp-millis", "timestamp-micros", "timestamp-nanos":
			n.name = "avro:" + lt
		case "uuid":
			n.name = nameUUID
		}
	}
	return n, nil
}

func (p *avroParser) register(s map[string]any, ns string, n *node) {
	p.named[fullName(s, ns)] = n
}

// fullName is a named type's full name: its name when dotted, else
// prefixed by its namespace or the enclosing one.
func fullName(s map[string]any, ns string) string {
	name, _ := s["name"].(string)
	if sns, ok := s["namespace"].(string); ok {
		ns = sns
	}
	if !strings.Contains(name, ".") && ns != "" {
		return ns + "." + name
	}
	return name
}
