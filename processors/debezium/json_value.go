package debezium

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"

	"github.com/cdcrecon/cdcrecon/processors/canon"
)

// The values of a JSON message's columns, by their Connect schema or
// without one.

func kindName(t tok) string {
	switch t {
	case kObject:
		return "object"
	case kArray:
		return "array"
	case kString:
		return "string"
	case kNumber:
		return "number"
	case kTrue, kFalse:
		return "boolean"
	case kNull:
		return "null"
	}
	return "invalid"
}

func wrongType(n *node, t tok) error {
	return fmt.Errorf("%s value where the schema says %s", kindName(t), typeName(n.typ))
}

func typeName(t ctype) string {
	for name, v := range ctypes {
		if v == t && name != "float" && name != "double" {
			return name
		}
	}
	return "any"
}

// value converts the JSON value at the scanner by its schema node (nil:
// schemaless).
func (c *jsonCtx) value(n *node, depth int) (canon.Value, error) {
	s := &c.s
	t := s.peek()
	if t == kNull {
		s.literal("null")
		return canon.Value{}, s.err
	}
	if depth > maxDepth {
		return canon.Value{}, errors.New("value nested too deeply")
	}
	if n == nil || n.typ == tAny {
		return c.schemaless(t, depth)
	}
	if t == kBad || t == kEnd {
		s.skip(0)
		return canon.Value{}, s.err
	}
	switch n.typ {
	case tInt8, tInt16, tInt32, tInt64:
		if t != kNumber {
			s.skip(0)
			return canon.Value{}, wrongType(n, t)
		}
		raw, x, isInt := s.integer()
		var err error
		if !isInt {
			x, err = strconv.ParseInt(unsafeString(raw), 10, 64)
		}
		if err != nil {
			if n.name == "" { // e.g. BIGINT UNSIGNED beyond int64: keep the digits
				if num, ok := canon.ParseNumber(raw); ok {
					return num, nil
				}
			}
			return canon.Value{}, fmt.Errorf("bad integer %s", raw)
		}
		return fromInt(n, x)
	case tFloat32, tFloat64:
		if t != kNumber {
			s.skip(0)
			return canon.Value{}, wrongType(n, t)
		}
		raw := s.number()
		f, err := strconv.ParseFloat(unsafeString(raw), 64)
		if err != nil {
			return canon.Value{}, fmt.Errorf("bad number %s", raw)
		}
		return fromFloat(n, f), nil
	case tBool:
		if t != kTrue && t != kFalse {
			s.skip(0)
			return canon.Value{}, wrongType(n, t)
		}
		if t == kTrue {
			s.literal("true")
		} else {
			s.literal("false")
		}
		return canon.BoolValue(t == kTrue), s.err
	case tString:
		if t != kString {
			s.skip(0)
			return canon.Value{}, wrongType(n, t)
		}
		return fromString(n, c.text(s.str()))
	case tBytes:
		if t == kNumber && n.name == nameDecimal { // decimal.format=NUMERIC
			if num, ok := canon.ParseNumber(s.number()); ok {
				return num, nil
			}
			return canon.Value{}, errors.New("bad decimal")
		}
		if t != kString {
			s.skip(0)
			return canon.Value{}, wrongType(n, t)
		}
		raw, esc := s.str()
		if esc {
			raw = appendUnescaped(nil, raw)
		}
		b := make([]byte, base64.StdEncoding.DecodedLen(len(raw)))
		k, err := base64.StdEncoding.Decode(b, raw)
		if err != nil {
			return canon.Value{}, errors.New("bytes not in base64")
		}
		return fromBytes(n, b[:k])
	case tArray:
		if t != kArray {
			s.skip(0)
			return canon.Value{}, wrongType(n, t)
		}
		return c.array(n.items, depth)
	case tMap, tStruct:
		if t != kObject {
			s.skip(0)
			return canon.Value{}, wrongType(n, t)
		}
		fields, err := c.fields(n, depth)
		if err != nil {
			return canon.Value{}, err
		}
		return structValue(n, fields)
	}
	return c.schemaless(t, depth)
}

// array reads an array's elements by their schema (nil: schemaless). A
// lone unchanged-TOAST placeholder stands for the whole array.
func (c *jsonCtx) array(items *node, depth int) (canon.Value, error) {
	s := &c.s
	var elems []canon.Value
	for first := true; s.elem(first); first = false {
		e, err := c.value(items, depth+1)
		if err != nil {
			return canon.Value{}, atField(strconv.Itoa(len(elems)), err)
		}
		elems = append(elems, e)
	}
	if s.err != nil {
		return canon.Value{}, s.err
	}
	if len(elems) == 1 && elems[0].Kind() == canon.Unavailable {
		return elems[0], nil
	}
	return canon.ArrayValue(elems), nil
}

// fields reads an object's fields: by a struct's field schemas, a map's
// value schema, or schemaless (n nil).
func (c *jsonCtx) fields(n *node, depth int) ([]canon.Field, error) {
	s := &c.s
	var fields []canon.Field
	for first := true; ; first = false {
		raw, esc, ok := s.key(first)
		if !ok {
			break
		}
		name := c.text(raw, esc)
		var fn *node
		if n != nil {
			fn = n.items
			if n.typ == tStruct {
				fn = n.field(name)
			}
		}
		fv, err := c.value(fn, depth+1)
		if err != nil {
			return nil, atField(name, err)
		}
		fields = append(fields, canon.Field{Name: name, Value: fv})
	}
	return fields, s.err
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

// schemaless converts JSON as it is: numbers stay numbers (exact digits),
// strings stay strings.
func (c *jsonCtx) schemaless(t tok, depth int) (canon.Value, error) {
	s := &c.s
	if depth > maxDepth {
		return canon.Value{}, errors.New("value nested too deeply")
	}
	switch t {
	case kNull:
		s.literal("null")
		return canon.Value{}, s.err
	case kTrue:
		s.literal("true")
		return canon.BoolValue(true), s.err
	case kFalse:
		s.literal("false")
		return canon.BoolValue(false), s.err
	case kNumber:
		raw, n, isInt := s.integer()
		if isInt {
			return canon.IntValue(n), nil
		}
		if s.err != nil {
			return canon.Value{}, s.err
		}
		num, ok := canon.ParseNumber(raw)
		if !ok {
			return canon.Value{}, fmt.Errorf("bad number %s", raw)
		}
		return num, nil
	case kString:
		raw, esc := s.str()
		if !esc && string(raw) == canon.UnavailablePlaceholder {
			return canon.UnavailableValue(), nil
		}
		return canon.StringValue(c.text(raw, esc)), s.err
	case kArray:
		return c.array(nil, depth)
	case kObject:
		fields, err := c.fields(nil, depth)
		if err != nil {
			return canon.Value{}, err
		}
		return canon.ObjectValue(fields), nil
	}
	s.skip(0)
	if s.err == nil {
		s.fail("value expected")
	}
	return canon.Value{}, s.err
}
