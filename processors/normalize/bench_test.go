package normalize_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/cdcrecon/cdcrecon/processors/canon"
	"github.com/cdcrecon/cdcrecon/processors/config"
	"github.com/cdcrecon/cdcrecon/processors/debezium"
	"github.com/cdcrecon/cdcrecon/processors/normalize"
	"github.com/valyala/fastjson"
)

// benchColumns make a PostgreSQL-shaped orders row of 16 columns; with its
// source block the schemaless event is about 1 KB.
var benchColumns = []struct{ name, typ, logical, value string }{
	{"id", "int64", "", `100042`},
	{"customer_id", "int64", "", `77123`},
	{"status", "string", "", `"shipped"`},
	{"total", "bytes", "org.apache.kafka.connect.data.Decimal", `"AeB4"`},
	{"currency", "string", "", `"EUR"`},
	{"created_at", "int64", "io.debezium.time.MicroTimestamp", `1709287200123456`},
	{"updated_at", "int64", "io.debezium.time.MicroTimestamp", `1709287299000000`},
	{"shipped_at", "string", "io.debezium.time.ZonedTimestamp", `"2024-03-01T10:00:00.123456Z"`},
	{"paid", "boolean", "", `true`},
	{"weight", "double", "", `12.75`},
	{"note", "string", "", `"Leave the parcel at the side door, next to the blue gate. If nobody answers, the neighbours at number 1430 have agreed to take it in; please do not leave it on the porch, where it gets wet when it rains, and ring twice."`},
	{"street", "string", "", `"1428 Elm Street, Apartment 12B"`},
	{"city", "string", "", `"Springwood"`},
	{"postcode", "string", "", `"OH 44101"`},
	{"country", "string", "", `"US"`},
	{"email", "string", "", `"freddy.customer@example.org"`},
}

func benchEvent(withSchema bool) string {
	var after []string
	for _, c := range benchColumns {
		after = append(after, fmt.Sprintf("%q:%s", c.name, c.value))
	}
	payload := `{"before":null,"after":{` + strings.Join(after, ",") + `},` +
		`"source":{"version":"2.7.0.Final","connector":"postgresql","name":"shop","ts_ms":1709287200500,"snapshot":"false","db":"shop","sequence":"[\"24023119\",\"24023128\"]","schema":"public","table":"orders","txId":555,"lsn":24023128,"xmin":null},` +
		`"op":"u","ts_ms":1709287200600,"transaction":null}`
	if !withSchema {
		return payload
	}
	var fields []string
	for _, c := range benchColumns {
		f := fmt.Sprintf(`{"type":%q,"optional":true,"field":%q`, c.typ, c.name)
		if c.logical != "" {
			f += fmt.Sprintf(`,"name":%q,"version":1`, c.logical)
		}
		if strings.HasSuffix(c.logical, "Decimal") {
			f += `,"parameters":{"scale":"4","connect.decimal.precision":"12"}`
		}
		fields = append(fields, f+"}")
	}
	row := `{"type":"struct","fields":[` + strings.Join(fields, ",") + `],"optional":true,"name":"shop.public.orders.Value","field":"%s"}`
	source := `{"type":"struct","fields":[{"type":"string","optional":false,"field":"version"},{"type":"string","optional":false,"field":"connector"},{"type":"string","optional":false,"field":"name"},{"type":"int64","optional":false,"field":"ts_ms"},{"type":"string","optional":true,"name":"io.debezium.data.Enum","version":1,"parameters":{"allowed":"true,last,false,incremental"},"default":"false","field":"snapshot"},{"type":"string","optional":false,"field":"db"},{"type":"string","optional":true,"field":"sequence"},{"type":"string","optional":false,"field":"schema"},{"type":"string","optional":false,"field":"table"},{"type":"int64","optional":true,"field":"txId"},{"type":"int64","optional":true,"field":"lsn"},{"type":"int64","optional":true,"field":"xmin"}],"optional":false,"name":"io.debezium.connector.postgresql.Source","field":"source"}`
	schema := `{"type":"struct","fields":[` + fmt.Sprintf(row, "before") + `,` + fmt.Sprintf(row, "after") + `,` + source +
		`,{"type":"string","optional":false,"field":"op"},{"type":"int64","optional":true,"field":"ts_ms"},{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"},{"type":"int64","optional":false,"field":"total_order"},{"type":"int64","optional":false,"field":"data_collection_order"}],"optional":true,"name":"event.block","version":1,"field":"transaction"}],"optional":false,"name":"shop.public.orders.Envelope","version":1}`
	return `{"schema":` + schema + `,"payload":` + payload + `}`
}

const benchConfig = `
tables:
  - name: orders
    key: [id]
    source: {topic: shop.public.orders}
    target: {topic: replica.orders}
    ignore: [updated_at]
    normalize:
      total: {as: decimal}
      created_at: {as: timestamp, unit: us, timestamp_precision: ms}
      shipped_at: {as: timestamp}
      weight: {tolerance: 0.01}
`

// BenchmarkEvent measures decode + normalise + digest of one event, the
// per-event work before deduplication, for the event without and with its
// schema: through a Worker (the pipeline's path) and through Decode then
// Table.Map. The baseline sub-benchmarks parse the same bytes with fastjson
// into a tree and nothing more: the cost of merely reading the JSON.
func BenchmarkEvent(b *testing.B) {
	cfg, err := config.Parse([]byte(benchConfig), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	m, err := normalize.NewMapper(cfg)
	if err != nil {
		b.Fatal(err)
	}
	tbl, side, _ := m.Route("shop.public.orders")
	key := []byte(`{"id":100042}`)
	for _, mode := range []struct {
		name   string
		schema bool
	}{{"schemaless", false}, {"with-schema", true}} {
		value := []byte(benchEvent(mode.schema))
		b.Run(fmt.Sprintf("%s-%dB", mode.name, len(value)), func(b *testing.B) {
			w := m.NewWorker(debezium.NewDecoder(debezium.Config{}))
			var h canon.Hasher
			ctx := context.Background()
			b.SetBytes(int64(len(value)))
			b.ReportAllocs()
			for b.Loop() {
				c, err := w.Map(ctx, "shop.public.orders", key, value)
				if err != nil {
					b.Fatal(err)
				}
				if len(c.Row) != 14 {
					b.Fatalf("row has %d columns", len(c.Row))
				}
				_ = tbl.Digest(&h, c.Row)
			}
		})
		b.Run(fmt.Sprintf("decode-then-map-%s-%dB", mode.name, len(value)), func(b *testing.B) {
			dec := debezium.NewDecoder(debezium.Config{})
			var h canon.Hasher
			ctx := context.Background()
			b.SetBytes(int64(len(value)))
			b.ReportAllocs()
			for b.Loop() {
				ev, err := dec.Decode(ctx, key, value)
				if err != nil {
					b.Fatal(err)
				}
				c, err := tbl.Map(side, &ev, value)
				if err != nil {
					b.Fatal(err)
				}
				_ = tbl.Digest(&h, c.Row)
			}
		})
		b.Run(fmt.Sprintf("baseline-fastjson-parse-%s-%dB", mode.name, len(value)), func(b *testing.B) {
			var p fastjson.Parser
			b.SetBytes(int64(len(value)))
			for b.Loop() {
				if _, err := p.ParseBytes(value); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
