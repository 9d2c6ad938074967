// Package stagetest runs one stage of the pipeline on its own, for its
// tests: an embedded broker, a state store in memory, a publisher, and a
// batch-mode subscriber whose messages the stage handles. Only tests
// import it.
package stagetest

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/pipeline/broker"
	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
	"github.com/cdcrecon/cdcrecon/processors/state"
)

// Env is a broker with topics, a store and a publisher, closed when the
// test ends.
type Env struct {
	Ctx       context.Context
	Broker    *broker.Broker
	Client    kafka.ClientConfig
	Store     *state.Store
	Publisher *kafka.Publisher
	kgo       *kgo.Client
}

// New starts an Env with the topics given (name → partitions), its
// context bounded to a minute.
func New(t *testing.T, topics map[string]int32) *Env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	b, err := broker.Start(broker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	e := &Env{Ctx: ctx, Broker: b, Client: kafka.ClientConfig{Brokers: []string{b.Addr()}}}
	if e.kgo, err = kgo.NewClient(kgo.SeedBrokers(b.Addr())); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.kgo.Close)
	for topic, n := range topics {
		if _, err := kadm.NewClient(e.kgo).CreateTopic(ctx, n, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	if e.Store, err = state.Open("state", state.Options{FS: vfs.NewMem()}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Store.Close() })
	if e.Publisher, err = kafka.NewPublisher(kafka.PublisherConfig{ClientConfig: e.Client}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Publisher.Close() })
	return e
}

// Produce writes records, in order.
func (e *Env) Produce(t *testing.T, recs ...*kgo.Record) {
	t.Helper()
	if err := e.kgo.ProduceSync(e.Ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// Stage is what Drive needs of a stage: its group hooks and its handler.
type Stage interface {
	Assigned(topic string, partition int32, committed int64) int64
	Revoked(topic string, partition int32)
	Handle(msg *message.Message) error
}

// Drive has stage handle topic's batch messages, as a member of group,
// until done says so after a batch (it is given the records handled so
// far), or fails the test after a minute. The stage keeps its partitions
// until the test ends.
func (e *Env) Drive(t *testing.T, stage Stage, group, topic string, done func(handled int) bool) {
	t.Helper()
	sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{ClientConfig: e.Client, ConsumerGroup: group, Batch: true,
		Assigned: stage.Assigned, Revoked: stage.Revoked})
	if err != nil {
		t.Fatal(err)
	}
	// Closed when the test ends: a closed subscriber revokes the stage's
	// partitions, and the test reads their state after Drive.
	t.Cleanup(func() { sub.Close() })
	msgs, err := sub.Subscribe(e.Ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	for handled := 0; !done(handled); {
		select {
		case msg := <-msgs:
			batch, err := kafka.DecodeBatch(msg.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if err := stage.Handle(msg); err != nil {
				t.Fatal(err)
			}
			msg.Ack()
			handled += len(batch)
		case <-e.Ctx.Done():
			t.Fatalf("%s: not done within a minute", topic)
		}
	}
}

// Read reads topics to their ends.
func (e *Env) Read(t *testing.T, topics ...string) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.Broker.Addr()), kgo.ConsumeTopics(topics...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(e.Ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	left := 0
	ends.Each(func(o kadm.ListedOffset) { left += int(o.Offset) })
	var out []*kgo.Record
	for left > 0 && e.Ctx.Err() == nil {
		cl.PollFetches(e.Ctx).EachRecord(func(r *kgo.Record) {
			out = append(out, r)
			left--
		})
	}
	return out
}
