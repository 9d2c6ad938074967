package kafka_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/pipeline/broker"
	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
)

// The benchmark topic: benchRecords records of benchValueSize bytes, keyed,
// spread over benchPartitions partitions of an embedded broker.
const (
	benchPartitions = 4
	benchRecords    = 500_000
	benchValueSize  = 512
)

var (
	benchGroups atomic.Int64 // every iteration consumes as a new group
	benchOnce   sync.Once
	benchAddr   string
)

func benchBroker(b *testing.B) string {
	benchOnce.Do(func() {
		// The broker lives for the whole test binary: sub-benchmarks share
		// the topic so that they are measured over the same data.
		br, err := broker.Start(broker.Config{})
		if err != nil {
			b.Fatal(err)
		}
		benchAddr = br.Addr()
		cl, err := kgo.NewClient(kgo.SeedBrokers(benchAddr), kgo.ProducerLinger(5*time.Millisecond))
		if err != nil {
			b.Fatal(err)
		}
		defer cl.Close()
		ctx := context.Background()
		if _, err := kadm.NewClient(cl).CreateTopic(ctx, benchPartitions, 1, nil, "bench"); err != nil {
			b.Fatal(err)
		}
		value := []byte(strings.Repeat("x", benchValueSize))
		var wg sync.WaitGroup
		for i := 0; i < benchRecords; i++ {
			wg.Add(1)
			cl.Produce(ctx, &kgo.Record{Topic: "bench", Key: fmt.Appendf(nil, "key-%d", i), Value: value}, func(_ *kgo.Record, err error) {
				if err != nil {
					panic(err)
				}
				wg.Done()
			})
		}
		wg.Wait()
	})
	return benchAddr
}

// BenchmarkConsume compares, over the same topic in the same run, the
// Subscriber in per-message and batch mode against franz-go's own
// PollFetches loop. Each iteration consumes the whole topic from the start;
// records/s is the figure to compare.
func BenchmarkConsume(b *testing.B) {
	addr := benchBroker(b)
	b.Run("raw-pollfetches", func(b *testing.B) {
		var steady time.Duration
		for i := 0; i < b.N; i++ {
			cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("bench"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			var start time.Time
			for n < benchRecords {
				fetches := cl.PollFetches(context.Background())
				if err := fetches.Err(); err != nil {
					b.Fatal(err)
				}
				if n == 0 {
					start = time.Now()
				}
				n += fetches.NumRecords()
			}
			steady += time.Since(start)
			cl.Close()
		}
		reportRate(b, steady)
	})
	b.Run("subscriber-message", func(b *testing.B) {
		benchSubscriber(b, addr, false)
	})
	b.Run("subscriber-batch", func(b *testing.B) {
		benchSubscriber(b, addr, true)
	})
}

// reportRate reports records/s over the steady part of each iteration: from
// the first record received to the last one handled. Client creation and
// the group join are fixed costs that do not grow with the volume.
func reportRate(b *testing.B, steady time.Duration) {
	b.ReportMetric(float64(benchRecords*b.N)/steady.Seconds(), "records/s")
}

func benchSubscriber(b *testing.B, addr string, batch bool) {
	var steady time.Duration
	for i := 0; i < b.N; i++ {
		sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{
			ClientConfig:  kafka.ClientConfig{Brokers: []string{addr}},
			ConsumerGroup: fmt.Sprintf("bench-%d", benchGroups.Add(1)),
			Batch:         batch,
		})
		if err != nil {
			b.Fatal(err)
		}
		ch, err := sub.Subscribe(context.Background(), "bench")
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		var start time.Time
		for n < benchRecords {
			m := <-ch
			if n == 0 {
				start = time.Now()
			}
			if batch {
				recs, err := kafka.DecodeBatch(m.Payload)
				if err != nil {
					b.Fatal(err)
				}
				n += len(recs)
			} else {
				n++
			}
			m.Ack()
		}
		steady += time.Since(start)
		if err := sub.Close(); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, steady)
}
