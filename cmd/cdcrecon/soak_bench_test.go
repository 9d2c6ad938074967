package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/cmd/cdcrecon/internal/harness"
	"github.com/cdcrecon/cdcrecon/pipeline/broker"
	"github.com/cdcrecon/cdcrecon/pipeline/ops"
	"github.com/cdcrecon/cdcrecon/processors/changes"
	"github.com/cdcrecon/cdcrecon/processors/config"
)

// soakConfig is the soak's table, PostgreSQL-shaped on the source and
// MySQL-shaped on the target, and dedupe marks kept five minutes, so
// that their expiry shows within the run.
const soakConfig = `dedupe: {retention: 5m}
tables:
  - {name: items, key: [id], source: {topic: pg.public.items}, target: {topic: mysql.shop.items}}
`

// soakEvent is a Debezium update of items row id at revision rev,
// committed at ms, in the source's shape or the target's.
func soakEvent(target bool, id, rev int, ms, pos int64) []byte {
	src := fmt.Sprintf(`{"version":"3.6.1.Final","connector":"postgresql","name":"pg","ts_ms":%d,"snapshot":"false","db":"shop","schema":"public","table":"items","txId":%d,"lsn":%d}`, ms, pos, pos*8)
	if target {
		src = fmt.Sprintf(`{"version":"3.6.1.Final","connector":"mysql","name":"mysql","ts_ms":%d,"snapshot":"false","db":"shop","table":"items","server_id":1,"file":"binlog.000003","pos":%d,"row":0}`, ms, pos*8)
	}
	return fmt.Appendf(nil, `{"before":null,"after":{"id":%d,"v":%d,"note":"item %d, revision %d"},"source":%s,"op":"u","ts_ms":%d}`, id, rev, id, rev, src, ms+3)
}

// BenchmarkSoak runs one worker for CDCRECON_SOAK_MINUTES (default 20)
// at a steady CDCRECON_SOAK_RATE (default 1,000) updates a second per
// side over a fixed set of 20,000 rows, nothing drifting, on the embedded
// broker with its log on disk, and samples every 30 s the disk the
// changes topic, the state topic and the worker's state directory use,
// and the changes records retained. The input topics delete after two
// minutes (theirs is the connectors' retention, not cdcrecon's); the
// changes topic has 1 MiB segments (see below). It
// prints the samples as a table and fails if the worker falls behind or
// reports any drift.
//
//	go test -run '^$' -bench BenchmarkSoak -benchtime 1x -timeout 60m ./cmd/cdcrecon
func BenchmarkSoak(b *testing.B) {
	minutes, rate, keys := 20, 1000, 20_000
	if v := os.Getenv("CDCRECON_SOAK_MINUTES"); v != "" {
		minutes, _ = strconv.Atoi(v)
	}
	if v := os.Getenv("CDCRECON_SOAK_RATE"); v != "" {
		rate, _ = strconv.Atoi(v)
	}
	bin := cliBinary(b)
	for range b.N {
		dir := b.TempDir()
		brokerDir := filepath.Join(dir, "broker")
		br, err := broker.Start(broker.Config{DataDir: brokerDir})
		if err != nil {
			b.Fatal(err)
		}
		addr := br.Addr()
		if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(soakConfig), 0o644); err != nil {
			b.Fatal(err)
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ProducerLinger(5*time.Millisecond))
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		two := strconv.Itoa(int((2 * time.Minute).Milliseconds()))
		for _, t := range []string{"pg.public.items", "mysql.shop.items"} {
			if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, map[string]*string{"retention.ms": &two, "segment.bytes": kadm.StringPtr(strconv.Itoa(8 << 20))}, t); err != nil {
				b.Fatal(err)
			}
		}
		// The changes topic as the worker creates it, but with 1 MiB
		// segments: the broker frees whole segments only, and Kafka
		// rolls them hourly too (segment.ms), which the embedded broker
		// does not, so the default 64 MiB would not roll within the run.
		cfgs := changes.TopicConfigs(config.Default().State.ChangesRetention)
		cfgs["segment.bytes"] = kadm.StringPtr(strconv.Itoa(1 << 20))
		if _, err := kadm.NewClient(cl).CreateTopic(ctx, int32(config.Default().Kafka.Partitions), 1, cfgs, "cdcrecon.changes"); err != nil {
			b.Fatal(err)
		}
		state := filepath.Join(dir, "state")
		b.Setenv("CDCRECON_BENCH_LOG", filepath.Join(dir, "worker.log"))
		w := startBenchWorker(b, bin, dir, addr, state)

		var failed error
		promise := func(_ *kgo.Record, err error) {
			if err != nil && failed == nil {
				failed = err
			}
		}
		type sample struct {
			at                         time.Duration
			changes, stateTopic, store int64
			retained                   int64
			lag                        float64
		}
		var samples []sample
		start := time.Now()
		end := start.Add(time.Duration(minutes) * time.Minute)
		tick := time.NewTicker(100 * time.Millisecond)
		next := start.Add(30 * time.Second)
		var n int64
		for now := range tick.C {
			if now.After(end) {
				break
			}
			due := int64(now.Sub(start).Seconds() * float64(rate))
			for ; n < due; n++ {
				id, rev, ms := int(n%int64(keys)), int(n/int64(keys)), time.Now().UnixMilli()
				cl.Produce(ctx, &kgo.Record{Topic: "pg.public.items", Key: fmt.Appendf(nil, `{"id":%d}`, id), Value: soakEvent(false, id, rev, ms, n)}, promise)
				cl.Produce(ctx, &kgo.Record{Topic: "mysql.shop.items", Key: fmt.Appendf(nil, `{"id":%d}`, id), Value: soakEvent(true, id, rev, ms+20, n)}, promise)
			}
			if failed != nil {
				b.Fatal(failed)
			}
			if now.Before(next) {
				continue
			}
			next = next.Add(30 * time.Second)
			m := harness.Scrape(w.Metrics())
			samples = append(samples, sample{at: now.Sub(start).Round(time.Second),
				changes: dirBytes(filepath.Join(brokerDir, "partitions"), "cdcrecon.changes-"), stateTopic: dirBytes(filepath.Join(brokerDir, "partitions"), "cdcrecon.state-"),
				store: dirBytes(state, ""), retained: retained(b, addr), lag: m.Sum(ops.ConsumerLagRecords)})
		}
		tick.Stop()
		if err := cl.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		cl.Close()
		m := w.waitFor(b, 2*time.Minute, "caught up", harness.Done(2+8, -1, -1))
		if open := m.Sum(ops.DriftOpenNow); open != 0 || m.Sum(ops.DriftOpenedTotal) != 0 {
			b.Errorf("%v drifts opened, %v open: nothing drifts in the soak", m.Sum(ops.DriftOpenedTotal), open)
		}
		rss := w.stop(b)
		br.Close()
		var table strings.Builder
		fmt.Fprintf(&table, "| time | changes topic | state topic | state dir | changes retained | lag |\n|---|---|---|---|---|---|\n")
		for _, s := range samples {
			fmt.Fprintf(&table, "| %s | %.1f MiB | %.1f MiB | %.1f MiB | %d | %.0f |\n", s.at, mibOf(s.changes), mibOf(s.stateTopic), mibOf(s.store), s.retained, s.lag)
		}
		b.Logf("%d updates a second per side over %d rows for %d min:\n%s", rate, keys, minutes, table.String())
		last := samples[len(samples)-1]
		b.ReportMetric(mibOf(last.changes), "changes-MiB")
		b.ReportMetric(mibOf(last.stateTopic), "state-topic-MiB")
		b.ReportMetric(mibOf(last.store), "state-dir-MiB")
		b.ReportMetric(rss/(1<<20), "peak-RSS-MiB")
	}
}

func mibOf(n int64) float64 { return float64(n) / (1 << 20) }
