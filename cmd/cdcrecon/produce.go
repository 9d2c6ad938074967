package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cdcrecon/cdcrecon/pipeline/load"
)

func newProduceCmd(g *globals) *cobra.Command {
	var brokers []string
	var maxRecord int
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
command then exits with status 2 after loading the rest. A record larger
than --max-record-bytes is a bad line.

When the broker refuses a record or cannot be reached, the command stops
reading, waits for the records already sent, and exits with status 2
naming the first line that failed and, per file, exactly the lines the
broker has.`),
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
			if err := checkMaxRecord(maxRecord); err != nil {
				return err
			}
			p, err := load.New(cc, load.Options{MaxRecord: maxRecord, LimitName: "--max-record-bytes", Warn: g.stderr, Stdin: g.stdin})
			if err != nil {
				return err
			}
			defer p.Close()
			stop := progress(g.stderr, "produced", &p.Produced)
			defer stop()
			bad := 0
			for _, name := range files {
				n, err := p.File(cmd.Context(), name)
				bad += n
				if err != nil {
					return &exitError{code: exitFailure, err: p.Stopped(cmd.Context(), err)}
				}
			}
			if err := p.Flush(cmd.Context()); err != nil {
				return &exitError{code: exitFailure, err: p.Stopped(cmd.Context(), err)}
			}
			stop()
			fmt.Fprintf(g.stderr, "produced %d records from %d file(s)\n", p.Produced.Load(), len(files))
			if bad > 0 {
				return &exitError{code: exitFailure, err: fmt.Errorf("%d bad lines were skipped", bad)}
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&maxRecord, "max-record-bytes", load.DefaultMaxRecord,
		"the largest record batch the broker takes (its message.max.bytes, or the topic's max.message.bytes); a larger record is a bad line")
	cmd.Flags().StringSliceVar(&brokers, "brokers", []string{"127.0.0.1:9092"}, "seed brokers, host:port, comma separated")
	return cmd
}

// checkMaxRecord validates a --max-record-bytes value.
func checkMaxRecord(n int) error {
	if n < 1024 || n > 1<<30 {
		return usageError("--max-record-bytes: must be between 1024 and %d, got %d", 1<<30, n)
	}
	return nil
}
