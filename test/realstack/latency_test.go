package realstack

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/pipeline/registry"
	"github.com/cdcrecon/cdcrecon/schemas"
)

// BenchmarkDetectionLatency measures, on the real stack's PostgreSQL pair,
// the time from a tampering statement on the target to its drift record
// on the drift topic, over 50 tamperings of distinct rows, one every
// 200 ms while replication runs:
//
//	go test -run '^$' -bench BenchmarkDetectionLatency -benchtime 1x ./test/realstack
//
// The clock starts when psql is started for the statement (so psql's own
// start-up counts against cdcrecon) and stops when the record is read.
// A tampered value is one the source never had, so the grace (a target
// may lag its source that long) does not delay it: the decision waits
// for both sides' watermarks to pass the change, which the connectors'
// heartbeats (every second) move.
func BenchmarkDetectionLatency(b *testing.B) {
	const n = 50
	for range b.N {
		s := New(b)
		src, tgt := s.postgresPair(b)
		s.StartKafka()
		s.StartConnect(s.pgConnectors(b, src, tgt, nil))
		w := s.StartWorker(b, filepath.Join(compose, "cdcrecon.yaml"))
		src.SQL(b, "shop", "-c", fmt.Sprintf("INSERT INTO customers SELECT g, 'c' || g, NULL FROM generate_series(1000, %d) g", 1000+n-1))
		eventuallySQL(b, tgt, "the rows replicated", fmt.Sprintf("SELECT count(*) = %d FROM customers WHERE id >= 1000", n))
		// Let the worker catch up, so the figures are of steady state.
		time.Sleep(10 * time.Second)

		lat := timeTamperings(b, s, w, tgt, n, 2*time.Minute, func(d *schemas.Drift) string {
			if d.Status == schemas.Open {
				return "opened"
			}
			return ""
		}, "opened")["opened"]
		p50, p99 := lat[n/2], lat[(n*99+99)/100-1]
		grace := w.cfg.Window.Grace
		b.ReportMetric(p50.Seconds(), "p50-s")
		b.ReportMetric(p99.Seconds(), "p99-s")
		b.ReportMetric(lat[n-1].Seconds(), "max-s")
		b.Logf("%d tamperings: p50 %s, p99 %s, max %s (grace %s); running %s", n, p50.Round(time.Millisecond),
			p99.Round(time.Millisecond), lat[n-1].Round(time.Millisecond), grace, s.Versions())
	}
}

// BenchmarkWorkerRealBroker runs `cdcrecon bench --brokers` against the
// real stack's Kafka broker: the same simulated workload, loaded the same
// way, read by the same worker on kfake (the embedded broker) and on
// Apache Kafka, in one run; a fresh broker for every run.
//
//	go test -run '^$' -bench BenchmarkWorkerRealBroker -benchtime 1x -count 3 ./test/realstack
func BenchmarkWorkerRealBroker(b *testing.B) {
	for range b.N {
		s := New(b)
		s.StartKafka()
		out := filepath.Join(s.dir, "bench.json")
		cmd := exec.Command(Binary(b), "bench", "--runs", "1", "--events", "200000", "--keys", "40000",
			"--brokers", s.Kafka, "--json", out)
		if text, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("cdcrecon bench: %v\n%s", err, text)
		}
		data, err := os.ReadFile(out)
		if err != nil {
			b.Fatal(err)
		}
		var res struct {
			Runs []struct {
				EventsPerSec        float64 `json:"events_per_s"`
				BrokersEventsPerSec float64 `json:"brokers_events_per_s"`
			} `json:"runs"`
		}
		if err := json.Unmarshal(data, &res); err != nil || len(res.Runs) != 1 {
			b.Fatalf("bench --json: %v %s", err, data)
		}
		r := res.Runs[0]
		b.ReportMetric(r.EventsPerSec, "kfake-events/s")
		b.ReportMetric(r.BrokersEventsPerSec, "kafka-events/s")
		b.ReportMetric(r.BrokersEventsPerSec/r.EventsPerSec, "kafka/kfake")
	}
}

// BenchmarkVerdictLatency measures, on the real stack's PostgreSQL pair
// with re-reads on (verify: delay 2s, settle 2s), the time from a
// tampering statement on the target to its drift record (the opening:
// the baseline, as BenchmarkDetectionLatency has it) and to its verdict
// (confirmed, after both connectors re-read the row), over 50 tamperings
// of distinct rows, one every 200 ms, in one run:
//
//	go test -run '^$' -bench BenchmarkVerdictLatency -benchtime 1x ./test/realstack
func BenchmarkVerdictLatency(b *testing.B) {
	const n = 50
	for range b.N {
		s := New(b)
		src, tgt := s.postgresPair(b)
		s.StartKafka()
		s.StartConnect(s.pgConnectors(b, src, tgt, nil))
		copyTopicDropping(b, s.Kafka, "tgt.public.orders", "tgtcopy.public.orders", func([]byte) bool { return false })
		cfg := fmt.Sprintf(verifyWorkerConfig, "cdcrecon-verdicts", "src", "tgt", "public", "double", "")
		cfg = strings.Replace(cfg, "cdcrecon.signals.ignored", "cdcrecon.signals.tgt", 1)
		w := s.StartWorker(b, s.write("verdicts.yaml", cfg))
		src.SQL(b, "shop", "-c", fmt.Sprintf("INSERT INTO customers SELECT g, 'c' || g, NULL FROM generate_series(1000, %d) g", 1000+n-1))
		eventuallySQL(b, tgt, "the rows replicated", fmt.Sprintf("SELECT count(*) = %d FROM customers WHERE id >= 1000", n))
		time.Sleep(10 * time.Second) // steady state

		lat := timeTamperings(b, s, w, tgt, n, 3*time.Minute, func(d *schemas.Drift) string {
			switch {
			case d.Status != schemas.Open:
				return ""
			case d.Verification == schemas.Confirmed:
				return "confirmed"
			}
			return "opened"
		}, "opened", "confirmed")
		open, conf := lat["opened"], lat["confirmed"]
		p := func(l []time.Duration, q int) time.Duration { return l[(n*q+99)/100-1] }
		b.ReportMetric(p(open, 50).Seconds(), "open-p50-s")
		b.ReportMetric(p(open, 99).Seconds(), "open-p99-s")
		b.ReportMetric(p(conf, 50).Seconds(), "verdict-p50-s")
		b.ReportMetric(p(conf, 99).Seconds(), "verdict-p99-s")
		b.Logf("%d tamperings: opened p50 %s p99 %s; confirmed p50 %s p99 %s max %s; signals sent %.0f; running %s", n,
			p(open, 50).Round(time.Millisecond), p(open, 99).Round(time.Millisecond), p(conf, 50).Round(time.Millisecond),
			p(conf, 99).Round(time.Millisecond), conf[n-1].Round(time.Millisecond), w.MetricWith("cdcrecon_verify_signals_total", `outcome="sent"`), s.Versions())
	}
}

// timeTamperings tampers with n customers rows on the target (ids 1000
// on), one every 200 ms, each statement timed from psql's start, and
// returns, for each class of drift record (class names a record; "" for
// none), the time from each row's tampering to its first record of the
// class, sorted; it fails unless every row has a record of every class of
// want within limit.
func timeTamperings(b *testing.B, s *Stack, w *Worker, tgt *Postgres, n int, limit time.Duration, class func(*schemas.Drift) string, want ...string) map[string][]time.Duration {
	b.Helper()
	var mu sync.Mutex
	seen := map[string]map[string]time.Time{} // class -> row -> first record
	for _, c := range want {
		seen[c] = map[string]time.Time{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Kafka), kgo.ConsumeTopics(w.cfg.Topics.Drift), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	go func() {
		serde := registry.NewSerde(nil)
		for ctx.Err() == nil {
			cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
				at := time.Now()
				rec, _, _, err := serde.Decode(ctx, r.Value)
				d, ok := rec.(*schemas.Drift)
				if err != nil || !ok {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if m := seen[class(d)]; m != nil {
					if _, dup := m[RowName(d.Table, d.Key)]; !dup {
						m[RowName(d.Table, d.Key)] = at
					}
				}
			})
		}
	}()
	time.Sleep(2 * time.Second) // the consumer has its partitions
	sent := map[string]time.Time{}
	for i := range n {
		id := 1000 + i
		sent[fmt.Sprintf(`customers {"id":%d}`, id)] = time.Now()
		tgt.SQL(b, "shop", "-c", fmt.Sprintf("UPDATE customers SET email = 'tampered' WHERE id = %d", id))
		time.Sleep(200 * time.Millisecond)
	}
	out := map[string][]time.Duration{}
	for deadline := time.Now().Add(limit); ; time.Sleep(time.Second) {
		mu.Lock()
		complete := true
		for _, c := range want {
			out[c] = out[c][:0]
			for row, t0 := range sent {
				if at, ok := seen[c][row]; ok {
					out[c] = append(out[c], at.Sub(t0))
				}
			}
			complete = complete && len(out[c]) == n
		}
		mu.Unlock()
		if complete {
			break
		}
		if time.Now().After(deadline) {
			for _, c := range want {
				b.Logf("%s: %d of %d rows", c, len(out[c]), n)
			}
			b.Fatalf("not every tampering had its records within %s", limit)
		}
	}
	for _, c := range want {
		slices.Sort(out[c])
	}
	return out
}
