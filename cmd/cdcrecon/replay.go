package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/cdcrecon/cdcrecon/pipeline/topology"
	"github.com/cdcrecon/cdcrecon/processors/config"
)

func newReplayCmd(g *globals) *cobra.Command {
	var cfgFile, from string
	var w workerFlags
	cmd := &cobra.Command{
		Use:   "replay --config FILE --from earliest|RFC3339-time|PARTITION=OFFSET,...",
		Short: "Rewind the reconciler's group and run the worker, publishing outputs again",
		Long: strings.TrimSpace(`
Rewinds the reconciler's consumer group on the changes topic, then runs as
the worker (see run) until SIGINT or SIGTERM. For each rewound partition
the worker restores the newest snapshot on the state topic at or before
the point (or starts from the topic's first change when the history has
never been trimmed), reads on from there, and publishes every drift,
compensation and checksum record decided from the chosen point on, with
the ids they had: replaying the same input gives the same records.

The changes topic keeps its history back to the older of each partition's
two snapshots (and no further than state.changes_retention): a point before
that cannot be replayed, and the worker stops saying so.

--from says where outputs start again:
  earliest            every output of the retained history
  RFC3339 time        outputs of the changes recorded at or after it
  PARTITION=OFFSET,.. outputs from those offsets of the changes topic's
                      partitions; partitions not named are not rewound

A point later than where the group is leaves that partition as it is. The
other workers of the group must be stopped first: a group with members
cannot be rewound. Start them again once the replay runs.`),
		Example: examples(`
  # publish every drift record again, then go on as a worker
  cdcrecon replay --config examples/orders.yaml --from earliest

  # outputs of the changes recorded since 9:00 UTC
  cdcrecon replay --config examples/orders.yaml --from 2026-11-21T09:00:00Z

  # changes partitions 0 and 3 from offsets 1200 and 980
  cdcrecon replay --config examples/orders.yaml --from 0=1200,3=980`),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			point, err := parseFrom(from)
			if err != nil {
				return err
			}
			cfg, err := loadConfig(cfgFile)
			if err != nil {
				return err
			}
			w.apply(cfg)
			return runWorker(cmd.Context(), g, cfg, func(ctx context.Context, adm *kadm.Client) error {
				return rewind(ctx, adm, cfg, point)
			})
		},
	}
	cmd.Flags().StringVar(&cfgFile, "config", "", "configuration file (required)")
	cmd.Flags().StringVar(&from, "from", "", "earliest, an RFC3339 time, or PARTITION=OFFSET[,PARTITION=OFFSET...] of the changes topic (required)")
	w.flags(cmd)
	return cmd
}

// replayPoint is where a replay starts: earliest, a time, or offsets.
type replayPoint struct {
	earliest bool
	at       time.Time
	offsets  map[int32]int64
}

func parseFrom(s string) (replayPoint, error) {
	switch {
	case s == "":
		return replayPoint{}, usageError("--from is required: earliest, an RFC3339 time, or PARTITION=OFFSET,...")
	case s == "earliest":
		return replayPoint{earliest: true}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return replayPoint{at: t}, nil
	}
	if !strings.Contains(s, "=") {
		return replayPoint{}, usageError("--from %q: want earliest, an RFC3339 time such as 2026-11-21T09:00:00Z, or PARTITION=OFFSET,...", s)
	}
	p := replayPoint{offsets: map[int32]int64{}}
	for _, item := range strings.Split(s, ",") {
		ps, os, _ := strings.Cut(item, "=")
		part, err1 := strconv.ParseInt(strings.TrimSpace(ps), 10, 32)
		off, err2 := strconv.ParseInt(strings.TrimSpace(os), 10, 64)
		if err1 != nil || err2 != nil || part < 0 || off < 0 {
			return replayPoint{}, usageError("--from: %q is not PARTITION=OFFSET (two non-negative integers)", item)
		}
		p.offsets[int32(part)] = off
	}
	return p, nil
}

// rewind lowers the reconciler group's committed offsets to the replay
// point. A replaying worker opens no state past its group's committed
// offsets and publishes what it decides from them on, so a lower commit
// is a replay; a commit above what was processed would skip outputs, so a
// point is never allowed to raise one.
func rewind(ctx context.Context, adm *kadm.Client, cfg *config.Config, p replayPoint) error {
	top := topology.Define(cfg)
	group := top.ReconcileGroup
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return fmt.Errorf("describing group %s: %w", group, err)
	}
	if d, ok := described[group]; ok && len(d.Members) > 0 {
		return fmt.Errorf("group %s has %d members: stop the workers before a replay, and start them again once it runs", group, len(d.Members))
	}
	if p.earliest {
		resp, err := adm.DeleteGroup(ctx, group)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
			return fmt.Errorf("rewinding group %s: %w", group, err)
		}
		return nil
	}
	committed, err := adm.FetchOffsetsForTopics(ctx, group, top.Changes)
	if err != nil {
		return fmt.Errorf("reading the offsets of group %s: %w", group, err)
	}
	want := p.offsets
	if want == nil {
		listed, err := adm.ListOffsetsAfterMilli(ctx, p.at.UnixMilli(), top.Changes)
		if err != nil {
			return fmt.Errorf("finding the offsets of %s at %s: %w", top.Changes, p.at.Format(time.RFC3339), err)
		}
		want = map[int32]int64{}
		listed.Each(func(o kadm.ListedOffset) {
			if o.Err == nil {
				want[o.Partition] = o.Offset
			}
		})
	}
	var to kadm.Offsets
	for part, off := range want {
		if part >= int32(top.Partitions) {
			return usageError("--from: partition %d: the changes topic %s has %d partitions", part, top.Changes, top.Partitions)
		}
		cur, ok := committed.Lookup(top.Changes, part)
		if !ok || cur.Err != nil || cur.At < 0 || off >= cur.At {
			continue // nothing committed (everything is published anyway), or not a rewind
		}
		to.AddOffset(top.Changes, part, off, -1)
	}
	if len(to) == 0 {
		return nil
	}
	if err := adm.CommitAllOffsets(ctx, group, to); err != nil {
		return fmt.Errorf("rewinding group %s: %w", group, err)
	}
	return nil
}
