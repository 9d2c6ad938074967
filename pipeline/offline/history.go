package offline

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
	"github.com/cdcrecon/cdcrecon/pipeline/registry"
	"github.com/cdcrecon/cdcrecon/schemas"
)

// ReadDrift reads the drift topic to its end and returns its records in
// history order: by the instant each record is about (opening or
// resolution), then table, key and id; an opening before its resolution.
func ReadDrift(ctx context.Context, cc kafka.ClientConfig, topic string, serde *registry.Serde) ([]*schemas.Drift, error) {
	var out []*schemas.Drift
	err := ReadRecords(ctx, cc, topic, serde, func(rec schemas.Record) {
		if d, ok := rec.(*schemas.Drift); ok {
			out = append(out, d)
		}
	})
	if err != nil {
		return nil, err
	}
	SortHistory(out)
	return out, nil
}

// ReadRecords reads an output topic to the end it has when called,
// handing fn each record decoded, in each partition's order.
func ReadRecords(ctx context.Context, cc kafka.ClientConfig, topic string, serde *registry.Serde, fn func(schemas.Record)) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, cc.ClientOpts()...)...)
	if err != nil {
		return fmt.Errorf("reading %s: %w", topic, err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", topic, err)
	}
	want := int64(0)
	ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
	for read := int64(0); read < want; {
		fetches := cl.PollFetches(ctx)
		if err := fetches.Err0(); err != nil {
			return fmt.Errorf("reading %s: %w", topic, err)
		}
		for it := fetches.RecordIter(); !it.Done(); {
			r := it.Next()
			read++
			rec, _, _, err := serde.Decode(ctx, r.Value)
			if err != nil {
				return fmt.Errorf("reading %s offset %d: %w", topic, r.Offset, err)
			}
			fn(rec)
		}
	}
	return nil
}

// Instant is when a drift record took effect: its resolution for a
// resolved one, else when it opened.
func Instant(d *schemas.Drift) time.Time {
	switch {
	case d.Status == schemas.Resolved && d.ResolvedAt != nil:
		return *d.ResolvedAt
	case d.VerifiedAt != nil:
		return *d.VerifiedAt // a verdict on an open drift
	}
	return d.OpenedAt
}

// SortHistory orders drift records by instant, table, key (as JSON), an
// opening before its resolution, then id. Each key's JSON is made once.
func SortHistory(ds []*schemas.Drift) {
	type entry struct {
		d   *schemas.Drift
		at  time.Time
		key string
	}
	es := make([]entry, len(ds))
	for i, d := range ds {
		k, _ := json.Marshal(d.Key)
		es[i] = entry{d, Instant(d), string(k)}
	}
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i], es[j]
		switch {
		case !a.at.Equal(b.at):
			return a.at.Before(b.at)
		case a.d.Table != b.d.Table:
			return a.d.Table < b.d.Table
		case a.key != b.key:
			return a.key < b.key
		case a.d.Status != b.d.Status:
			return a.d.Status == schemas.Open
		}
		return a.d.ID < b.d.ID
	})
	for i, e := range es {
		ds[i] = e.d
	}
}

// OpenAtEnd returns the drifts whose last record is an opening.
func OpenAtEnd(history []*schemas.Drift) []*schemas.Drift {
	last := map[string]*schemas.Drift{}
	for _, d := range history {
		last[d.ID] = d
	}
	var open []*schemas.Drift
	for _, d := range history {
		if last[d.ID] == d && d.Status == schemas.Open {
			open = append(open, d)
		}
	}
	return open
}
