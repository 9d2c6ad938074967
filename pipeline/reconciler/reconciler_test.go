package reconciler_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/datadriven"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/pipeline/internal/stagetest"
	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
	"github.com/cdcrecon/cdcrecon/pipeline/reconciler"
	"github.com/cdcrecon/cdcrecon/pipeline/registry"
	"github.com/cdcrecon/cdcrecon/processors/canon"
	"github.com/cdcrecon/cdcrecon/processors/changes"
	"github.com/cdcrecon/cdcrecon/processors/config"
	"github.com/cdcrecon/cdcrecon/processors/normalize"
	"github.com/cdcrecon/cdcrecon/schemas"
)

var inputs = map[normalize.Side]string{normalize.Source: "pg.public.orders", normalize.Target: "mysql.shop.orders"}

const settings = `
kafka: {partitions: 1}
window: {size: 1m, grace: 5s}
tables:
  - {name: orders, key: [id], source: {topic: pg.public.orders}, target: {topic: mysql.shop.orders}}
`

// TestReconcilerStage runs the stage on its own, on the embedded broker
// and a state store in memory, over the files in testdata/reconciler.
// Each file writes a changes partition by hand (orders, 5s grace), runs
// the stage until the partition is finished and prints what it published:
//
//	changes   one record per line:
//	            SIDE upsert id=N status=S at=MS offset=N  (the row as the side's input had it)
//	            SIDE absent id=N at=MS offset=N           (the row deleted)
//	            mark SIDE at=MS|end                       (a watermark of the side's one input)
//	run       the stage until the partition is finished: its counters,
//	          the drift records in order, then the compensations.
func TestReconcilerStage(t *testing.T) {
	cfg, mapper := parsed(t)
	datadriven.Walk(t, "testdata/reconciler", func(t *testing.T, path string) {
		e := stagetest.New(t, map[string]int32{cfg.Topics.Changes: 1})
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "changes":
				for line := range strings.SplitSeq(strings.TrimSpace(d.Input), "\n") {
					e.Produce(t, &kgo.Record{Topic: cfg.Topics.Changes, Value: changeRecord(t, mapper, line)})
				}
				return ""
			case "run":
				return run(t, e, cfg, mapper)
			}
			d.Fatalf(t, "unknown command %q", d.Cmd)
			return ""
		})
	})
}

// changeRecord is a changes-topic record described by one line of a
// changes command.
func changeRecord(t *testing.T, mapper *normalize.Mapper, line string) []byte {
	t.Helper()
	f := strings.Fields(line)
	if len(f) < 2 {
		t.Fatalf("%q: want SIDE KIND or mark SIDE", line)
	}
	args := map[string]string{}
	for _, a := range f[2:] {
		k, v, _ := strings.Cut(a, "=")
		args[k] = v
	}
	num := func(k string) int64 {
		n, err := strconv.ParseInt(args[k], 10, 64)
		if err != nil {
			t.Fatalf("%q: %s=%q: %v", line, k, args[k], err)
		}
		return n
	}
	side := func(s string) normalize.Side {
		switch s {
		case "source":
			return normalize.Source
		case "target":
			return normalize.Target
		}
		t.Fatalf("%q: no side %q", line, s)
		return 0
	}
	if f[0] == "mark" {
		m := changes.Mark{Side: side(f[1]), Input: changes.InputName(inputs[side(f[1])], 0), Time: changes.End}
		if args["at"] != "end" {
			m.Time = num("at")
		}
		return changes.AppendMark(nil, m)
	}
	s := side(f[0])
	c := changes.Change{Table: "orders", Side: s, Key: canon.AppendKey(nil, []canon.Value{canon.IntValue(num("id"))}), Time: num("at"),
		Origin: changes.Origin{Topic: inputs[s], Offset: num("offset")}}
	switch f[1] {
	case "upsert":
		row := canon.Row{{Name: "id", Value: canon.IntValue(num("id"))}, {Name: "status", Value: canon.StringValue(args["status"])}}
		var h canon.Hasher
		c.Kind, c.Row, c.Digest = changes.Upsert, canon.AppendRow(nil, row), mapper.Tables()[0].Digest(&h, row)
	case "absent":
		c.Kind = changes.Absent
	default:
		t.Fatalf("%q: no change kind %q", line, f[1])
	}
	return changes.AppendChange(nil, &c)
}

// run drives a new stage until the changes partition is finished and
// prints what it published.
func run(t *testing.T, e *stagetest.Env, cfg *config.Config, mapper *normalize.Mapper) string {
	finished := make(chan int32, 1)
	var once sync.Once
	stage := newStage(t, e, cfg, mapper, func(c *reconciler.Config) {
		c.OnFinish = func(p int32) { once.Do(func() { finished <- p }) }
	})
	e.Drive(t, stage, "reconcile", cfg.Topics.Changes, func(int) bool {
		select {
		case <-finished:
			return true
		default:
			return false
		}
	})
	var out strings.Builder
	st := stage.Stats()
	fmt.Fprintf(&out, "changes %d, opened %d, resolved %d, open %d\n", st.Changes, st.Opened, st.Resolved, st.Open)
	serde := registry.NewSerde(nil)
	var drifts, comps []string
	opened := map[string]string{} // drift id → its key
	type named struct{ line, drift, key string }
	var compDrift []named // each compensation and the drift it names
	for _, r := range e.Read(t, cfg.Topics.Drift, cfg.Topics.Compensation) {
		rec, _, _, err := serde.Decode(e.Ctx, r.Value)
		if err != nil {
			t.Fatalf("%s offset %d: %v", r.Topic, r.Offset, err)
		}
		switch rec := rec.(type) {
		case *schemas.Drift:
			line := fmt.Sprintf("drift %s %s %s", jsonOf(t, rec.Key), rec.Kind, rec.Status)
			if len(rec.Columns) > 0 {
				line += fmt.Sprintf(" %v", rec.Columns)
			}
			line += fmt.Sprintf(" opened at %d", rec.OpenedAt.UnixMilli())
			if rec.ResolvedAt != nil {
				line += fmt.Sprintf(", resolved at %d", rec.ResolvedAt.UnixMilli())
			}
			drifts = append(drifts, line)
			opened[rec.ID] = jsonOf(t, rec.Key)
		case *schemas.Compensation:
			line := fmt.Sprintf("compensation %s %s", jsonOf(t, rec.Key), rec.Action)
			if rec.Row != nil {
				line += " " + jsonOf(t, rec.Row)
			}
			comps = append(comps, line)
			compDrift = append(compDrift, named{line, rec.DriftID, jsonOf(t, rec.Key)})
		}
	}
	for _, c := range compDrift {
		if opened[c.drift] != c.key {
			t.Errorf("%s names drift %s, which is not its key's", c.line, c.drift)
		}
	}
	for _, l := range append(drifts, comps...) {
		out.WriteString(l + "\n")
	}
	return out.String()
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestUnreadableChangeStopsThePartition: a changes record the stage
// cannot read stops its partition there, on the first delivery and on
// every redelivery, rather than being passed over once retried.
func TestUnreadableChangeStopsThePartition(t *testing.T) {
	cfg, mapper := parsed(t)
	e := stagetest.New(t, map[string]int32{cfg.Topics.Changes: 1})
	for _, v := range [][]byte{
		changeRecord(t, mapper, "source upsert id=1 status=new at=1000 offset=0"),
		[]byte("not a change"),
		changeRecord(t, mapper, "mark source at=end"),
	} {
		e.Produce(t, &kgo.Record{Topic: cfg.Topics.Changes, Value: v})
	}
	everyDelivery(t, e, cfg, newStage(t, e, cfg, mapper, nil), 3, func(err error) bool {
		return err != nil && strings.Contains(err.Error(), "offset 1:")
	})
}

// TestDeletedHistoryIsReported: a partition assigned to a member with no
// state of it, whose group committed past changes the changes topic no
// longer holds, with no snapshot to start from, is not decided on partial
// input: the member reports ErrHistoryLost on every delivery.
func TestDeletedHistoryIsReported(t *testing.T) {
	cfg, mapper := parsed(t)
	e := stagetest.New(t, map[string]int32{cfg.Topics.Changes: 1})
	for i := range 6 {
		e.Produce(t, &kgo.Record{Topic: cfg.Topics.Changes,
			Value: changeRecord(t, mapper, fmt.Sprintf("source upsert id=%d status=new at=%d offset=%d", i, 1000+i, i))})
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.Broker.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var before, committed kadm.Offsets
	before.AddOffset(cfg.Topics.Changes, 0, 3, -1)
	committed.AddOffset(cfg.Topics.Changes, 0, 4, -1)
	if _, err := adm.DeleteRecords(e.Ctx, before); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CommitOffsets(e.Ctx, "reconcile", committed); err != nil {
		t.Fatal(err)
	}
	stage := newStage(t, e, cfg, mapper, func(c *reconciler.Config) {
		c.History = func(ctx context.Context, partition int32, from, to int64, fn func(int64, []byte) error) error {
			return kafka.ReadRange(ctx, e.Client, cfg.Topics.Changes, partition, from, to, false, func(r *kgo.Record) error { return fn(r.Offset, r.Value) })
		}
	})
	everyDelivery(t, e, cfg, stage, 2, func(err error) bool {
		return errors.Is(err, reconciler.ErrHistoryLost) && strings.Contains(err.Error(), "its state reflects offset 0")
	})
	if len(e.Read(t, cfg.Topics.Drift)) != 0 {
		t.Error("the stage published drift over a partial history")
	}
}

// newStage is a stage of the settings' one partition on e, its Config
// changed by mod (when not nil).
func newStage(t *testing.T, e *stagetest.Env, cfg *config.Config, mapper *normalize.Mapper, mod func(*reconciler.Config)) *reconciler.Stage {
	t.Helper()
	c := reconciler.Config{Settings: cfg, Mapper: mapper, Publisher: e.Publisher, Serde: registry.NewSerde(nil), Store: e.Store,
		Partitions: 1, KeysInMemory: 1000,
		Inputs: map[normalize.Side][]string{
			normalize.Source: {changes.InputName(inputs[normalize.Source], 0)},
			normalize.Target: {changes.InputName(inputs[normalize.Target], 0)}}}
	if mod != nil {
		mod(&c)
	}
	stage, err := reconciler.New(c)
	if err != nil {
		t.Fatal(err)
	}
	return stage
}

// everyDelivery has stage handle the changes partition's first batch n
// times (each delivery nacked, so delivered again) and requires ok of the
// error of each.
func everyDelivery(t *testing.T, e *stagetest.Env, cfg *config.Config, stage *reconciler.Stage, n int, ok func(error) bool) {
	t.Helper()
	sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{ClientConfig: e.Client, ConsumerGroup: "reconcile", Batch: true,
		Assigned: stage.Assigned, Revoked: stage.Revoked})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	msgs, err := sub.Subscribe(e.Ctx, cfg.Topics.Changes)
	if err != nil {
		t.Fatal(err)
	}
	for attempt := range n {
		select {
		case msg := <-msgs:
			if err := stage.Handle(msg); !ok(err) {
				t.Fatalf("delivery %d: %v", attempt+1, err)
			}
			msg.Nack()
		case <-e.Ctx.Done():
			t.Fatalf("delivery %d did not come", attempt+1)
		}
	}
}

// parsed is the settings and their mapper.
func parsed(t *testing.T) (*config.Config, *normalize.Mapper) {
	t.Helper()
	cfg, err := config.Parse([]byte(settings), "reconcile.yaml")
	if err != nil {
		t.Fatal(err)
	}
	mapper, err := normalize.NewMapper(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, mapper
}
