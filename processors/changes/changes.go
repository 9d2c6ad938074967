// Package changes is the contract of the changes topic, the internal topic
// between the ingest and reconcile stages: what its records say (Change,
// Mark), how they are encoded, how they are keyed and partitioned, which
// go to every partition, and how the topic is configured. Both stages, and
// nothing else, read and write it; the rules here are what lets both sides
// of a row meet in one partition whichever worker wrote them.
//
// A change's Kafka key is its table, a 0 byte and its canonical key (Key);
// its partition is the xxh3 hash of that key modulo the partition count
// (Partition), so the count cannot change under running workers. A
// truncate, which removes every key of its table on its side, and every
// watermark go to all partitions (Broadcast).
package changes

import (
	"math"
	"strconv"
	"time"

	"github.com/zeebo/xxh3"

	"github.com/cdcrecon/cdcrecon/processors/normalize"
)

// Effect is what a change does to its key's state on its side.
type Effect uint8

// Kinds of change.
const (
	Upsert   Effect = iota + 1 // the row is Row
	Absent                     // deleted, soft-deleted
	Truncate                   // every row of the table on the side is removed
)

// Origin is where a change was read: its input topic, partition and
// offset. At one event time, a side's changes apply in Origin order.
type Origin struct {
	Topic     string
	Partition int32
	Offset    int64
}

// Compare orders origins by topic, partition, then offset.
func (o Origin) Compare(p Origin) int {
	switch {
	case o.Topic != p.Topic:
		if o.Topic < p.Topic {
			return -1
		}
		return 1
	case o.Partition != p.Partition:
		return compare(int64(o.Partition), int64(p.Partition))
	}
	return compare(o.Offset, p.Offset)
}

func compare(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Change is one deduplicated change of one side of one key (of every key
// of the table, for Truncate).
type Change struct {
	Table string
	Side  normalize.Side
	Kind  Effect
	// Key is the canonical key (canon.AppendKey); empty for Truncate.
	Key []byte
	// Row is the canonical row (canon.AppendRow) and Digest its digest
	// (normalize.Table.Digest), for Upsert.
	Row    []byte
	Digest uint64
	// Unresolved: Row holds unchanged-TOAST placeholders, to resolve
	// against the side's previous row.
	Unresolved bool
	// Reread: the row an incremental snapshot read (see normalize.Change).
	Reread bool
	// Time is the effective event time, Unix ms.
	Time   int64
	Origin Origin
}

// Mark is a watermark: Input, a partition of Side's topics
// ("topic/partition"), has delivered every change with event time ≤ Time.
// Time End is its end.
type Mark struct {
	Side  normalize.Side
	Input string
	Time  int64
}

// InputName names an input partition as a Mark's Input does:
// "topic/partition".
func InputName(topic string, partition int32) string {
	return topic + "/" + strconv.FormatInt(int64(partition), 10)
}

// End is the Time of a Mark at the end of an input.
const End = math.MaxInt64

// Key appends a change's Kafka key to b: its table, a 0 byte, its
// canonical key.
func Key(b []byte, table string, key []byte) []byte {
	b = append(b, table...)
	b = append(b, 0)
	return append(b, key...)
}

// Partition is the partition, of n, that a change keyed key goes to.
func Partition(key []byte, n int) int32 {
	return int32(xxh3.Hash(key) % uint64(n))
}

// Broadcast reports whether a change goes to every partition rather than
// to its key's: a truncate does, for every key of its table. Every Mark
// does too.
func (c *Change) Broadcast() bool { return c.Kind == Truncate }

// TopicConfigs are the changes topic's settings when cdcrecon creates
// it: deleted by age after retention. The reconciler deletes the changes
// its snapshots make unnecessary as they complete, so the age only bounds
// the topic when snapshots stop. Segments roll at 64 MiB or hourly, since
// a broker frees the disk of whole segments only: with Kafka's 1 GiB
// default a quiet partition would keep a gigabyte of deleted changes.
func TopicConfigs(retention time.Duration) map[string]*string {
	ms, policy := strconv.FormatInt(retention.Milliseconds(), 10), "delete"
	segBytes, segMs := strconv.Itoa(64<<20), strconv.FormatInt(time.Hour.Milliseconds(), 10)
	return map[string]*string{"retention.ms": &ms, "cleanup.policy": &policy, "segment.bytes": &segBytes, "segment.ms": &segMs}
}
