package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/pipeline/dump"
	"github.com/cdcrecon/cdcrecon/pipeline/ingest"
	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
)

func newProduceCmd(g *globals) *cobra.Command {
	var brokers []string
	cmd := &cobra.Command{
		Use:   "produce --brokers ADDR FILE...",
		Short: "Load kcat -J dumps into their topics",
		Long: strings.TrimSpace(`
Reads dumps in kcat's -J line format (one JSON object per line with topic,
partition, offset, ts, key, payload and optional headers; "-" reads stdin)
and produces every record to its topic and partition, keeping its key,
headers and timestamp. Records of one partition keep their order. A topic
that does not exist is created with as many partitions as the dump uses.

A bad line is reported with its file and line number and skipped; the
command then exits with status 2 after loading the rest.`),
		Example: examples(`
  cdcrecon produce --brokers 127.0.0.1:9092 examples/dumps/source.jsonl examples/dumps/target.jsonl
  # copy a topic read by kcat into a second broker listening on port 9093
  kcat -b 127.0.0.1:9092 -C -t pg.public.orders -J -e | cdcrecon produce --brokers 127.0.0.1:9093 -`),
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			cc, err := g.clientConfig(brokers)
			if err != nil {
				return err
			}
			p, err := newProducer(cc)
			if err != nil {
				return err
			}
			defer p.close()
			stop := progress(g.stderr, "produced", &p.produced)
			defer stop()
			bad := 0
			for _, name := range files {
				n, err := p.loadFile(cmd.Context(), g, name)
				bad += n
				if err != nil {
					return err
				}
			}
			if err := p.flush(cmd.Context()); err != nil {
				return err
			}
			stop()
			fmt.Fprintf(g.stderr, "produced %d records from %d file(s)\n", p.produced.Load(), len(files))
			if bad > 0 {
				return &exitError{code: exitFailure, err: fmt.Errorf("%d bad lines were skipped", bad)}
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&brokers, "brokers", []string{"127.0.0.1:9092"}, "seed brokers, host:port, comma separated")
	return cmd
}

// producer loads dump records, creating missing topics with enough
// partitions for the records seen.
type producer struct {
	cl  *kgo.Client
	adm *kadm.Client

	// partitions is the partition count of every topic seen so far;
	// created marks the topics this run created and may grow.
	partitions map[string]int32
	created    map[string]bool

	produced atomic.Int64
	mu       sync.Mutex
	errs     []error

	// offsets, when not nil, records per "topic/partition" the dump's own
	// offset of each record in produce order: the broker numbers them
	// afresh from 0, and check reports the dump's.
	offsets map[string][]int64
}

func newProducer(cc kafka.ClientConfig) (*producer, error) {
	opts := append([]kgo.Opt{
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
	}, cc.ClientOpts()...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("creating client: %w", err)
	}
	return &producer{cl: cl, adm: kadm.NewClient(cl), partitions: map[string]int32{}, created: map[string]bool{}}, nil
}

func (p *producer) close() { p.cl.Close() }

// loadFile produces one dump file and returns how many bad lines it skipped.
func (p *producer) loadFile(ctx context.Context, g *globals, name string) (int, error) {
	var r io.Reader = g.stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return 0, fmt.Errorf("opening dump: %w", err)
		}
		defer f.Close()
		r = f
	} else {
		name = "<stdin>"
	}
	dr := dump.NewParallelReader(r, name, runtime.GOMAXPROCS(0))
	defer dr.Close()
	bad := 0
	for {
		rec, err := dr.Next()
		if errors.Is(err, io.EOF) {
			return bad, nil
		}
		var le *dump.LineError
		if errors.As(err, &le) {
			fmt.Fprintf(g.stderr, "%v (skipped)\n", le)
			bad++
			continue
		}
		if err != nil {
			return bad, err
		}
		if err := p.ensurePartition(ctx, rec.Topic, rec.Partition); err != nil {
			if !errors.Is(err, errNoPartition) {
				// The broker's trouble, not the line's: skipping would
				// drop every line after it too.
				return bad, fmt.Errorf("%s:%d: %w", name, dr.Line(), err)
			}
			fmt.Fprintf(g.stderr, "%s:%d: %v (skipped)\n", name, dr.Line(), err)
			bad++
			continue
		}
		if err := p.firstErr(); err != nil {
			return bad, err
		}
		if p.offsets != nil {
			k := ingest.InputName(rec.Topic, rec.Partition)
			p.offsets[k] = append(p.offsets[k], rec.Offset)
		}
		p.send(ctx, rec, name, dr.Line())
	}
}

// send produces one record, which came from line of name; a failure is
// kept for firstErr.
func (p *producer) send(ctx context.Context, rec dump.Record, name string, line int) {
	p.cl.Produce(ctx, rec.ToKafka(), func(_ *kgo.Record, err error) {
		if err != nil {
			p.mu.Lock()
			p.errs = append(p.errs, fmt.Errorf("%s:%d: producing: %w", name, line, err))
			p.mu.Unlock()
			return
		}
		p.produced.Add(1)
	})
}

// sendAll produces records held in memory (numbered from first in errors)
// and waits until the broker has them all.
func (p *producer) sendAll(ctx context.Context, recs []dump.Record, name string, first int) error {
	for i, rec := range recs {
		if err := p.ensurePartition(ctx, rec.Topic, rec.Partition); err != nil {
			return fmt.Errorf("%s:%d: %w", name, first+i, err)
		}
		p.send(ctx, rec, name, first+i)
	}
	return p.flush(ctx)
}

// errNoPartition is a record for a partition its existing topic lacks.
var errNoPartition = errors.New("no such partition")

func (p *producer) firstErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.errs) > 0 {
		return p.errs[0]
	}
	return nil
}

func (p *producer) flush(ctx context.Context) error {
	if err := p.cl.Flush(ctx); err != nil {
		return fmt.Errorf("flushing: %w", err)
	}
	return p.firstErr()
}

// ensurePartition makes sure topic has the given partition: it creates a
// missing topic and grows a topic this run created, but never changes a
// topic that existed before.
func (p *producer) ensurePartition(ctx context.Context, topic string, partition int32) error {
	n, known := p.partitions[topic]
	if known && partition < n {
		return nil
	}
	if !known {
		details, err := p.adm.ListTopics(ctx, topic)
		if err != nil {
			return fmt.Errorf("looking up topic %s: %w", topic, err)
		}
		if d, ok := details[topic]; ok && d.Err == nil {
			n = int32(len(d.Partitions))
			p.partitions[topic] = n
			if partition < n {
				return nil
			}
			return fmt.Errorf("%w: topic %s has %d partitions, the record is for partition %d", errNoPartition, topic, n, partition)
		} else if ok && !errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
			return fmt.Errorf("looking up topic %s: %w", topic, d.Err)
		}
		resp, err := p.adm.CreateTopic(ctx, partition+1, -1, nil, topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			return fmt.Errorf("creating topic %s: %w", topic, err)
		}
		p.partitions[topic], p.created[topic] = partition+1, true
		return nil
	}
	if !p.created[topic] {
		return fmt.Errorf("%w: topic %s has %d partitions, the record is for partition %d", errNoPartition, topic, n, partition)
	}
	resp, err := p.adm.UpdatePartitions(ctx, int(partition+1), topic)
	if err == nil {
		var r kadm.CreatePartitionsResponse
		r, err = resp.On(topic, nil)
		if err == nil {
			err = r.Err
		}
	}
	if err != nil {
		return fmt.Errorf("growing topic %s to %d partitions: %w", topic, partition+1, err)
	}
	p.partitions[topic] = partition + 1
	return p.awaitPartition(ctx, topic, partition)
}

// awaitPartition waits until the producer's metadata knows the partition:
// a record for a partition it has not seen yet would fail.
func (p *producer) awaitPartition(ctx context.Context, topic string, partition int32) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		p.cl.ForceMetadataRefresh()
		if leader, _, err := p.cl.PartitionLeader(topic, partition); err == nil && leader >= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for partition %d of %s to appear: %w", partition, topic, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
