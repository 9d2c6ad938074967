package topology

import (
	"slices"
	"time"

	"github.com/cdcrecon/cdcrecon/processors/config"
	"github.com/cdcrecon/cdcrecon/processors/normalize"
)

// Topology is the pipeline's shape as data, computed once from a
// validated configuration before anything runs: the input topics with the
// table, side and consumer group of each, the changes topic and its
// partition count, the reconcile stage's group, and the output topics.
// run, check, replay, the idle clock and topic creation all read it. Its
// group names are an upgrade contract: a worker that derived other names
// would start its groups over from nothing.
type Topology struct {
	// Inputs are the tables' topics, in configuration order, the source's
	// before the target's.
	Inputs []Input
	// Changes is the changes topic; Partitions its partition count.
	Changes    string
	Partitions int
	// ReconcileGroup is the consumer group of the reconcile stage on the
	// changes topic.
	ReconcileGroup string
	// Outputs are the drift, compensation, checksums and dead-letter
	// topics.
	Drift, Compensation, Checksums, DLQ string
	// State is the compacted topic of the changes partitions' snapshots,
	// with Partitions partitions too.
	State string
	// ChangesRetention is the changes topic's retention.ms when created;
	// SnapshotInterval the longest between a partition's snapshots.
	ChangesRetention, SnapshotInterval time.Duration
	// Signals are the connectors' signal topics the worker sends re-read
	// requests to (tables' verify), sorted.
	Signals []string
}

// Input is one input topic.
type Input struct {
	Table string
	Side  normalize.Side
	Topic string
	// Group is the ingest stage's consumer group on the topic: one per
	// topic, so that each topic's partitions are shared out on their own.
	Group string
}

// Define computes the topology of cfg, which must be valid.
func Define(cfg *config.Config) *Topology {
	t := &Topology{Changes: cfg.Topics.Changes, Partitions: cfg.Kafka.Partitions,
		ReconcileGroup: cfg.Kafka.Group + ".reconcile",
		Drift:          cfg.Topics.Drift, Compensation: cfg.Topics.Compensation, Checksums: cfg.Topics.Checksums, DLQ: cfg.Topics.DLQ,
		State: cfg.Topics.State, ChangesRetention: cfg.State.ChangesRetention, SnapshotInterval: cfg.State.SnapshotInterval}
	for _, tb := range cfg.Tables {
		for _, in := range []struct {
			side  normalize.Side
			topic string
		}{{normalize.Source, tb.Source.Topic}, {normalize.Target, tb.Target.Topic}} {
			t.Inputs = append(t.Inputs, Input{Table: tb.Name, Side: in.side, Topic: in.topic, Group: cfg.Kafka.Group + ".ingest." + in.topic})
		}
		for _, v := range []*config.SideVerify{tb.Source.Verify, tb.Target.Verify} {
			if v != nil && !slices.Contains(t.Signals, v.SignalTopic) {
				t.Signals = append(t.Signals, v.SignalTopic)
			}
		}
	}
	slices.Sort(t.Signals)
	return t
}

// InputTopics returns the input topics, in Inputs order.
func (t *Topology) InputTopics() []string {
	out := make([]string, len(t.Inputs))
	for i, in := range t.Inputs {
		out[i] = in.Topic
	}
	return out
}

// Internal returns the topics cdcrecon creates: the changes topic, the
// outputs, then the state topic.
func (t *Topology) Internal() []string {
	return []string{t.Changes, t.Drift, t.Compensation, t.Checksums, t.DLQ, t.State}
}

// Tables returns the tables' names, in configuration order.
func (t *Topology) Tables() []string {
	var out []string
	for i, in := range t.Inputs {
		if i == 0 || t.Inputs[i-1].Table != in.Table {
			out = append(out, in.Table)
		}
	}
	return out
}
