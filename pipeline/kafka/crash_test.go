package kafka_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/pipeline/broker"
	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
)

// Environment of the crash test's child process.
const (
	envCrashBroker = "CDCRECON_CRASH_BROKER"
	envCrashOut    = "CDCRECON_CRASH_OUT"
)

// fastGroup lets a restarted member take over a killed member's partitions
// within a second or two instead of the default 45s session timeout.
var fastGroup = []kgo.Opt{
	kgo.SessionTimeout(time.Second),
	kgo.HeartbeatInterval(200 * time.Millisecond),
	kgo.RebalanceTimeout(2 * time.Second),
}

// TestCrashChild is the subscriber process of TestCrashRestart; it does
// nothing unless that test started it.
func TestCrashChild(t *testing.T) {
	addr, outPath := os.Getenv(envCrashBroker), os.Getenv(envCrashOut)
	if addr == "" {
		t.Skip("runs only as the child process of TestCrashRestart")
	}
	out, err := os.OpenFile(outPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(out, "start %d\n", os.Getpid())
	cfg := testClient(addr)
	cfg.Opts = append(cfg.Opts, fastGroup...)
	sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{ClientConfig: cfg, ConsumerGroup: "crash", CommitInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := sub.Subscribe(context.Background(), "crash")
	if err != nil {
		t.Fatal(err)
	}
	for m := range ch {
		// One write per message: a SIGKILL cannot lose a line the kernel
		// already has, so the file is the truth of what was processed.
		fmt.Fprintf(out, "%s %s\n", m.Metadata.Get(kafka.MetaPartition), m.Metadata.Get(kafka.MetaOffset))
		time.Sleep(200 * time.Microsecond)
		m.Ack()
	}
}

// TestCrashRestart kills a subscriber process with SIGKILL in mid-stream,
// twice, restarting it each time. Every record must be processed at least
// once; within each run a partition's records come in offset order with no
// gap, and a restart resumes no later than where the killed run stopped.
func TestCrashRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses; skipped with -short")
	}
	b, err := broker.Start(broker.Config{Opts: []kfake.Opt{kfake.GroupMinSessionTimeout(500 * time.Millisecond)}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const parts, n = 3, 1500
	produceRaw(t, b.Addr(), "crash", parts, n)
	outPath := filepath.Join(t.TempDir(), "processed.log")

	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), envCrashBroker+"="+b.Addr(), envCrashOut+"="+outPath)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	waitLines := func(atLeast int) {
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			if runs := readRuns(t, outPath); countLines(runs) >= atLeast {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("fewer than %d records processed within 60s", atLeast)
	}
	total := parts * n
	for _, killAt := range []int{total / 3, 2 * total / 3} {
		cmd := start()
		waitLines(killAt)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
	}
	cmd := start()
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	deadline := time.Now().Add(60 * time.Second)
	for {
		runs := readRuns(t, outPath)
		if missing := missingOffsets(runs, parts, n); missing == 0 {
			checkRuns(t, runs, parts)
			if len(runs) != 3 {
				t.Fatalf("%d runs recorded, want 3", len(runs))
			}
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("%d records never processed", missing)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type position struct {
	partition int32
	offset    int64
}

// readRuns splits the child's log into runs, one per process start.
func readRuns(t *testing.T, path string) [][]position {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var runs [][]position
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "start ") {
			runs = append(runs, nil)
			continue
		}
		var p position
		if _, err := fmt.Sscanf(line, "%d %d", &p.partition, &p.offset); err != nil {
			continue // a line cut short by the kill
		}
		runs[len(runs)-1] = append(runs[len(runs)-1], p)
	}
	return runs
}

func countLines(runs [][]position) int {
	n := 0
	for _, r := range runs {
		n += len(r)
	}
	return n
}

func missingOffsets(runs [][]position, parts, n int) int {
	seen := map[position]bool{}
	for _, r := range runs {
		for _, p := range r {
			seen[p] = true
		}
	}
	return parts*n - len(seen)
}

func checkRuns(t *testing.T, runs [][]position, parts int) {
	t.Helper()
	// high[p] is the next offset after the last one processed so far.
	high := map[int32]int64{}
	for i, run := range runs {
		last := map[int32]int64{}
		for _, p := range run {
			prev, seen := last[p.partition]
			switch {
			case !seen && p.offset > high[p.partition]:
				t.Fatalf("run %d: partition %d resumed at %d, skipping from %d", i, p.partition, p.offset, high[p.partition])
			case seen && p.offset != prev+1:
				t.Fatalf("run %d: partition %d went from %d to %d", i, p.partition, prev, p.offset)
			}
			last[p.partition] = p.offset
			high[p.partition] = max(high[p.partition], p.offset+1)
		}
	}
	t.Logf("%d runs processed %d records of %d partitions; the kills caused the duplicates", len(runs), countLines(runs), parts)
}
