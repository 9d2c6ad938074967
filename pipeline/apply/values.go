package apply

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/cdcrecon/cdcrecon/processors/canon"
)

// class is how apply reads and writes a column's type: the canonical kind
// Debezium gives its values, and the text the database takes.
type class uint8

const (
	cUnsupported class = iota
	cInt
	cDecimal
	cFloat32
	cFloat64
	cBool
	cString
	cBytes
	cDate
	cTimestamp   // without time zone: UTC by convention, as Debezium reads it
	cTimestampTZ // PostgreSQL timestamptz, MySQL timestamp
	cTime
	cJSON
)

// column is one of the target table's columns.
type column struct {
	name      string
	dbType    string // as the catalog writes it: numeric(10,2), datetime(3)
	class     class
	scale     int // decimal scale; -1 when unconstrained
	precision int // fraction digits of times; -1 when unknown
}

func (c *column) digits() int {
	if c.precision < 0 || c.precision > 9 {
		return 6
	}
	return c.precision
}

// readValue turns a value as the driver returns it into the canonical
// value Debezium's event for the column would carry, before the table's
// normalisation.
func readValue(c *column, v any) (canon.Value, error) {
	var s string
	switch x := v.(type) {
	case nil:
		return canon.NullValue(), nil
	case []byte:
		if c.class == cBytes {
			return canon.BytesValue(bytes.Clone(x)), nil
		}
		s = string(x)
	case string:
		s = x
	case int64:
		s = strconv.FormatInt(x, 10)
	case uint64:
		s = strconv.FormatUint(x, 10)
	case float32:
		s = strconv.FormatFloat(float64(x), 'g', -1, 32)
	case float64:
		s = strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		s = strconv.FormatBool(x)
	case time.Time:
		return canon.InstantValue(x.UTC()), nil
	default:
		return canon.Value{}, fmt.Errorf("column %s: unexpected %T from the driver", c.name, v)
	}
	return parseText(c, s)
}

// parseText reads a column's value from its text, as the database writes
// it (PostgreSQL's ::text, MySQL's text forms).
func parseText(c *column, s string) (canon.Value, error) {
	bad := func(err error) (canon.Value, error) {
		return canon.Value{}, fmt.Errorf("column %s (%s): cannot read %q: %v", c.name, c.dbType, s, err)
	}
	switch c.class {
	case cInt, cDecimal:
		if n, ok := canon.ParseNumber([]byte(s)); ok {
			return n, nil
		}
		return bad(fmt.Errorf("not a number"))
	case cFloat32, cFloat64:
		bits := 64
		if c.class == cFloat32 {
			bits = 32
		}
		f, err := strconv.ParseFloat(s, bits)
		if err != nil {
			return bad(err)
		}
		return canon.FloatValue(f, bits), nil
	case cBool:
		switch s {
		case "t", "true", "1":
			return canon.BoolValue(true), nil
		case "f", "false", "0":
			return canon.BoolValue(false), nil
		}
		return bad(fmt.Errorf("not a boolean"))
	case cString:
		return canon.StringValue(s), nil
	case cBytes:
		if h, ok := strings.CutPrefix(s, `\x`); ok { // PostgreSQL bytea
			b, err := hex.DecodeString(h)
			if err != nil {
				return bad(err)
			}
			return canon.BytesValue(b), nil
		}
		return canon.BytesValue([]byte(s)), nil
	case cDate:
		t, err := time.Parse("2006-01-02", s)
		if err != nil {
			return bad(err)
		}
		return canon.InstantValue(t), nil
	case cTimestamp, cTimestampTZ:
		for _, layout := range []string{"2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999Z07", "2006-01-02 15:04:05.999999999"} {
			if t, err := time.Parse(layout, s); err == nil {
				return canon.InstantValue(t.UTC()), nil
			}
		}
		return bad(fmt.Errorf("not a timestamp"))
	case cTime:
		d, err := parseTimeOfDay(s)
		if err != nil {
			return bad(err)
		}
		return canon.DurationValue(d), nil
	case cJSON:
		v, err := canon.JSONValue(s)
		if err != nil {
			return bad(err)
		}
		return v, nil
	}
	return bad(fmt.Errorf("unsupported type"))
}

// parseTimeOfDay reads [-]HH:MM:SS[.fraction], hours past 23 allowed.
func parseTimeOfDay(s string) (int64, error) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	hms, frac, _ := strings.Cut(s, ".")
	parts := strings.Split(hms, ":")
	if len(parts) != 3 {
		return 0, fmt.Errorf("want HH:MM:SS")
	}
	var n [3]int64
	for i, p := range parts {
		v, err := strconv.ParseInt(p, 10, 64)
		if err != nil || v < 0 || i > 0 && v > 59 {
			return 0, fmt.Errorf("want HH:MM:SS")
		}
		n[i] = v
	}
	ns := (n[0]*3600 + n[1]*60 + n[2]) * int64(time.Second)
	if frac != "" {
		if len(frac) > 9 {
			return 0, fmt.Errorf("more than 9 fraction digits")
		}
		f, err := strconv.ParseInt((frac + "000000000")[:9], 10, 64)
		if err != nil {
			return 0, err
		}
		ns += f
	}
	if neg {
		ns = -ns
	}
	return ns, nil
}

// param turns a command's canonical value (its JSON display form) into
// what the database is sent for column c: text, or bytes for binary
// columns. A null value is nil.
func param(c *column, text string) (any, error) {
	d := json.NewDecoder(strings.NewReader(text))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("column %s: value %s is not JSON: %v", c.name, text, err)
	}
	if v == nil {
		return nil, nil
	}
	cannot := func(why string) (any, error) {
		return nil, fmt.Errorf("column %s (%s): cannot write %s: %s", c.name, c.dbType, text, why)
	}
	switch c.class {
	case cInt, cDecimal, cFloat32, cFloat64:
		var num string
		switch x := v.(type) {
		case json.Number:
			num = x.String()
		case bool:
			num = map[bool]string{true: "1", false: "0"}[x]
		case string:
			num = x // NaN, Inf; a number the source kept as text
		default:
			return cannot("not a number")
		}
		if c.class == cFloat32 || c.class == cFloat64 {
			return num, nil
		}
		r, ok := new(big.Rat).SetString(num)
		if !ok {
			return cannot("not a number")
		}
		switch {
		case c.class == cInt:
			if !r.IsInt() {
				return cannot("not an integer")
			}
			return r.Num().String(), nil
		case c.scale >= 0:
			return r.FloatString(c.scale), nil // exact or refused by the read-back check
		}
		return num, nil
	case cBool:
		switch x := v.(type) {
		case bool:
			return strconv.FormatBool(x), nil
		case json.Number:
			switch x.String() {
			case "0":
				return "false", nil
			case "1":
				return "true", nil
			}
		case string:
			return x, nil
		}
		return cannot("not a boolean")
	case cString:
		if s, ok := v.(string); ok {
			return s, nil
		}
		return text, nil // a number or a document kept as its text
	case cJSON:
		// The document as it is: a JSON string too ("s" is a document).
		// A source's text kept as a string reads back as a document, not
		// as that string, and the read-back check refuses it.
		return text, nil
	case cBytes:
		s, ok := v.(string)
		if !ok {
			return cannot("not base64 bytes")
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return cannot("not base64 bytes")
		}
		return b, nil
	case cDate, cTimestamp, cTimestampTZ:
		s, ok := v.(string)
		if !ok {
			return cannot("not a timestamp")
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return cannot("not an RFC 3339 timestamp")
		}
		t = t.UTC()
		if c.class == cDate {
			return t.Format("2006-01-02"), nil
		}
		layout := "2006-01-02 15:04:05"
		if n := c.digits(); n > 0 {
			layout += "." + strings.Repeat("0", n)
		}
		out := t.Truncate(time.Duration(pow10(9 - c.digits()))).Format(layout)
		if strings.Contains(c.dbType, "with time zone") { // PostgreSQL's timestamptz
			out += "+00"
		}
		return out, nil
	case cTime:
		s, ok := v.(string)
		if !ok {
			return cannot("not a time of day")
		}
		ns, err := parseTimeOfDay(s)
		if err != nil {
			return cannot(err.Error())
		}
		return formatTimeOfDay(ns, c.digits()), nil
	}
	return cannot("apply does not write columns of this type")
}

func pow10(n int) int64 {
	p := int64(1)
	for ; n > 0; n-- {
		p *= 10
	}
	return p
}

// formatTimeOfDay writes [-]HH:MM:SS[.fraction] with digits fraction
// digits, truncated.
func formatTimeOfDay(ns int64, digits int) string {
	sign := ""
	if ns < 0 {
		sign, ns = "-", -ns
	}
	sec := ns / int64(time.Second)
	s := fmt.Sprintf("%s%02d:%02d:%02d", sign, sec/3600, sec/60%60, sec%60)
	if digits > 0 {
		frac := fmt.Sprintf("%09d", ns%int64(time.Second))
		s += "." + frac[:digits]
	}
	return s
}
