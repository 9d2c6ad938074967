package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/cmd/cdcrecon/internal/harness"
	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
	"github.com/cdcrecon/cdcrecon/pipeline/offline"
	"github.com/cdcrecon/cdcrecon/pipeline/registry"
)

// envInt reads a positive integer from the environment, or def.
func envInt(t testing.TB, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// splitDumps splits every dump as chunkDump does (files named from
// prefix) and groups the pieces: the first shares of all dumps, then
// each later chunk of all dumps.
func splitDumps(t testing.TB, dumps []string, prefix string, share float64, n int) [][]string {
	t.Helper()
	chunks := make([][]string, n+1)
	for i, d := range dumps {
		for j, f := range chunkDump(t, d, fmt.Sprintf("%s%d-", prefix, i), share, n) {
			chunks[j] = append(chunks[j], f)
		}
	}
	return chunks
}

// producer loads dumps into the broker at cc once it answers.
func producer(t *testing.T, cc kafka.ClientConfig) func(files ...string) {
	return func(files ...string) {
		t.Helper()
		waitForBroker(t, cc)
		loadDumps(t, cc, files...)
	}
}

// chunkDump splits a kcat -J dump into n+1 files: the first holds the
// first share (0..1) of each partition's records, the others the rest in
// n about equal chunks, so that every file uses every partition.
func chunkDump(t testing.TB, file, prefix string, share float64, n int) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	byPart := map[string][]string{}
	var order []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r struct {
			Topic     string `json:"topic"`
			Partition int32  `json:"partition"`
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		k := fmt.Sprint(r.Topic, "/", r.Partition)
		if byPart[k] == nil {
			order = append(order, k)
		}
		byPart[k] = append(byPart[k], l)
	}
	chunks := make([][]string, n+1)
	for _, k := range order {
		ls := byPart[k]
		first := int(float64(len(ls)) * share)
		chunks[0] = append(chunks[0], ls[:first]...)
		rest := ls[first:]
		for i := range n {
			chunks[i+1] = append(chunks[i+1], rest[len(rest)*i/n:len(rest)*(i+1)/n]...)
		}
	}
	var files []string
	for i, c := range chunks {
		f := fmt.Sprintf("%s%d.jsonl", prefix, i)
		if err := os.WriteFile(f, []byte(strings.Join(c, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	return files
}

// TestChaos: several worker processes on one cdcrecon broker, with the
// wall clock moving idle sides (a safety margin of 1s), so that input
// produced after the start is late: its events were committed long
// before they reach Kafka, as when a connector catches up after an
// outage. 60% of a simulated workload is in the topics at the start; the
// rest arrives in four chunks while workers are killed with SIGKILL and
// started again at random, one joins and one leaves with SIGINT, and the
// broker stops and comes back on its data. Half the workers are static
// members (--instance-id). A snapshot is due every second, so kills land
// while snapshots are written and partitions restored from them. At the
// end the drift topic must hold no (id, status) with two contents, and
// the drift open by each id's latest
// record must be exactly the simulator's ground truth.
//
// The seed varies per run and is printed; CDCRECON_CHAOS_SEED replays
// one. CDCRECON_CHAOS_EVENTS (default 30000) and CDCRECON_CHAOS_KILLS
// (default 8) size it.
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("runs up to six processes for a few minutes")
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("CDCRECON_CHAOS_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("CDCRECON_CHAOS_SEED=%q: %v", v, err)
		}
	}
	events := envInt(t, "CDCRECON_CHAOS_EVENTS", 30000)
	kills := envInt(t, "CDCRECON_CHAOS_KILLS", 8)
	t.Logf("chaos seed %d (replay with CDCRECON_CHAOS_SEED=%d), %d events, %d kills", seed, seed, events, kills)
	r := rand.New(rand.NewPCG(seed, 16))
	bin := cliBinary(t)
	dir, dumps, _ := simulated(t, "--events", strconv.Itoa(events), "--keys", strconv.Itoa(max(events/5, 100)), "--partitions", "3",
		"--drop", "0.001", "--corrupt", "0.001", "--delay", "0.01", "--duplicate", "0.005", "--poison", "4", "--seed", strconv.FormatUint(seed%1000000, 10))
	truthFile, _ := os.ReadFile(filepath.Join(dir, "truth.jsonl"))
	truth := driftSet(t, truthFile)

	addr := freeAddr(t)
	brokerArgs := []string{"broker", "--listen", addr, "--data-dir", filepath.Join(dir, "broker-data")}
	brokerProc := startProcess(t, bin, filepath.Join(dir, "broker.log"), brokerArgs...)
	cc := kafka.ClientConfig{Brokers: []string{addr}}
	const lateChunks = 4
	chunks := splitDumps(t, dumps, filepath.Join(dir, "chunk"), 0.6, lateChunks)
	produce := producer(t, cc)
	produce(chunks[0]...)

	base, _ := os.ReadFile(filepath.Join(dir, "config.yaml"))
	cfg := filepath.Join(dir, "chaos.yaml")
	// A snapshot due every second: kills land while snapshots are
	// written and while partitions are restored from them.
	head := fmt.Sprintf("kafka: {brokers: [%s], group: chaos, partitions: 6, session_timeout: 6s}\n"+
		"idle: {safety_margin: 1s, interval: 200ms}\nstate: {snapshot_interval: 1s}\n", addr)
	// A short grace, so that the last late events are decided soon after
	// they arrive; the truth is of the final rows, whatever the grace.
	body := strings.Replace(string(base), "window: {size: 1m0s, grace: 30s}", "window: {size: 10s, grace: 2s}", 1)
	if err := os.WriteFile(cfg, []byte(head+body), 0o644); err != nil {
		t.Fatal(err)
	}
	const maxWorkers = 4
	workers := make([]*process, maxWorkers)
	var listen [maxWorkers]string
	for i := range listen {
		listen[i] = freeAddr(t)
	}
	start := func(i int) {
		args := []string{"run", "--config", cfg, "--state-dir", filepath.Join(dir, fmt.Sprintf("state%d", i)),
			"--http-listen", listen[i], "--log-level", "info"}
		if i%2 == 0 {
			args = append(args, "--instance-id", fmt.Sprintf("chaos-%d", i))
		}
		workers[i] = startProcess(t, bin, filepath.Join(dir, fmt.Sprintf("worker%d.log", i)), args...)
	}
	running := func() []int {
		var out []int
		for i, w := range workers {
			if w != nil && w.cmd.ProcessState == nil {
				out = append(out, i)
			}
		}
		return out
	}
	for i := range 3 {
		start(i)
	}

	// The schedule: every step sleeps a little, then does one thing.
	steps := kills + lateChunks + 3
	var plan []string
	for range kills {
		plan = append(plan, "kill")
	}
	for range lateChunks {
		plan = append(plan, "produce")
	}
	plan = append(plan, "broker", "join", "leave")
	r.Shuffle(len(plan), func(i, j int) { plan[i], plan[j] = plan[j], plan[i] })
	// The leave comes after the join.
	if j, l := slices.Index(plan, "join"), slices.Index(plan, "leave"); l < j {
		plan[j], plan[l] = plan[l], plan[j]
	}
	produced := 1
	var log []string
	for step := range steps {
		time.Sleep(time.Duration(300+r.IntN(1700)) * time.Millisecond)
		// Killed workers come back, some at once, some a step later.
		for i, w := range workers[:3] {
			if w != nil && w.cmd.ProcessState != nil && r.IntN(2) == 0 {
				start(i)
				log = append(log, fmt.Sprintf("restart %d", i))
			}
		}
		switch plan[step] {
		case "kill":
			if live := running(); len(live) > 0 {
				i := live[r.IntN(len(live))]
				workers[i].kill()
				log = append(log, fmt.Sprintf("kill %d", i))
			}
		case "produce":
			produce(chunks[produced]...)
			log = append(log, fmt.Sprintf("produce chunk %d", produced))
			produced++
		case "broker":
			_ = brokerProc.cmd.Process.Signal(syscall.SIGTERM)
			_ = brokerProc.cmd.Wait()
			time.Sleep(time.Duration(1000+r.IntN(3000)) * time.Millisecond)
			brokerProc = startProcess(t, bin, filepath.Join(dir, "broker.log"), brokerArgs...)
			waitForBroker(t, cc)
			log = append(log, "broker restart")
		case "join":
			start(3)
			log = append(log, "join 3")
		case "leave":
			if w := workers[3]; w != nil && w.cmd.ProcessState == nil {
				_ = w.cmd.Process.Signal(syscall.SIGINT)
				done := make(chan struct{})
				go func() { _ = w.cmd.Wait(); close(done) }()
				select {
				case <-done:
				case <-time.After(20 * time.Second):
					t.Errorf("worker 3 still runs 20s after SIGINT")
					w.kill()
				}
				log = append(log, "leave 3")
			}
		}
	}
	for i, w := range workers[:3] {
		if w.cmd.ProcessState != nil {
			start(i)
			log = append(log, fmt.Sprintf("restart %d", i))
		}
	}
	t.Logf("schedule: %s", strings.Join(log, ", "))
	settled := time.Now()

	// Wait for the drift topic to settle on the truth.
	serde := registry.NewSerde(nil)
	var final, all []string
	var conflicts []string
	var records int
	deadline := time.Now().Add(150 * time.Second)
	for {
		ds, err := offline.ReadDrift(context.Background(), cc, "cdcrecon.drift", serde)
		if err == nil {
			records = len(ds)
			all = all[:0]
			contents := map[string]string{}
			latest := map[string]*driftRecord{}
			conflicts = nil
			for _, d := range ds {
				b, _ := json.Marshal(d)
				k := d.ID + " " + string(d.Status)
				if prev, ok := contents[k]; ok && prev != string(b) {
					conflicts = append(conflicts, prev+"\n"+string(b))
				}
				contents[k] = string(b)
				all = append(all, string(b))
				if cur := latest[d.ID]; cur == nil || d.Status != "open" {
					latest[d.ID] = &driftRecord{status: string(d.Status), json: string(b)}
				}
			}
			var open []string
			for _, l := range latest {
				if l.status == "open" {
					open = append(open, l.json)
				}
			}
			final = driftSet(t, []byte(strings.Join(open, "\n")))
			if len(conflicts) > 0 || slices.Equal(final, truth) {
				break
			}
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	for _, c := range conflicts {
		t.Errorf("one (id, status), two contents:\n%s", c)
	}
	missed, falsePos := setDiff(truth, final), setDiff(final, truth)
	restores := 0
	for i := range maxWorkers {
		b, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("worker%d.log", i)))
		restores += strings.Count(string(b), "restored a partition's state from the state topic")
	}
	t.Logf("%d drift records; open at the end %d, truth %d: missed %d, false %d, conflicting %d; %d restores from the state topic; settled %s after the last fault",
		records, len(final), len(truth), len(missed), len(falsePos), len(conflicts), restores, time.Since(settled).Round(time.Second))
	if len(missed) > 0 || len(falsePos) > 0 {
		t.Errorf("missed %v\nfalse %v", head10(missed), head10(falsePos))
	}
	if t.Failed() {
		logGroups(t, cc)
		for i, w := range workers {
			if w == nil || w.cmd.ProcessState != nil {
				continue
			}
			m := harness.Scrape("http://" + listen[i] + "/metrics")
			var lines []string
			for k, v := range m {
				if strings.HasPrefix(k, "cdcrecon_consumer_lag") || strings.HasPrefix(k, "cdcrecon_drift_open") || strings.HasPrefix(k, "cdcrecon_watermark") || strings.HasPrefix(k, "cdcrecon_rebuilding") {
					lines = append(lines, fmt.Sprintf("%s %g", k, v))
				}
			}
			slices.Sort(lines)
			t.Logf("worker %d metrics:\n%s", i, strings.Join(lines, "\n"))
			if os.Getenv("CDCRECON_KEEP_LOGS") != "" {
				_ = w.cmd.Process.Signal(syscall.SIGQUIT) // its goroutines, into its log
				_ = w.cmd.Wait()
			}
		}
	}
	for _, w := range workers {
		if w != nil {
			w.kill()
		}
	}
	if t.Failed() {
		t.Logf("seed %d failed; replay with CDCRECON_CHAOS_SEED=%d", seed, seed)
		_ = os.WriteFile(filepath.Join(dir, "drift.jsonl"), []byte(strings.Join(all, "\n")+"\n"), 0o644)
		keepLogs(t, dir, "chaos-", "drift.jsonl", "truth.jsonl", "source.jsonl", "target.jsonl", "broker.log", "worker0.log", "worker1.log", "worker2.log", "worker3.log")
	}
}

type driftRecord struct{ status, json string }

// logGroups logs every consumer group's members and what each is
// assigned, as the broker sees them.
func logGroups(t *testing.T, cc kafka.ClientConfig) {
	cl, err := kgo.NewClient(cc.ClientOpts()...)
	if err != nil {
		t.Logf("groups: %v", err)
		return
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		t.Logf("groups: %v", err)
		return
	}
	described, err := adm.DescribeGroups(ctx, listed.Groups()...)
	if err != nil {
		t.Logf("groups: %v", err)
		return
	}
	for _, g := range described.Sorted() {
		t.Logf("group %s: state %s, protocol %s, %d members", g.Group, g.State, g.Protocol, len(g.Members))
		for _, m := range g.Members {
			var parts []string
			if c, ok := m.Assigned.AsConsumer(); ok {
				for _, tp := range c.Topics {
					parts = append(parts, fmt.Sprintf("%s%v", tp.Topic, tp.Partitions))
				}
			}
			t.Logf("  %s (%s): %s", m.MemberID, m.ClientHost, strings.Join(parts, " "))
		}
	}
}

// setDiff returns the members of a (sorted) not in b.
func setDiff(a, b []string) []string {
	var out []string
	for _, x := range a {
		if _, ok := slices.BinarySearch(b, x); !ok {
			out = append(out, x)
		}
	}
	return out
}

func head10(s []string) []string { return s[:min(len(s), 10)] }

// keepLogs copies a test's logs to $CDCRECON_KEEP_LOGS, when set.
func keepLogs(t testing.TB, dir, prefix string, files ...string) {
	keep := os.Getenv("CDCRECON_KEEP_LOGS")
	if keep == "" {
		return
	}
	_ = os.MkdirAll(keep, 0o755)
	for _, f := range files {
		if b, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
			_ = os.WriteFile(filepath.Join(keep, prefix+f), b, 0o644)
		}
	}
	t.Logf("logs kept in %s", keep)
}
