package topology

import (
	"context"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/processors/changes"
	"github.com/cdcrecon/cdcrecon/processors/debezium"
	"github.com/cdcrecon/cdcrecon/processors/normalize"
)

// periodic is the worker's periodic duty: idle watermarks for the input
// partitions it has read to their end, consumer lag, rebuilds under way
// and state size.
type periodic struct {
	p      *Pipeline
	o      Options
	log    *slog.Logger
	topics []string
	tables []string
	// heartbeat holds each side's latest heartbeat time (Unix ms).
	heartbeat [3]atomic.Int64
	ctx       context.Context
	cancel    context.CancelFunc
	// mu orders start's wg.Add before stop's wg.Wait: Close may run
	// while Run is still starting the duties. stopped, under mu, keeps a
	// start after stop from adding anything.
	mu      sync.Mutex
	stopped bool
	wg      sync.WaitGroup
}

func newPeriodic(p *Pipeline, o Options, log *slog.Logger) *periodic {
	c := &periodic{p: p, o: o, log: log}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	for i := range c.heartbeat {
		c.heartbeat[i].Store(math.MinInt64)
	}
	c.topics, c.tables = p.Topology.InputTopics(), p.Topology.Tables()
	o.Metrics.Tables(c.tables, []string{normalize.Source.String(), normalize.Target.String()})
	return c
}

// start runs the periodic duties until ctx ends or stop.
func (c *periodic) start(run context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	context.AfterFunc(run, c.cancel)
	ctx := c.ctx
	if c.stopped || ctx.Err() != nil {
		return nil // stopped before it started
	}
	cl, err := kgo.NewClient(c.o.Client.ClientOpts()...)
	if err != nil {
		return err
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer cl.Close()
		c.tick(ctx, kadm.NewClient(cl))
	}()
	hb := c.o.Config.Idle.Heartbeats
	sides := map[string]normalize.Side{}
	for _, t := range hb.Source {
		sides[t] = normalize.Source
	}
	for _, t := range hb.Target {
		sides[t] = normalize.Target
	}
	if len(sides) == 0 {
		return nil
	}
	topics := append(append([]string{}, hb.Source...), hb.Target...)
	hc, err := kgo.NewClient(append(c.o.Client.ClientOpts(), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd().Relative(-1)))...)
	if err != nil {
		return err
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer hc.Close()
		c.heartbeats(ctx, hc, sides)
	}()
	return nil
}

func (c *periodic) stop() {
	c.cancel()
	c.mu.Lock() // a start under way has added what it runs
	c.stopped = true
	c.mu.Unlock()
	c.wg.Wait()
}

// heartbeats follows the sides' Debezium heartbeat topics.
func (c *periodic) heartbeats(ctx context.Context, cl *kgo.Client, sides map[string]normalize.Side) {
	dec := debezium.NewDecoder(c.o.Decoder)
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachError(func(topic string, p int32, err error) {
			if ctx.Err() == nil {
				c.log.Warn("reading heartbeats, retrying", "topic", topic, "partition", p, "error", err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			ev, err := dec.Decode(ctx, r.Key, r.Value)
			if err != nil || ev.Kind != debezium.Heartbeat {
				c.log.Warn("not a heartbeat, ignored", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset)
				return
			}
			h := &c.heartbeat[sides[r.Topic]]
			for cur := h.Load(); ev.Time > cur && !h.CompareAndSwap(cur, ev.Time); cur = h.Load() {
			}
		})
	}
}

// driftOpen sets the drift gauge from the state of the partitions this
// worker owns, every table included.
func (c *periodic) driftOpen() {
	c.o.Metrics.DriftOpen(c.tables, c.p.Reconciler.Stats().OpenByTable)
}

// reading is what one tick learnt: the input partitions' ends and
// the time each side is complete to once they are read.
type reading struct {
	ends   map[string]int64
	caught [3]int64
}

// tick measures, every interval, what the gauges report, and hands what
// it learnt to idle. It never waits on a batch or a publish: those wait
// on the brokers, and the gauges must say so when the brokers are gone.
func (c *periodic) tick(ctx context.Context, adm *kadm.Client) {
	idle := c.o.Config.Idle
	t := time.NewTicker(idle.Interval)
	defer t.Stop()
	learnt := make(chan reading, 1)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.idle(ctx, learnt)
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m := c.o.Metrics
		c.driftOpen()
		if c.o.Store != nil {
			if err := c.o.Store.Check(); err != nil {
				c.p.fail(err)
				return
			}
		}
		// The heartbeats and the wall clock are read before the ends are
		// listed: a heartbeat stands for the records its connector wrote
		// before it, and those are inside ends listed after it was seen.
		// Read the other way round, a heartbeat seen after the listing
		// would close a partition over records not yet read, and make
		// them late.
		var snap reading
		wall := int64(math.MinInt64)
		if idle.SafetyMargin > 0 {
			wall = time.Now().Add(-idle.SafetyMargin).UnixMilli()
		}
		for s := range snap.caught {
			snap.caught[s] = max(wall, c.heartbeat[s].Load())
		}
		lctx, cancel := context.WithTimeout(ctx, max(idle.Interval, listTimeout))
		ends, err := adm.ListEndOffsets(lctx, append(c.topics, c.p.Topology.Changes)...)
		cancel()
		if err == nil {
			// A partition whose end is unknown is reported without lag;
			// none known at all is a broker out of reach.
			known := false
			ends.Each(func(o kadm.ListedOffset) { known = known || o.Err == nil })
			if !known {
				err = ends.Error()
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.log.Warn("listing end offsets, retrying", "error", err)
			// Unknown, not 0: the brokers did not say where the
			// partitions end.
			m.Reachable(false)
			m.ForgetLag()
			continue
		}
		m.Reachable(true)
		snap.ends = map[string]int64{}
		changesEnd := map[int32]int64{}
		ends.Each(func(o kadm.ListedOffset) {
			switch {
			case o.Err != nil:
			case o.Topic == c.p.Topology.Changes:
				changesEnd[o.Partition] = o.Offset
			default:
				snap.ends[changes.InputName(o.Topic, o.Partition)] = o.Offset
			}
		})
		m.ForgetLag()
		for _, l := range c.p.Ingest.Lags(snap.ends) {
			m.Lag(l.Topic, l.Partition, l.Records)
		}
		lag, rebuilding := c.p.Reconciler.Progress(changesEnd)
		for p, n := range lag {
			m.Lag(c.p.Topology.Changes, p, n)
		}
		m.Rebuilding(rebuilding)
		if c.o.Store != nil {
			m.State(c.o.Store.DiskUsage(), c.p.Reconciler.Stats().Keys)
		}
		// The latest snapshot replaces one idle has not taken yet.
		select {
		case <-learnt:
		default:
		}
		learnt <- snap
	}
}

// listTimeout bounds one listing of the end offsets, so that brokers out
// of reach show in the gauges within it.
const listTimeout = 5 * time.Second

// idle publishes the idle watermarks of each snapshot tick hands it.
func (c *periodic) idle(ctx context.Context, learnt <-chan reading) {
	for {
		var snap reading
		select {
		case <-ctx.Done():
			return
		case snap = <-learnt:
		}
		err := c.p.Ingest.Idle(ctx, snap.ends, func(s normalize.Side) int64 { return snap.caught[s] })
		if err != nil && ctx.Err() == nil {
			c.log.Warn("publishing idle watermarks, retrying", "error", err)
		}
	}
}
