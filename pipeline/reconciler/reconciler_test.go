package reconciler_test

import (
	"encoding/json"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/pipeline/internal/stagetest"
	"github.com/cdcrecon/cdcrecon/pipeline/reconciler"
	"github.com/cdcrecon/cdcrecon/pipeline/registry"
	"github.com/cdcrecon/cdcrecon/processors/canon"
	"github.com/cdcrecon/cdcrecon/processors/changes"
	"github.com/cdcrecon/cdcrecon/processors/config"
	"github.com/cdcrecon/cdcrecon/processors/normalize"
	"github.com/cdcrecon/cdcrecon/schemas"
)

const (
	source = "pg.public.orders/0"
	target = "mysql.shop.orders/0"
)

// TestReconcilerStage: the stage on its own, on the embedded broker and a
// state store in memory, reading a changes partition written by hand:
// row 1 on both sides with the same row, row 2 on the source only, row 3
// on the target only, row 1's change delivered twice (an ingest member
// that crashed publishes again), then both inputs' ends. It must open
// exactly missing_in_target for row 2 and extra_in_target for row 3,
// publish their compensations, and say the partition finished.
func TestReconcilerStage(t *testing.T) {
	cfg, err := config.Parse([]byte(`
kafka: {partitions: 1}
window: {size: 1m, grace: 5s}
tables:
  - {name: orders, key: [id], source: {topic: pg.public.orders}, target: {topic: mysql.shop.orders}}
`), "reconcile.yaml")
	if err != nil {
		t.Fatal(err)
	}
	mapper, err := normalize.NewMapper(cfg)
	if err != nil {
		t.Fatal(err)
	}
	table := mapper.Tables()[0]
	var h canon.Hasher
	change := func(side normalize.Side, id int64, status string, off int64) []byte {
		row := canon.Row{{Name: "status", Value: canon.StringValue(status)}}
		c := changes.Change{Table: "orders", Side: side, Kind: changes.Upsert, Key: canon.AppendKey(nil, []canon.Value{canon.IntValue(id)}),
			Row: canon.AppendRow(nil, row), Digest: table.Digest(&h, row), Time: 1000 * id,
			Origin: changes.Origin{Topic: map[normalize.Side]string{normalize.Source: "pg.public.orders", normalize.Target: "mysql.shop.orders"}[side], Offset: off}}
		return changes.AppendChange(nil, &c)
	}
	values := [][]byte{
		change(normalize.Source, 1, "new", 0),
		change(normalize.Target, 1, "new", 0),
		change(normalize.Target, 1, "new", 0), // published again
		change(normalize.Source, 2, "new", 1),
		change(normalize.Target, 3, "new", 1),
		changes.AppendMark(nil, changes.Mark{Side: normalize.Source, Input: source, Time: changes.End}),
		changes.AppendMark(nil, changes.Mark{Side: normalize.Target, Input: target, Time: changes.End}),
	}
	e := stagetest.New(t, map[string]int32{cfg.Topics.Changes: 1})
	for _, v := range values {
		e.Produce(t, &kgo.Record{Topic: cfg.Topics.Changes, Value: v})
	}
	finished := make(chan int32, 1)
	var once sync.Once
	stage, err := reconciler.New(reconciler.Config{Settings: cfg, Mapper: mapper, Publisher: e.Publisher, Serde: registry.NewSerde(nil), Store: e.Store,
		Partitions: 1, KeysInMemory: 1000, Inputs: map[normalize.Side][]string{normalize.Source: {source}, normalize.Target: {target}},
		OnFinish: func(p int32) { once.Do(func() { finished <- p }) }})
	if err != nil {
		t.Fatal(err)
	}
	e.Drive(t, stage, "reconcile", cfg.Topics.Changes, func(int) bool {
		select {
		case p := <-finished:
			if p != 0 {
				t.Errorf("partition %d finished", p)
			}
			return true
		default:
			return false
		}
	})
	if st := stage.Stats(); st.Changes != 4 || st.Open != 2 {
		t.Errorf("stats %+v: want the 4 distinct changes applied and 2 drifts open", st)
	}

	got := map[string]string{}
	comps := map[string]schemas.Action{}
	serde := registry.NewSerde(nil)
	for _, r := range e.Read(t, cfg.Topics.Drift, cfg.Topics.Compensation) {
		rec, _, _, err := serde.Decode(e.Ctx, r.Value)
		if err != nil {
			t.Fatalf("%s offset %d: %v", r.Topic, r.Offset, err)
		}
		switch rec := rec.(type) {
		case *schemas.Drift:
			got[keyOf(t, rec.Key)] = string(rec.Kind) + " " + string(rec.Status)
		case *schemas.Compensation:
			comps[keyOf(t, rec.Key)] = rec.Action
		}
	}
	want := map[string]string{`{"id":2}`: "missing_in_target open", `{"id":3}`: "extra_in_target open"}
	if len(got) != len(want) || got[`{"id":2}`] != want[`{"id":2}`] || got[`{"id":3}`] != want[`{"id":3}`] {
		t.Errorf("drift %v, want %v", got, want)
	}
	if comps[`{"id":2}`] != schemas.Upsert || comps[`{"id":3}`] != schemas.Delete || len(comps) != 2 {
		t.Errorf("compensations %v, want an upsert of 2 and a delete of 3", comps)
	}
}

func keyOf(t *testing.T, k schemas.Columns) string {
	t.Helper()
	b, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
