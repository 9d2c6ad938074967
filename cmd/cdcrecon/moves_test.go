package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/cmd/cdcrecon/internal/harness"
	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
)

// TestPartitionsMovedFiveTimes: the changes partitions move from worker
// to worker five times while input arrives — handed over on SIGTERM,
// taken over after a SIGKILL, back to a worker whose own state is behind,
// and to one with no state at all — with a snapshot due every second, so
// the workers that take partitions over restore them from the state
// topic and catch up from the changes the snapshots reflect (the changes
// before the snapshot spare are deleted as they go). At the end the
// drift topic holds exactly what check decides for the same dumps, the
// run of one reader that never moved: every record, none other, records
// published twice identical. Then a replay from the earliest change the
// trimmed changes topic retains restores the partitions from their spare
// snapshots and publishes again nothing that differs.
func TestPartitionsMovedFiveTimes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs six processes for about a minute")
	}
	bin := cliBinary(t)
	dir, dumps, _ := simulated(t, "--events", "30000", "--keys", "3000", "--partitions", "3",
		"--drop", "0.002", "--corrupt", "0.002", "--delay", "0.01", "--duplicate", "0.005", "--seed", "23")
	decided := checkDecides(t, dir, dumps)

	addr := freeAddr(t)
	startProcess(t, bin, filepath.Join(dir, "broker.log"), "broker", "--listen", addr, "--data-dir", filepath.Join(dir, "broker-data"))
	cc := kafka.ClientConfig{Brokers: []string{addr}}
	chunks := splitDumps(t, dumps, filepath.Join(dir, "part"), 0.3, 5)
	produce := producer(t, cc)
	produce(chunks[0]...)

	base, _ := os.ReadFile(filepath.Join(dir, "config.yaml"))
	cfg := filepath.Join(dir, "moves.yaml")
	head := fmt.Sprintf("kafka: {brokers: [%s], group: moves, partitions: 4, session_timeout: 6s}\n"+
		"idle: {safety_margin: 0s, interval: 200ms, heartbeats: {source: [hb.source], target: [hb.target]}}\n"+
		"state: {snapshot_interval: 1s}\n", addr)
	if err := os.WriteFile(cfg, append([]byte(head), base...), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs []string
	worker := func(name string) *process {
		log := "worker-" + name + ".log"
		logs = append(logs, log)
		return startProcess(t, bin, filepath.Join(dir, log), "run", "--config", cfg,
			"--state-dir", filepath.Join(dir, "state-"+name), "--http-listen", "off", "--log-level", "info")
	}
	stop := func(p *process) {
		t.Helper()
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("a worker still runs 30s after SIGTERM")
			p.kill()
		}
	}

	// Each move: the next owner joins, the current one goes, and the
	// next chunk of input arrives while the partitions are on the move.
	owner := worker("a")
	time.Sleep(4 * time.Second)
	moves := []struct {
		next string
		kill bool
	}{
		{"b", false}, // handed over
		{"c", true},  // taken over after a SIGKILL
		{"a", false}, // back to a worker whose own state is behind
		{"b", true},  // and again, its state further behind
		{"d", false}, // to a worker with no state
	}
	for i, m := range moves {
		next := worker(m.next)
		time.Sleep(3 * time.Second)
		if m.kill {
			owner.kill()
		} else {
			stop(owner)
		}
		produce(chunks[i+1]...)
		owner = next
		time.Sleep(4 * time.Second)
	}
	for _, c := range chunks[len(moves)+1:] {
		produce(c...)
	}
	produce(farHeartbeats(t, dir))
	got, records := awaitDecided(t, cc, decided, 120*time.Second)

	restores := 0
	for _, l := range logs {
		b, _ := os.ReadFile(filepath.Join(dir, l))
		restores += strings.Count(string(b), "restored a partition's state from the state topic")
	}
	t.Logf("%d drift records (%d distinct) of %d check decides; %d restores from the state topic", records, len(got), len(decided), restores)
	if restores < len(moves) {
		t.Errorf("%d restores from the state topic over %d moves: the partitions were not restored from snapshots", restores, len(moves))
	}

	// A replay from the earliest change retained: where the changes
	// before the spare snapshots were deleted, it restores those, reads
	// on, and publishes again, identical, what was decided from there.
	stop(owner)
	cl, err := kgo.NewClient(cc.ClientOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	starts, err := kadm.NewClient(cl).ListStartOffsets(context.Background(), "cdcrecon.changes")
	cl.Close()
	if err != nil {
		t.Fatal(err)
	}
	trimmed := 0
	starts.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			trimmed++
		}
	})
	listen := freeAddr(t)
	logs = append(logs, "replay.log")
	replay := startProcess(t, bin, filepath.Join(dir, "replay.log"), "replay", "--config", cfg, "--from", "earliest",
		"--state-dir", filepath.Join(dir, "state-replay"), "--http-listen", listen, "--log-level", "info")
	waitMetrics(t, "http://"+listen+"/metrics", 60*time.Second, "replayed", harness.Done(4+6*3, -1, -1))
	if replay.cmd.ProcessState != nil {
		t.Fatalf("the replay stopped: %v", replay.cmd.ProcessState)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "replay.log"))
	replayed := strings.Count(string(b), "restored a partition's state from the state topic")
	t.Logf("the replay from the earliest retained change restored %d partitions (%d of 4 trimmed)", replayed, trimmed)
	if trimmed == 0 || replayed < trimmed {
		t.Errorf("%d partitions trimmed, %d restored by the replay: the test needs trimmed partitions, and each of them restored", trimmed, replayed)
	}
	got, _ = awaitDecided(t, cc, decided, 30*time.Second)
	replay.kill()
	if t.Failed() {
		var all []string
		for _, rec := range got {
			all = append(all, rec)
		}
		_ = os.WriteFile(filepath.Join(dir, "drift.jsonl"), []byte(strings.Join(all, "\n")+"\n"), 0o644)
		keepLogs(t, dir, "moves-", append(logs, "broker.log", "drift.jsonl", "source.jsonl", "target.jsonl", "config.yaml")...)
	}
}
