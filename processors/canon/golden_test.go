package canon

import (
	"bufio"
	"encoding/hex"
	"flag"
	"fmt"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"
)

var rewriteDigests = flag.Bool("rewrite-digests", false, "fill the digest column of testdata/golden.txt")

// goldenValues builds the values of testdata/golden.txt by name. The
// encodings in that file were written by hand from the layout documented
// in encode.go; the digests were recorded once and pin xxh3.
var goldenValues = map[string]func() Value{
	"null":            NullValue,
	"true":            func() Value { return BoolValue(true) },
	"false":           func() Value { return BoolValue(false) },
	"zero":            func() Value { return IntValue(0) },
	"1000":            func() Value { return IntValue(1000) },
	"12.30 scale 2":   func() Value { return DecimalValue(big.NewInt(1230), 2) },
	"12.3000 scale 4": func() Value { return DecimalValue(big.NewInt(123000), 4) },
	"-0.05":           func() Value { v, _ := ParseNumber([]byte("-0.050")); return v },
	"float32 1.1":     func() Value { return FloatValue(float64(float32(1.1)), 32) },
	"string héllo":    func() Value { return StringValue("héllo") },
	"bytes 00ff":      func() Value { return BytesValue([]byte{0, 0xff}) },
	"instant":         func() Value { return InstantValue(time.Date(2024, 3, 1, 10, 0, 0, 123456000, time.UTC)) },
	"instant -1 day":  func() Value { return InstantOf(-86400, 0) },
	"duration 8h":     func() Value { return DurationValue(int64(8 * time.Hour)) },
	"duration -1.5h":  func() Value { return DurationValue(-int64(90 * time.Minute)) },
	"json":            func() Value { v, _ := JSONValue(`{"b": 1.0, "a": [true]}`); return v },
	"array":           func() Value { return ArrayValue([]Value{IntValue(1), StringValue("x")}) },
	"object":          func() Value { return ObjectValue([]Field{{"b", NullValue()}, {"a", IntValue(1)}}) },
	"geometry":        func() Value { return GeometryValue([]byte{1, 1}, 4326) },
	"unavailable":     UnavailableValue,
}

func TestGolden(t *testing.T) {
	f, err := os.Open("testdata/golden.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	var h Hasher
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			out = append(out, line)
			continue
		}
		parts := strings.Split(line, "\t")
		if len(parts) != 3 {
			t.Fatalf("bad line %q", line)
		}
		name, wantHex, wantDigest := parts[0], strings.ReplaceAll(parts[1], " ", ""), parts[2]
		mk, ok := goldenValues[name]
		if !ok {
			t.Fatalf("no value named %q", name)
		}
		seen[name] = true
		v := mk()
		got := hex.EncodeToString(AppendBinary(nil, v))
		if got != wantHex {
			t.Errorf("%s: encoding %s, want %s", name, got, wantHex)
		}
		back, rest, err := DecodeBinary(AppendBinary(nil, v))
		if err != nil || len(rest) != 0 || !Equal(back, v) {
			t.Errorf("%s: round trip: %v", name, err)
		}
		digest := fmt.Sprintf("%016x", h.Value(v))
		if *rewriteDigests {
			parts[2] = digest
		} else if digest != wantDigest {
			t.Errorf("%s: digest %s, want %s (the digest of every published row would change)", name, digest, wantDigest)
		}
		out = append(out, strings.Join(parts, "\t"))
	}
	for name := range goldenValues {
		if !seen[name] {
			t.Errorf("%s: not in testdata/golden.txt", name)
		}
	}
	if *rewriteDigests {
		if err := os.WriteFile("testdata/golden.txt", []byte(strings.Join(out, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
