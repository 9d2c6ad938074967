// Package offline reconciles topic dumps in one process, as the streaming
// worker would reconcile the topics: the same stages, over a
// Kafka-protocol broker started in this process, with its log and state in
// a temporary directory (a run always starts clean). The end of the dumps
// is the end of input: final states are compared.
//
// Check is what the check command runs; it returns the drift history and
// a report, and leaves printing, dead-letter files and exit codes to its
// caller.
package offline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/pipeline/broker"
	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
	"github.com/cdcrecon/cdcrecon/pipeline/load"
	"github.com/cdcrecon/cdcrecon/pipeline/registry"
	"github.com/cdcrecon/cdcrecon/pipeline/topology"
	"github.com/cdcrecon/cdcrecon/processors/changes"
	"github.com/cdcrecon/cdcrecon/processors/config"
	"github.com/cdcrecon/cdcrecon/processors/state"
	"github.com/cdcrecon/cdcrecon/schemas"
)

// DefaultMaxRecord is 16 MiB: above what brokers are commonly configured
// to take, far above Kafka's 1 MiB default.
const DefaultMaxRecord = 16 << 20

// Options say what Check reconciles and where it reports along the way.
type Options struct {
	Config *config.Config
	// Dumps are kcat -J files, "-" for Stdin.
	Dumps []string
	Stdin io.Reader
	// MaxRecord is the largest record (key, value, headers and framing)
	// a dump may hold (DefaultMaxRecord when 0); a larger one is a bad
	// line.
	MaxRecord int
	// LimitName is how warnings name MaxRecord: see load.Options.
	LimitName string
	Logger    *slog.Logger
	// Warn receives a line per dump line skipped and per invalid message
	// (io.Discard when nil).
	Warn io.Writer
	// Progress, when not nil, is started with a label and a counter at
	// each long step (loading, then reconciling) and stopped at its end.
	Progress func(label string, n *atomic.Int64) (stop func())
	// OnInvalid, when not nil, gets each message set aside as invalid,
	// with the dump's own offset.
	OnInvalid func(*schemas.DeadLetter)
}

// Report is the summary of a run.
type Report struct {
	Events        int64            `json:"events"`
	Duplicates    int64            `json:"duplicates"`
	Invalid       int64            `json:"invalid"`
	Changes       int64            `json:"changes"`
	OpenDrift     int64            `json:"open_drift"`
	ResolvedDrift int64            `json:"resolved_drift"`
	OpenByTable   map[string]int64 `json:"open_drift_by_table"`
	Seconds       float64          `json:"seconds"`
	// LoadSeconds is the part of Seconds spent loading the dumps into
	// the in-process broker, before the pipeline starts.
	LoadSeconds float64 `json:"load_seconds"`
}

// Result is what a run decided.
type Result struct {
	// History is every drift record published, in history order (see
	// SortHistory); Open those still open at the end.
	History, Open []*schemas.Drift
	// Compensation is every compensation command published, by drift id.
	Compensation map[string]*schemas.Compensation
	Report       Report
	// BadLines counts the dump lines that could not be read, skipped.
	BadLines int

	cfg    *config.Config
	loaded map[string][]int64
}

// Check reconciles the dumps. An error is a failure to run (the dumps,
// the configuration, the disk); drift is in the Result.
func Check(ctx context.Context, o Options) (*Result, error) {
	started := time.Now()
	cfg := o.Config
	if o.MaxRecord == 0 {
		o.MaxRecord = DefaultMaxRecord
	}
	if o.Warn == nil {
		o.Warn = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Progress == nil {
		o.Progress = func(string, *atomic.Int64) func() { return func() {} }
	}

	// The run's broker log and state live in one temporary directory: on
	// disk, not in memory, so that dumps larger than memory fit.
	dir, err := os.MkdirTemp("", "cdcrecon-check")
	if err != nil {
		return nil, fmt.Errorf("creating state directory: %w", err)
	}
	defer os.RemoveAll(dir)
	// The stages' own records hold a dump's rows, a drift both sides':
	// the broker takes twice the largest record, and some.
	internal := min(2*o.MaxRecord+1<<20, 1<<30)
	b, err := broker.Start(broker.Config{DataDir: filepath.Join(dir, "broker"), MaxMessageBytes: internal})
	if err != nil {
		return nil, err
	}
	defer b.Close()
	cc := kafka.ClientConfig{Brokers: []string{b.Addr()}, Logger: o.Logger, Opts: []kgo.Opt{
		kgo.ProducerBatchMaxBytes(int32(internal)), kgo.BrokerMaxWriteBytes(int32(max(100<<20, internal+1<<20)))}}

	// Load the dumps into their topics.
	p, err := load.New(cc, load.Options{MaxRecord: o.MaxRecord, LimitName: o.LimitName, Warn: o.Warn, Stdin: o.Stdin, KeepOffsets: true})
	if err != nil {
		return nil, err
	}
	defer p.Close()
	res := &Result{cfg: cfg, loaded: p.Offsets()}
	stop := o.Progress("loaded", &p.Produced)
	for _, name := range o.Dumps {
		n, err := p.File(ctx, name)
		res.BadLines += n
		if err != nil {
			stop()
			return nil, err
		}
	}
	if err := p.Flush(ctx); err != nil {
		stop()
		return nil, err
	}
	stop()
	loaded := time.Since(started)

	top := topology.Define(cfg)
	partitions, ends, err := prepareTopics(ctx, p.Admin(), top)
	if err != nil {
		return nil, err
	}

	st, err := state.Open(filepath.Join(dir, "state"), state.Options{NoWAL: true}) // a check never resumes
	if err != nil {
		return nil, err
	}
	defer st.Close()

	rc, err := registry.NewClient(cfg.SchemaRegistry)
	if err != nil {
		return nil, err
	}
	serde := registry.NewSerde(nil) // outputs stay in this process: single-object encoding

	var mu sync.Mutex
	finished := map[int32]bool{}
	allDone := make(chan struct{})
	pl, err := topology.New(topology.Options{
		Config: cfg, Client: cc, Store: st, Serde: serde, Decoder: registry.DecoderConfig(rc),
		Partitions: partitions, Ends: ends, Logger: o.Logger,
		OnInvalid: func(d *schemas.DeadLetter) {
			mu.Lock()
			defer mu.Unlock()
			if offs := res.loaded[changes.InputName(d.Topic, d.Partition)]; d.Offset >= 0 && d.Offset < int64(len(offs)) {
				d.Offset = offs[d.Offset] // the dump's offset, not the in-process broker's
			}
			fmt.Fprintf(o.Warn, "cdcrecon: invalid message %s/%d/%d: %s\n", d.Topic, d.Partition, d.Offset, d.Reason)
			if o.OnInvalid != nil {
				o.OnInvalid(d)
			}
		},
		OnFinish: func(part int32) {
			mu.Lock()
			defer mu.Unlock()
			finished[part] = true
			if len(finished) == cfg.Kafka.Partitions {
				close(allDone)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	defer pl.Close()
	runErr := make(chan error, 1)
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	go func() { runErr <- pl.Run(runCtx) }()
	<-pl.Router.Running()

	for _, in := range top.Inputs {
		for part := range partitions[in.Topic] {
			if ends[changes.InputName(in.Topic, part)] == 0 {
				if err := pl.Ingest.Finish(ctx, in.Topic, part); err != nil {
					return nil, err
				}
			}
		}
	}
	stop = o.Progress("events", &pl.Ingest.Stats.Events)
	select {
	case <-allDone:
	case err := <-runErr:
		stop()
		if err == nil {
			err = errors.New("the pipeline stopped before the end of input")
		}
		return nil, err
	case <-ctx.Done():
		stop()
		return nil, fmt.Errorf("interrupted: %w", ctx.Err())
	}
	stop()
	cancelRun()
	if err := pl.Close(); err != nil {
		o.Logger.Warn("closing the pipeline", "err", err)
	}
	<-runErr

	if res.History, err = ReadDrift(ctx, cc, cfg.Topics.Drift, serde); err != nil {
		return nil, err
	}
	res.Open = OpenAtEnd(res.History)
	res.Compensation = map[string]*schemas.Compensation{}
	if err := ReadRecords(ctx, cc, cfg.Topics.Compensation, serde, func(rec schemas.Record) {
		if c, ok := rec.(*schemas.Compensation); ok {
			res.Compensation[c.DriftID] = c
		}
	}); err != nil {
		return nil, err
	}
	rep := Report{
		Events: pl.Ingest.Stats.Events.Load(), Duplicates: pl.Ingest.Stats.Duplicates.Load(),
		Invalid: pl.Ingest.Stats.Invalid.Load(), Changes: pl.Reconciler.Stats().Changes,
		OpenDrift: int64(len(res.Open)), OpenByTable: map[string]int64{}, Seconds: time.Since(started).Seconds(),
		LoadSeconds: loaded.Seconds(),
	}
	for _, d := range res.History {
		if d.Status == schemas.Resolved {
			rep.ResolvedDrift++
		}
	}
	for _, d := range res.Open {
		rep.OpenByTable[d.Table]++
	}
	res.Report = rep
	return res, nil
}

// Compared reports a run that compared nothing, which must not pass as
// consistent: a table with no record in the dumps (a topic named wrong),
// or input of which every message was invalid (a key column named wrong,
// say).
func (r *Result) Compared() error {
	records := func(topic string) int {
		n := 0
		for k, offs := range r.loaded {
			if strings.HasPrefix(k, topic+"/") {
				n += len(offs)
			}
		}
		return n
	}
	for _, t := range r.cfg.Tables {
		if records(t.Source.Topic)+records(t.Target.Topic) == 0 {
			return fmt.Errorf("nothing to compare for table %s: the dumps hold no record of %s or %s (%s: tables)",
				t.Name, t.Source.Topic, t.Target.Topic, r.cfg.File)
		}
	}
	if r.Report.Events == r.Report.Invalid {
		return fmt.Errorf("nothing could be compared: %d messages read, all invalid (see above)", r.Report.Events)
	}
	return nil
}

// prepareTopics creates what the pipeline needs that the dumps did not:
// empty input topics, the changes topic, the output topics. It returns
// the partition count of every input topic and the end offset of every
// input partition.
func prepareTopics(ctx context.Context, adm *kadm.Client, top *topology.Topology) (map[string]int32, map[string]int64, error) {
	partitions, err := top.InputPartitions(ctx, adm, func(topic string) (int32, error) {
		return 1, topology.CreateTopic(ctx, adm, topic, 1, nil) // no dump for it: an empty input
	})
	if err != nil {
		return nil, nil, err
	}
	inputs := top.InputTopics()
	offs, err := adm.ListEndOffsets(ctx, inputs...)
	if err == nil {
		err = offs.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("listing end offsets: %w", err)
	}
	ends := map[string]int64{}
	for _, topic := range inputs {
		for p := range partitions[topic] {
			o, _ := offs.Lookup(topic, p)
			ends[changes.InputName(topic, p)] = o.Offset
		}
	}
	if err := top.EnsureInternal(ctx, adm); err != nil {
		return nil, nil, err
	}
	return partitions, ends, nil
}
