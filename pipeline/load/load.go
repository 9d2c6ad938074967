// Package load produces topic dumps (kcat -J lines, see pipeline/dump) to
// a broker: every record to its topic and partition, with its key, headers
// and timestamp, in order within a partition. A topic that does not exist
// is created with as many partitions as the dump uses; one that existed is
// never changed. A bad line is named and skipped; a broker failure stops
// the load, and Stopped names exactly what the broker has of each file.
package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/pipeline/dump"
	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
	"github.com/cdcrecon/cdcrecon/processors/changes"
)

// DefaultMaxRecord is Kafka's own default limit on a record batch
// (message.max.bytes), the largest single record a default broker takes.
const DefaultMaxRecord = 1048588

// recordFraming bounds the bytes a record batch of one record adds to its
// key, value and headers: 61 of batch header, up to 32 of record fields,
// and 10 per header.
func recordFraming(headers int) int { return 61 + 32 + 10*headers }

// Loader produces dump records to their topics and partitions, creating
// missing topics with enough partitions for the records seen.
type Loader struct {
	cl  *kgo.Client
	adm *kadm.Client
	// maxRecord is the largest record batch the broker takes: a record
	// that does not fit one on its own is a bad line.
	maxRecord int
	limitName string

	// partitions is the partition count of every topic seen so far;
	// created marks the topics this run created and may grow.
	partitions map[string]int32
	created    map[string]bool

	warn  io.Writer
	stdin io.Reader

	// Produced counts the records the broker has acknowledged.
	Produced atomic.Int64
	mu       sync.Mutex
	errs     []error
	// sent is, by file, its last line handed to the client and what each
	// of its partitions got.
	sent map[string]*fileSent

	// offsets, with Options.KeepOffsets, records per "topic/partition"
	// the dump's own offset of each record in produce order: the broker
	// numbers them afresh from 0, and check reports the dump's.
	offsets map[string][]int64
}

// fileSent is what one file's lines became.
type fileSent struct {
	last  int
	parts map[string]*partSent // by "topic/partition"
}

// partSent is what the records one file sent to one partition became.
// The client answers a partition's records in order, so while no record
// succeeds after a failure the partition holds exactly the lines up to
// lastOK.
type partSent struct {
	sent, ok          int
	lastOK, firstFail int
	// failed are the lines that failed; okAfter those that succeeded
	// after the first failure.
	failed, okAfter []int
}

// Options tune a Loader.
type Options struct {
	// MaxRecord is the largest record batch the broker takes
	// (DefaultMaxRecord when 0): a record that does not fit one on its
	// own is a bad line.
	MaxRecord int
	// LimitName is how a bad line's warning names MaxRecord, as the
	// flag that sets it ("the limit of" when empty).
	LimitName string
	// Warn receives one line per bad line skipped (io.Discard when nil).
	Warn io.Writer
	// Stdin is what the file name "-" reads.
	Stdin io.Reader
	// KeepOffsets keeps, per partition, the dump's offset of each record
	// produced: see Offsets.
	KeepOffsets bool
}

// New returns a Loader producing through a client made from cc.
func New(cc kafka.ClientConfig, o Options) (*Loader, error) {
	if o.MaxRecord == 0 {
		o.MaxRecord = DefaultMaxRecord
	}
	if o.Warn == nil {
		o.Warn = io.Discard
	}
	if o.LimitName == "" {
		o.LimitName = "the limit of"
	}
	opts := append([]kgo.Opt{
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchMaxBytes(int32(o.MaxRecord)),
		kgo.BrokerMaxWriteBytes(int32(max(100<<20, o.MaxRecord+1<<20))),
	}, cc.ClientOpts()...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("creating client: %w", err)
	}
	p := &Loader{cl: cl, adm: kadm.NewClient(cl), maxRecord: o.MaxRecord, limitName: o.LimitName, warn: o.Warn, stdin: o.Stdin,
		partitions: map[string]int32{}, created: map[string]bool{}, sent: map[string]*fileSent{}}
	if o.KeepOffsets {
		p.offsets = map[string][]int64{}
	}
	return p, nil
}

// Close closes the Loader's client.
func (p *Loader) Close() { p.cl.Close() }

// Admin is an admin client on the Loader's connection.
func (p *Loader) Admin() *kadm.Client { return p.adm }

// Offsets returns, with Options.KeepOffsets, the dump's offset of each
// record produced, by "topic/partition" in produce order: the broker's
// offset n of a partition is the dump's Offsets()[partition][n].
func (p *Loader) Offsets() map[string][]int64 { return p.offsets }

// File produces one dump file ("-" is Options.Stdin) and returns how many
// bad lines it skipped. An error is the broker's or the file's, not a
// line's: the load stops there (see Stopped).
func (p *Loader) File(ctx context.Context, name string) (int, error) {
	var r io.Reader = p.stdin
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
			fmt.Fprintf(p.warn, "%v (skipped)\n", le)
			bad++
			continue
		}
		if err != nil {
			return bad, err
		}
		if n := recordSize(rec); n > p.maxRecord {
			fmt.Fprintf(p.warn, "%s:%d: a record of %d bytes (key, value, headers and framing) is over %s %d (skipped)\n",
				name, dr.Line(), n, p.limitName, p.maxRecord)
			bad++
			continue
		}
		if err := p.EnsurePartition(ctx, rec.Topic, rec.Partition); err != nil {
			if !errors.Is(err, ErrNoPartition) {
				// The broker's trouble, not the line's: skipping would
				// drop every line after it too.
				return bad, fmt.Errorf("%s:%d: %w", name, dr.Line(), err)
			}
			fmt.Fprintf(p.warn, "%s:%d: %v (skipped)\n", name, dr.Line(), err)
			bad++
			continue
		}
		if err := p.firstErr(); err != nil {
			return bad, err
		}
		if p.offsets != nil {
			k := changes.InputName(rec.Topic, rec.Partition)
			p.offsets[k] = append(p.offsets[k], rec.Offset)
		}
		p.send(ctx, rec, name, dr.Line())
	}
}

// recordSize is what a record takes in a batch of its own, at most.
func recordSize(rec dump.Record) int {
	n := len(rec.Key) + len(rec.Value) + recordFraming(len(rec.Headers))
	for _, h := range rec.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// send produces one record, which came from line of name; a failure is
// kept for firstErr, and the outcome for written.
func (p *Loader) send(ctx context.Context, rec dump.Record, name string, line int) {
	p.mu.Lock()
	f := p.sent[name]
	if f == nil {
		f = &fileSent{parts: map[string]*partSent{}}
		p.sent[name] = f
	}
	f.last = line
	k := changes.InputName(rec.Topic, rec.Partition)
	ps := f.parts[k]
	if ps == nil {
		ps = &partSent{}
		f.parts[k] = ps
	}
	ps.sent++
	p.mu.Unlock()
	p.cl.Produce(ctx, rec.ToKafka(), func(_ *kgo.Record, err error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if err != nil {
			p.errs = append(p.errs, fmt.Errorf("%s:%d: producing: %w", name, line, err))
			if ps.firstFail == 0 {
				ps.firstFail = line
			}
			ps.failed = append(ps.failed, line)
			return
		}
		ps.ok++
		ps.lastOK = line
		if ps.firstFail != 0 {
			ps.okAfter = append(ps.okAfter, line)
		}
		p.Produced.Add(1)
	})
}

// Written says, once every record sent has its answer, what the broker
// has of each file: by partition, all the lines sent, the lines up to
// one, or every line but those listed.
func (p *Loader) Written() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var files []string
	for _, name := range slices.Sorted(maps.Keys(p.sent)) {
		f := p.sent[name]
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(f.parts)) {
			ps := f.parts[k]
			switch {
			case ps.ok == ps.sent:
				parts = append(parts, fmt.Sprintf("%s: all %d sent", k, ps.sent))
			case ps.ok == 0:
				parts = append(parts, fmt.Sprintf("%s: none of %d sent", k, ps.sent))
			case len(ps.okAfter) == 0:
				parts = append(parts, fmt.Sprintf("%s: %d of %d sent, its lines up to line %d", k, ps.ok, ps.sent, ps.lastOK))
			case len(ps.okAfter) < len(ps.failed):
				// The client answers a partition in order: every line
				// before the first failure is in.
				parts = append(parts, fmt.Sprintf("%s: %d of %d sent, its lines before line %d and, of the later ones, lines %s",
					k, ps.ok, ps.sent, ps.firstFail, lineRanges(ps.okAfter)))
			default:
				parts = append(parts, fmt.Sprintf("%s: %d of %d sent, all but lines %s", k, ps.ok, ps.sent, lineRanges(ps.failed)))
			}
		}
		files = append(files, fmt.Sprintf("of %s (read to line %d): %s", name, f.last, strings.Join(parts, "; ")))
	}
	if len(files) == 0 {
		return "nothing"
	}
	return strings.Join(files, "; ")
}

// lineRanges shows sorted line numbers as ranges: "4-9, 12".
func lineRanges(lines []int) string {
	var out []string
	for i := 0; i < len(lines); {
		j := i
		for j+1 < len(lines) && lines[j+1] == lines[j]+1 {
			j++
		}
		r := strconv.Itoa(lines[i])
		if j > i {
			r += "-" + strconv.Itoa(lines[j])
		}
		out = append(out, r)
		i = j + 1
	}
	return strings.Join(out, ", ")
}

// Records produces records held in memory (numbered from first in
// errors, as lines of name) and waits until the broker has them all.
func (p *Loader) Records(ctx context.Context, recs []dump.Record, name string, first int) error {
	for i, rec := range recs {
		if err := p.EnsurePartition(ctx, rec.Topic, rec.Partition); err != nil {
			return fmt.Errorf("%s:%d: %w", name, first+i, err)
		}
		p.send(ctx, rec, name, first+i)
	}
	return p.Flush(ctx)
}

// Stopped ends a load that failed with err: it waits for the records
// already sent to be answered (for a minute at most), then names err and
// exactly what the broker has.
func (p *Loader) Stopped(ctx context.Context, err error) error {
	wait, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if ferr := p.cl.Flush(wait); ferr != nil {
		return fmt.Errorf("%w. Stopped; after a minute some records sent were still unanswered, and beyond what follows the broker may have them. It has, %s", err, p.Written())
	}
	if first := p.firstErr(); first != nil {
		err = first
	}
	return fmt.Errorf("%w. Stopped; the broker has, %s", err, p.Written())
}

// ErrNoPartition is a record for a partition its existing topic lacks.
var ErrNoPartition = errors.New("no such partition")

func (p *Loader) firstErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.errs) > 0 {
		return p.errs[0]
	}
	return nil
}

// Flush waits until the broker has answered every record sent and
// returns the first failure.
func (p *Loader) Flush(ctx context.Context) error {
	if err := p.cl.Flush(ctx); err != nil {
		return fmt.Errorf("flushing: %w", err)
	}
	return p.firstErr()
}

// EnsurePartition makes sure topic has the given partition: it creates a
// missing topic and grows a topic this run created, but never changes a
// topic that existed before.
func (p *Loader) EnsurePartition(ctx context.Context, topic string, partition int32) error {
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
			return fmt.Errorf("%w: topic %s has %d partitions, the record is for partition %d", ErrNoPartition, topic, n, partition)
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
		return fmt.Errorf("%w: topic %s has %d partitions, the record is for partition %d", ErrNoPartition, topic, n, partition)
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
func (p *Loader) awaitPartition(ctx context.Context, topic string, partition int32) error {
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
