package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
	"github.com/cdcrecon/cdcrecon/pipeline/offline"
	"github.com/cdcrecon/cdcrecon/pipeline/registry"
	"github.com/cdcrecon/cdcrecon/schemas"
)

// fakeConnector plays one side's Debezium connector over a database held
// in the test: writes emit change events (or, when lost, change the
// database only), and execute-snapshot signals on its signal topic are
// answered, after a delay, with an incremental-snapshot read of every
// requested row the database has, produced together as Debezium emits a
// chunk's reads. It counts the requests of every key.
type fakeConnector struct {
	t       *testing.T
	cl      *kgo.Client
	topic   string // the table's change topic
	signals string
	prefix  string
	delay   time.Duration
	mu      sync.Mutex
	db      map[int]string // id -> status
	pos     int
	asked   map[int]int
	seen    chan struct{} // closed at the first signal
}

func newFakeConnector(t *testing.T, cc kafka.ClientConfig, topic, signals, prefix string, delay time.Duration) *fakeConnector {
	cl, err := kgo.NewClient(append(cc.ClientOpts(), kgo.ConsumeTopics(signals), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic(topic))...)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeConnector{t: t, cl: cl, topic: topic, signals: signals, prefix: prefix, delay: delay, db: map[int]string{}, asked: map[int]int{}, seen: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done; cl.Close() })
	go func() {
		defer close(done)
		keys := regexp.MustCompile(`-?\d+`)
		first := true
		for ctx.Err() == nil {
			cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
				var sig struct {
					ID   string `json:"id"`
					Data struct {
						Conditions []struct{ Filter string } `json:"additional-conditions"`
					} `json:"data"`
				}
				if string(r.Key) != prefix || json.Unmarshal(r.Value, &sig) != nil || len(sig.Data.Conditions) != 1 {
					t.Errorf("%s: not a signal for %s: %s %s", signals, prefix, r.Key, r.Value)
					return
				}
				if first {
					first = false
					close(f.seen)
				}
				var ids []int
				for _, k := range keys.FindAllString(sig.Data.Conditions[0].Filter, -1) {
					id, _ := strconv.Atoi(k)
					ids = append(ids, id)
				}
				f.mu.Lock()
				for _, id := range ids {
					f.asked[id]++
				}
				f.mu.Unlock()
				time.AfterFunc(delay, func() {
					f.mu.Lock()
					defer f.mu.Unlock()
					var chunk []*kgo.Record
					for _, id := range ids {
						if status, ok := f.db[id]; ok {
							chunk = append(chunk, f.event("r", id, status, "incremental"))
						}
					}
					if err := f.cl.ProduceSync(ctx, chunk...).FirstErr(); err != nil && ctx.Err() == nil {
						t.Errorf("%s: %v", f.topic, err)
					}
				})
			})
		}
	}()
	return f
}

// event is one change event, at the wall clock; call with mu held.
func (f *fakeConnector) event(op string, id int, status, snapshot string) *kgo.Record {
	f.pos++
	now := time.Now().UnixMilli()
	v := fmt.Sprintf(`{"before":null,"after":{"id":%d,"status":%q},"source":{"connector":"postgresql","name":%q,"ts_ms":%d,"snapshot":%q,"db":"shop","schema":"public","table":"orders","txId":%d,"lsn":%d},"op":%q,"ts_ms":%d}`,
		id, status, f.prefix, now, snapshot, f.pos, f.pos*64, op, now)
	return &kgo.Record{Key: []byte(fmt.Sprintf(`{"id":%d}`, id)), Value: []byte(v)}
}

// write sets a row in the database; its stream says so unless lost.
func (f *fakeConnector) write(id int, status string, lost bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	op := "u"
	if _, ok := f.db[id]; !ok {
		op = "c"
	}
	f.db[id] = status
	if !lost {
		if err := f.cl.ProduceSync(context.Background(), f.event(op, id, status, "false")).FirstErr(); err != nil {
			f.t.Errorf("%s: %v", f.topic, err)
		}
	}
}

func (f *fakeConnector) requests() map[int]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[int]int{}
	for k, v := range f.asked {
		out[k] = v
	}
	return out
}

// TestVerifyWorkerKilledWithRequestsOutstanding: two workers re-read
// drifted rows through connectors that answer 3 s after each signal; one
// worker is killed with SIGKILL as the first signals go out, and started
// again. Every drift still gets exactly one verdict — confirmed for the
// rows tampered on the target, stream_gap for those whose target event
// was lost — and no drifted key is requested more than twice on a side.
func TestVerifyWorkerKilledWithRequestsOutstanding(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three processes for about half a minute")
	}
	bin := cliBinary(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	startProcess(t, bin, filepath.Join(dir, "broker.log"), "broker", "--listen", addr)
	cc := kafka.ClientConfig{Brokers: []string{addr}}
	waitForBroker(t, cc)
	src := newFakeConnector(t, cc, "pg.public.orders", "pg-signal", "pg", 3*time.Second)
	tgt := newFakeConnector(t, cc, "tgt.public.orders", "tgt-signal", "tgt", 3*time.Second)
	const rows = 60
	for id := range rows {
		src.write(id, "new", false)
		tgt.write(id, "new", false)
	}
	cfg := filepath.Join(dir, "verify.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`kafka: {brokers: [%s], group: verify, partitions: 4, session_timeout: 6s}
window: {size: 10s, grace: 1s}
idle: {safety_margin: 500ms, interval: 200ms}
verify: {delay: 1s, timeout: 60s, settle: 1s, max_keys: 8}
tables:
  - name: orders
    key: [id]
    source: {topic: pg.public.orders, verify: {signal_topic: pg-signal, prefix: pg}}
    target: {topic: tgt.public.orders, verify: {signal_topic: tgt-signal, prefix: tgt}}
`, addr)), 0o644); err != nil {
		t.Fatal(err)
	}
	worker := func(i int) *process {
		return startProcess(t, bin, filepath.Join(dir, fmt.Sprintf("worker%d.log", i)), "run", "--config", cfg,
			"--state-dir", filepath.Join(dir, fmt.Sprintf("state%d", i)), "--http-listen", "off", "--log-level", "info")
	}
	w0, w1 := worker(0), worker(1)
	defer func() { w1.kill() }()
	time.Sleep(4 * time.Second)

	want := map[string]schemas.Verification{}
	for id := range 20 { // tampered on the target: the databases differ
		tgt.write(id, "tampered", false)
		want[strconv.Itoa(id)] = schemas.Confirmed
	}
	for id := 20; id < 40; id++ { // the target's event lost: they agree
		src.write(id, "paid", false)
		tgt.write(id, "paid", true)
		want[strconv.Itoa(id)] = schemas.StreamGap
	}
	select {
	case <-src.seen:
	case <-time.After(30 * time.Second):
		t.Fatal("no signal within 30s")
	}
	w0.kill() // its requests are outstanding: the answers come 3 s later
	time.Sleep(time.Second)
	w0 = worker(0)
	defer func() { w0.kill() }()

	serde := registry.NewSerde(nil)
	var verdicts map[string]map[schemas.Verification]int
	var records map[string][]string
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(time.Second) {
		verdicts, records = map[string]map[schemas.Verification]int{}, map[string][]string{}
		err := offline.ReadRecords(context.Background(), cc, "cdcrecon.drift", serde, func(r schemas.Record) {
			d, ok := r.(*schemas.Drift)
			if !ok {
				return
			}
			key := d.Key[0].Value
			b, _ := json.Marshal(d)
			records[key] = append(records[key], string(b))
			if d.VerifiedAt == nil {
				return
			}
			if verdicts[key] == nil {
				verdicts[key] = map[schemas.Verification]int{}
			}
			verdicts[key][d.Verification]++
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(verdicts) >= len(want) || time.Now().After(deadline) {
			break
		}
	}
	twice := 0
	for key, v := range want {
		got := verdicts[key]
		if len(got) != 1 || got[v] == 0 {
			t.Errorf("orders %s: verdicts %v, want one, %s; its records:\n%s", key, got, v, strings.Join(records[key], "\n"))
		}
		twice += got[v] - 1
	}
	for key := range verdicts {
		if _, ok := want[key]; !ok {
			t.Errorf("orders %s: a verdict %v on a row that never drifted", key, verdicts[key])
		}
	}
	most := 0
	for side, f := range map[string]*fakeConnector{"source": src, "target": tgt} {
		asked := f.requests()
		for key := range want {
			id, _ := strconv.Atoi(key)
			n := asked[id]
			most = max(most, n)
			if n < 1 || n > 2 {
				t.Errorf("orders %s requested %d times of the %s connector, want once or twice", key, n, side)
			}
		}
	}
	t.Logf("%d drifts, each with one verdict (%d verdict records published twice); a drifted key requested at most %d times on a side",
		len(want), twice, most)
	if t.Failed() {
		keepLogs(t, dir, "verify-", "broker.log", "worker0.log", "worker1.log")
	}
}

// TestCheckDecidesVerdictsFromRereads: dumps of both sides that hold
// the connectors' incremental-snapshot reads as well — order 1 tampered
// on the target, order 2's target update missing from the target's
// stream, and both rows read again by both connectors after the drifts'
// requests — decide the same verdicts offline: check --history shows
// order 1 confirmed and order 2 a stream gap of the target, and check
// sends no signal (it has no signal topic to write to: the broker is its
// own).
func TestCheckDecidesVerdictsFromRereads(t *testing.T) {
	dir := t.TempDir()
	const t0 = int64(1_795_000_000_000)
	lines := map[string]*strings.Builder{"source": {}, "target": {}}
	offsets := map[string]int{}
	pos := 0
	event := func(side string, at int64, op string, id int, status, snapshot string) {
		topic := map[string]string{"source": "pg.public.orders", "target": "tgt.public.orders"}[side]
		pos++
		v := fmt.Sprintf(`{"before":null,"after":{"id":%d,"status":%q},"source":{"connector":"postgresql","name":"pg","ts_ms":%d,"snapshot":%q,"db":"shop","schema":"public","table":"orders","txId":%d,"lsn":%d},"op":%q,"ts_ms":%d}`,
			id, status, at, snapshot, pos, pos*64, op, at)
		line, _ := json.Marshal(map[string]any{"topic": topic, "partition": 0, "offset": offsets[side], "ts": at, "key": fmt.Sprintf(`{"id":%d}`, id), "payload": v})
		offsets[side]++
		lines[side].Write(append(line, '\n'))
	}
	for id := 1; id <= 3; id++ {
		event("source", t0+int64(id), "c", id, "new", "false")
		event("target", t0+100+int64(id), "c", id, "new", "false")
	}
	event("source", t0+1000, "u", 2, "paid", "false")
	event("target", t0+1000, "u", 1, "tampered", "false") // and order 2's target update is not in the stream
	// Both drifts open at t0+1000 (order 2 at t0+2000, past the grace);
	// their requests go out at t0+4000; the reads come at t0+4500.
	for _, side := range []string{"source", "target"} {
		status := map[string]string{"source": "new", "target": "tampered"}[side]
		event(side, t0+4500, "r", 1, status, "incremental")
		event(side, t0+4500, "r", 2, "paid", "incremental")
		event(side, t0+4500, "r", 3, "new", "incremental")
	}
	var files []string
	for side, b := range lines {
		f := filepath.Join(dir, side+".jsonl")
		if err := os.WriteFile(f, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	cfg := filepath.Join(dir, "check.yaml")
	if err := os.WriteFile(cfg, []byte(`window: {size: 10s, grace: 1s}
kafka: {partitions: 1}
idle: {safety_margin: 5s}
verify: {delay: 1s, timeout: 30s, settle: 200ms}
tables:
  - name: orders
    key: [id]
    source: {topic: pg.public.orders, verify: {signal_topic: pg-signal, prefix: pg}}
    target: {topic: tgt.public.orders, verify: {signal_topic: tgt-signal, prefix: tgt}}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := run(context.Background(), append([]string{"check", "--config", cfg, "--history"}, files...), nil, &out, &errOut)
	if code != exitDrift {
		t.Fatalf("exit %d, want %d (order 1 stays open); stderr %s", code, exitDrift, errOut.String())
	}
	got := map[string][]string{}
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var d struct {
			Key          map[string]int `json:"key"`
			Status       string         `json:"status"`
			Verification string         `json:"verification"`
			VerifiedSide string         `json:"verified_side"`
			Decision     string         `json:"decision"`
		}
		if err := json.Unmarshal([]byte(l), &d); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		got[strconv.Itoa(d.Key["id"])] = append(got[strconv.Itoa(d.Key["id"])], d.Status+" "+d.Verification+" "+d.VerifiedSide+" "+d.Decision)
	}
	want := map[string][]string{
		"1": {"open pending  verifying", "open confirmed  compensate"},
		"2": {"open pending  verifying", "resolved stream_gap target verifying"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("check --history:\n got %v\nwant %v\n%s", got, want, out.String())
	}
}
