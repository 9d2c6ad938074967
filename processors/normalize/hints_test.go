package normalize_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/cdcrecon/cdcrecon/processors/canon"
)

// Each case writes one column on both sides, as two schemaless events
// would carry it, and says whether the hinted comparison finds them equal.
func TestHints(t *testing.T) {
	m := loadMapper(t, "testdata/hints.yaml")
	tbl, _, _ := m.Route("src")
	cases := []struct {
		column, src, tgt string
		equal            bool
	}{
		{"flag", `true`, `1`, true},
		{"flag", `false`, `"f"`, true},
		{"flag", `true`, `0`, false},
		{"flag", `true`, `2`, false}, // not a boolean: kept, and different
		{"amount", `12.3`, `"12.3000"`, true},
		{"amount", `12.3`, `"12.31"`, false},
		{"raw_amount", `12.3`, `"BM4="`, true}, // 0x04CE = 1230 at scale 2
		{"at_ms", `"2024-03-01T10:00:00.123Z"`, `1709287200123`, true},
		{"at_us", `"2024-03-01T10:00:00.123456Z"`, `1709287200123456`, true},
		{"at_us", `"2024-03-01T10:00:00.123456Z"`, `1709287200123457`, false},
		{"day", `"2024-03-01"`, `19783`, true},
		{"doc", `"{\"b\": 1, \"a\": [1.50]}"`, `{"a":[1.5],"b":1.0}`, true},
		{"doc", `"{\"b\": 1}"`, `"{\"b\": \"1\"}"`, false},
		{"zip", `"01234"`, `"01234"`, true},
		{"zip", `1234`, `"1234"`, true},
		{"name", `"  Ann "`, `"ANN"`, true},
		{"name", `"Ann"`, `"Anne"`, false},
		{"when", `"2024-03-01T10:00:00.999Z"`, `"2024-03-01T10:00:00Z"`, true},
		{"code", `"x"`, `"x"`, true},
		{"code", `"x"`, `"X"`, false}, // no hint: exact
		{"unlisted", `1`, `2`, true},  // not in compare: not compared
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s %s %s", c.column, c.src, c.tgt), func(t *testing.T) {
			src := mapMessage(t, m, "src", "", fmt.Sprintf(`{"op":"c","after":{"id":1,%q:%s},"source":{"connector":"postgresql","lsn":1}}`, c.column, c.src))
			tgt := mapMessage(t, m, "tgt", "", fmt.Sprintf(`{"op":"c","after":{"ident":1,%q:%s},"source":{"connector":"mysql","file":"f","pos":1}}`, c.column, c.tgt))
			if len(src.Key) != 1 || len(tgt.Key) != 1 || string(src.KeyBytes) != string(tgt.KeyBytes) {
				t.Fatalf("keys differ: %v %v", src.Key, tgt.Key)
			}
			diff := tbl.Diff(src.Row, tgt.Row)
			if got := !slices.Contains(diff, c.column); got != c.equal {
				t.Errorf("equal = %v, want %v (diff %v)", got, c.equal, diff)
			}
		})
	}
}

// A diff over Summaries — names and digests — names the same columns as a
// diff over the rows themselves.
func TestDiffSummariesMatchesDiff(t *testing.T) {
	m := loadMapper(t, "testdata/orders.yaml")
	tbl, _, _ := m.Route("pg.public.orders")
	values := []string{`null`, `"gift"`, `"GIFT "`, `1.5`, `1.504`, `1.6`, `"__debezium_unavailable_value"`, `true`, `12.30`}
	cols := []string{"note", "weight", "total", "paid", "extra"}
	rnd := rand.New(rand.NewPCG(3, 4))
	row := func(lsn int) string {
		parts := []string{`"id":1`}
		for _, c := range cols {
			if rnd.IntN(4) > 0 {
				parts = append(parts, fmt.Sprintf("%q:%s", c, values[rnd.IntN(len(values))]))
			}
		}
		return fmt.Sprintf(`{"op":"c","after":{%s},"source":{"connector":"postgresql","lsn":%d}}`, strings.Join(parts, ","), lsn)
	}
	var h canon.Hasher
	for i := range 500 {
		a := mapMessage(t, m, "pg.public.orders", "", row(i))
		b := mapMessage(t, m, "pg.public.orders", "", row(i))
		want := tbl.Diff(a.Row, b.Row)
		got := tbl.DiffSummaries(tbl.Summarize(&h, a.Row), tbl.Summarize(&h, b.Row))
		if !slices.Equal(got, want) {
			t.Fatalf("%s / %s: summaries diff %v, rows diff %v", canon.AppendRowJSON(nil, a.Row), canon.AppendRowJSON(nil, b.Row), got, want)
		}
	}
}
