package apply

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
	"github.com/cdcrecon/cdcrecon/pipeline/registry"
	"github.com/cdcrecon/cdcrecon/schemas"
)

// driftIndex follows the drift topic: what apply knows of each drift is
// its opening record (the target row as recorded), whether a record
// resolved it, and its latest decision and verification. A drift id is
// never reopened (a new opening makes a new id), so a resolution is final
// even when a worker's replay repeats an earlier record after it.
type driftIndex struct {
	topic string
	cl    *kgo.Client
	adm   *kadm.Client
	serde *registry.Serde

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every fetch
	pos     map[int32]int64
	drifts  map[string]*schemas.Drift
	err     error
}

func newDriftIndex(ctx context.Context, cc kafka.ClientConfig, topic string, serde *registry.Serde) (*driftIndex, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, cc.ClientOpts()...)...)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", topic, err)
	}
	x := &driftIndex{topic: topic, cl: cl, adm: kadm.NewClient(cl), serde: serde, changed: make(chan struct{}),
		pos: map[int32]int64{}, drifts: map[string]*schemas.Drift{}}
	go x.follow(ctx)
	return x, nil
}

func (x *driftIndex) close() { x.cl.Close() }

func (x *driftIndex) follow(ctx context.Context) {
	for ctx.Err() == nil {
		fetches := x.cl.PollFetches(ctx)
		if fetches.IsClientClosed() {
			return
		}
		x.mu.Lock()
		fetches.EachError(func(t string, p int32, err error) {
			if ctx.Err() == nil {
				x.err = fmt.Errorf("reading %s partition %d: %w", t, p, err)
			}
		})
		fetches.EachRecord(func(r *kgo.Record) {
			x.pos[r.Partition] = r.Offset + 1
			rec, _, _, err := x.serde.Decode(ctx, r.Value)
			d, ok := rec.(*schemas.Drift)
			if err != nil || !ok {
				return // not a drift record: nothing apply can use
			}
			x.add(d)
		})
		close(x.changed)
		x.changed = make(chan struct{})
		x.mu.Unlock()
	}
}

func (x *driftIndex) add(d *schemas.Drift) {
	cur := x.drifts[d.ID]
	if cur == nil {
		// Kept: what deciding a command reads — the target row as
		// recorded, the status, decision and verification.
		c := schemas.Drift{ID: d.ID, Table: d.Table, Kind: d.Kind, Status: d.Status, Target: d.Target,
			Verification: d.Verification, Decision: d.Decision, Policy: d.Policy}
		cur = &c
		x.drifts[d.ID] = cur
	}
	if d.Status == schemas.Resolved {
		// Final: only the status stays.
		cur.Status, cur.Target = schemas.Resolved, nil
		return
	}
	if d.Decision != "" && cur.Status != schemas.Resolved {
		cur.Decision = d.Decision
	}
	if d.Verification != "" && cur.Verification != schemas.Confirmed {
		cur.Verification = d.Verification
	}
}

// sync waits until the index has read the drift topic to the end it has
// now.
func (x *driftIndex) sync(ctx context.Context) error {
	ends, err := x.adm.ListEndOffsets(ctx, x.topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("reading the end of %s: %w", x.topic, err)
	}
	for {
		x.mu.Lock()
		behind := false
		ends.Each(func(o kadm.ListedOffset) {
			if o.Offset > 0 && x.pos[o.Partition] < o.Offset {
				behind = true
			}
		})
		ch, ferr := x.changed, x.err
		x.mu.Unlock()
		if !behind {
			return nil
		}
		if ferr != nil {
			return ferr
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		case <-time.After(time.Second):
		}
	}
}

// lookup returns what is known of a drift, a copy; nil when the topic, as
// read, has no record of it.
func (x *driftIndex) lookup(id string) *schemas.Drift {
	x.mu.Lock()
	defer x.mu.Unlock()
	if d := x.drifts[id]; d != nil {
		c := *d
		return &c
	}
	return nil
}

// await returns the drift, waiting up to limit for its record: a worker
// publishes a command and its drift's record to two topics, which need not
// arrive in order.
func (x *driftIndex) await(ctx context.Context, id string, limit time.Duration) (*schemas.Drift, error) {
	deadline := time.Now().Add(limit)
	for {
		if d := x.lookup(id); d != nil {
			return d, nil
		}
		if time.Now().After(deadline) {
			return nil, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		if err := x.sync(ctx); err != nil {
			return nil, err
		}
	}
}
