package topology

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/cdcrecon/cdcrecon/processors/changes"
)

// InputPartitions returns the partition count of every input topic;
// missing is called for a topic that does not exist and returns the count
// it now has (check creates it empty) or an error (run refuses to start).
func (t *Topology) InputPartitions(ctx context.Context, adm *kadm.Client, missing func(topic string) (int32, error)) (map[string]int32, error) {
	inputs := t.InputTopics()
	details, err := adm.ListTopics(ctx, inputs...)
	if err != nil {
		return nil, fmt.Errorf("listing topics: %w", err)
	}
	partitions := map[string]int32{}
	for _, topic := range inputs {
		d, ok := details[topic]
		switch {
		case ok && d.Err == nil:
			partitions[topic] = int32(len(d.Partitions))
			continue
		case ok && !errors.Is(d.Err, kerr.UnknownTopicOrPartition):
			return nil, fmt.Errorf("input topic %s: %w", topic, d.Err)
		}
		n, err := missing(topic)
		if err != nil {
			return nil, err
		}
		partitions[topic] = n
	}
	return partitions, nil
}

// CreateTopic creates a topic with n partitions and the given topic
// configs; one that exists is left as it is.
func CreateTopic(ctx context.Context, adm *kadm.Client, topic string, n int32, configs map[string]*string) error {
	resp, err := adm.CreateTopic(ctx, n, -1, configs, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("creating topic %s: %w", topic, err)
	}
	return nil
}

// EnsureInternal creates the internal topics that are missing, with
// Partitions partitions (the changes topic with its own settings), and
// refuses a changes topic with another count: both sides of a key must
// meet in one of its partitions.
func (t *Topology) EnsureInternal(ctx context.Context, adm *kadm.Client) error {
	internal := t.Internal()
	details, err := adm.ListTopics(ctx, internal...)
	if err != nil {
		return fmt.Errorf("listing topics: %w", err)
	}
	want := int32(t.Partitions)
	for _, topic := range internal {
		if d, ok := details[topic]; ok && d.Err == nil {
			if topic == t.Changes && int32(len(d.Partitions)) != want {
				return fmt.Errorf("changes topic %s has %d partitions, kafka.partitions says %d: both sides of a key must meet in one partition, so the count cannot change under running workers", topic, len(d.Partitions), want)
			}
			continue
		}
		var configs map[string]*string
		if topic == t.Changes {
			configs = changes.TopicConfigs()
		}
		if err := CreateTopic(ctx, adm, topic, want, configs); err != nil {
			return err
		}
	}
	return nil
}
