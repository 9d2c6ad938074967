package ingest_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/pipeline/ingest"
	"github.com/cdcrecon/cdcrecon/pipeline/internal/stagetest"
	"github.com/cdcrecon/cdcrecon/pipeline/registry"
	"github.com/cdcrecon/cdcrecon/processors/changes"
	"github.com/cdcrecon/cdcrecon/processors/config"
	"github.com/cdcrecon/cdcrecon/processors/dedupe"
	"github.com/cdcrecon/cdcrecon/processors/normalize"
)

const input = "pg.public.orders"

// event is a schemaless Debezium PostgreSQL event of orders.
func event(op string, id int, status string, lsn, ts int64) []byte {
	return fmt.Appendf(nil, `{"before":null,"after":{"id":%d,"status":%q},"source":{"version":"3.6.1.Final","connector":"postgresql","name":"pg",`+
		`"ts_ms":%d,"snapshot":"false","db":"shop","sequence":"[\"%d\",\"%d\"]","schema":"public","table":"orders","txId":5,"lsn":%d,"xmin":null},`+
		`"op":%q,"ts_ms":%d}`, id, status, ts, lsn-1, lsn, lsn, op, ts+3)
}

// TestIngestStage: the stage on its own, on the embedded broker and a
// state store in memory. One input partition carries a create, the
// connector's re-send of it, an update and a message that is not JSON.
// The create and the update go to the changes partition of their key, a
// watermark at the latest event time to every changes partition, the bad
// message to the dead-letter topic with its reason; the re-send is counted
// as a duplicate and not published.
func TestIngestStage(t *testing.T) {
	e := stagetest.New(t, map[string]int32{input: 1, "changes": 4, "dlq": 1})
	recs := []*kgo.Record{
		{Topic: input, Key: []byte(`{"id":1}`), Value: event("c", 1, "new", 100, 1000)},
		{Topic: input, Key: []byte(`{"id":1}`), Value: event("c", 1, "new", 100, 1000)}, // re-sent
		{Topic: input, Key: []byte(`{"id":1}`), Value: event("u", 1, "paid", 200, 2000)},
		{Topic: input, Key: []byte(`{"id":2}`), Value: []byte(`not json`)},
	}
	e.Produce(t, recs...)

	cfg, err := config.Parse([]byte(`
tables:
  - {name: orders, key: [id], source: {topic: pg.public.orders}, target: {topic: mysql.shop.orders}}
`), "ingest.yaml")
	if err != nil {
		t.Fatal(err)
	}
	mapper, err := normalize.NewMapper(cfg)
	if err != nil {
		t.Fatal(err)
	}
	stage, err := ingest.New(ingest.Config{Mapper: mapper, Store: e.Store, Publisher: e.Publisher, Serde: registry.NewSerde(nil),
		ChangesTopic: "changes", Partitions: 4, DLQTopic: "dlq", Dedupe: dedupe.Config{Retention: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	e.Drive(t, stage, "ingest", input, func(handled int) bool { return handled >= len(recs) })
	if n, d, i := stage.Stats.Events.Load(), stage.Stats.Duplicates.Load(), stage.Stats.Invalid.Load(); n != 4 || d != 1 || i != 1 {
		t.Errorf("events %d, duplicates %d, invalid %d; want 4, 1, 1", n, d, i)
	}

	// What the stage published.
	var published []changes.Change
	var dlq []*kgo.Record
	marks := map[int32]int64{}
	for _, r := range e.Read(t, "changes", "dlq") {
		if r.Topic == "dlq" {
			dlq = append(dlq, r)
			continue
		}
		c, m, err := changes.Decode(r.Value)
		if err != nil {
			t.Fatalf("changes partition %d offset %d: %v", r.Partition, r.Offset, err)
		}
		if m != nil {
			if m.Side != normalize.Source || m.Input != input+"/0" {
				t.Errorf("mark %+v", *m)
			}
			marks[r.Partition] = max(marks[r.Partition], m.Time)
			continue
		}
		if want := changes.Partition(r.Key, 4); r.Partition != want {
			t.Errorf("change %+v on partition %d, its key's is %d", c, r.Partition, want)
		}
		published = append(published, *c)
	}
	if len(published) != 2 || published[0].Kind != changes.Upsert || published[1].Kind != changes.Upsert ||
		published[0].Time != 1000 || published[1].Time != 2000 || published[0].Origin.Offset != 0 || published[1].Origin.Offset != 2 {
		t.Errorf("published %+v; want the create at offset 0 and the update at offset 2", published)
	}
	for p := range int32(4) {
		if marks[p] != 2000 {
			t.Errorf("changes partition %d: latest watermark %d, want 2000", p, marks[p])
		}
	}
	if len(dlq) != 1 || string(dlq[0].Value) == "" {
		t.Errorf("dead letters %d, want the one message that is not JSON", len(dlq))
	}
}
