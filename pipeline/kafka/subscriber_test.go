package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
)

const waitLimit = 20 * time.Second

// produceRaw writes n records to each partition of topic with a plain
// franz-go producer; record i of partition p has value "p-i".
func produceRaw(t testing.TB, addr, topic string, partitions, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, int32(partitions), 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for i := 0; i < n; i++ {
		for p := 0; p < partitions; p++ {
			recs = append(recs, &kgo.Record{
				Topic: topic, Partition: int32(p),
				Key:   []byte(fmt.Sprintf("k%d", i)),
				Value: []byte(fmt.Sprintf("%d-%d", p, i)),
			})
		}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func newSubscriber(t testing.TB, addr, group string, mod func(*kafka.SubscriberConfig)) *kafka.Subscriber {
	t.Helper()
	cfg := kafka.SubscriberConfig{
		ClientConfig:   testClient(addr),
		ConsumerGroup:  group,
		NackBackoff:    kafka.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond},
		CommitInterval: 100 * time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := kafka.NewSubscriber(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func receive(t testing.TB, ch <-chan *message.Message) *message.Message {
	t.Helper()
	select {
	case m, ok := <-ch:
		if !ok {
			t.Fatal("channel closed")
		}
		return m
	case <-time.After(waitLimit):
		t.Fatal("no message within the wait limit")
	}
	return nil
}

func offsetOf(t testing.TB, m *message.Message) int64 {
	t.Helper()
	o, err := strconv.ParseInt(m.Metadata.Get(kafka.MetaOffset), 10, 64)
	if err != nil {
		t.Fatalf("metadata offset: %v", err)
	}
	return o
}

// Partitions are delivered concurrently, each in order, and a partition's
// next message waits for the ack of the previous one.
func TestPartitionOrderAndAckGating(t *testing.T) {
	addr := startBroker(t, 1)
	const parts, n = 4, 50
	produceRaw(t, addr, "orders", parts, n)
	sub := newSubscriber(t, addr, "g", nil)
	ch, err := sub.Subscribe(context.Background(), "orders")
	if err != nil {
		t.Fatal(err)
	}
	// Hold one unacked message per partition: exactly one message of each
	// partition must arrive, and then nothing more.
	held := map[string]*message.Message{}
	for len(held) < parts {
		m := receive(t, ch)
		p := m.Metadata.Get(kafka.MetaPartition)
		if held[p] != nil {
			t.Fatalf("second message of partition %s before the first was acked", p)
		}
		if offsetOf(t, m) != 0 {
			t.Fatalf("partition %s started at offset %d", p, offsetOf(t, m))
		}
		held[p] = m
	}
	select {
	case m := <-ch:
		t.Fatalf("message %s delivered while every partition waits for an ack", m.UUID)
	case <-time.After(200 * time.Millisecond):
	}
	next := map[string]int64{}
	for p, m := range held {
		m.Ack()
		next[p] = 1
	}
	for got := 0; got < parts*(n-1); got++ {
		m := receive(t, ch)
		p := m.Metadata.Get(kafka.MetaPartition)
		if o := offsetOf(t, m); o != next[p] {
			t.Fatalf("partition %s: got offset %d, want %d", p, o, next[p])
		}
		if want := fmt.Sprintf("%s-%d", p, next[p]); string(m.Payload) != want {
			t.Fatalf("payload %q, want %q", m.Payload, want)
		}
		next[p]++
		m.Ack()
	}
}

// A nacked message comes back, the same record, before anything after it.
func TestNackRedeliversSameRecord(t *testing.T) {
	addr := startBroker(t, 1)
	produceRaw(t, addr, "t", 1, 3)
	sub := newSubscriber(t, addr, "g", nil)
	ch, err := sub.Subscribe(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	first := receive(t, ch)
	for i := 0; i < 5; i++ {
		first.Nack()
		again := receive(t, ch)
		if again.UUID != first.UUID || offsetOf(t, again) != 0 || string(again.Payload) != "0-0" {
			t.Fatalf("after nack got %s at offset %d, want %s at 0", again.UUID, offsetOf(t, again), first.UUID)
		}
		first = again
	}
	first.Ack()
	if m := receive(t, ch); offsetOf(t, m) != 1 {
		t.Fatalf("after ack got offset %d, want 1", offsetOf(t, m))
	}
}

// Closing commits acked offsets only: the next member of the group starts
// at the first unacked record.
func TestCommitsOnlyAcked(t *testing.T) {
	addr := startBroker(t, 1)
	produceRaw(t, addr, "t", 1, 10)
	sub := newSubscriber(t, addr, "g", nil)
	ch, err := sub.Subscribe(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		receive(t, ch).Ack()
	}
	unacked := receive(t, ch) // offset 4, never acked
	if offsetOf(t, unacked) != 4 {
		t.Fatalf("got offset %d", offsetOf(t, unacked))
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if _, open := <-ch; open {
		t.Fatal("channel still open after Close")
	}
	if got := committed(t, addr, "g", "t"); got[0] != 4 {
		t.Fatalf("committed %v, want partition 0 at 4", got)
	}
	sub2 := newSubscriber(t, addr, "g", nil)
	ch2, err := sub2.Subscribe(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	if m := receive(t, ch2); offsetOf(t, m) != 4 {
		t.Fatalf("restarted at offset %d, want 4", offsetOf(t, m))
	}
}

func committed(t testing.TB, addr, group, topic string) map[int32]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).FetchOffsets(context.Background(), group)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic {
			out[o.Partition] = o.At
		}
	})
	return out
}

// When a second member joins, the first gives up partitions: it commits what
// it acked and drops the rest, and the new owner resumes exactly there.
// Every record is processed at least once and each partition's records are
// seen in order by each member.
func TestRebalanceCommitsAckedAndDropsRest(t *testing.T) {
	addr := startBroker(t, 1)
	const parts, n = 4, 30
	produceRaw(t, addr, "t", parts, n)

	var mu sync.Mutex
	seen := map[string][]int64{} // partition → acked offsets, in ack order
	consume := func(ch <-chan *message.Message, member string, stop <-chan struct{}) {
		last := map[string]int64{}
		for {
			select {
			case m, ok := <-ch:
				if !ok {
					return
				}
				p, o := m.Metadata.Get(kafka.MetaPartition), offsetOf(t, m)
				if prev, ok := last[p]; ok && o <= prev && o != 0 {
					// A member may start a partition over from the
					// committed offset after a rebalance, never go back
					// within one ownership.
					t.Errorf("%s: partition %s went from %d to %d", member, p, prev, o)
				}
				last[p] = o
				time.Sleep(2 * time.Millisecond)
				mu.Lock()
				seen[p] = append(seen[p], o)
				mu.Unlock()
				m.Ack()
			case <-stop:
				return
			}
		}
	}
	sub1 := newSubscriber(t, addr, "g", nil)
	ch1, err := sub1.Subscribe(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); consume(ch1, "first", stop) }()
	time.Sleep(100 * time.Millisecond)
	sub2 := newSubscriber(t, addr, "g", nil)
	ch2, err := sub2.Subscribe(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	go func() { defer wg.Done(); consume(ch2, "second", stop) }()

	deadline := time.Now().Add(waitLimit)
	for {
		mu.Lock()
		done := true
		for p := 0; p < parts; p++ {
			if !slices.Contains(seen[strconv.Itoa(p)], n-1) {
				done = false
			}
		}
		mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not every partition reached its end: %v", seen)
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	for p := 0; p < parts; p++ {
		for o := int64(0); o < n; o++ {
			if !slices.Contains(seen[strconv.Itoa(p)], o) {
				t.Errorf("partition %d offset %d never processed", p, o)
			}
		}
	}
}

func TestBatchMode(t *testing.T) {
	addr := startBroker(t, 1)
	const parts, n = 2, 500
	produceRaw(t, addr, "t", parts, n)
	sub := newSubscriber(t, addr, "g", func(c *kafka.SubscriberConfig) {
		c.Batch = true
		c.MaxBatchRecords = 64
	})
	ch, err := sub.Subscribe(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	next := map[string]int64{}
	nacked := map[string][]byte{} // partition → payload of its nacked batch
	nacks := 0
	for total := 0; total < parts*n; {
		m := receive(t, ch)
		p := m.Metadata.Get(kafka.MetaPartition)
		if want, ok := nacked[p]; ok {
			// A nacked batch comes back whole, before the rest of its
			// partition.
			if string(m.Payload) != string(want) {
				t.Fatalf("partition %s: nacked batch came back different", p)
			}
			delete(nacked, p)
		}
		recs, err := kafka.DecodeBatch(m.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 || len(recs) > 64 {
			t.Fatalf("batch of %d records, want 1..64", len(recs))
		}
		if c := m.Metadata.Get(kafka.MetaCount); c != strconv.Itoa(len(recs)) {
			t.Fatalf("count metadata %s for %d records", c, len(recs))
		}
		if recs[0].Offset != next[p] {
			t.Fatalf("partition %s: batch starts at %d, want %d", p, recs[0].Offset, next[p])
		}
		if recs[0].Offset > 0 && nacks < 3 {
			nacks++
			nacked[p] = m.Payload
			m.Nack()
			continue
		}
		for i, r := range recs {
			if r.Offset != next[p]+int64(i) || string(r.Value) != fmt.Sprintf("%s-%d", p, r.Offset) {
				t.Fatalf("record %d: offset %d value %q", i, r.Offset, r.Value)
			}
		}
		next[p] += int64(len(recs))
		total += len(recs)
		m.Ack()
	}
	if nacks == 0 {
		t.Fatal("the test never nacked a batch")
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	if got := committed(t, addr, "g", "t"); got[0] != n || got[1] != n {
		t.Fatalf("committed %v, want %d on both partitions", got, n)
	}
}

// Metadata carries the record's key, headers, timestamp and position, and
// the Publisher turns it back into a record.
func TestMetadataRoundTrip(t *testing.T) {
	addr := startBroker(t, 1)
	pub, err := kafka.NewPublisher(kafka.PublisherConfig{ClientConfig: testClient(addr)})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	ts := time.UnixMilli(1700000000123)
	m := message.NewMessage("id-1", []byte("value"))
	m.Metadata.Set(kafka.MetaKey, "the-key")
	m.Metadata.Set(kafka.MetaTimestamp, strconv.FormatInt(ts.UnixMilli(), 10))
	m.Metadata.Set("trace", "abc")
	m.Metadata.Set(kafka.MetaOffset, "999") // reserved: not a header
	noKey := message.NewMessage("id-2", nil)
	if err := pub.Publish("t", m, noKey); err != nil {
		t.Fatal(err)
	}

	// An independent franz-go consumer sees what the Publisher produced.
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("t"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	for len(recs) < 2 && ctx.Err() == nil {
		recs = append(recs, cl.PollFetches(ctx).Records()...)
	}
	if len(recs) != 2 {
		t.Fatalf("got %d records", len(recs))
	}
	r := recs[0]
	if string(r.Key) != "the-key" || !r.Timestamp.Equal(ts) || string(r.Value) != "value" {
		t.Errorf("record key %q ts %v value %q", r.Key, r.Timestamp, r.Value)
	}
	var names []string
	for _, h := range r.Headers {
		names = append(names, h.Key+"="+string(h.Value))
	}
	if want := []string{"_watermill_message_uuid=id-1", "trace=abc"}; !slices.Equal(names, want) {
		t.Errorf("headers %v, want %v", names, want)
	}
	if recs[1].Key != nil {
		t.Errorf("message without key metadata produced key %q", recs[1].Key)
	}

	sub := newSubscriber(t, addr, "g", nil)
	ch, err := sub.Subscribe(context.Background(), "t")
	if err != nil {
		t.Fatal(err)
	}
	got := receive(t, ch)
	want := map[string]string{
		kafka.MetaKey: "the-key", kafka.MetaTopic: "t", kafka.MetaPartition: "0",
		kafka.MetaOffset: "0", kafka.MetaTimestamp: "1700000000123", "trace": "abc",
	}
	for k, v := range want {
		if got.Metadata.Get(k) != v {
			t.Errorf("metadata %s = %q, want %q", k, got.Metadata.Get(k), v)
		}
	}
	if got.UUID != "id-1" {
		t.Errorf("UUID %q, want id-1", got.UUID)
	}
	got.Ack()
	second := receive(t, ch)
	if _, ok := second.Metadata[kafka.MetaKey]; ok {
		t.Error("null key appears in metadata")
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	cases := map[string]kafka.SubscriberConfig{
		"brokers":        {ConsumerGroup: "g"},
		"consumer_group": {ClientConfig: kafka.ClientConfig{Brokers: []string{"x:1"}}},
		"start_from":     {ClientConfig: kafka.ClientConfig{Brokers: []string{"x:1"}}, ConsumerGroup: "g", StartFrom: "middle"},
		"nack_backoff": {ClientConfig: kafka.ClientConfig{Brokers: []string{"x:1"}}, ConsumerGroup: "g",
			NackBackoff: kafka.Backoff{Initial: time.Second, Max: time.Millisecond}},
	}
	for field, cfg := range cases {
		_, err := kafka.NewSubscriber(cfg)
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: got error %v", field, err)
		}
	}
}

// TestExplicitPartition: MetaPartition places a record; records without it
// keep Kafka's key hashing, so one key always lands in one partition.
func TestExplicitPartition(t *testing.T) {
	addr := startBroker(t, 4)
	pub, err := kafka.NewPublisher(kafka.PublisherConfig{ClientConfig: testClient(addr)})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	var msgs []*message.Message
	for p := range 4 {
		m := message.NewMessage(fmt.Sprintf("explicit-%d", p), []byte("mark"))
		m.Metadata.Set(kafka.MetaKey, "same-key")
		m.Metadata.Set(kafka.MetaPartition, strconv.Itoa(p))
		msgs = append(msgs, m)
	}
	for i := range 3 {
		m := message.NewMessage(fmt.Sprintf("hashed-%d", i), []byte("change"))
		m.Metadata.Set(kafka.MetaKey, "same-key")
		msgs = append(msgs, m)
	}
	if err := pub.Publish("p", msgs...); err != nil {
		t.Fatal(err)
	}
	bad := message.NewMessage("bad", nil)
	bad.Metadata.Set(kafka.MetaPartition, "-1")
	if err := pub.Publish("p", bad); err == nil {
		t.Error("a negative partition was accepted")
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("p"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < 7 && ctx.Err() == nil {
		recs = append(recs, cl.PollFetches(ctx).Records()...)
	}
	marks := map[int32]int{}
	hashed := map[int32]int{}
	for _, r := range recs {
		if string(r.Value) == "mark" {
			marks[r.Partition]++
		} else {
			hashed[r.Partition]++
		}
	}
	if len(marks) != 4 || len(hashed) != 1 {
		t.Errorf("marks by partition %v (want one in each of 4), hashed %v (want all 3 in one)", marks, hashed)
	}
}

// TestRefusedMemberIsFatal: a session timeout below the broker's minimum
// (kfake's is 6s) is refused on every join; the subscription reports it
// through Fatal and ends instead of retrying forever.
func TestRefusedMemberIsFatal(t *testing.T) {
	addr := startBroker(t, 1)
	produceRaw(t, addr, "topic", 1, 1)
	fatal := make(chan error, 2)
	sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{ClientConfig: testClient(addr),
		ConsumerGroup: "refused", SessionTimeout: 3 * time.Second, Fatal: func(err error) { fatal <- err }})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	msgs, err := sub.Subscribe(context.Background(), "topic")
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-fatal:
		if !errors.Is(err, kerr.InvalidSessionTimeout) || !strings.Contains(err.Error(), "refused") {
			t.Errorf("Fatal(%v): want the group named and INVALID_SESSION_TIMEOUT", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no Fatal call within 30s")
	}
	select {
	case _, open := <-msgs:
		if open {
			t.Error("a message after Fatal")
		}
	case <-time.After(10 * time.Second):
		t.Error("the subscription did not end after Fatal")
	}
	if len(fatal) != 0 {
		t.Error("Fatal called twice")
	}
}
