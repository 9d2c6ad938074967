package ingest_test

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/pipeline/ingest"
	"github.com/cdcrecon/cdcrecon/pipeline/internal/stagetest"
	"github.com/cdcrecon/cdcrecon/pipeline/registry"
	"github.com/cdcrecon/cdcrecon/processors/canon"
	"github.com/cdcrecon/cdcrecon/processors/changes"
	"github.com/cdcrecon/cdcrecon/processors/config"
	"github.com/cdcrecon/cdcrecon/processors/dedupe"
	"github.com/cdcrecon/cdcrecon/processors/normalize"
	"github.com/cdcrecon/cdcrecon/schemas"
)

const (
	input      = "pg.public.orders"
	partitions = 4
)

// TestIngestStage runs the stage on its own, on the embedded broker and a
// state store in memory, over the files in testdata/ingest. Each file
// produces Debezium PostgreSQL events of one orders partition, then runs
// the stage over them and prints what it published:
//
//	produce                 one event per line:
//	                          c|u|r id=N status=S lsn=N ts=MS  (a row written)
//	                          d id=N status=S lsn=N ts=MS      (a row deleted)
//	                          truncate lsn=N ts=MS
//	                          tombstone id=N                   (a null value)
//	                          raw id=N TEXT                    (TEXT as the value)
//	run                     the stage until it has handled every record:
//	                        its counters, then each change by input offset,
//	                        the latest watermark of each changes partition,
//	                        and each dead letter.
func TestIngestStage(t *testing.T) {
	datadriven.Walk(t, "testdata/ingest", func(t *testing.T, path string) {
		e := stagetest.New(t, map[string]int32{input: 1, "changes": partitions, "dlq": 1})
		var produced int
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "produce":
				var recs []*kgo.Record
				for line := range strings.SplitSeq(strings.TrimSpace(d.Input), "\n") {
					recs = append(recs, record(t, line))
				}
				e.Produce(t, recs...)
				produced += len(recs)
				return ""
			case "run":
				return run(t, e, produced)
			}
			d.Fatalf(t, "unknown command %q", d.Cmd)
			return ""
		})
	})
}

// record is an input record described by one line of a produce command.
func record(t *testing.T, line string) *kgo.Record {
	t.Helper()
	op, rest, _ := strings.Cut(line, " ")
	args := map[string]string{}
	for f := range strings.FieldsSeq(rest) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			break
		}
		args[k] = v
	}
	num := func(k string) int64 {
		n, err := strconv.ParseInt(args[k], 10, 64)
		if err != nil && op != "raw" && op != "tombstone" {
			t.Fatalf("%q: %s=%q: %v", line, k, args[k], err)
		}
		return n
	}
	key := fmt.Appendf(nil, `{"id":%s}`, args["id"])
	row := fmt.Sprintf(`{"id":%s,"status":%q}`, args["id"], args["status"])
	source := func(lsn, ts int64) string {
		return fmt.Sprintf(`{"version":"3.6.1.Final","connector":"postgresql","name":"pg","ts_ms":%d,"snapshot":"false","db":"shop",`+
			`"sequence":"[\"%d\",\"%d\"]","schema":"public","table":"orders","txId":5,"lsn":%d,"xmin":null}`, ts, lsn-1, lsn, lsn)
	}
	switch op {
	case "c", "u", "r":
		return &kgo.Record{Topic: input, Key: key, Value: fmt.Appendf(nil, `{"before":null,"after":%s,"source":%s,"op":%q,"ts_ms":%d}`,
			row, source(num("lsn"), num("ts")), op, num("ts")+3)}
	case "d":
		return &kgo.Record{Topic: input, Key: key, Value: fmt.Appendf(nil, `{"before":%s,"after":null,"source":%s,"op":"d","ts_ms":%d}`,
			row, source(num("lsn"), num("ts")), num("ts")+3)}
	case "truncate":
		return &kgo.Record{Topic: input, Value: fmt.Appendf(nil, `{"before":null,"after":null,"source":%s,"op":"t","ts_ms":%d}`,
			source(num("lsn"), num("ts")), num("ts")+3)}
	case "tombstone":
		return &kgo.Record{Topic: input, Key: key}
	case "raw":
		_, text, _ := strings.Cut(rest, " ")
		return &kgo.Record{Topic: input, Key: key, Value: []byte(text)}
	}
	t.Fatalf("%q: unknown event %q", line, op)
	return nil
}

// run drives a new stage until it has handled the produced records and
// prints what it published.
func run(t *testing.T, e *stagetest.Env, produced int) string {
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
		ChangesTopic: "changes", Partitions: partitions, DLQTopic: "dlq", Dedupe: dedupe.Config{Retention: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	e.Drive(t, stage, "ingest", input, func(handled int) bool { return handled >= produced })

	var out strings.Builder
	fmt.Fprintf(&out, "events %d, duplicates %d, invalid %d\n", stage.Stats.Events.Load(), stage.Stats.Duplicates.Load(), stage.Stats.Invalid.Load())
	type published struct {
		c     *changes.Change
		parts []int32
	}
	var pub []*published
	byOrigin := map[int64]*published{}
	marks := map[int32]changes.Mark{}
	var dead []string
	serde := registry.NewSerde(nil)
	for _, r := range e.Read(t, "changes", "dlq") {
		if r.Topic == "dlq" {
			rec, _, _, err := serde.Decode(e.Ctx, r.Value)
			d, ok := rec.(*schemas.DeadLetter)
			if err != nil || !ok {
				t.Fatalf("dlq offset %d: %v (%T)", r.Offset, err, rec)
			}
			dead = append(dead, fmt.Sprintf("dead letter: offset %d, %s: %q", d.Offset, d.Stage, d.Value))
			continue
		}
		c, m, err := changes.Decode(r.Value)
		if err != nil {
			t.Fatalf("changes partition %d offset %d: %v", r.Partition, r.Offset, err)
		}
		if m != nil {
			marks[r.Partition] = *m
			continue
		}
		if !c.Broadcast() && r.Partition != changes.Partition(r.Key, partitions) {
			t.Errorf("change at input offset %d on partition %d, not its key's", c.Origin.Offset, r.Partition)
		}
		p := byOrigin[c.Origin.Offset]
		if p == nil {
			p = &published{c: c}
			byOrigin[c.Origin.Offset] = p
			pub = append(pub, p)
		}
		p.parts = append(p.parts, r.Partition)
	}
	slices.SortFunc(pub, func(a, b *published) int { return cmp.Compare(a.c.Origin.Offset, b.c.Origin.Offset) })
	for _, p := range pub {
		out.WriteString(describe(t, p.c))
		if p.c.Broadcast() {
			fmt.Fprintf(&out, " on %d partitions", len(p.parts))
		} else if len(p.parts) > 1 {
			fmt.Fprintf(&out, " published %d times", len(p.parts))
		}
		out.WriteByte('\n')
	}
	var lines []string
	for p := range int32(partitions) {
		m, ok := marks[p]
		if !ok {
			lines = append(lines, fmt.Sprintf("changes partition %d: no watermark", p))
			continue
		}
		lines = append(lines, fmt.Sprintf("watermark: %s %s at %d", m.Side, m.Input, m.Time))
	}
	if slices.Equal(lines, slices.Repeat(lines[:1], partitions)) {
		lines = []string{lines[0] + " on every partition"}
	}
	for _, l := range append(lines, dead...) {
		out.WriteString(l + "\n")
	}
	return out.String()
}

// describe is a change as a line of expected output.
func describe(t *testing.T, c *changes.Change) string {
	t.Helper()
	kind := map[changes.Effect]string{changes.Upsert: "upsert", changes.Absent: "absent", changes.Truncate: "truncate"}[c.Kind]
	s := fmt.Sprintf("change from offset %d: %s %s %s", c.Origin.Offset, kind, c.Table, c.Side)
	if len(c.Key) > 0 {
		key, err := canon.DecodeKey(c.Key)
		if err != nil {
			t.Fatal(err)
		}
		var b []byte
		for i, v := range key {
			if i > 0 {
				b = append(b, ',')
			}
			b = canon.AppendJSON(b, v)
		}
		s += fmt.Sprintf(" key [%s]", b)
	}
	if c.Kind == changes.Upsert {
		row, err := canon.DecodeRow(c.Row)
		if err != nil {
			t.Fatal(err)
		}
		s += " row " + string(canon.AppendRowJSON(nil, row))
	}
	return s + fmt.Sprintf(" at %d", c.Time)
}
