package debezium

import (
	"encoding/base64"
	"errors"
	"strconv"

	"github.com/valyala/fastjson"

	"github.com/cdcrecon/cdcrecon/processors/canon"
)

// MongoDB connectors emit documents as MongoDB Extended JSON text (relaxed
// or canonical). A document's top-level fields become the row's columns;
// type wrappers become canonical values: $numberLong, $numberInt,
// $numberDouble and $numberDecimal numbers, $date instants, $oid strings,
// $binary bytes, $uuid strings.

var mongoParsers fastjson.ParserPool

func mongoDocument(text string) (Row, error) {
	p := mongoParsers.Get()
	defer mongoParsers.Put(p)
	doc, err := p.Parse(text)
	if err != nil {
		return nil, errors.New("document is not valid extended JSON")
	}
	o, err := doc.Object()
	if err != nil {
		return nil, errors.New("document is not an object")
	}
	row := make(Row, 0, o.Len())
	var ferr error
	o.Visit(func(k []byte, v *fastjson.Value) {
		if ferr != nil {
			return
		}
		val, err := mongoConvert(v, 0)
		if err != nil {
			ferr = atField(string(k), err)
			return
		}
		row = append(row, canon.Column{Name: string(k), Value: val})
	})
	return row, ferr
}

// mongoValue converts one extended JSON value given as text.
func mongoValue(text string) (canon.Value, error) {
	p := mongoParsers.Get()
	defer mongoParsers.Put(p)
	v, err := p.Parse(text)
	if err != nil {
		return canon.Value{}, errors.New("not extended JSON")
	}
	return mongoConvert(v, 0)
}

func mongoConvert(v *fastjson.Value, depth int) (canon.Value, error) {
	if depth > maxDepth {
		return canon.Value{}, errors.New("value nested too deeply")
	}
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		if val, ok, err := mongoWrapper(o); ok {
			return val, err
		}
		fields := make([]canon.Field, 0, o.Len())
		var ferr error
		o.Visit(func(k []byte, e *fastjson.Value) {
			if ferr != nil {
				return
			}
			fv, err := mongoConvert(e, depth+1)
			if err != nil {
				ferr = atField(string(k), err)
				return
			}
			fields = append(fields, canon.Field{Name: string(k), Value: fv})
		})
		return canon.ObjectValue(fields), ferr
	case fastjson.TypeArray:
		arr, _ := v.Array()
		elems := make([]canon.Value, len(arr))
		for i, e := range arr {
			ev, err := mongoConvert(e, depth+1)
			if err != nil {
				return canon.Value{}, err
			}
			elems[i] = ev
		}
		return canon.ArrayValue(elems), nil
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return canon.StringValue(string(b)), nil
	case fastjson.TypeNumber:
		n, ok := canon.ParseNumber(v.MarshalTo(nil))
		if !ok {
			return canon.Value{}, errors.New("bad number")
		}
		return n, nil
	case fastjson.TypeTrue, fastjson.TypeFalse:
		return canon.BoolValue(v.Type() == fastjson.TypeTrue), nil
	}
	return canon.Value{}, nil
}

// stringOf returns a string value's text, or a scalar's JSON token.
func stringOf(v *fastjson.Value) string {
	if v == nil {
		return ""
	}
	if b, err := v.StringBytes(); err == nil {
		return string(b)
	}
	return string(v.MarshalTo(nil))
}

// mongoWrapper converts a single-key type wrapper object; ok is false when
// o is a plain document.
func mongoWrapper(o *fastjson.Object) (canon.Value, bool, error) {
	var key string
	var val *fastjson.Value
	n := 0
	o.Visit(func(k []byte, v *fastjson.Value) {
		n++
		if n == 1 {
			key, val = string(k), v
		}
	})
	if n == 2 && key == "$binary" { // legacy {"$binary": b64, "$type": "04"}
		b, err := base64.StdEncoding.DecodeString(stringOf(val))
		return canon.BytesValue(b), true, err
	}
	if n != 1 || len(key) == 0 || key[0] != '$' {
		return canon.Value{}, false, nil
	}
	switch key {
	case "$numberLong", "$numberInt", "$numberDouble", "$numberDecimal":
		v, ok := canon.ParseNumber([]byte(stringOf(val)))
		if !ok {
			return canon.Value{}, true, errors.New("bad " + key)
		}
		return v, true, nil
	case "$oid", "$symbol", "$uuid":
		return canon.StringValue(stringOf(val)), true, nil
	case "$date":
		switch val.Type() {
		case fastjson.TypeNumber:
			ms, err := val.Int64()
			if err != nil {
				return canon.Value{}, true, errors.New("bad $date")
			}
			return canon.InstantOf(floorDiv(ms, 1000), floorMod(ms, 1000)*nsPerMs), true, nil
		case fastjson.TypeString:
			v, err := parseTimestamp(stringOf(val))
			return v, true, err
		case fastjson.TypeObject:
			ms, err := strconv.ParseInt(stringOf(val.Get("$numberLong")), 10, 64)
			if err != nil {
				return canon.Value{}, true, errors.New("bad $date")
			}
			return canon.InstantOf(floorDiv(ms, 1000), floorMod(ms, 1000)*nsPerMs), true, nil
		}
		return canon.Value{}, true, errors.New("bad $date")
	case "$binary":
		if val.Type() == fastjson.TypeObject {
			b, err := base64.StdEncoding.DecodeString(stringOf(val.Get("base64")))
			if err != nil {
				return canon.Value{}, true, errors.New("bad $binary")
			}
			return canon.BytesValue(b), true, nil
		}
	}
	return canon.Value{}, false, nil
}
