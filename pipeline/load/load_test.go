package load_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/pipeline/broker"
	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
	"github.com/cdcrecon/cdcrecon/pipeline/load"
)

// TestFile: a dump loads into topics created, and grown, for its
// partitions; each partition holds its lines in dump order, and Offsets
// maps the broker's offsets back to the dump's. A line that is not a
// record, one over the size limit and one for a partition that a topic
// existing before the load lacks are skipped, each named by file and line.
func TestFile(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := broker.Start(broker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "existing"); err != nil {
		t.Fatal(err)
	}

	line := func(topic string, part int, off int64, payload string) string {
		return fmt.Sprintf(`{"topic":%q,"partition":%d,"offset":%d,"ts":1763700000000,"key":"k%d","payload":%q}`, topic, part, off, off, payload)
	}
	lines := []string{
		line("new", 0, 10, "a"),                       // 1
		line("new", 2, 20, "b"),                       // 2: the topic grows to 3 partitions
		`{"topic":"new","partition":`,                 // 3: not a record
		line("new", 0, 11, "c"),                       // 4
		line("new", 1, 30, strings.Repeat("x", 5000)), // 5: over the limit
		line("existing", 1, 5, "d"),                   // 6: existing has one partition
		line("existing", 0, 6, "e"),                   // 7
		line("new", 2, 21, "f"),                       // 8
	}
	name := filepath.Join(t.TempDir(), "dump.jsonl")
	if err := os.WriteFile(name, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var warn bytes.Buffer
	p, err := load.New(kafka.ClientConfig{Brokers: []string{b.Addr()}}, load.Options{MaxRecord: 4096, LimitName: "--max-record-bytes", Warn: &warn, KeepOffsets: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	bad, err := p.File(ctx, name)
	if err == nil {
		err = p.Flush(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	if bad != 3 || p.Produced.Load() != 5 {
		t.Errorf("%d bad lines, %d produced; want 3 and 5", bad, p.Produced.Load())
	}
	for _, want := range []string{"dump.jsonl:3:", "dump.jsonl:5: a record of", "over --max-record-bytes 4096", "dump.jsonl:6:", "topic existing has 1 partitions"} {
		if !strings.Contains(warn.String(), want) {
			t.Errorf("warnings lack %q:\n%s", want, warn.String())
		}
	}

	// What the topics hold, read back.
	rd, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ConsumeTopics("new", "existing"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	got := map[string][]string{}
	for n := 0; n < 5 && ctx.Err() == nil; {
		rd.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			got[fmt.Sprintf("%s/%d", r.Topic, r.Partition)] = append(got[fmt.Sprintf("%s/%d", r.Topic, r.Partition)], string(r.Value))
			n++
		})
	}
	want := map[string][]string{"new/0": {"a", "c"}, "new/2": {"b", "f"}, "existing/0": {"e"}}
	if len(got) != len(want) {
		t.Errorf("partitions %v, want %v", got, want)
	}
	for k, v := range want {
		if !slices.Equal(got[k], v) {
			t.Errorf("%s holds %v, want %v", k, got[k], v)
		}
	}
	offs := p.Offsets()
	if !slices.Equal(offs["new/0"], []int64{10, 11}) || !slices.Equal(offs["new/2"], []int64{20, 21}) || !slices.Equal(offs["existing/0"], []int64{6}) {
		t.Errorf("offsets %v", offs)
	}
	details, err := adm.ListTopics(ctx, "new", "existing")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(details["new"].Partitions); n != 3 {
		t.Errorf("topic new has %d partitions, want 3", n)
	}
	if n := len(details["existing"].Partitions); n != 1 {
		t.Errorf("the load changed topic existing to %d partitions", n)
	}
}
