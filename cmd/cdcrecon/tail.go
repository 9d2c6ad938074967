package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
)

func newTailCmd(g *globals) *cobra.Command {
	var (
		brokers []string
		topic   string
		from    string
		maxRecs int
		exit    bool
		decode  bool
		regURL  string
		cfgFile string
	)
	cmd := &cobra.Command{
		Use:   "tail --brokers ADDR --topic T [--from earliest|latest] [--max N] [--exit] [--decode [--registry URL | --config FILE]]",
		Short: "Print a topic's records as kcat -J lines, or decode cdcrecon's Avro outputs",
		Long: strings.TrimSpace(`
Prints the records of every partition of a topic as kcat -J lines on stdout,
the format produce reads, until --max records were printed, the end of every
partition was reached (--exit), or SIGINT. It does not join a consumer group
and commits nothing.

With --decode it reads one of cdcrecon's output topics (drift, compensation,
checksums, dlq) and prints each record as a JSON line: its topic,
partition, offset, timestamp and key, the schema and encoding it was
written with, and the decoded value. Records in Avro single-object
encoding decode on their own; records in the Confluent wire format need the
registry, from --registry or from the schema_registry section of --config
(which also gives its credentials). A record that does not decode is named
on stderr with its reason and skipped; the exit status is then 2.`),
		Example: examples(`
  cdcrecon tail --brokers 127.0.0.1:9092 --topic pg.public.orders --exit
  cdcrecon tail --topic mysql.shop.orders --from latest --max 10
  # copy a topic into a second broker listening on port 9093
  cdcrecon tail --topic pg.public.orders --exit > orders.jsonl && cdcrecon produce --brokers 127.0.0.1:9093 orders.jsonl
  # drift records, as JSON
  cdcrecon tail --topic cdcrecon.drift --decode --exit
  cdcrecon tail --topic cdcrecon.drift --decode --registry http://127.0.0.1:8081`),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cc, err := g.clientConfig(brokers)
			if err != nil {
				return err
			}
			if topic == "" {
				return usageError("--topic is required")
			}
			start := kgo.NewOffset().AtStart()
			switch from {
			case "earliest":
			case "latest":
				start = kgo.NewOffset().AtEnd()
			default:
				return usageError("--from: want earliest or latest, got %q", from)
			}
			if maxRecs < 0 {
				return usageError("--max: must not be negative, got %d", maxRecs)
			}
			out := kcatLines
			if decode {
				serde, err := tailSerde(regURL, cfgFile)
				if err != nil {
					return err
				}
				out = decodedLines(serde, g.stderr)
			} else if regURL != "" || cfgFile != "" {
				return usageError("--registry and --config go with --decode")
			}
			return tail(cmd.Context(), g, cc, topic, start, from == "latest", maxRecs, exit, out)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&brokers, "brokers", []string{"127.0.0.1:9092"}, "seed brokers, host:port, comma separated")
	f.StringVar(&topic, "topic", "", "topic to print (required)")
	f.StringVar(&from, "from", "earliest", "where to start in each partition: earliest or latest")
	f.IntVar(&maxRecs, "max", 0, "stop after this many records (0: no limit)")
	f.BoolVar(&exit, "exit", false, "stop once the end of every partition, as of the start, is reached")
	f.BoolVar(&decode, "decode", false, "decode cdcrecon's Avro output records to JSON")
	f.StringVar(&regURL, "registry", "", "schema registry URL, for records in the Confluent wire format (with --decode)")
	f.StringVar(&cfgFile, "config", "", "take the schema registry and its credentials from this configuration file (with --decode)")
	return cmd
}

func tail(ctx context.Context, g *globals, cc kafka.ClientConfig, topic string, start kgo.Offset, latest bool, maxRecs int, exit bool, out lineFunc) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(start)}, cc.ClientOpts()...)...)
	if err != nil {
		return fmt.Errorf("creating client: %w", err)
	}
	defer cl.Close()

	// pending holds, per partition, the offset of the last record to print
	// before --exit is satisfied.
	var pending map[int32]int64
	if exit {
		if pending, err = endOffsets(ctx, kadm.NewClient(cl), topic, latest); err != nil {
			return err
		}
		if len(pending) == 0 {
			return nil
		}
	}
	w := bufio.NewWriterSize(g.stdout, 64<<10)
	defer w.Flush()
	var buf []byte
	printed, bad := 0, 0
	done := func() error {
		if err := w.Flush(); err != nil {
			return fmt.Errorf("writing output: %w", err)
		}
		if bad > 0 {
			return &exitError{code: exitFailure, err: fmt.Errorf("%d records could not be decoded", bad)}
		}
		return nil
	}
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return done()
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			if ferr == nil && !errors.Is(err, context.Canceled) {
				ferr = fmt.Errorf("fetching %s partition %d: %w", t, p, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		for it := fetches.RecordIter(); !it.Done(); {
			r := it.Next()
			var ok bool
			buf, ok = out(ctx, buf[:0], r)
			if !ok {
				bad++
			} else if _, err := w.Write(buf); err != nil {
				return fmt.Errorf("writing output: %w", err)
			}
			printed++
			if maxRecs > 0 && printed >= maxRecs {
				return done()
			}
			if last, ok := pending[r.Partition]; ok && r.Offset >= last {
				delete(pending, r.Partition)
				if len(pending) == 0 {
					return done()
				}
			}
		}
		if err := w.Flush(); err != nil {
			return fmt.Errorf("writing output: %w", err)
		}
	}
}

// endOffsets returns, for every partition of topic that has records to
// print, the offset of its last record.
func endOffsets(ctx context.Context, adm *kadm.Client, topic string, latest bool) (map[int32]int64, error) {
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		return nil, fmt.Errorf("topic %s does not exist", topic)
	}
	if err != nil {
		return nil, fmt.Errorf("listing end offsets of %s: %w", topic, err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("listing start offsets of %s: %w", topic, err)
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		s, _ := starts.Lookup(o.Topic, o.Partition)
		if !latest && o.Offset > s.Offset {
			out[o.Partition] = o.Offset - 1
		}
	})
	return out, nil
}
