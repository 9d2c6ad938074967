package normalize_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/cdcrecon/cdcrecon/processors/canon"
	"github.com/cdcrecon/cdcrecon/processors/debezium"
)

// The Worker's projected path and Decode followed by Table.Map must give
// the same Change for every message, whatever the column order, new
// columns, escapes, deletes, soft deletes and schemas.
func TestWorkerMatchesDecodeThenMap(t *testing.T) {
	m := loadMapper(t, "testdata/orders.yaml")
	w := m.NewWorker(debezium.NewDecoder(debezium.Config{}))
	dec := debezium.NewDecoder(debezium.Config{})
	rnd := rand.New(rand.NewPCG(1, 2))
	cols := []string{`"note":"gift"`, `"total":"12.30"`, `"paid":true`, `"weight":1.5`, `"updated_at":7`,
		`"extra_%d":%d`, `"created_at":"2024-03-01T10:00:00.123Z"`, `"sh\u0069pped_at":"2024-03-01T10:00:00Z"`, `"note":null`}
	tcols := []string{`"order_total":"12.3000"`, `"paid":1`, `"is_deleted":%d`, `"order_id":%d`, `"note":"GIFT "`, `"weight":1.504`}
	messages := []struct{ topic, key, value string }{
		{"pg.public.orders", "", readFile(t, "testdata/pg-source.json")},
		{"mysql.shop.orders", "", readFile(t, "testdata/mysql-target.json")},
		{"mysql.shop.orders", "", readFile(t, "testdata/mysql-target-schemaless.json")},
		// An unwrapped row with a column named after: not an image.
		{"pg.public.orders", "", `{"id":5,"after":{"x":1},"note":"n","__op":"u","__source_ts_ms":5}`},
		{"pg.public.orders", "", `{"id":5,"after":{"x":1},"note":"n","__op":"u","__source_ts_ms":5}`},
	}
	for i := range 300 {
		rnd.Shuffle(len(cols), func(a, b int) { cols[a], cols[b] = cols[b], cols[a] })
		n := rnd.IntN(len(cols)) + 1
		parts := []string{fmt.Sprintf(`"id":%d`, i%7)}
		for _, c := range cols[:n] {
			if strings.Contains(c, "%d") {
				c = fmt.Sprintf(c, i%5, i)
			}
			parts = append(parts, c)
		}
		op := []string{"c", "u", "r", "d"}[rnd.IntN(4)]
		row := "{" + strings.Join(parts, ",") + "}"
		before, after := "null", row
		if op == "d" {
			before, after = row, "null"
		}
		messages = append(messages, struct{ topic, key, value string }{"pg.public.orders", "",
			fmt.Sprintf(`{"before":%s,"after":%s,"source":{"connector":"postgresql","ts_ms":%d,"lsn":%d},"op":%q}`, before, after, 1000+i, i, op)})
		rnd.Shuffle(len(tcols), func(a, b int) { tcols[a], tcols[b] = tcols[b], tcols[a] })
		var tparts []string
		for _, c := range tcols {
			if strings.Contains(c, "%d") {
				c = fmt.Sprintf(c, i%2)
			}
			tparts = append(tparts, c)
		}
		key := ""
		if i%3 == 0 {
			key = fmt.Sprintf(`{"order_id":%d}`, i%2)
		}
		messages = append(messages, struct{ topic, key, value string }{"mysql.shop.orders", key,
			fmt.Sprintf(`{"before":null,"after":{%s},"source":{"connector":"mysql","ts_ms":%d,"file":"b","pos":%d},"op":"u"}`, strings.Join(tparts, ","), 2000+i, i)})
	}
	for i, msg := range messages {
		var key []byte
		if msg.key != "" {
			key = []byte(msg.key)
		}
		got, gerr := w.Map(context.Background(), msg.topic, key, []byte(msg.value))
		ev, err := dec.Decode(context.Background(), key, []byte(msg.value))
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		tbl, side, _ := m.Route(msg.topic)
		want, werr := tbl.Map(side, &ev, []byte(msg.value))
		if (gerr != nil) != (werr != nil) {
			t.Fatalf("message %d: worker error %v, map error %v", i, gerr, werr)
		}
		if got.Kind != want.Kind || got.Identity != want.Identity || string(got.KeyBytes) != string(want.KeyBytes) ||
			got.Unresolved != want.Unresolved || (got.Row == nil) != (want.Row == nil) ||
			string(canon.AppendRow(nil, got.Row)) != string(canon.AppendRow(nil, want.Row)) {
			t.Fatalf("message %d %s:\n worker %+v %s\n map    %+v %s", i, msg.value, got, canon.AppendRowJSON(nil, got.Row), want, canon.AppendRowJSON(nil, want.Row))
		}
	}
	if _, err := w.Map(context.Background(), "nobody.reads.this", nil, []byte(`{}`)); err == nil {
		t.Error("unknown topic accepted")
	}
}

// Table.Map is safe for concurrent use, also while columns are learnt.
func TestMapConcurrently(t *testing.T) {
	m := loadMapper(t, "testdata/orders.yaml")
	tbl, side, _ := m.Route("pg.public.orders")
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			dec := debezium.NewDecoder(debezium.Config{})
			for i := range 200 {
				v := fmt.Sprintf(`{"op":"c","after":{"id":%d,"c%d":%d,"note":"n"},"source":{"connector":"postgresql","lsn":%d}}`, i, (g*7+i)%23, i, i)
				ev, err := dec.Decode(context.Background(), nil, []byte(v))
				if err != nil {
					t.Error(err)
					return
				}
				c, err := tbl.Map(side, &ev, []byte(v))
				if err != nil {
					t.Error(err)
					return
				}
				if len(c.Row) != 2 || c.Row[0].Name > c.Row[1].Name {
					t.Errorf("row %s", canon.AppendRowJSON(nil, c.Row))
					return
				}
			}
		})
	}
	wg.Wait()
}
