package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
	"github.com/cdcrecon/cdcrecon/pipeline/offline"
	"github.com/cdcrecon/cdcrecon/pipeline/registry"
)

// process is a cdcrecon process of a test, its output in a log file.
type process struct {
	cmd *exec.Cmd
	log string
}

func startProcess(t testing.TB, bin, log string, args ...string) *process {
	t.Helper()
	f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, log: log}
	t.Cleanup(func() { p.kill() })
	return p
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *process) kill() {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	}
}

// waitForBroker waits up to 30s for a broker (a process still loading its
// data dir, say) to answer.
func waitForBroker(t testing.TB, cc kafka.ClientConfig) {
	t.Helper()
	cl, err := kgo.NewClient(cc.ClientOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, err := kadm.NewClient(cl).ListTopics(context.Background())
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("broker not answering: %v", err)
		}
	}
}

// TestWorkersSurviveSIGKILL: three worker processes share one cdcrecon
// broker. Half of a simulated workload is in the topics when they start,
// the rest arrives while they run; one worker is killed with SIGKILL in
// mid-stream and started again, then another; then the broker stops and
// comes back on its data. Once both sides' heartbeats
// pass the last event, the drift topic holds exactly what check decides
// for the same dumps — every record, none other, records published twice
// identical — and the drift still open is the simulator's ground truth.
// Every poison message reaches the dead-letter topic with its origin.
func TestWorkersSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("runs five processes for about a minute")
	}
	bin := cliBinary(t)
	dir, dumps, summary := simulated(t, "--events", "40000", "--keys", "5000", "--partitions", "3",
		"--drop", "0.002", "--corrupt", "0.002", "--delay", "0.01", "--duplicate", "0.005", "--poison", "6", "--seed", "11")
	m := regexp.MustCompile(`(\d+) poison`).FindStringSubmatch(summary)
	if m == nil {
		t.Fatalf("simulate summary: %s", summary)
	}
	poison, _ := strconv.Atoi(m[1])
	decided := checkDecides(t, dir, dumps)
	truthFile, _ := os.ReadFile(filepath.Join(dir, "truth.jsonl"))
	truth := driftSet(t, truthFile)

	addr := freeAddr(t)
	brokerArgs := []string{"broker", "--listen", addr, "--data-dir", filepath.Join(dir, "broker-data")}
	brokerProc := startProcess(t, bin, filepath.Join(dir, "broker.log"), brokerArgs...)
	cc := kafka.ClientConfig{Brokers: []string{addr}}
	produce := producer(t, cc)
	halves := splitDumps(t, dumps, filepath.Join(dir, "half"), 0.5, 1)
	firsts, rests := halves[0], halves[1]
	produce(firsts...)

	// No wall clock: the sides move by their events, then by heartbeats.
	base, _ := os.ReadFile(filepath.Join(dir, "config.yaml"))
	cfg := filepath.Join(dir, "workers.yaml")
	head := fmt.Sprintf("kafka: {brokers: [%s], group: workers, partitions: 6, session_timeout: 6s}\n"+
		"idle: {safety_margin: 0s, interval: 200ms, heartbeats: {source: [hb.source], target: [hb.target]}}\n", addr)
	if err := os.WriteFile(cfg, append([]byte(head), base...), 0o644); err != nil {
		t.Fatal(err)
	}
	worker := func(i int) *process {
		return startProcess(t, bin, filepath.Join(dir, fmt.Sprintf("worker%d.log", i)), "run", "--config", cfg,
			"--state-dir", filepath.Join(dir, fmt.Sprintf("state%d", i)), "--http-listen", "off", "--log-level", "info")
	}
	workers := []*process{worker(0), worker(1), worker(2)}

	time.Sleep(2 * time.Second)
	workers[1].kill() // in mid-stream
	produce(rests...)
	time.Sleep(time.Second)
	workers[1] = worker(1)
	time.Sleep(3 * time.Second)
	workers[0].kill()
	time.Sleep(time.Second)
	workers[0] = worker(0)

	// A broker outage: stopped, and back on its data two seconds later.
	// The workers retry; nothing is lost.
	time.Sleep(2 * time.Second)
	_ = brokerProc.cmd.Process.Signal(syscall.SIGTERM)
	_ = brokerProc.cmd.Wait()
	time.Sleep(2 * time.Second)
	startProcess(t, bin, filepath.Join(dir, "broker.log"), brokerArgs...)

	// Heartbeats far past the last event: every partition read to its
	// end is complete to there.
	produce(farHeartbeats(t, dir))
	heartbeats := time.Now()

	got, records := awaitDecided(t, cc, decided, 120*time.Second)
	t.Logf("%d drift records (%d distinct) of %d check decides; %d published twice; complete %s after the heartbeats",
		records, len(got), len(decided), records-len(got), time.Since(heartbeats).Round(time.Second))

	// The drift open at the end, by its latest record, is the truth.
	var open []string
	for k, rec := range got {
		if strings.HasSuffix(k, " open") && got[strings.TrimSuffix(k, " open")+" resolved"] == "" {
			open = append(open, rec)
		}
	}
	if final := driftSet(t, []byte(strings.Join(open, "\n"))); !slices.Equal(final, truth) {
		t.Errorf("final drift: %d rows, the truth %d", len(final), len(truth))
	}

	// Every poison message is in the dead-letter topic, with its origin.
	origins := map[string]bool{}
	cl, err := kgo.NewClient(append(cc.ClientOpts(), kgo.ConsumeTopics("cdcrecon.dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for len(origins) < poison && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			h := map[string]string{}
			for _, x := range r.Headers {
				h[x.Key] = string(x.Value)
			}
			if h["cdcrecon.reason"] == "" {
				t.Errorf("dead letter without a reason: %v", h)
			}
			origins[h["cdcrecon.origin.topic"]+"/"+h["cdcrecon.origin.partition"]+"/"+h["cdcrecon.origin.offset"]] = true
		})
	}
	if len(origins) != poison {
		t.Errorf("%d poison messages in the dead-letter topic, the simulator wrote %d", len(origins), poison)
	}
	for _, w := range workers {
		w.kill()
	}
	if t.Failed() {
		keepLogs(t, dir, "", "broker.log", "worker0.log", "worker1.log", "worker2.log")
		for i := range workers {
			b, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("worker%d.log", i)))
			t.Logf("worker%d.log (end):\n%s", i, lastBytes(string(b), 3000))
		}
	}
}

// farHeartbeats writes a dump of one heartbeat per side (topics
// hb.source and hb.target) far past any event, and returns its file.
func farHeartbeats(t *testing.T, dir string) string {
	t.Helper()
	hb := filepath.Join(dir, "heartbeats.jsonl")
	const far = 4102444800000 // 2100-01-01
	if err := os.WriteFile(hb, []byte(fmt.Sprintf(
		`{"topic":"hb.source","partition":0,"offset":0,"ts":1,"key":"{\"serverName\":\"pg\"}","payload":"{\"ts_ms\":%d}"}`+"\n"+
			`{"topic":"hb.target","partition":0,"offset":0,"ts":1,"key":"{\"serverName\":\"mysql\"}","payload":"{\"ts_ms\":%d}"}`+"\n", far, far)), 0o644); err != nil {
		t.Fatal(err)
	}
	return hb
}

// awaitDecided waits up to limit for the drift topic to hold every
// (id, status) check decides, then reports each one missed and each one
// check does not decide. Two records of one (id, status) with different
// contents fail the test at once. It returns the records by (id, status)
// and how many there were.
func awaitDecided(t *testing.T, cc kafka.ClientConfig, decided map[string]bool, limit time.Duration) (map[string]string, int) {
	t.Helper()
	serde := registry.NewSerde(nil)
	var got map[string]string
	var records int
	deadline := time.Now().Add(limit)
	for {
		ds, err := offline.ReadDrift(context.Background(), cc, "cdcrecon.drift", serde)
		if err != nil {
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
			time.Sleep(time.Second)
			continue
		}
		got = map[string]string{}
		records = len(ds)
		for _, d := range ds {
			b, _ := json.Marshal(d)
			k := d.ID + " " + string(d.Status)
			if prev, ok := got[k]; ok && prev != string(b) {
				t.Fatalf("two records of %s differ:\n%s\n%s", k, prev, b)
			}
			got[k] = string(b)
		}
		if len(got) >= len(decided) || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	for k := range decided {
		if _, ok := got[k]; !ok {
			t.Errorf("missed: %s", k)
		}
	}
	for k := range got {
		if !decided[k] {
			t.Errorf("false: %s", k)
		}
	}
	return got, records
}

func lastBytes(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestWorkerRidesOutBrokerRestart: the broker stops while a worker runs
// and comes back on its data; the worker retries and ends with exactly
// what check decides.
func TestWorkerRidesOutBrokerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a broker and a worker process")
	}
	bin := cliBinary(t)
	dir, dumps, _ := simulated(t, "--events", "20000", "--keys", "3000",
		"--drop", "0.002", "--corrupt", "0.002", "--delay", "0.01", "--duplicate", "0.005", "--seed", "5")
	decided := checkDecides(t, dir, dumps)
	addr := freeAddr(t)
	brokerArgs := []string{"broker", "--listen", addr, "--data-dir", filepath.Join(dir, "broker-data")}
	br := startProcess(t, bin, filepath.Join(dir, "broker.log"), brokerArgs...)
	cc := kafka.ClientConfig{Brokers: []string{addr}}
	waitForBroker(t, cc)
	loadDumps(t, cc, dumps...)
	base, _ := os.ReadFile(filepath.Join(dir, "config.yaml"))
	cfg := filepath.Join(dir, "worker.yaml")
	head := fmt.Sprintf("kafka: {brokers: [%s], partitions: 4}\nhttp: {listen: \"\"}\n", addr)
	if err := os.WriteFile(cfg, append([]byte(head), base...), 0o644); err != nil {
		t.Fatal(err)
	}
	w := startProcess(t, bin, filepath.Join(dir, "worker.log"), "run", "--config", cfg, "--state-dir", filepath.Join(dir, "state"), "--log-level", "info")
	time.Sleep(1500 * time.Millisecond)
	_ = br.cmd.Process.Signal(syscall.SIGTERM)
	_ = br.cmd.Wait()
	time.Sleep(2 * time.Second)
	startProcess(t, bin, filepath.Join(dir, "broker.log"), brokerArgs...)
	waitForDrift(t, cc, decided)
	w.kill()
	keepLogs(t, dir, "restart-", "broker.log", "worker.log")
}
