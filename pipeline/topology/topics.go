package topology

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/cdcrecon/cdcrecon/pipeline/snapshot"
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
// Partitions partitions (the changes and state topics with their own
// settings), and refuses existing ones whose settings would lose state:
// a changes or state topic with another partition count (both sides of a
// key must meet in one partition, and a partition's snapshots are in the
// state partition of its number), a changes topic that is compacted or
// keeps its records for less than four snapshot intervals, and a state
// topic that is not compacted or also deletes by age.
func (t *Topology) EnsureInternal(ctx context.Context, adm *kadm.Client) error {
	internal := t.Internal()
	details, err := adm.ListTopics(ctx, internal...)
	if err != nil {
		return fmt.Errorf("listing topics: %w", err)
	}
	want := int32(t.Partitions)
	var existing []string
	for _, topic := range internal {
		if d, ok := details[topic]; ok && d.Err == nil {
			if (topic == t.Changes || topic == t.State) && int32(len(d.Partitions)) != want {
				return fmt.Errorf("%s topic %s has %d partitions, kafka.partitions says %d: both sides of a key must meet in one partition, and a partition's snapshots are in the state partition of its number, so the count cannot change under running workers; "+
					"delete the topic (and the workers' state) or set kafka.partitions to %[3]d", t.role(topic), topic, len(d.Partitions), want)
			}
			existing = append(existing, topic)
			continue
		}
		if err := CreateTopic(ctx, adm, topic, want, t.topicConfigs(topic)); err != nil {
			return err
		}
	}
	return t.checkConfigs(ctx, adm, existing)
}

// EnsureSignals creates the signal topics that are missing, with one
// partition, and refuses one with more: Debezium reads partition 0 of its
// signal topic only, so a signal written to another would never be read.
func (t *Topology) EnsureSignals(ctx context.Context, adm *kadm.Client) error {
	if len(t.Signals) == 0 {
		return nil
	}
	details, err := adm.ListTopics(ctx, t.Signals...)
	if err != nil {
		return fmt.Errorf("listing topics: %w", err)
	}
	for _, topic := range t.Signals {
		d, ok := details[topic]
		switch {
		case !ok || d.Err != nil:
			if err := CreateTopic(ctx, adm, topic, 1, nil); err != nil {
				return err
			}
		case len(d.Partitions) != 1:
			return fmt.Errorf("signal topic %s has %d partitions: Debezium reads partition 0 of its signal topic only, so re-read requests written to the others would be lost; "+
				"recreate it with one partition (kafka-topics.sh --create --topic %[1]s --partitions 1) and restart the connector", topic, len(d.Partitions))
		}
	}
	return nil
}

func (t *Topology) role(topic string) string {
	if topic == t.State {
		return "state"
	}
	return "changes"
}

// topicConfigs are the settings a topic is created with: the changes
// and state topics have their own.
func (t *Topology) topicConfigs(topic string) map[string]*string {
	switch topic {
	case t.Changes:
		return changes.TopicConfigs(t.ChangesRetention)
	case t.State:
		return snapshot.TopicConfigs()
	}
	return nil
}

// checkConfigs reports existing changes and state topics whose settings
// would lose state, with what to change.
func (t *Topology) checkConfigs(ctx context.Context, adm *kadm.Client, existing []string) error {
	var check []string
	for _, topic := range existing {
		if topic == t.Changes || topic == t.State {
			check = append(check, topic)
		}
	}
	if len(check) == 0 {
		return nil
	}
	described, err := adm.DescribeTopicConfigs(ctx, check...)
	if err != nil {
		return fmt.Errorf("describing the configs of %s: %w", strings.Join(check, ", "), err)
	}
	var problems []string
	alter := func(topic, setting string) string {
		return fmt.Sprintf("kafka-configs.sh --bootstrap-server BROKER --alter --entity-type topics --entity-name %s --add-config %s", topic, setting)
	}
	for _, rc := range described {
		if rc.Err != nil {
			return fmt.Errorf("describing the configs of %s: %w", rc.Name, rc.Err)
		}
		get := func(key string) string {
			for _, c := range rc.Configs {
				if c.Key == key {
					return c.MaybeValue()
				}
			}
			return ""
		}
		policy := get("cleanup.policy")
		switch rc.Name {
		case t.Changes:
			if strings.Contains(policy, "compact") {
				problems = append(problems, fmt.Sprintf("changes topic %s has cleanup.policy=%s: compaction drops changes a restore reads; set it to delete (%s)", rc.Name, policy, alter(rc.Name, "cleanup.policy=delete")))
			}
			least := 4 * t.SnapshotInterval
			if ms, err := strconv.ParseInt(get("retention.ms"), 10, 64); err == nil && ms >= 0 && time.Duration(ms)*time.Millisecond < least {
				problems = append(problems, fmt.Sprintf("changes topic %s has retention.ms=%d, under 4 × state.snapshot_interval (%s): a restore would find the changes since its snapshot gone; set retention.ms to %d or more (%s)",
					rc.Name, ms, least, t.ChangesRetention.Milliseconds(), alter(rc.Name, fmt.Sprintf("retention.ms=%d", t.ChangesRetention.Milliseconds()))))
			}
		case t.State:
			if policy != "compact" {
				problems = append(problems, fmt.Sprintf("state topic %s has cleanup.policy=%s: snapshots must be kept by key, never by age; set it to compact (%s)", rc.Name, policy, alter(rc.Name, "cleanup.policy=compact")))
			}
			if n, err := strconv.Atoi(get("max.message.bytes")); err == nil && n < 1<<20 {
				problems = append(problems, fmt.Sprintf("state topic %s has max.message.bytes=%d: snapshot chunks need 1 MiB, and %d for the largest rows; set it (%s)", rc.Name, n, snapshot.MaxMessageBytes, alter(rc.Name, fmt.Sprintf("max.message.bytes=%d", snapshot.MaxMessageBytes))))
			}
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return fmt.Errorf("internal topics with settings that would lose state:\n  %s", strings.Join(problems, "\n  "))
	}
	return nil
}
