package normalize_test

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/cdcrecon/cdcrecon/processors/canon"
	"github.com/cdcrecon/cdcrecon/processors/config"
	"github.com/cdcrecon/cdcrecon/processors/debezium"
	"github.com/cdcrecon/cdcrecon/processors/normalize"
)

func loadMapper(t *testing.T, file string) *normalize.Mapper {
	t.Helper()
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	m, err := normalize.NewMapper(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// mapMessage decodes and maps one message of a topic.
func mapMessage(t *testing.T, m *normalize.Mapper, topic, key, value string) normalize.Change {
	t.Helper()
	dec := debezium.NewDecoder(debezium.Config{})
	var kb []byte
	if key != "" {
		kb = []byte(key)
	}
	ev, err := dec.Decode(context.Background(), kb, []byte(value))
	if err != nil {
		t.Fatalf("decoding: %v", err)
	}
	tbl, side, ok := m.Route(topic)
	if !ok {
		t.Fatalf("no route for %s", topic)
	}
	c, err := tbl.Map(side, &ev, []byte(value))
	if err != nil {
		t.Fatalf("mapping: %v", err)
	}
	return c
}

type digested struct {
	row canon.Row
	sum uint64
}

func digest(t *testing.T, m *normalize.Mapper, c normalize.Change) digested {
	t.Helper()
	if c.Kind != normalize.Row || c.Row == nil {
		t.Fatalf("change = %+v, want a present row", c)
	}
	tbl, _, _ := m.Route("pg.public.orders")
	var h canon.Hasher
	return digested{c.Row, tbl.Digest(&h, c.Row)}
}

// One logical row written by a PostgreSQL source and by a MySQL-shaped
// target — decimal scale 2 against 4, MicroTimestamp against Timestamp,
// ZonedTimestamp against MicroTimestamp, boolean against TINYINT(1) with
// as: bool, renamed columns, with and without schemas — has one digest.
func TestEquivalentRowsShareADigest(t *testing.T) {
	m := loadMapper(t, "testdata/orders.yaml")
	tbl, _, _ := m.Route("pg.public.orders")
	src := mapMessage(t, m, "pg.public.orders", "", readFile(t, "testdata/pg-source.json"))
	tgt := mapMessage(t, m, "mysql.shop.orders", "", readFile(t, "testdata/mysql-target.json"))
	loose := mapMessage(t, m, "mysql.shop.orders", "", readFile(t, "testdata/mysql-target-schemaless.json"))
	for _, c := range []normalize.Change{src, tgt, loose} {
		if got := string(canon.AppendKey(nil, c.Key)); got != string(canon.AppendKey(nil, []canon.Value{canon.IntValue(42)})) {
			t.Errorf("%s key = %v", c.Side, c.Key)
		}
	}
	s, d1, d2 := digest(t, m, src), digest(t, m, tgt), digest(t, m, loose)
	if s.sum != d1.sum {
		t.Errorf("schema target digest differs:\n source %s\n target %s", canon.AppendRowJSON(nil, s.row), canon.AppendRowJSON(nil, d1.row))
	}
	if s.sum != d2.sum {
		t.Errorf("schemaless target digest differs:\n source %s\n target %s", canon.AppendRowJSON(nil, s.row), canon.AppendRowJSON(nil, d2.row))
	}
	if !tbl.Equal(s.row, s.sum, d1.row, d1.sum) || !tbl.Equal(s.row, s.sum, d2.row, d2.sum) {
		t.Errorf("rows not equal: diff %v / %v", tbl.Diff(s.row, d1.row), tbl.Diff(s.row, d2.row))
	}
	// The ignored column and the soft-delete column are not compared; the
	// key is not part of the row.
	for _, c := range s.row {
		if c.Name == "updated_at" || c.Name == "id" || c.Name == "is_deleted" {
			t.Errorf("row holds %s", c.Name)
		}
	}
}

// Each single differing value changes the digest and is named by Diff.
func TestEachDifferenceIsNamed(t *testing.T) {
	m := loadMapper(t, "testdata/orders.yaml")
	tbl, _, _ := m.Route("pg.public.orders")
	src := digest(t, m, mapMessage(t, m, "pg.public.orders", "", readFile(t, "testdata/pg-source.json")))
	target := readFile(t, "testdata/mysql-target.json")
	cases := []struct{ from, to, column string }{
		{`"order_total":"AeB4"`, `"order_total":"AeB5"`, "total"},                        // 12.3001
		{`"created_at":1709287200123,`, `"created_at":1709287200124,`, "created_at"},     // 1 ms later
		{`"shipped_at":1709287200123456`, `"shipped_at":1709287200123457`, "shipped_at"}, // 1 µs later
		{`"paid":1`, `"paid":0`, "paid"},                                                 // false
		{`"note":"gift"`, `"note":"gifts"`, "note"},                                      // another word
		{`"note":"gift"`, `"note":null`, "note"},                                         // null
		{`"weight":1.5,`, `"weight":1.52,`, "weight"},                                    // beyond the tolerance
		{`"updated_at":1709287301000`, `"updated_at":1`, ""},                             // ignored
	}
	for _, c := range cases {
		t.Run(c.column+"/"+c.to, func(t *testing.T) {
			if !strings.Contains(target, c.from) {
				t.Fatalf("target lacks %s", c.from)
			}
			mutated := digest(t, m, mapMessage(t, m, "mysql.shop.orders", "", strings.Replace(target, c.from, c.to, 1)))
			diff := tbl.Diff(src.row, mutated.row)
			if c.column == "" {
				if len(diff) != 0 || mutated.sum != src.sum {
					t.Fatalf("ignored column changed the comparison: diff %v", diff)
				}
				return
			}
			if !slices.Equal(diff, []string{c.column}) {
				t.Errorf("diff = %v, want [%s]", diff, c.column)
			}
			if c.column != "weight" && mutated.sum == src.sum {
				t.Errorf("row digest unchanged")
			}
			if tbl.Equal(src.row, src.sum, mutated.row, mutated.sum) {
				t.Errorf("rows still equal")
			}
		})
	}
}

func TestSoftDeleteMakesTheRowAbsent(t *testing.T) {
	m := loadMapper(t, "testdata/orders.yaml")
	target := strings.Replace(readFile(t, "testdata/mysql-target.json"), `"is_deleted":0`, `"is_deleted":1`, 1)
	c := mapMessage(t, m, "mysql.shop.orders", "", target)
	if c.Kind != normalize.Row || c.Row != nil {
		t.Fatalf("soft-deleted row = %+v, want an absent row", c)
	}
	if len(c.Key) != 1 {
		t.Fatalf("key = %v", c.Key)
	}
}

func decodeJSON(t *testing.T, value string) debezium.Event {
	t.Helper()
	ev, err := debezium.NewDecoder(debezium.Config{}).Decode(context.Background(), nil, []byte(value))
	if err != nil {
		t.Fatal(err)
	}
	return ev
}
