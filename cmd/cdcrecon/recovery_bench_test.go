package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/cmd/cdcrecon/internal/harness"
	"github.com/cdcrecon/cdcrecon/pipeline/broker"
	"github.com/cdcrecon/cdcrecon/pipeline/ops"
	"github.com/cdcrecon/cdcrecon/processors/canon"
	"github.com/cdcrecon/cdcrecon/processors/changes"
	"github.com/cdcrecon/cdcrecon/processors/config"
	"github.com/cdcrecon/cdcrecon/processors/normalize"
)

// recoveryConfig is the recovery benchmarks' table: one table keyed by
// id, its sides on single-partition topics that stay empty (the changes
// are written to the changes topic directly). The worker measures its lag
// every 200 ms (idle.interval), which bounds the figures' resolution.
const recoveryConfig = `idle: {interval: 200ms}
tables:
  - {name: items, key: [id], source: {topic: src.items}, target: {topic: tgt.items}}
`

// recoveryPartitions is what a recovery benchmark's worker owns: two
// input partitions and the default eight changes partitions.
var recoveryPartitions = 2 + config.Default().Kafka.Partitions

// writeHistory writes n changes over keys keys to the changes topic at
// addr, as the ingest stage would have: each key's source row, then its
// target row (the same: nothing drifts), round after round over the keys
// with a new value each round, one key a millisecond of event time, and
// every 10,000 keys a watermark of both inputs on every partition, so
// that the windows close behind the writes and the keys go idle. It
// returns the changes topic's end offsets' sum.
func writeHistory(b *testing.B, addr string, keys, n int) int64 {
	b.Helper()
	cfg, err := config.Parse([]byte(recoveryConfig), "recovery.yaml")
	if err != nil {
		b.Fatal(err)
	}
	m, err := normalize.NewMapper(cfg)
	if err != nil {
		b.Fatal(err)
	}
	table := m.Tables()[0]
	parts := cfg.Kafka.Partitions
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(200_000), kgo.ProducerBatchMaxBytes(1<<20))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	if err := createTopics(ctx, cl, parts); err != nil {
		b.Fatal(err)
	}
	var (
		h       canon.Hasher
		offsets [2]int64
		failed  error
	)
	const t0 = int64(1_767_225_600_000) // 2026-01-01
	promise := func(_ *kgo.Record, err error) {
		if err != nil && failed == nil {
			failed = err
		}
	}
	inputs := [2]string{"src.items", "tgt.items"}
	sides := [2]normalize.Side{normalize.Source, normalize.Target}
	marks := func(at int64) {
		for side, in := range inputs {
			v := changes.AppendMark(nil, changes.Mark{Side: sides[side], Input: changes.InputName(in, 0), Time: at})
			for p := range parts {
				cl.Produce(ctx, &kgo.Record{Topic: "cdcrecon.changes", Partition: int32(p), Value: v}, promise)
			}
		}
	}
	written := 0
	for i := 0; written < n; i++ {
		id, round := i%keys, i/keys
		at := t0 + int64(i)
		row := canon.Row{
			{Name: "id", Value: canon.IntValue(int64(id))},
			{Name: "note", Value: canon.StringValue(fmt.Sprintf("item %d, revision %d of its history", id, round))},
			{Name: "v", Value: canon.IntValue(int64(round))},
		}
		keyBytes := canon.AppendKey(nil, []canon.Value{canon.IntValue(int64(id))})
		key := changes.Key(nil, table.Name(), keyBytes)
		rowBytes := canon.AppendRow(nil, row)
		digest := table.Digest(&h, row)
		for side, in := range inputs {
			c := changes.Change{Table: table.Name(), Side: sides[side], Kind: changes.Upsert, Key: keyBytes,
				Row: rowBytes, Digest: digest, Time: at + int64(side)*5,
				Origin: changes.Origin{Topic: in, Partition: 0, Offset: offsets[side]}}
			offsets[side]++
			cl.Produce(ctx, &kgo.Record{Topic: "cdcrecon.changes", Partition: changes.Partition(key, parts), Key: key,
				Value: changes.AppendChange(nil, &c)}, promise)
			written++
		}
		if i%10_000 == 9_999 {
			marks(at)
		}
	}
	// The last watermark far past the last change: every window closes.
	marks(t0 + int64(n) + 3_600_000)
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	if failed != nil {
		b.Fatal(failed)
	}
	return changesEnd(b, cl)
}

// createTopics creates the empty input topics and the changes topic with
// the settings the worker would give it.
func createTopics(ctx context.Context, cl *kgo.Client, parts int) error {
	adm := kadm.NewClient(cl)
	for _, t := range []string{"src.items", "tgt.items"} {
		if _, err := adm.CreateTopic(ctx, 1, 1, nil, t); err != nil {
			return err
		}
	}
	_, err := adm.CreateTopic(ctx, int32(parts), 1, changes.TopicConfigs(config.Default().State.ChangesRetention), "cdcrecon.changes")
	return err
}

// changesEnd is the sum of the changes topic's end offsets.
func changesEnd(b *testing.B, cl *kgo.Client) int64 {
	b.Helper()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), "cdcrecon.changes")
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// retained is how many changes the changes topic holds.
func retained(b *testing.B, addr string) int64 {
	b.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(context.Background(), "cdcrecon.changes")
	if err != nil {
		b.Fatal(err)
	}
	var start int64
	starts.Each(func(o kadm.ListedOffset) { start += o.Offset })
	return changesEnd(b, cl) - start
}

// dirBytes is the size of the files under dir's entries whose names
// start with prefix.
func dirBytes(dir, prefix string) int64 {
	var n int64
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		_ = filepath.WalkDir(filepath.Join(dir, e.Name()), func(_ string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if info, err := d.Info(); err == nil {
					n += info.Size()
				}
			}
			return nil
		})
	}
	return n
}

// restoreTook reads the restore times a worker logged, in seconds.
func restoreTook(b *testing.B, log string) []float64 {
	b.Helper()
	data, err := os.ReadFile(log)
	if err != nil {
		b.Fatal(err)
	}
	var out []float64
	for _, m := range regexp.MustCompile(`"restored a partition's state from the state topic".*?"took":"([^"]+)"`).FindAllSubmatch(data, -1) {
		d, err := time.ParseDuration(string(m[1]))
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, d.Seconds())
	}
	return out
}

// BenchmarkStateRecovery measures how a worker gets 1M keys of state back
// (CDCRECON_RECOVERY_KEYS sets another count),
// at three history lengths: 2, 5 and 20 changes per key in the changes
// topic (2M, 5M, 20M records; two is the least, a source and a target row
// per key). The history is written to the changes topic directly (see
// writeHistory), and a first worker (a static member) reads it to its
// end, taking snapshots to the state topic as it goes, and runs on until
// it has snapshotted every partition once more (after at most
// state.snapshot_interval, 1m: the steady state, in which a partition's
// newest snapshot is at most an interval old). Then:
//
//   - restart-s: the worker is killed with SIGKILL and started again on
//     its state directory; from the new process's start until it owns
//     every partition again and has read every change (it publishes
//     again);
//   - move-s: that worker stops (SIGTERM) and leaves the groups (a
//     static member does not on its own), and a new worker with an empty
//     state directory takes every partition over; from its start until it
//     has restored them from the state topic and read every change;
//     restore-max-s is the slowest partition's restore as the new worker
//     logs it;
//   - history-read-s, the baseline: a bare franz-go consumer reading the
//     whole history from the start, before the first worker runs: the
//     floor of any recovery that reads the history.
//
// It also reports the changes retained at the end, and the first
// worker's state directory and the broker's log on disk.
//
//	go test -run '^$' -bench BenchmarkStateRecovery -benchtime 1x -count 3 -timeout 90m ./cmd/cdcrecon
func BenchmarkStateRecovery(b *testing.B) {
	keys := 1_000_000
	if v := os.Getenv("CDCRECON_RECOVERY_KEYS"); v != "" {
		keys, _ = strconv.Atoi(v)
	}
	bin := cliBinary(b)
	for _, perKey := range []int{2, 5, 20} {
		b.Run(fmt.Sprintf("history=%dx", perKey), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				dir := b.TempDir()
				br, err := broker.Start(broker.Config{DataDir: filepath.Join(dir, "broker")})
				if err != nil {
					b.Fatal(err)
				}
				addr := br.Addr()
				if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(recoveryConfig), 0o644); err != nil {
					b.Fatal(err)
				}
				total := writeHistory(b, addr, keys, keys*perKey)
				readSecs := readAll(b, addr, total)

				state := filepath.Join(dir, "state-1")
				b.Setenv("CDCRECON_BENCH_LOG", filepath.Join(dir, "worker-1.log"))
				w := startBenchWorker(b, bin, dir, addr, state, "--instance-id", "recovery-1")
				m := w.waitFor(b, 30*time.Minute, "all read", harness.Done(recoveryPartitions, -1, -1))
				// Running on, it snapshots every partition again within
				// state.snapshot_interval (1m) of the last: the steady
				// state, in which a snapshot is at most an interval old.
				taken := m.Sum(ops.SnapshotsTotal)
				w.waitFor(b, 3*time.Minute, "a snapshot of every partition", func(m harness.Metrics) bool {
					return m.Sum(ops.SnapshotsTotal) >= taken+float64(config.Default().Kafka.Partitions)
				})
				w.Kill()
				b.Setenv("CDCRECON_BENCH_LOG", filepath.Join(dir, "worker-1b.log"))
				w = startBenchWorker(b, bin, dir, addr, state, "--instance-id", "recovery-1", "--log-level", "info")
				w.waitFor(b, 5*time.Minute, "resumed", harness.Done(recoveryPartitions, -1, -1))
				restart := time.Since(w.Started()).Seconds()
				w.stop(b)
				leave(b, addr, "recovery-1")

				log := filepath.Join(dir, "worker-2.log")
				b.Setenv("CDCRECON_BENCH_LOG", log)
				w = startBenchWorker(b, bin, dir, addr, filepath.Join(dir, "state-2"), "--log-level", "info")
				w.waitFor(b, 5*time.Minute, "restored", harness.Done(recoveryPartitions, -1, -1))
				move := time.Since(w.Started()).Seconds()
				w.stop(b)
				took := restoreTook(b, log)
				keepLogs(b, dir, fmt.Sprintf("recovery-%dx-", perKey), "worker-1.log", "worker-1b.log", "worker-2.log")
				if len(took) == 0 {
					b.Fatalf("the new worker restored no partition from the state topic (its log: %s)", log)
				}
				keep := retained(b, addr)
				stateBytes, brokerBytes := dirBytes(state, ""), dirBytes(filepath.Join(dir, "broker"), "")
				br.Close()
				b.ReportMetric(restart, "restart-s")
				b.ReportMetric(move, "move-s")
				b.ReportMetric(slices.Max(took), "restore-max-s")
				b.ReportMetric(readSecs, "history-read-s")
				b.ReportMetric(float64(total), "changes")
				b.ReportMetric(float64(keep), "retained-changes")
				b.ReportMetric(float64(stateBytes), "state-B")
				b.ReportMetric(float64(brokerBytes), "broker-B")
			}
		})
	}
}

// leave takes a stopped static member out of the worker's groups, as
// an operator retiring it does, so that a new worker gets its partitions
// at once rather than after the session timeout.
func leave(b *testing.B, addr, instance string) {
	b.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	for _, g := range []string{"bench.reconcile", "bench.ingest.src.items", "bench.ingest.tgt.items"} {
		resp, err := kadm.NewClient(cl).LeaveGroup(context.Background(), kadm.LeaveGroup(g).InstanceIDs(instance))
		if err != nil {
			b.Fatal(err)
		}
		resp.EachError(func(l kadm.LeaveGroupResponse) { b.Fatalf("%s leaving %s: %v", instance, g, l.Err) })
	}
}

// readAll reads the whole changes topic with a bare consumer and returns
// the seconds it took.
func readAll(b *testing.B, addr string, total int64) float64 {
	b.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("cdcrecon.changes"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(64<<20))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	started := time.Now()
	var n int64
	for n < total {
		f := cl.PollFetches(ctx)
		if err := f.Err0(); err != nil {
			b.Fatal(err)
		}
		n += int64(f.NumRecords())
	}
	return time.Since(started).Seconds()
}
