package debezium

import (
	"encoding/base64"
	"errors"
	"strconv"

	"github.com/tidwall/gjson"

	"github.com/cdcrecon/cdcrecon/processors/canon"
)

// MongoDB connectors emit documents as MongoDB Extended JSON text (relaxed
// or canonical). A document's top-level fields become the row's columns;
// type wrappers become canonical values: $numberLong, $numberInt,
// $numberDouble and $numberDecimal numbers, $date instants, $oid strings,
// $binary bytes, $uuid strings.

func mongoDocument(text string) (Row, error) {
	if !gjson.Valid(text) {
		return nil, errors.New("document is not valid extended JSON")
	}
	doc := gjson.Parse(text)
	if !doc.IsObject() {
		return nil, errors.New("document is not an object")
	}
	var row Row
	var ferr error
	doc.ForEach(func(k, v gjson.Result) bool {
		val, err := mongoConvert(v, 0)
		if err != nil {
			ferr = atField(k.Str, err)
			return false
		}
		row = append(row, canon.Column{Name: k.Str, Value: val})
		return true
	})
	return row, ferr
}

// mongoValue converts one extended JSON value given as text.
func mongoValue(text string) (canon.Value, error) {
	if !gjson.Valid(text) {
		return canon.Value{}, errors.New("not extended JSON")
	}
	return mongoConvert(gjson.Parse(text), 0)
}

func mongoConvert(r gjson.Result, depth int) (canon.Value, error) {
	if depth > maxDepth {
		return canon.Value{}, errors.New("value nested too deeply")
	}
	if r.IsObject() {
		if v, ok, err := mongoWrapper(r); ok {
			return v, err
		}
		var fields []canon.Field
		var ferr error
		r.ForEach(func(k, e gjson.Result) bool {
			v, err := mongoConvert(e, depth+1)
			if err != nil {
				ferr = atField(k.Str, err)
				return false
			}
			fields = append(fields, canon.Field{Name: k.Str, Value: v})
			return true
		})
		return canon.ObjectValue(fields), ferr
	}
	if r.IsArray() {
		var elems []canon.Value
		var ferr error
		r.ForEach(func(_, e gjson.Result) bool {
			v, err := mongoConvert(e, depth+1)
			if err != nil {
				ferr = err
				return false
			}
			elems = append(elems, v)
			return true
		})
		return canon.ArrayValue(elems), ferr
	}
	return schemalessValue(r, depth)
}

// mongoWrapper converts a single-key type wrapper object; ok is false when
// r is a plain document.
func mongoWrapper(r gjson.Result) (canon.Value, bool, error) {
	var key string
	var val gjson.Result
	n := 0
	r.ForEach(func(k, v gjson.Result) bool {
		n++
		if n == 1 {
			key, val = k.Str, v
		}
		return true
	})
	if n == 2 && key == "$binary" { // legacy {"$binary": b64, "$type": "04"}
		b, err := base64.StdEncoding.DecodeString(val.String())
		return canon.BytesValue(b), true, err
	}
	if n != 1 || len(key) == 0 || key[0] != '$' {
		return canon.Value{}, false, nil
	}
	switch key {
	case "$numberLong", "$numberInt", "$numberDouble", "$numberDecimal":
		v, ok := canon.ParseNumber([]byte(val.String()))
		if !ok {
			return canon.Value{}, true, errors.New("bad " + key)
		}
		return v, true, nil
	case "$oid", "$symbol":
		return canon.StringValue(val.String()), true, nil
	case "$uuid":
		return canon.StringValue(val.String()), true, nil
	case "$date":
		switch {
		case val.Type == gjson.Number:
			ms, err := strconv.ParseInt(val.Raw, 10, 64)
			if err != nil {
				return canon.Value{}, true, errors.New("bad $date")
			}
			return canon.InstantOf(floorDiv(ms, 1000), floorMod(ms, 1000)*nsPerMs), true, nil
		case val.Type == gjson.String:
			v, err := parseTimestamp(val.Str)
			return v, true, err
		case val.IsObject():
			ms, err := strconv.ParseInt(val.Get(`\$numberLong`).String(), 10, 64)
			if err != nil {
				return canon.Value{}, true, errors.New("bad $date")
			}
			return canon.InstantOf(floorDiv(ms, 1000), floorMod(ms, 1000)*nsPerMs), true, nil
		}
		return canon.Value{}, true, errors.New("bad $date")
	case "$binary":
		if val.IsObject() {
			b, err := base64.StdEncoding.DecodeString(val.Get("base64").String())
			if err != nil {
				return canon.Value{}, true, errors.New("bad $binary")
			}
			return canon.BytesValue(b), true, nil
		}
	}
	return canon.Value{}, false, nil
}
