package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrBeforeStart is a read that asked for records the partition no
// longer holds: its log starts later (retention or a deletion removed
// them).
var ErrBeforeStart = errors.New("the records asked for are no longer in the partition")

// Bounds returns a partition's log start and end offsets: its first
// record's offset and the offset the next record will get.
func Bounds(ctx context.Context, cl *kgo.Client, topic string, partition int32) (start, end int64, err error) {
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return 0, 0, fmt.Errorf("listing the start offsets of %s: %w", topic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return 0, 0, fmt.Errorf("listing the end offsets of %s: %w", topic, err)
	}
	s, ok1 := starts.Lookup(topic, partition)
	e, ok2 := ends.Lookup(topic, partition)
	if !ok1 || !ok2 {
		return 0, 0, fmt.Errorf("topic %s has no partition %d", topic, partition)
	}
	return s.Offset, e.Offset, nil
}

// ReadRange calls fn with every record of a partition whose offset is in
// [from, to), in order, reading with a client of its own (no group). A
// partition whose log starts after from is ErrBeforeStart unless gaps is
// set: a compacted topic has gaps anywhere, and records before its start
// are gone by design.
func ReadRange(ctx context.Context, cfg ClientConfig, topic string, partition int32, from, to int64, gaps bool, fn func(*kgo.Record) error) error {
	if from >= to {
		return nil
	}
	opts := append(cfg.ClientOpts(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {partition: kgo.NewOffset().At(from)}}),
		kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(16<<20))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	start, _, err := Bounds(ctx, cl, topic, partition)
	if err != nil {
		return err
	}
	if start > from && !gaps {
		return fmt.Errorf("%s/%d from offset %d: %w: the log starts at %d", topic, partition, from, ErrBeforeStart, start)
	}
	if start >= to {
		return nil
	}
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if ferr == nil && !errors.Is(err, context.Canceled) {
				ferr = err
			}
		})
		if ferr != nil {
			return fmt.Errorf("reading %s/%d: %w", topic, partition, ferr)
		}
		done := false
		var rerr error
		fs.EachRecord(func(r *kgo.Record) {
			if done || rerr != nil {
				return
			}
			if r.Offset >= to {
				done = true
				return
			}
			if r.Offset < from {
				return
			}
			if !gaps && r.Offset != from {
				rerr = fmt.Errorf("%s/%d: offset %d follows %d: %w", topic, partition, r.Offset, from-1, ErrBeforeStart)
				return
			}
			from = r.Offset + 1
			rerr = fn(r)
			if from >= to {
				done = true
			}
		})
		if rerr != nil {
			return rerr
		}
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			// Nothing left before the end: a compacted topic's last
			// records before to may all be gone.
			if p.HighWatermark >= 0 && from >= p.HighWatermark {
				done = true
			}
		})
		if done {
			return nil
		}
	}
}
