package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cdcrecon/cdcrecon/pipeline/broker"
)

func newBrokerCmd(g *globals) *cobra.Command {
	var cfg broker.Config
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run an embedded Kafka-protocol broker for local use and tests",
		Long: strings.TrimSpace(`
Runs a single-node Kafka-protocol broker (franz-go's kfake) until SIGINT or
SIGTERM. Any Kafka client can use it: cdcrecon, kcat, librdkafka, Java.
Topics are created on first use with --partitions partitions. With --data-dir
the broker is persistent: topics, records and committed group offsets survive
a restart.`),
		Example: examples(`
  cdcrecon broker
  cdcrecon broker --listen 127.0.0.1:9092 --data-dir ./broker-data --partitions 4`),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger()
			if err != nil {
				return usageError("%v", err)
			}
			cfg.Logger = log
			if cfg.Partitions < 1 {
				return usageError("--partitions: must be at least 1, got %d", cfg.Partitions)
			}
			if err := cfg.Validate(); err != nil {
				return usageError("%v", err)
			}
			b, err := broker.Start(cfg)
			if err != nil {
				return err
			}
			where := "in memory"
			if cfg.DataDir != "" {
				where = "data dir " + cfg.DataDir
			}
			fmt.Fprintf(g.stdout, "cdcrecon broker listening on %s (%s, partitions per new topic: %d)\n", b.Addr(), where, max(cfg.Partitions, 1))
			<-cmd.Context().Done()
			b.Close()
			fmt.Fprintln(g.stdout, "cdcrecon broker stopped")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Listen, "listen", "127.0.0.1:9092", "TCP address to listen on (port 0 picks a free port)")
	f.StringVar(&cfg.DataDir, "data-dir", "", "directory that keeps the broker's data across restarts (default: in memory)")
	f.IntVar(&cfg.Partitions, "partitions", 1, "partitions of each automatically created topic")
	return cmd
}
