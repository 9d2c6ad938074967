package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/pipeline/broker"
	"github.com/cdcrecon/cdcrecon/pipeline/dump"
	"github.com/cdcrecon/cdcrecon/pipeline/ingest"
	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
	"github.com/cdcrecon/cdcrecon/pipeline/registry"
	"github.com/cdcrecon/cdcrecon/pipeline/topology"
	"github.com/cdcrecon/cdcrecon/processors/config"
	"github.com/cdcrecon/cdcrecon/processors/state"
	"github.com/cdcrecon/cdcrecon/schemas"
)

func newCheckCmd(g *globals) *cobra.Command {
	var (
		cfgFile, reportFile, dlqFile string
		maxRecord                    int
		history                      bool
	)
	cmd := &cobra.Command{
		Use:   "check --config FILE [--history] [--report FILE] [--dlq FILE] DUMP...",
		Short: "Reconcile topic dumps offline and print the drift",
		Long: strings.TrimSpace(`
Runs the reconciliation pipeline over dumps of the source and target topics
in kcat's -J line format, as the streaming worker would over the topics:
the same stages, over a Kafka-protocol broker started in this process, with
its state in a temporary directory (a check always starts clean). The end
of the dumps is the end of input: final states are compared.

Prints one JSON object per drift still open at the end (with --history,
every opened and resolved record, in order of their instants): id, table,
key, kind, columns, status, opened_at, resolved_at, the source and target
rows (redacted columns as digests), and a reason.

Malformed messages are named on stderr by topic/partition/offset with the
reason, written to --dlq as kcat -J lines (with a cdcrecon.reason header),
counted as invalid, and never stop the run. Exit status: 0 when no drift is
open, 1 when drift is open, 2 on usage, configuration or I/O errors (a dump
line that cannot be read included).`),
		Example: examples(`
  cdcrecon check --config examples/orders.yaml examples/dumps/source.jsonl examples/dumps/target.jsonl
  cdcrecon check --config examples/orders.yaml --history --report report.json --dlq bad.jsonl examples/dumps/*.jsonl`),
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, dumps []string) error {
			cfg, err := loadConfig(cfgFile)
			if err != nil {
				return err
			}
			if err := checkMaxRecord(maxRecord); err != nil {
				return err
			}
			return check(cmd.Context(), g, cfg, dumps, checkOptions{history, reportFile, dlqFile, maxRecord})
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgFile, "config", "", "configuration file (required)")
	f.BoolVar(&history, "history", false, "print every opened and resolved drift record, in order, not only the drift open at the end")
	f.StringVar(&reportFile, "report", "", "write a JSON summary (events, duplicates, invalid, open_drift, resolved_drift, ...) to this file")
	f.StringVar(&dlqFile, "dlq", "", "write malformed messages to this file as kcat -J lines")
	f.IntVar(&maxRecord, "max-record-bytes", defaultCheckMaxRecord,
		"the largest record (key, value, headers and about 100 bytes of framing) a dump may hold; a larger one is a bad line")
	return cmd
}

// Report is the --report summary.
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

// defaultCheckMaxRecord is 16 MiB: above what brokers are commonly
// configured to take, far above Kafka's 1 MiB default.
const defaultCheckMaxRecord = 16 << 20

type checkOptions struct {
	history             bool
	reportFile, dlqFile string
	maxRecord           int
}

func check(ctx context.Context, g *globals, cfg *config.Config, dumps []string, o checkOptions) error {
	history, reportFile, dlqFile := o.history, o.reportFile, o.dlqFile
	started := time.Now()
	log, err := g.logger()
	if err != nil {
		return usageError("%v", err)
	}
	fail := func(err error) error { return &exitError{code: exitFailure, err: err} }

	var dlq *bufio.Writer
	if dlqFile != "" {
		f, err := os.Create(dlqFile)
		if err != nil {
			return fail(fmt.Errorf("creating --dlq file: %w", err))
		}
		defer f.Close()
		dlq = bufio.NewWriter(f)
		defer dlq.Flush()
	}

	// The run's broker log and state live in one temporary directory: on
	// disk, not in memory, so that dumps larger than memory fit.
	dir, err := os.MkdirTemp("", "cdcrecon-check")
	if err != nil {
		return fail(fmt.Errorf("creating state directory: %w", err))
	}
	defer os.RemoveAll(dir)
	// The stages' own records hold a dump's rows, a drift both sides':
	// the broker takes twice the largest record, and some.
	internal := min(2*o.maxRecord+1<<20, 1<<30)
	b, err := broker.Start(broker.Config{DataDir: filepath.Join(dir, "broker"), MaxMessageBytes: internal})
	if err != nil {
		return fail(err)
	}
	defer b.Close()
	cc := kafka.ClientConfig{Brokers: []string{b.Addr()}, Logger: log, Opts: []kgo.Opt{
		kgo.ProducerBatchMaxBytes(int32(internal)), kgo.BrokerMaxWriteBytes(int32(max(100<<20, internal+1<<20)))}}

	// Load the dumps into their topics.
	p, err := newProducerLimit(cc, o.maxRecord)
	if err != nil {
		return fail(err)
	}
	defer p.close()
	p.offsets = map[string][]int64{}
	stop := progress(g.stderr, "loaded", &p.produced)
	badLines := 0
	for _, name := range dumps {
		n, err := p.loadFile(ctx, g, name)
		badLines += n
		if err != nil {
			stop()
			return fail(err)
		}
	}
	if err := p.flush(ctx); err != nil {
		stop()
		return fail(err)
	}
	stop()
	loaded := time.Since(started)

	partitions, ends, err := prepareTopics(ctx, p.adm, cfg)
	if err != nil {
		return fail(err)
	}

	st, err := state.Open(filepath.Join(dir, "state"), state.Options{NoWAL: true}) // a check never resumes
	if err != nil {
		return fail(err)
	}
	defer st.Close()

	rc, err := registry.NewClient(cfg.SchemaRegistry)
	if err != nil {
		return fail(err)
	}
	dec := decoderConfig(rc)
	serde := registry.NewSerde(nil) // outputs stay in this process: single-object encoding

	var mu sync.Mutex
	finished := map[int32]bool{}
	allDone := make(chan struct{})
	pl, err := topology.New(topology.Options{
		Config: cfg, Client: cc, Store: st, Serde: serde, Decoder: dec,
		Partitions: partitions, Ends: ends, Logger: log,
		OnInvalid: func(d *schemas.DeadLetter) {
			mu.Lock()
			defer mu.Unlock()
			if offs := p.offsets[ingest.InputName(d.Topic, d.Partition)]; d.Offset >= 0 && d.Offset < int64(len(offs)) {
				d.Offset = offs[d.Offset] // the dump's offset, not the in-process broker's
			}
			fmt.Fprintf(g.stderr, "cdcrecon: invalid message %s/%d/%d: %s\n", d.Topic, d.Partition, d.Offset, d.Reason)
			if dlq != nil {
				rec := dump.Record{Topic: d.Topic, Partition: d.Partition, Offset: d.Offset, Timestamp: d.Timestamp, Key: d.Key, Value: d.Value}
				for _, h := range d.Headers {
					rec.Headers = append(rec.Headers, dump.Header{Key: h.Key, Value: h.Value})
				}
				rec.Headers = append(rec.Headers, dump.Header{Key: "cdcrecon.reason", Value: []byte(d.Reason)})
				_, _ = dlq.Write(dump.AppendLine(nil, rec))
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
		return fail(err)
	}
	defer pl.Close()
	runErr := make(chan error, 1)
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	go func() { runErr <- pl.Run(runCtx) }()
	<-pl.Router.Running()

	for name, end := range ends {
		if end == 0 {
			topic, part := splitInput(name)
			if err := pl.Ingest.Finish(ctx, topic, part); err != nil {
				return fail(err)
			}
		}
	}
	stop = progress(g.stderr, "events", &pl.Ingest.Stats.Events)
	select {
	case <-allDone:
	case err := <-runErr:
		stop()
		if err == nil {
			err = errors.New("the pipeline stopped before the end of input")
		}
		return fail(err)
	case <-ctx.Done():
		stop()
		return fail(fmt.Errorf("interrupted: %w", ctx.Err()))
	}
	stop()
	cancelRun()
	if err := pl.Close(); err != nil {
		log.Warn("closing the pipeline", "err", err)
	}
	<-runErr

	drifts, err := readDrift(ctx, cc, cfg.Topics.Drift, serde)
	if err != nil {
		return fail(err)
	}
	out := bufio.NewWriter(g.stdout)
	defer out.Flush()
	open := openAtEnd(drifts)
	shown := open
	if history {
		shown = drifts
	}
	for _, d := range shown {
		line, err := json.Marshal(d)
		if err != nil {
			return fail(err)
		}
		out.Write(append(line, '\n'))
	}
	if err := out.Flush(); err != nil {
		return fail(fmt.Errorf("writing output: %w", err))
	}

	rep := Report{
		Events: pl.Ingest.Stats.Events.Load(), Duplicates: pl.Ingest.Stats.Duplicates.Load(),
		Invalid: pl.Ingest.Stats.Invalid.Load(), Changes: pl.Reconciler.Stats().Changes,
		OpenDrift: int64(len(open)), OpenByTable: map[string]int64{}, Seconds: time.Since(started).Seconds(),
		LoadSeconds: loaded.Seconds(),
	}
	for _, d := range drifts {
		if d.Status == schemas.Resolved {
			rep.ResolvedDrift++
		}
	}
	for _, d := range open {
		rep.OpenByTable[d.Table]++
	}
	if reportFile != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(reportFile, append(b, '\n'), 0o644); err != nil {
			return fail(fmt.Errorf("writing --report: %w", err))
		}
	}
	if err := compared(cfg, p.offsets, rep); err != nil {
		return fail(err)
	}
	switch {
	case badLines > 0:
		return fail(fmt.Errorf("%d dump lines could not be read and were skipped", badLines))
	case len(open) > 0:
		return &exitError{code: exitDrift}
	}
	return nil
}

// compared reports a check that compared nothing, which must not pass as
// consistent: a table with no record in the dumps (a topic named wrong),
// or input of which every message was invalid (a key column named wrong,
// say).
func compared(cfg *config.Config, loaded map[string][]int64, rep Report) error {
	records := func(topic string) int {
		n := 0
		for k, offs := range loaded {
			if strings.HasPrefix(k, topic+"/") {
				n += len(offs)
			}
		}
		return n
	}
	for _, t := range cfg.Tables {
		if records(t.Source.Topic)+records(t.Target.Topic) == 0 {
			return fmt.Errorf("nothing to compare for table %s: the dumps hold no record of %s or %s (%s: tables)",
				t.Name, t.Source.Topic, t.Target.Topic, cfg.File)
		}
	}
	if rep.Events == rep.Invalid {
		return fmt.Errorf("nothing could be compared: %d messages read, all invalid (see above)", rep.Events)
	}
	return nil
}

// prepareTopics creates what the pipeline needs that the dumps did not:
// empty input topics, the changes topic, the output topics. It returns
// the partition count of every input topic and the end offset of every
// input partition.
func prepareTopics(ctx context.Context, adm *kadm.Client, cfg *config.Config) (map[string]int32, map[string]int64, error) {
	partitions, err := inputPartitions(ctx, adm, cfg, func(topic string) (int32, error) {
		return 1, createTopic(ctx, adm, topic, 1, nil) // no dump for it: an empty input
	})
	if err != nil {
		return nil, nil, err
	}
	inputs := topology.Define(cfg).InputTopics()
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
			ends[ingest.InputName(topic, p)] = o.Offset
		}
	}
	if err := ensureInternal(ctx, adm, cfg); err != nil {
		return nil, nil, err
	}
	return partitions, ends, nil
}

func splitInput(name string) (string, int32) {
	i := strings.LastIndexByte(name, '/')
	var p int32
	fmt.Sscan(name[i+1:], &p)
	return name[:i], p
}

// readDrift reads the drift topic to its end and returns its records in
// history order: by the instant each record is about (opening or
// resolution), then table, key and id; an opening before its resolution.
func readDrift(ctx context.Context, cc kafka.ClientConfig, topic string, serde *registry.Serde) ([]*schemas.Drift, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, cc.ClientOpts()...)...)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", topic, err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", topic, err)
	}
	want := int64(0)
	ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
	var out []*schemas.Drift
	for read := int64(0); read < want; {
		fetches := cl.PollFetches(ctx)
		if err := fetches.Err0(); err != nil {
			return nil, fmt.Errorf("reading %s: %w", topic, err)
		}
		for it := fetches.RecordIter(); !it.Done(); {
			r := it.Next()
			read++
			rec, _, _, err := serde.Decode(ctx, r.Value)
			if err != nil {
				return nil, fmt.Errorf("reading %s offset %d: %w", topic, r.Offset, err)
			}
			if d, ok := rec.(*schemas.Drift); ok {
				out = append(out, d)
			}
		}
	}
	sortHistory(out)
	return out, nil
}

func instant(d *schemas.Drift) time.Time {
	if d.Status == schemas.Resolved && d.ResolvedAt != nil {
		return *d.ResolvedAt
	}
	return d.OpenedAt
}

// sortHistory orders drift records by instant, table, key (as JSON), an
// opening before its resolution, then id. Each key's JSON is made once.
func sortHistory(ds []*schemas.Drift) {
	type entry struct {
		d   *schemas.Drift
		at  time.Time
		key string
	}
	es := make([]entry, len(ds))
	for i, d := range ds {
		k, _ := json.Marshal(d.Key)
		es[i] = entry{d, instant(d), string(k)}
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

// openAtEnd returns the drifts whose last record is an opening.
func openAtEnd(history []*schemas.Drift) []*schemas.Drift {
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
