package realstack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/pipeline/registry"
	"github.com/cdcrecon/cdcrecon/processors/config"
	"github.com/cdcrecon/cdcrecon/schemas"
)

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// Binary builds cmd/cdcrecon once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cdcrecon-realstack-bin")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "cdcrecon")
		cmd := exec.Command("go", "build", "-o", binary, "github.com/cdcrecon/cdcrecon/cmd/cdcrecon")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building cdcrecon: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

// Worker is a `cdcrecon run` process on the stack's broker.
type Worker struct {
	cmd *exec.Cmd
	cfg *config.Config
	// Config is the configuration file it runs.
	Config string
	kafka  string
	log    string
}

// StartWorker starts `cdcrecon run` with the compose stack's cdcrecon
// configuration (file), pointed at this stack: its broker, no schema
// registry (outputs in Avro single-object encoding), a state directory
// and metrics port of its own.
func (s *Stack) StartWorker(t testing.TB, file string) *Worker {
	t.Helper()
	return s.StartWorkerRegistry(t, file, "")
}

// StartWorkerRegistry is StartWorker with the schema registry at
// registry (its Confluent-compatible API): the worker reads Avro input
// through it and registers its outputs' schemas there.
func (s *Stack) StartWorkerRegistry(t testing.TB, file, registry string) *Worker {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	repl := ""
	if registry != "" {
		repl = "schema_registry:\n  url: " + registry + "\n"
	}
	text := strings.Replace(string(b), "schema_registry:\n  url: http://schema-registry:8081\n", repl, 1)
	for old, repl := range map[string]string{
		"brokers: [kafka:9092]":  "brokers: [" + s.Kafka + "]",
		"dir: /var/lib/cdcrecon": "dir: " + filepath.Join(s.dir, "worker-state"),
		`listen: ":9464"`:        fmt.Sprintf(`listen: "127.0.0.1:%d"`, FreePort(t)),
	} {
		if !strings.Contains(text, old) {
			t.Fatalf("%s no longer has %q: update StartWorker", file, old)
		}
		text = strings.Replace(text, old, repl, 1)
	}
	cfgFile := s.write("cdcrecon.yaml", text)
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(s.dir, "worker.log")
	s.logs = append(s.logs, log)
	w := &Worker{cfg: cfg, Config: cfgFile, kafka: s.Kafka, log: log}
	w.start(t)
	return w
}

func (w *Worker) start(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile(w.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(Binary(t), "run", "--config", w.Config, "--log-level", "info")
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	watch(cmd)
	t.Cleanup(func() { kill(cmd) })
	w.cmd = cmd
}

// Kill kills the worker with SIGKILL and starts it again on its state
// directory.
func (w *Worker) Kill(t testing.TB) {
	t.Helper()
	kill(w.cmd)
	w.start(t)
}

// Metric returns the sum of a metric's series on the worker's /metrics.
func (w *Worker) Metric(name string) float64 { return w.MetricWith(name, "") }

// MetricWith returns the sum of a metric's series whose labels contain
// labels (`outcome="sent"`).
func (w *Worker) MetricWith(name, labels string) float64 {
	resp, err := http.Get("http://" + w.cfg.HTTP.Listen + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		if (line == name || strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ")) && strings.Contains(line, labels) {
			f := strings.Fields(line)
			if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
				sum += v
			}
		}
	}
	return sum
}

// OpenDrift reads the drift topic to its end and returns the drift open
// by each row's latest record: "table {key}" → kind, and for a value
// mismatch the sorted columns ("value_mismatch total,status").
func (w *Worker) OpenDrift(t testing.TB) map[string]string {
	t.Helper()
	open := map[string]string{}
	w.read(t, w.cfg.Topics.Drift, func(rec schemas.Record) {
		d, ok := rec.(*schemas.Drift)
		if !ok {
			return
		}
		row := RowName(d.Table, d.Key)
		if d.Status == schemas.Resolved {
			delete(open, row)
			return
		}
		open[row] = DriftKind(string(d.Kind), d.Columns)
	})
	return open
}

// AwaitRead waits, up to limit, until the worker has read, on both
// sides of each of tables, an event committed after since: a connector
// that died before since, or a worker stuck behind it, fails the test,
// instead of leaving the drift as it was when the worker last read.
func (w *Worker) AwaitRead(t testing.TB, since time.Time, limit time.Duration, tables ...string) {
	t.Helper()
	for deadline := time.Now().Add(limit); ; time.Sleep(time.Second) {
		behind := w.inputsBefore(since, tables)
		if len(behind) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("within %s the worker read no event committed after %s on %v", limit, since.Format(time.TimeOnly), behind)
		}
	}
}

// inputsBefore returns the input topics of tables whose latest event
// time, on the worker's cdcrecon_watermark_seconds, is before since, or
// unknown.
func (w *Worker) inputsBefore(since time.Time, tables []string) []string {
	latest := map[string]float64{}
	for _, tb := range w.cfg.Tables {
		if slices.Contains(tables, tb.Name) {
			latest[tb.Source.Topic], latest[tb.Target.Topic] = 0, 0
		}
	}
	resp, err := http.Get("http://" + w.cfg.HTTP.Listen + "/metrics")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, line := range strings.Split(string(b), "\n") {
			rest, ok := strings.CutPrefix(line, `cdcrecon_watermark_seconds{input="`)
			if !ok {
				continue
			}
			input, _, _ := strings.Cut(rest, `"`)
			topic := input[:max(strings.LastIndexByte(input, '/'), 0)]
			f := strings.Fields(line)
			if _, ok := latest[topic]; !ok {
				continue
			}
			if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
				latest[topic] = max(latest[topic], v)
			}
		}
	}
	var behind []string
	for topic, v := range latest {
		if v < float64(since.UnixMilli())/1000 {
			behind = append(behind, topic)
		}
	}
	slices.Sort(behind)
	return behind
}

// AwaitDrift reads the open drift until it equals want or limit passes,
// and returns the last reading.
func (w *Worker) AwaitDrift(t testing.TB, want map[string]string, limit time.Duration) map[string]string {
	t.Helper()
	for deadline := time.Now().Add(limit); ; time.Sleep(time.Second) {
		got := w.OpenDrift(t)
		if maps.Equal(got, want) || time.Now().After(deadline) {
			return got
		}
	}
}

// Compensations reads the compensation topic to its end: each row's
// latest command.
func (w *Worker) Compensations(t testing.TB) map[string]*schemas.Compensation {
	t.Helper()
	out := map[string]*schemas.Compensation{}
	w.read(t, w.cfg.Topics.Compensation, func(rec schemas.Record) {
		if c, ok := rec.(*schemas.Compensation); ok {
			out[RowName(c.Table, c.Key)] = c
		}
	})
	return out
}

// DriftKind is a drift as the drift maps hold it: its kind, and for a
// value mismatch its sorted columns ("value_mismatch total,status").
func DriftKind(kind string, columns []string) string {
	if len(columns) == 0 {
		return kind
	}
	cols := slices.Sorted(slices.Values(columns))
	return kind + " " + strings.Join(cols, ",")
}

// RowName names a row as the drift maps do: "table {key}".
func RowName(table string, key schemas.Columns) string {
	k, _ := json.Marshal(key)
	return table + " " + string(k)
}

// read decodes a topic's records, from its start to the end it had when
// called.
func (w *Worker) read(t testing.TB, topic string, fn func(schemas.Record)) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(w.kafka), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil && o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	rc, err := registry.NewClient(w.cfg.SchemaRegistry)
	if err != nil {
		t.Fatal(err)
	}
	serde := registry.NewSerde(rc)
	for len(want) > 0 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if r.Offset+1 >= want[r.Partition] {
				delete(want, r.Partition)
			}
			rec, _, _, err := serde.Decode(ctx, r.Value)
			if err != nil {
				t.Errorf("%s offset %d: %v", topic, r.Offset, err)
				return
			}
			fn(rec)
		})
	}
}
