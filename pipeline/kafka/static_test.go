package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/pipeline/broker"
	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
)

// staticMember subscribes to topic as a static member (instance id id)
// of group and acks everything it receives, sending the values on got;
// Fatal calls go to fatal.
func staticMember(t *testing.T, addr, group, id, topic string, got chan<- string, fatal chan<- error) {
	t.Helper()
	sub := newSubscriber(t, addr, group, func(c *kafka.SubscriberConfig) {
		c.InstanceID = id
		c.SessionTimeout = 6 * time.Second
		c.Fatal = func(err error) { fatal <- err }
	})
	msgs, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for m := range msgs {
			got <- string(m.Payload)
			m.Ack()
		}
	}()
}

// await waits for value want on got, up to limit.
func await(t *testing.T, got <-chan string, want string, limit time.Duration) {
	t.Helper()
	deadline := time.After(limit)
	for {
		select {
		case v := <-got:
			if v == want {
				return
			}
		case <-deadline:
			t.Fatalf("no %q within %s", want, limit)
		}
	}
}

func produceValue(t *testing.T, addr, topic, value string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(value)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// TestStaticMemberRidesOutBrokerOutage: two static members whose broker is
// down longer than the session timeout and comes back on its data goes on
// consuming, without a Fatal call. A broker restarted on its data fences
// the member's old session; the member joins again under its instance id.
func TestStaticMemberRidesOutBrokerOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out a broker outage")
	}
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	b, err := broker.Start(broker.Config{Listen: addr, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	produceRaw(t, addr, "t", 1, 0)
	produceValue(t, addr, "t", "before")
	got, fatal := make(chan string, 100), make(chan error, 2)
	staticMember(t, addr, "static", "w1", "t", got, fatal)
	staticMember(t, addr, "static", "w2", "t", got, fatal)
	await(t, got, "before", 20*time.Second)
	time.Sleep(13 * time.Second) // established: two session timeouts
	b.Close()
	time.Sleep(15 * time.Second) // longer than the session timeout
	if b, err = broker.Start(broker.Config{Listen: addr, DataDir: dir}); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	produceValue(t, addr, "t", "after")
	select {
	case err := <-fatal:
		t.Fatalf("the static member stopped: %v", err)
	default:
	}
	await(t, got, "after", 45*time.Second)
	select {
	case err := <-fatal:
		t.Fatalf("the static member stopped: %v", err)
	default:
	}
}

// TestDuplicateInstanceIDStopsNewcomer: a second member under an
// instance id an established member holds is stopped with
// FENCED_INSTANCE_ID named; the established member keeps consuming.
func TestDuplicateInstanceIDStopsNewcomer(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a member to be established")
	}
	addr := startBroker(t, 1)
	produceRaw(t, addr, "t", 1, 0)
	produceValue(t, addr, "t", "first")
	got1, fatal1 := make(chan string, 100), make(chan error, 1)
	staticMember(t, addr, "dup", "same", "t", got1, fatal1)
	await(t, got1, "first", 20*time.Second)
	time.Sleep(13 * time.Second) // established: two session timeouts
	got2, fatal2 := make(chan string, 100), make(chan error, 1)
	staticMember(t, addr, "dup", "same", "t", got2, fatal2)
	select {
	case err := <-fatal2:
		if !errors.Is(err, kerr.FencedInstanceID) {
			t.Errorf("newcomer stopped with %v, want FENCED_INSTANCE_ID", err)
		}
	case err := <-fatal1:
		t.Fatalf("the established member stopped: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("the newcomer still runs after a minute")
	}
	for i := range 3 {
		v := fmt.Sprintf("later-%d", i)
		produceValue(t, addr, "t", v)
		await(t, got1, v, 30*time.Second)
	}
	select {
	case err := <-fatal1:
		t.Fatalf("the established member stopped: %v", err)
	default:
	}
}
