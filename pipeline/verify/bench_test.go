package verify_test

import (
	"testing"
	"time"

	"github.com/cdcrecon/cdcrecon/pipeline/verify"
	"github.com/cdcrecon/cdcrecon/processors/canon"
	"github.com/cdcrecon/cdcrecon/processors/changes"
	"github.com/cdcrecon/cdcrecon/processors/config"
	"github.com/cdcrecon/cdcrecon/processors/consistency"
	"github.com/cdcrecon/cdcrecon/processors/normalize"
	"github.com/cdcrecon/cdcrecon/schemas"
)

// BenchmarkSignalsFor10kDrifts drifts 10,000 keys of one table at one
// instant over the 8 changes partitions of the default configuration, lets
// every partition's engine decide its requests, and formats them as the
// worker sends them: it reports the signals and their bytes per side,
// and the time to decide and format them all. The baseline, formatted in
// the same run, is a signal per drifted key.
//
//	go test -run '^$' -bench BenchmarkSignalsFor10kDrifts -benchtime 5x ./pipeline/verify
func BenchmarkSignalsFor10kDrifts(b *testing.B) {
	const keys, partitions = 10_000, 8
	cfg, err := config.Parse([]byte(`
window: {size: 1m, grace: 5s}
tables:
  - name: orders
    key: [id]
    source: {topic: pg.public.orders, verify: {signal_topic: pg-signal, prefix: pg}}
    target: {topic: my.shop.orders, verify: {signal_topic: my-signal, prefix: my, collection: shop.orders, quote: backtick}}
`), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	m, err := normalize.NewMapper(cfg)
	if err != nil {
		b.Fatal(err)
	}
	tbl := m.Tables()[0]
	var h canon.Hasher
	row := func(v int64) ([]byte, uint64) {
		r := canon.Row{{Name: "v", Value: canon.IntValue(v)}}
		return canon.AppendRow(nil, r), tbl.Digest(&h, r)
	}
	sender := verify.New(cfg, nil, nil)
	var signals, bytes [3]int
	var single int // bytes of one signal per drifted key, one side
	for b.Loop() {
		signals, bytes, single = [3]int{}, [3]int{}, 0
		for p := range int32(partitions) {
			var reqs []consistency.Request
			e, err := consistency.New(consistency.Config{Settings: cfg, Mapper: m, Partition: p,
				Emit: func(schemas.Record) {}, Request: func(r consistency.Request) { reqs = append(reqs, r) }})
			if err != nil {
				b.Fatal(err)
			}
			e.Expect(normalize.Source, "pg.public.orders/0")
			e.Expect(normalize.Target, "my.shop.orders/0")
			for k := range int64(keys) {
				key := canon.AppendKey(nil, []canon.Value{canon.IntValue(k)})
				if changes.Partition(changes.Key(nil, "orders", key), partitions) != p {
					continue
				}
				for _, side := range []normalize.Side{normalize.Source, normalize.Target} {
					c := changes.Change{Table: "orders", Side: side, Key: key, Time: 1000, Kind: changes.Upsert,
						Origin: changes.Origin{Topic: map[normalize.Side]string{normalize.Source: "pg.public.orders", normalize.Target: "my.shop.orders"}[side]}}
					v := int64(1)
					if side == normalize.Target {
						v = 2 // every key differs
					}
					c.Row, c.Digest = row(v)
					if err := e.Apply(c); err != nil {
						b.Fatal(err)
					}
				}
			}
			end := (1000 + 5*time.Second.Milliseconds() + cfg.Verify.Delay.Milliseconds()) + 2000
			e.Watermark(normalize.Source, "pg.public.orders/0", end)
			e.Watermark(normalize.Target, "my.shop.orders/0", end)
			e.Advance()
			for _, r := range reqs {
				sig, err := sender.Format(r)
				if err != nil {
					b.Fatal(err)
				}
				signals[r.Side]++
				bytes[r.Side] += len(sig.Key) + len(sig.Value)
				if r.Side != normalize.Source {
					continue
				}
				for _, k := range r.Keys {
					one := r
					one.Keys = []schemas.Columns{k}
					s, err := sender.Format(one)
					if err != nil {
						b.Fatal(err)
					}
					single += len(s.Key) + len(s.Value)
				}
			}
		}
	}
	b.ReportMetric(float64(signals[normalize.Source]), "signals/side")
	b.ReportMetric(float64(bytes[normalize.Source]+bytes[normalize.Target])/2, "bytes/side")
	b.ReportMetric(float64(bytes[normalize.Source]+bytes[normalize.Target])/float64(2*keys), "bytes/key")
	b.ReportMetric(float64(single), "baseline-bytes/side")
	if signals[normalize.Source] != signals[normalize.Target] || signals[normalize.Source] == 0 {
		b.Fatalf("signals by side %v", signals)
	}
}
