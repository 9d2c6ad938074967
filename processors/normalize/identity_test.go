package normalize_test

import (
	"fmt"
	"testing"

	"github.com/cdcrecon/cdcrecon/processors/canon"
	"github.com/cdcrecon/cdcrecon/processors/normalize"
)

// pg builds a schemaless PostgreSQL change event.
func pg(op string, before, after string, lsn int, snapshot bool) string {
	return fmt.Sprintf(`{"before":%s,"after":%s,"source":{"connector":"postgresql","ts_ms":1000,"snapshot":%v,"table":"orders","txId":9,"lsn":%d},"op":%q,"ts_ms":1001}`,
		before, after, snapshot, lsn, op)
}

func TestIdentity(t *testing.T) {
	m := loadMapper(t, "testdata/orders.yaml")
	row := func(id int) string { return fmt.Sprintf(`{"id":%d,"total":"1.00","note":"x"}`, id) }
	id := func(topic, key, value string) [16]byte { return mapMessage(t, m, topic, key, value).Identity }

	// A re-sent event (connector restart) is the same event.
	first := id("pg.public.orders", `{"id":1}`, pg("u", "null", row(1), 500, false))
	if again := id("pg.public.orders", `{"id":1}`, pg("u", "null", row(1), 500, false)); again != first {
		t.Error("re-sent event has another identity")
	}
	// All rows of a snapshot share one position; they are distinct events.
	if id("pg.public.orders", "", pg("r", "null", row(1), 100, true)) == id("pg.public.orders", "", pg("r", "null", row(2), 100, true)) {
		t.Error("two snapshot rows at one position share an identity")
	}
	// A primary-key change is a delete and a create at one position.
	del := id("pg.public.orders", "", pg("d", row(1), "null", 700, false))
	cre := id("pg.public.orders", "", pg("c", "null", row(2), 700, false))
	if del == cre {
		t.Error("delete and create of a key change share an identity")
	}
	// The same key and op at another position is another event.
	if id("pg.public.orders", `{"id":1}`, pg("u", "null", row(1), 501, false)) == first {
		t.Error("another position gives the same identity")
	}
	// Sides are told apart even with equal positions.
	tgt := `{"before":null,"after":{"order_id":1,"order_total":"1.00","note":"x"},"source":{"connector":"postgresql","ts_ms":1000,"lsn":500,"txId":9},"op":"u"}`
	if id("mysql.shop.orders", "", tgt) == first {
		t.Error("source and target events share an identity")
	}
	// Without a position, the value's hash identifies the event.
	noPos := `{"before":null,"after":{"order_id":1,"note":"x"},"source":{"ts_ms":1000},"op":"u"}`
	once, twice := id("mysql.shop.orders", "", noPos), id("mysql.shop.orders", "", noPos)
	if once != twice {
		t.Error("position-less event is not stable")
	}
	if id("mysql.shop.orders", "", noPos) == id("mysql.shop.orders", "", noPos[:len(noPos)-1]+`,"ts_ms":5}`) {
		t.Error("position-less events with other values share an identity")
	}
}

func TestKinds(t *testing.T) {
	m := loadMapper(t, "testdata/orders.yaml")
	cases := []struct {
		name, topic, key, value string
		kind                    normalize.ChangeKind
		present                 bool
	}{
		{"insert", "pg.public.orders", "", pg("c", "null", `{"id":1,"note":"a"}`, 1, false), normalize.Row, true},
		{"delete", "pg.public.orders", "", pg("d", `{"id":1,"note":"a"}`, "null", 2, false), normalize.Row, false},
		{"delete with key only", "pg.public.orders", `{"id":1}`, pg("d", "null", "null", 2, false), normalize.Row, false},
		{"truncate", "pg.public.orders", "", `{"source":{"connector":"postgresql","ts_ms":5,"lsn":3},"op":"t","ts_ms":6}`, normalize.Truncate, false},
		{"heartbeat", "pg.public.orders", "", `{"ts_ms":77}`, normalize.Heartbeat, false},
		{"tombstone", "pg.public.orders", `{"id":1}`, ``, normalize.Skip, false},
		{"transaction", "pg.public.orders", "", `{"status":"BEGIN","id":"1:2","ts_ms":1}`, normalize.Skip, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := mapMessage(t, m, c.topic, c.key, c.value)
			if got.Kind != c.kind || (got.Row != nil) != c.present {
				t.Errorf("kind %v present %v, want %v %v", got.Kind, got.Row != nil, c.kind, c.present)
			}
			if c.kind == normalize.Row && (len(got.Key) != 1 || !canon.Equal(got.Key[0], canon.IntValue(1))) {
				t.Errorf("key = %v", got.Key)
			}
		})
	}
}

func TestKeyMissingIsAnError(t *testing.T) {
	m := loadMapper(t, "testdata/orders.yaml")
	tbl, side, _ := m.Route("pg.public.orders")
	ev := decodeJSON(t, pg("c", "null", `{"note":"no id"}`, 1, false))
	if _, err := tbl.Map(side, &ev, nil); err == nil {
		t.Fatal("no error for a row without its key")
	}
}

// An unchanged TOAST value is the side's previous value of the column.
func TestToastPlaceholderResolvesAgainstThePreviousRow(t *testing.T) {
	m := loadMapper(t, "testdata/orders.yaml")
	tbl, _, _ := m.Route("pg.public.orders")
	prev := mapMessage(t, m, "pg.public.orders", "", pg("c", "null", `{"id":1,"note":"long text","total":"2.50"}`, 1, false))
	upd := mapMessage(t, m, "pg.public.orders", "", pg("u", "null", `{"id":1,"note":"__debezium_unavailable_value","total":"3.00"}`, 2, false))
	if !upd.Unresolved {
		t.Fatal("placeholder not flagged")
	}
	upd.Resolve(prev.Row)
	if upd.Unresolved {
		t.Fatal("placeholder not resolved")
	}
	if v, _ := upd.Row.Get("note"); !canon.Equal(v, canon.StringValue("long text")) {
		t.Errorf("note = %s", canon.AppendJSON(nil, v))
	}
	if v, _ := upd.Row.Get("total"); !canon.Equal(v, canon.IntValue(3)) {
		t.Errorf("total = %s, want the new value", canon.AppendJSON(nil, v))
	}
	// Unresolvable (no earlier row): the column is unknown, not a difference.
	lone := mapMessage(t, m, "pg.public.orders", "", pg("u", "null", `{"id":1,"note":"__debezium_unavailable_value"}`, 3, false))
	lone.Resolve(nil)
	other := mapMessage(t, m, "pg.public.orders", "", pg("u", "null", `{"id":1,"note":"anything"}`, 3, false))
	if d := tbl.Diff(lone.Row, other.Row); len(d) != 0 {
		t.Errorf("diff = %v, want none", d)
	}
}
