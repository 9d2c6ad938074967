package kafka_test

import (
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/pipeline/broker"
	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
)

// startBroker starts an embedded broker on loopback for one test.
func startBroker(t testing.TB, partitions int) string {
	t.Helper()
	b, err := broker.Start(broker.Config{Partitions: partitions})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b.Addr()
}

// testClient tunes franz-go for a broker on loopback: missing topics are
// looked up again quickly instead of after the default 5s.
func testClient(addr string) kafka.ClientConfig {
	return kafka.ClientConfig{
		Brokers: []string{addr},
		Opts:    []kgo.Opt{kgo.MetadataMinAge(50 * time.Millisecond)},
	}
}

func newPubSub(t *testing.T, addr, group string) (message.Publisher, message.Subscriber) {
	t.Helper()
	pub, err := kafka.NewPublisher(kafka.PublisherConfig{ClientConfig: testClient(addr)})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{
		ClientConfig:   testClient(addr),
		ConsumerGroup:  group,
		NackBackoff:    kafka.Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond},
		CommitInterval: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return pub, sub
}

// TestPubSub runs Watermill's universal Pub/Sub suite. Topics have one
// partition, so the whole topic is one ordered stream and the ordering
// tests apply.
func TestPubSub(t *testing.T) {
	addr := startBroker(t, 1)
	tests.TestPubSub(t,
		tests.Features{
			ConsumerGroups:                      true,
			ExactlyOnceDelivery:                 false,
			GuaranteedOrder:                     true,
			GuaranteedOrderWithSingleSubscriber: true,
			Persistent:                          true,
			// Subscribers built by the first constructor share one group,
			// so a new one resumes where the group left off; a new group
			// reading old messages is what TestConsumerGroups checks.
			NewSubscriberReceivesOldMessages: false,
		},
		func(t *testing.T) (message.Publisher, message.Subscriber) {
			return newPubSub(t, addr, "test")
		},
		func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
			return newPubSub(t, addr, group)
		},
	)
}
