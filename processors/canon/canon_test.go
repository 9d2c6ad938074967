package canon

import (
	"bytes"
	"encoding/hex"
	"math"
	"math/big"
	"testing"
	"time"
)

func TestNumbersCompareByValue(t *testing.T) {
	same := [][]string{
		{"12.30", "12.3", "12.3000", "1.23e1", "+12.30", "0012.3"},
		{"0", "-0", "0.000", "0e5"},
		{"1000", "1e3", "1000.0", "10e2"},
		{"-0.05", "-5e-2", "-0.050"},
	}
	for _, group := range same {
		first, ok := ParseNumber([]byte(group[0]))
		if !ok {
			t.Fatalf("%s does not parse", group[0])
		}
		for _, s := range group[1:] {
			v, ok := ParseNumber([]byte(s))
			if !ok || !Equal(v, first) {
				t.Errorf("%s != %s", s, group[0])
			}
		}
	}
	for _, bad := range []string{"", "-", "1.2.3", "e5", "12a", "1e", "--1"} {
		if _, ok := ParseNumber([]byte(bad)); ok {
			t.Errorf("%q parses", bad)
		}
	}
	twelve, _ := ParseNumber([]byte("12.3"))
	if !Equal(DecimalValue(big.NewInt(1230), 2), twelve) || !Equal(DecimalFromBytes([]byte{0x01, 0xe0, 0x78}, 4), twelve) {
		t.Error("decimal scales differ")
	}
	// Negative two's complement, and more than 8 bytes.
	if v := DecimalFromBytes([]byte{0xfd, 0xda}, 1); string(AppendJSON(nil, v)) != "-55" {
		t.Errorf("-550 scale 1 = %s", AppendJSON(nil, v))
	}
	p80 := new(big.Int).Lsh(big.NewInt(1), 80)
	if v := DecimalFromBytes(append([]byte{0}, p80.Bytes()...), 0); !Equal(v, mustNumber(p80.String())) {
		t.Errorf("2^80 = %s", AppendJSON(nil, v))
	}
	neg := new(big.Int).Neg(p80)
	// Two's complement in 11 bytes: 2^88 - 2^80.
	twos := new(big.Int).Add(new(big.Int).Lsh(big.NewInt(1), 88), neg).Bytes()
	if v := DecimalFromBytes(twos, 0); !Equal(v, mustNumber(neg.String())) {
		t.Errorf("-2^80 = %s", AppendJSON(nil, v))
	}
	if !Equal(FloatValue(float64(float32(1.1)), 32), DecimalValue(big.NewInt(11), 1)) {
		t.Error("FLOAT 1.1 is not 1.1")
	}
	x, y := 0.1, 0.2 // variables: constants would add exactly
	if !Equal(FloatValue(x+y, 64), mustNumber("0.30000000000000004")) {
		t.Error("double keeps its shortest form")
	}
}

func mustNumber(s string) Value {
	v, ok := ParseNumber([]byte(s))
	if !ok {
		panic(s)
	}
	return v
}

func TestDisplay(t *testing.T) {
	cases := []struct {
		v    Value
		want string
	}{
		{mustNumber("12.30"), "12.3"},
		{mustNumber("-0.0005"), "-0.0005"},
		{mustNumber("1e25"), "1e+25"},
		{mustNumber("123456789012345678901"), "123456789012345678901"},
		{mustNumber("1.5e-10"), "1.5e-10"},
		{FloatValue(math.NaN(), 64), `"NaN"`},
		{InstantValue(time.Date(2024, 3, 1, 10, 0, 0, 500000000, time.UTC)), `"2024-03-01T10:00:00.5Z"`},
		{DurationValue(int64(26*time.Hour + 3*time.Second + 250*time.Millisecond)), `"26:00:03.25"`},
		{DurationValue(-int64(90 * time.Minute)), `"-01:30:00"`},
		{BytesValue([]byte("hi")), `"aGk="`},
		{GeometryValue([]byte{1}, -1), `{"srid":null,"wkb":"AQ=="}`},
		{UnavailableValue(), `"__debezium_unavailable_value"`},
		{ObjectValue([]Field{{"z", BoolValue(true)}, {"a", NullValue()}}), `{"a":null,"z":true}`},
	}
	for _, c := range cases {
		if got := string(AppendJSON(nil, c.v)); got != c.want {
			t.Errorf("%s display %s, want %s", c.v.Kind(), got, c.want)
		}
	}
}

func TestCanonicalJSON(t *testing.T) {
	a, err := JSONValue(`{"k2": {"y": 2, "x": 1.50}, "k1": ["a", 1e0]}`)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := JSONValue(`{"k1":["a",1],"k2":{"x":1.5,"y":2}}`)
	if !Equal(a, b) || a.Str() != `{"k1":["a",1],"k2":{"x":1.5,"y":2}}` {
		t.Errorf("canonical forms differ: %s / %s", a.Str(), b.Str())
	}
	if c, _ := JSONValue(`{"k1":["1",1],"k2":{"x":1.5,"y":2}}`); Equal(a, c) {
		t.Error("a string and a number compare equal")
	}
	if _, err := JSONValue(`{"a":`); err == nil {
		t.Error("invalid JSON accepted")
	}
}

func TestTransforms(t *testing.T) {
	ts := InstantValue(time.Date(2024, 3, 1, 10, 0, 0, 123456789, time.UTC))
	if got := Truncate(ts, time.Millisecond); !Equal(got, InstantValue(time.Date(2024, 3, 1, 10, 0, 0, 123000000, time.UTC))) {
		t.Errorf("ms truncation = %s", AppendJSON(nil, got))
	}
	if got := Truncate(ts, time.Second); !Equal(got, InstantValue(time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC))) {
		t.Errorf("s truncation = %s", AppendJSON(nil, got))
	}
	if got := Truncate(DurationValue(-1500), time.Microsecond); !Equal(got, DurationValue(-2000)) {
		t.Errorf("negative duration floors: %s", AppendJSON(nil, got))
	}
	if !Equal(Fold(Trim(StringValue("  Straße "))), Fold(StringValue("STRASSE"))) {
		t.Error("case folding")
	}
	if !WithinTolerance(mustNumber("0.30"), mustNumber("0.29"), 0.01) || WithinTolerance(mustNumber("0.30"), mustNumber("0.28"), 0.01) {
		t.Error("tolerance")
	}
}

// A row's encoding and digest, by hand from the layout in encode.go and
// digest.go; the digest value pins xxh3.
func TestRowEncodingGolden(t *testing.T) {
	r := Row{{"a", IntValue(1)}, {"b", StringValue("x")}}
	if got := hex.EncodeToString(AppendRow(nil, r)); got != "02"+"0161"+"02000131"+"0162"+"030178" {
		t.Errorf("row encoding %s", got)
	}
	back, err := DecodeRow(AppendRow(nil, r))
	if err != nil || len(back) != 2 || !Equal(back[1].Value, r[1].Value) {
		t.Errorf("row round trip: %v", err)
	}
	if got := hex.EncodeToString(AppendKey(nil, []Value{IntValue(7), StringValue("k")})); got != "02"+"02000137"+"03016b" {
		t.Errorf("key encoding %s", got)
	}
	var h Hasher
	if got := h.Row(r, nil); got != 0x5303ff4371af3172 {
		t.Errorf("row digest %016x changed", got)
	}
	if h.Row(r, []string{r[1].Name}) == h.Row(r, nil) {
		t.Error("skipping a column does not change the digest")
	}
	if h.Row(r, []string{r[1].Name}) != h.Row(r[:1], nil) {
		t.Error("a skipped column still counts")
	}
	if h.Row(r, []string{r[0].Name}) != h.Row(r[1:], nil) {
		t.Error("skipping the first column")
	}
	if h.Row(r, []string{"", r[1].Name + "~"}) != h.Row(r, nil) {
		t.Error("names the row lacks change the digest")
	}
}

func TestDecodeRejectsNonCanonicalInput(t *testing.T) {
	for _, in := range []string{
		"",                      // empty
		"0102",                  // bool 2
		"020003303030",          // number "000"
		"02000231 30",           // number with a trailing zero digit
		"0380",                  // truncated length
		"0c",                    // unknown kind
		"09020161000161" + "00", // object with repeated names
		"058000 00",             // overlong varint
	} {
		b, _ := hex.DecodeString(stripSpaces(in))
		if v, rest, err := DecodeBinary(b); err == nil && bytes.Equal(AppendBinary(nil, v), b[:len(b)-len(rest)]) && in != "" {
			t.Errorf("%s accepted as %s", in, AppendJSON(nil, v))
		}
	}
}

func stripSpaces(s string) string { return string(bytes.ReplaceAll([]byte(s), []byte(" "), nil)) }

// FuzzCanonical checks the binary codec on arbitrary bytes: it never
// panics, and whatever it accepts re-encodes to exactly the bytes read.
// Numbers parsed from arbitrary text display as text that parses back to
// the same number.
func FuzzCanonical(f *testing.F) {
	for _, v := range goldenValues {
		f.Add(AppendBinary(nil, v()))
	}
	f.Add([]byte("12.30e-7"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if v, rest, err := DecodeBinary(b); err == nil {
			if enc := AppendBinary(nil, v); !bytes.Equal(enc, b[:len(b)-len(rest)]) {
				t.Fatalf("re-encoding %x gives %x", b[:len(b)-len(rest)], enc)
			}
			var h Hasher
			_ = h.Value(v)
			_ = AppendJSON(nil, v)
		}
		if r, err := DecodeRow(b); err == nil {
			if !bytes.Equal(AppendRow(nil, r), b) {
				t.Fatalf("row re-encoding differs")
			}
		}
		if n, ok := ParseNumber(b); ok && n.s != "NaN" && !bytes.HasSuffix([]byte(n.s), []byte("Inf")) {
			back, ok := ParseNumber(AppendJSON(nil, n))
			if !ok || !Equal(back, n) {
				t.Fatalf("number %q displays as %s", b, AppendJSON(nil, n))
			}
		}
		_, _ = JSONValue(string(b))
	})
}
