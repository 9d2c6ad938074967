package debezium

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/cdcrecon/cdcrecon/processors/canon"
)

// Conversions from primitive values to canonical values by logical type.
// JSON and Avro decoding both end here, so one logical type converts the
// same whatever the wire format.

const (
	nsPerMs  = int64(time.Millisecond)
	nsPerUs  = int64(time.Microsecond)
	nsPerDay = 24 * int64(time.Hour)
)

// fromInt converts an integer by its logical type.
func fromInt(n *node, x int64) (canon.Value, error) {
	switch n.name {
	case nameDate, nameConnectDate, avroDate:
		return canon.InstantOf(x*86400, 0), nil
	case nameTime, nameConnectTime, avroTimeMillis:
		return canon.DurationValue(x * nsPerMs), nil
	case nameMicroTime, avroTimeMicros, nameMicroDur:
		return canon.DurationValue(x * nsPerUs), nil
	case nameNanoTime:
		return canon.DurationValue(x), nil
	case nameTimestamp, nameConnectTs, avroTsMillis:
		return canon.InstantOf(floorDiv(x, 1000), floorMod(x, 1000)*nsPerMs), nil
	case nameMicroTs, avroTsMicros:
		return canon.InstantOf(floorDiv(x, 1e6), floorMod(x, 1e6)*nsPerUs), nil
	case nameNanoTs, avroTsNanos:
		return canon.InstantOf(floorDiv(x, 1e9), floorMod(x, 1e9)), nil
	}
	return canon.IntValue(x), nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && (a < 0) {
		q--
	}
	return q
}

func floorMod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// fromFloat converts a floating-point value; bits is 32 for FLOAT columns.
func fromFloat(n *node, f float64) canon.Value {
	if n.typ == tFloat32 {
		return canon.FloatValue(f, 32)
	}
	return canon.FloatValue(f, 64)
}

// fromString converts a string by its logical type.
func fromString(n *node, s string) (canon.Value, error) {
	if s == canon.UnavailablePlaceholder {
		return canon.UnavailableValue(), nil
	}
	switch n.name {
	case nameZonedTs, nameIsoTimestamp:
		return parseTimestamp(s)
	case nameIsoDate:
		t, err := time.Parse("2006-01-02Z07:00", s)
		if err != nil {
			if t, err = time.Parse(time.DateOnly, s); err != nil {
				return canon.Value{}, fmt.Errorf("bad date %q", s)
			}
		}
		return canon.InstantValue(t), nil
	case nameZonedTime, nameIsoTime:
		return parseZonedTime(s)
	case nameJSON:
		v, err := canon.JSONValue(s)
		if err != nil {
			return canon.Value{}, fmt.Errorf("bad JSON document: %w", err)
		}
		return v, nil
	case nameUUID:
		return canon.StringValue(strings.ToLower(s)), nil
	case nameVarDecimal, nameDecimal: // decimal.handling.mode=string keeps no name; some sinks do
		if v, ok := canon.ParseNumber([]byte(s)); ok {
			return v, nil
		}
		return canon.Value{}, fmt.Errorf("bad decimal %q", s)
	}
	return canon.StringValue(s), nil
}

// fromBytes converts bytes by their logical type.
func fromBytes(n *node, b []byte) (canon.Value, error) {
	if string(b) == canon.UnavailablePlaceholder {
		return canon.UnavailableValue(), nil
	}
	if n.name == nameDecimal {
		if len(b) == 0 {
			return canon.Value{}, errors.New("empty decimal")
		}
		return canon.DecimalFromBytes(b, n.scale), nil
	}
	return canon.BytesValue(b), nil
}

// fromStruct converts the structs that stand for one value:
// VariableScaleDecimal and the geometry types. It returns ok false for
// other structs.
func fromStruct(n *node, get func(name string) (canon.Value, bool)) (canon.Value, bool, error) {
	switch n.name {
	case nameVarDecimal:
		sc, _ := get("scale")
		val, _ := get("value")
		if sc.IsNull() && val.IsNull() {
			return canon.Value{}, true, nil
		}
		scale, ok := sc.Int()
		if !ok || scale < math.MinInt32 || scale > math.MaxInt32 || val.Kind() != canon.Bytes || val.Str() == "" {
			return canon.Value{}, true, errors.New("bad VariableScaleDecimal")
		}
		return canon.DecimalFromBytes([]byte(val.Str()), int32(scale)), true, nil
	case nameGeometry, nameGeography, namePoint:
		srid := int64(-1)
		if s, ok := get("srid"); ok && !s.IsNull() {
			v, ok := s.Int()
			if !ok {
				return canon.Value{}, true, errors.New("bad geometry srid")
			}
			srid = v
		}
		wkb, _ := get("wkb")
		switch wkb.Kind() {
		case canon.Bytes:
			return canon.GeometryValue([]byte(wkb.Str()), srid), true, nil
		case canon.String: // a schema that declares wkb as string still holds base64
			b, err := base64.StdEncoding.DecodeString(wkb.Str())
			if err != nil {
				return canon.Value{}, true, errors.New("bad geometry wkb: not base64")
			}
			return canon.GeometryValue(b, srid), true, nil
		}
		x, okx := get("x")
		y, oky := get("y")
		fx, ok1 := x.Float64()
		fy, ok2 := y.Float64()
		if okx && oky && ok1 && ok2 { // a Point without WKB: build it
			b := []byte{1, 1, 0, 0, 0}
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(fx))
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(fy))
			return canon.GeometryValue(b, srid), true, nil
		}
		return canon.Value{}, true, errors.New("geometry without wkb")
	}
	return canon.Value{}, false, nil
}

// parseTimestamp parses an ISO-8601 timestamp: with a zone offset or Z, or
// without one (read as UTC); 'T' or ' ' between date and time.
func parseTimestamp(s string) (canon.Value, error) {
	if v, ok := parseUTCTimestamp(s); ok {
		return v, nil
	}
	for _, layout := range timestampLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return canon.InstantValue(t), nil
		}
	}
	return canon.Value{}, fmt.Errorf("bad timestamp %q", s)
}

// parseUTCTimestamp parses the form Debezium writes for ZonedTimestamp,
// "YYYY-MM-DDTHH:MM:SS[.fraction]Z", without time.Parse's generality; it
// reports false for anything else, which then goes to time.Parse.
// FuzzTimestamp checks it against time.Parse.
func parseUTCTimestamp(s string) (canon.Value, bool) {
	if len(s) < 20 || s[len(s)-1] != 'Z' || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return canon.Value{}, false
	}
	num := func(from, to int) (int, bool) {
		n := 0
		for i := from; i < to; i++ {
			d := s[i] - '0'
			if d > 9 {
				return 0, false
			}
			n = n*10 + int(d)
		}
		return n, true
	}
	year, ok1 := num(0, 4)
	month, ok2 := num(5, 7)
	day, ok3 := num(8, 10)
	hour, ok4 := num(11, 13)
	minute, ok5 := num(14, 16)
	sec, ok6 := num(17, 19)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 ||
		day > daysIn(month, year) || hour > 23 || minute > 59 || sec > 59 {
		return canon.Value{}, false
	}
	nanos := 0
	if rest := s[19 : len(s)-1]; rest != "" {
		if rest[0] != '.' || len(rest) < 2 || len(rest) > 10 {
			return canon.Value{}, false
		}
		f, ok := num(20, len(s)-1)
		if !ok {
			return canon.Value{}, false
		}
		for i := len(rest) - 1; i < 9; i++ {
			f *= 10
		}
		nanos = f
	}
	days := daysSinceEpoch(year, month, day)
	return canon.InstantOf(days*86400+int64(hour*3600+minute*60+sec), int64(nanos)), true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysSinceEpoch is the civil-from-days inverse (Howard Hinnant's
// days_from_civil) for the proleptic Gregorian calendar.
func daysSinceEpoch(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era*146097 + doe - 719468)
}

var timestampLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999Z0700",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02",
}

// ParseTimestamp parses an ISO-8601 timestamp into an Instant: with a zone
// offset or Z, or without one (read as UTC), 'T' or ' ' between date and
// time, or a date alone. normalize uses it for the as: timestamp hint.
func ParseTimestamp(s string) (canon.Value, error) { return parseTimestamp(s) }

// parseZonedTime parses "HH:MM:SS[.fraction](Z|±HH:MM)" into the time of
// day in UTC.
func parseZonedTime(s string) (canon.Value, error) {
	bad := fmt.Errorf("bad time %q", s)
	i := strings.IndexAny(s, "Z+-")
	var off int64
	clock := s
	if i >= 0 {
		clock = s[:i]
		zone := s[i:]
		if zone != "Z" {
			t, err := time.Parse("-07:00", zone)
			if err != nil {
				if t, err = time.Parse("-0700", zone); err != nil {
					return canon.Value{}, bad
				}
			}
			_, o := t.Zone()
			off = int64(o) * int64(time.Second)
		}
	}
	d, ok := parseClock(clock)
	if !ok {
		return canon.Value{}, bad
	}
	return canon.DurationValue(floorMod(d-off, nsPerDay)), nil
}

// parseClock parses HH:MM[:SS[.fraction]] into nanoseconds.
func parseClock(s string) (int64, bool) {
	parts := strings.SplitN(s, ":", 3)
	if len(parts) < 2 {
		return 0, false
	}
	h, err1 := strconv.ParseInt(parts[0], 10, 64)
	m, err2 := strconv.ParseInt(parts[1], 10, 64)
	if err1 != nil || err2 != nil || h < 0 || m < 0 || m > 59 {
		return 0, false
	}
	var sec, frac int64
	if len(parts) == 3 {
		ss, fs, _ := strings.Cut(parts[2], ".")
		var err error
		if sec, err = strconv.ParseInt(ss, 10, 64); err != nil || sec < 0 || sec > 60 {
			return 0, false
		}
		if fs != "" {
			if len(fs) > 9 {
				return 0, false
			}
			f, err := strconv.ParseInt(fs, 10, 64)
			if err != nil || f < 0 {
				return 0, false
			}
			for i := len(fs); i < 9; i++ {
				f *= 10
			}
			frac = f
		}
	}
	return ((h*60+m)*60+sec)*int64(time.Second) + frac, true
}
