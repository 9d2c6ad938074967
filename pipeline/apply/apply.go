// Package apply repairs target databases from the compensation topic:
// each command runs in one transaction that first reads the target row
// and writes only while the row is as the command's drift recorded it
// (compare-and-set), so a command applies at most once however often the
// topic is replayed. Every outcome goes to the audit topic.
package apply

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"

	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
	"github.com/cdcrecon/cdcrecon/pipeline/ops"
	"github.com/cdcrecon/cdcrecon/pipeline/registry"
	"github.com/cdcrecon/cdcrecon/processors/config"
	"github.com/cdcrecon/cdcrecon/processors/normalize"
	"github.com/cdcrecon/cdcrecon/schemas"
)

// Options configure a run of apply.
type Options struct {
	Config *config.Config
	Client kafka.ClientConfig
	Serde  *registry.Serde
	// InstanceID names this applier in audit records.
	InstanceID string
	// DryRun reads the commands from the group's committed offsets to the
	// topic's end, decides each against the target (reading it, writing
	// nothing), prints them to Out and stops. It commits nothing and
	// publishes nothing.
	DryRun bool
	// Table, when set, takes only that table's commands, under a consumer
	// group of its own (<group>.<table>), so that the all-tables group
	// keeps its place.
	Table string
	// Limit, when positive, stops after that many commands.
	Limit int
	// Exit stops once the commands on the topic when the run started are
	// decided.
	Exit    bool
	Out     io.Writer
	Logger  *slog.Logger
	Metrics *ops.Metrics
}

// Summary counts outcomes by table.
type Summary map[string]map[schemas.Outcome]int

// Total is the count of an outcome over every table.
func (s Summary) Total(o schemas.Outcome) int {
	n := 0
	for _, m := range s {
		n += m[o]
	}
	return n
}

// Group is the consumer group a run commits under.
func Group(cfg *config.Config, table string) string {
	if table != "" {
		return cfg.ApplyGroup() + "." + table
	}
	return cfg.ApplyGroup()
}

type applier struct {
	o       Options
	cfg     *config.Config
	targets map[string]*target
	index   *driftIndex
	limiter *rate.Limiter
	sem     chan struct{}
	log     *slog.Logger

	mu      sync.Mutex
	summary Summary
}

// Run applies commands until ctx ends, or as Options say.
func Run(ctx context.Context, o Options) (Summary, error) {
	cfg := o.Config
	if o.Out == nil {
		o.Out = io.Discard
	}
	a := &applier{o: o, cfg: cfg, targets: map[string]*target{}, summary: Summary{}, log: o.Logger,
		limiter: rate.NewLimiter(rate.Limit(cfg.Apply.Rate), 1), sem: make(chan struct{}, cfg.Apply.Concurrency)}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if err := a.openTargets(); err != nil {
		return nil, err
	}
	defer a.closeTargets()
	ictx, cancel := context.WithCancel(ctx)
	defer cancel()
	var err error
	if a.index, err = newDriftIndex(ictx, o.Client, cfg.Topics.Drift, o.Serde); err != nil {
		return nil, err
	}
	defer a.index.close()
	err = a.consume(ctx)
	return a.summary, err
}

func (a *applier) openTargets() error {
	m, err := normalize.NewMapper(a.cfg)
	if err != nil {
		return err
	}
	pools := map[string]*target{}
	for i := range a.cfg.Tables {
		tc := &a.cfg.Tables[i]
		if a.o.Table != "" && tc.Name != a.o.Table {
			continue
		}
		db, name := a.cfg.ApplyTable(tc)
		if db == nil {
			if a.o.Table != "" {
				return fmt.Errorf("table %s: no target database: set tables[%d].target.database or apply.database in %s", tc.Name, i, a.cfg.File)
			}
			continue // its commands are skipped, each audited
		}
		t := &target{cfg: tc, norm: m.Tables()[i], name: name, address: db.Address(), policy: tc.Policy.Name(tc.Name), verify: tc.Verifies()}
		if p := pools[db.Key()]; p != nil {
			t.db, t.dialect = p.db, p.dialect
		} else {
			if t.db, t.dialect, err = open(db); err != nil {
				a.closeTargets()
				return fmt.Errorf("table %s: %w", tc.Name, err)
			}
			t.db.SetMaxOpenConns(a.cfg.Apply.Concurrency + 1)
			pools[db.Key()] = t
		}
		a.targets[tc.Name] = t
	}
	if a.o.Table != "" && a.targets[a.o.Table] == nil {
		return fmt.Errorf("--table %s: no such table in %s", a.o.Table, a.cfg.File)
	}
	if len(a.targets) == 0 {
		return fmt.Errorf("no table has a target database: set apply.database (or a table's target.database) in %s", a.cfg.File)
	}
	return nil
}

func (a *applier) closeTargets() {
	seen := map[any]bool{}
	for _, t := range a.targets {
		if t.db != nil && !seen[t.db] {
			seen[t.db] = true
			_ = t.db.Close()
		}
	}
}

// consume reads the compensation topic batch by batch: each batch's
// commands are decided, their audit records published, then their offsets
// committed, so a crash repeats at most one batch, whose applied commands
// compare-and-set then finds superseded.
func (a *applier) consume(ctx context.Context) error {
	topic, group := a.cfg.Topics.Compensation, Group(a.cfg, a.o.Table)
	adm, err := kgo.NewClient(a.o.Client.ClientOpts()...)
	if err != nil {
		return err
	}
	defer adm.Close()
	ad := kadm.NewClient(adm)
	ends, err := ad.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("reading the end of %s: %w", topic, err)
	}
	committed, err := ad.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		err = nil // a new group: nothing committed yet
	}
	if err != nil {
		return fmt.Errorf("reading group %s's offsets: %w", group, err)
	}
	next := map[int32]int64{}
	starts, err := ad.ListStartOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("reading the start of %s: %w", topic, err)
	}
	starts.Each(func(o kadm.ListedOffset) { next[o.Partition] = o.Offset })
	if c, ok := committed[topic]; ok {
		for p, o := range c {
			if o.At >= 0 {
				next[p] = max(next[p], o.At)
			}
		}
	}
	done := func() bool {
		left := false
		ends.Each(func(o kadm.ListedOffset) { left = left || next[o.Partition] < o.Offset })
		return !left
	}
	opts := a.o.Client.ClientOpts()
	if a.o.DryRun {
		parts := map[int32]kgo.Offset{}
		ends.Each(func(o kadm.ListedOffset) { parts[o.Partition] = kgo.NewOffset().At(next[o.Partition]) })
		opts = append(opts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}))
	} else {
		// A member that crashed holds its partitions for the session
		// timeout: kafka.session_timeout, as for the workers.
		opts = append(opts, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
			kgo.BlockRebalanceOnPoll(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.SessionTimeout(a.cfg.Kafka.SessionTimeout), kgo.RebalanceTimeout(2*a.cfg.Kafka.SessionTimeout))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	// Leaving the group waits for a rebalance a poll holds back: run
	// first (defers run last in, first out).
	defer cl.AllowRebalance()
	// How long a run to the end waits without a command: past a crashed
	// member's session and the rebalance that gives its partitions back.
	quiet := 30 + int(3*a.cfg.Kafka.SessionTimeout/time.Second)
	decided, idle := 0, 0
	for {
		if (a.o.DryRun || a.o.Exit) && done() {
			return nil
		}
		if a.o.Limit > 0 && decided >= a.o.Limit {
			return nil
		}
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		// Small batches: a crash decides at most one again.
		fetches := cl.PollRecords(pctx, 4*a.cfg.Apply.Concurrency)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		var recs []*kgo.Record
		fetches.EachError(func(t string, p int32, err error) {
			if pctx.Err() == nil {
				a.log.Warn("fetching commands", "topic", t, "partition", p, "error", err)
			}
		})
		fetches.EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
		if a.o.DryRun {
			// Stop at the end the topic had when the run started.
			recs = slices.DeleteFunc(recs, func(r *kgo.Record) bool {
				for _, e := range ends[topic] {
					if e.Partition == r.Partition {
						return r.Offset >= e.Offset
					}
				}
				return true
			})
		}
		if a.o.Limit > 0 && len(recs) > a.o.Limit-decided {
			recs = recs[:a.o.Limit-decided]
		}
		switch {
		case len(recs) > 0:
			idle = 0
		case a.o.DryRun || a.o.Exit:
			// A partition may end short of its end offset (compacted
			// away, transaction markers), or belong to another member:
			// quiet seconds end the run.
			if idle++; idle >= quiet {
				a.log.Warn("no more commands short of the topic's end at start: stopping", "topic", topic, "quiet_seconds", quiet)
				return nil
			}
		}
		if len(recs) > 0 {
			if err := a.batch(ctx, cl, recs); err != nil {
				cl.AllowRebalance()
				return err
			}
			decided += len(recs)
			for _, r := range recs {
				next[r.Partition] = max(next[r.Partition], r.Offset+1)
			}
		}
		if !a.o.DryRun {
			cl.AllowRebalance()
		}
	}
}

// batch decides a batch's commands, in order per key and concurrently
// across keys, publishes their audit records and commits their offsets.
func (a *applier) batch(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) error {
	if err := a.index.sync(ctx); err != nil {
		return err
	}
	byKey := map[string][]int{}
	var order []string
	for i, r := range recs {
		k := fmt.Sprintf("%d/%s", r.Partition, r.Key)
		if byKey[k] == nil {
			order = append(order, k)
		}
		byKey[k] = append(byKey[k], i)
	}
	// Each outcome is published as soon as it is decided, so that a crash
	// loses no applied command's record; the batch's offsets are committed
	// once all are acknowledged.
	var pubs sync.WaitGroup
	var pubMu sync.Mutex
	var pubErr error
	publish := func(r *kgo.Record) {
		pubs.Add(1)
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			defer pubs.Done()
			if err != nil {
				pubMu.Lock()
				if pubErr == nil {
					pubErr = err
				}
				pubMu.Unlock()
			}
		})
	}
	var wg sync.WaitGroup
	for _, k := range order {
		wg.Add(1)
		go func(idx []int) {
			defer wg.Done()
			for _, i := range idx {
				if r := a.command(ctx, recs[i]); r != nil && !a.o.DryRun {
					publish(r)
				}
			}
		}(byKey[k])
	}
	wg.Wait()
	pubs.Wait()
	if ctx.Err() != nil || a.o.DryRun {
		return nil // stopping, or a dry run: nothing of the batch is committed
	}
	if pubErr != nil {
		return fmt.Errorf("publishing audit records: %w", pubErr)
	}
	if err := cl.CommitRecords(ctx, recs...); err != nil {
		return fmt.Errorf("committing the commands' offsets: %w", err)
	}
	return nil
}

// command decides one record of the compensation topic and returns the
// record to publish: its audit record, or a dead letter for a record that
// is no command.
func (a *applier) command(ctx context.Context, r *kgo.Record) *kgo.Record {
	rec, _, _, err := a.o.Serde.Decode(ctx, r.Value)
	cmd, ok := rec.(*schemas.Compensation)
	if err != nil || !ok {
		if err == nil {
			err = fmt.Errorf("a %s record, not a compensation command", rec.SchemaName())
		}
		a.log.Error("not a compensation command: set aside in the dead-letter topic", "partition", r.Partition, "offset", r.Offset, "error", err)
		fmt.Fprintf(a.o.Out, "invalid      partition %d offset %d: %v\n", r.Partition, r.Offset, err)
		return a.deadLetter(ctx, r, err)
	}
	if a.o.Table != "" && cmd.Table != a.o.Table {
		return nil // another table's: this run is not theirs
	}
	au := &schemas.Audit{CompensationID: cmd.ID, DriftID: cmd.DriftID, Table: cmd.Table, Action: cmd.Action, Key: cmd.Key,
		Policy: cmd.Policy, Verification: string(cmd.Verification), InstanceID: a.o.InstanceID, Attempts: 1}
	t := a.targets[cmd.Table]
	var v verdict
	switch {
	case t == nil:
		v = verdict{outcome: schemas.Skipped, reason: fmt.Sprintf("table %s has no target database in the configuration", cmd.Table)}
	default:
		au.TargetTable, au.Database = t.name, t.address
		d, err := a.index.await(ctx, cmd.DriftID, a.cfg.Apply.CatchUp)
		if err != nil {
			v = verdict{outcome: schemas.Failed, reason: err.Error()}
			break
		}
		var pass bool
		if v, pass = t.precheck(cmd, d); !pass {
			break
		}
		a.sem <- struct{}{}
		if err := a.limiter.Wait(ctx); err != nil {
			<-a.sem
			return nil
		}
		v, au.Attempts = t.attempt(ctx, cmd, d, a.o.DryRun, a.cfg.Apply)
		<-a.sem
	}
	if ctx.Err() != nil {
		return nil
	}
	au.Outcome, au.Reason, au.Statement, au.Params, au.At = v.outcome, v.reason, v.statement, v.params, time.Now().UTC().Truncate(time.Millisecond)
	a.count(au)
	a.print(au)
	if a.o.DryRun {
		return nil
	}
	b, err := a.o.Serde.Encode(ctx, nil, a.cfg.Topics.Audit, au)
	if err != nil {
		a.log.Error("encoding an audit record", "compensation", cmd.ID, "error", err)
		return nil
	}
	return &kgo.Record{Topic: a.cfg.Topics.Audit, Key: r.Key, Value: b}
}

func (a *applier) deadLetter(ctx context.Context, r *kgo.Record, reason error) *kgo.Record {
	if a.o.DryRun {
		return nil
	}
	dl := &schemas.DeadLetter{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp,
		Key: r.Key, Value: r.Value, Stage: "apply", Reason: reason.Error()}
	for _, h := range r.Headers {
		dl.Headers = append(dl.Headers, schemas.Header{Key: h.Key, Value: h.Value})
	}
	b, err := a.o.Serde.Encode(ctx, nil, a.cfg.Topics.DLQ, dl)
	if err != nil {
		return nil
	}
	return &kgo.Record{Topic: a.cfg.Topics.DLQ, Key: r.Key, Value: b}
}

func (a *applier) count(au *schemas.Audit) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.summary[au.Table] == nil {
		a.summary[au.Table] = map[schemas.Outcome]int{}
	}
	a.summary[au.Table][au.Outcome]++
	if !a.o.DryRun {
		a.o.Metrics.Applied(au.Table, string(au.Outcome))
	}
	a.log.Info("command decided", "table", au.Table, "compensation", au.CompensationID, "outcome", au.Outcome, "reason", au.Reason)
}

// print writes one line per command: the outcome ("would apply" in a dry
// run), table, key, action, and the statement with its parameters, or the
// reason.
func (a *applier) print(au *schemas.Audit) {
	outcome := string(au.Outcome)
	if a.o.DryRun && au.Outcome == schemas.Applied {
		outcome = "would apply"
	}
	key, _ := json.Marshal(au.Key)
	line := fmt.Sprintf("%-12s %s %s %s", outcome, au.Table, key, au.Action)
	if au.Statement != "" {
		params, _ := json.Marshal(au.Params)
		line += "\n    " + au.Statement + "\n    params " + string(params)
	}
	if au.Outcome != schemas.Applied {
		line += "\n    " + au.Reason
	}
	a.mu.Lock()
	fmt.Fprintln(a.o.Out, line)
	a.mu.Unlock()
}

// WriteSummary writes one line per table: its counts by outcome.
func WriteSummary(w io.Writer, s Summary, dry bool) {
	applied := "applied"
	if dry {
		applied = "would apply"
	}
	for _, table := range slices.Sorted(maps.Keys(s)) {
		m := s[table]
		fmt.Fprintf(w, "%s: %d %s, %d superseded, %d skipped, %d failed\n", table,
			m[schemas.Applied], applied, m[schemas.Superseded], m[schemas.Skipped], m[schemas.Failed])
	}
	if len(s) == 0 {
		fmt.Fprintln(w, "no commands")
	}
}
