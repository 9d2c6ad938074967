package harness

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fastjson"

	"github.com/cdcrecon/cdcrecon/pipeline/ops"
)

// Process is a `cdcrecon run` process of its own, watched through
// its metrics: the benchmark's worker, so that its peak resident set is
// the worker's alone.
type Process struct {
	cmd     *exec.Cmd
	metrics string
	started time.Time
	log     *os.File
	exited  chan struct{}
	err     error // set when exited is closed
}

// StartProcess runs bin as `cdcrecon run --config cfgFile` with its
// metrics on a free loopback port and its output in logFile; args follow.
func StartProcess(bin, cfgFile, logFile string, args ...string) (*Process, error) {
	listen, err := FreePort()
	if err != nil {
		return nil, err
	}
	log, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, append([]string{"run", "--config", cfgFile, "--http-listen", listen}, args...)...)
	cmd.Stdout, cmd.Stderr = log, log
	w := &Process{cmd: cmd, metrics: "http://" + listen + "/metrics", started: time.Now(), log: log, exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("starting the worker: %w", err)
	}
	go func() {
		w.err = cmd.Wait()
		log.Close()
		close(w.exited)
	}()
	return w, nil
}

// Metrics is the address of the worker's metrics.
func (w *Process) Metrics() string { return w.metrics }

// WaitFor polls the worker's metrics every 50ms until ok holds and returns
// them. It gives up after limit, when ctx ends, or when the worker exits.
func (w *Process) WaitFor(ctx context.Context, limit time.Duration, what string, ok func(m Metrics) bool) (Metrics, error) {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	var last Metrics
	for {
		if m := Scrape(w.metrics); m != nil {
			if ok(m) {
				return m, nil
			}
			last = m
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline.C:
			return nil, fmt.Errorf("worker: %s: not within %s; it last showed %.0f events read, the lag of %d partitions summing to %.0f, %.0f drifts open (its log: %s)",
				what, limit, last.Sum(ops.EventsTotal), last.Series(ops.ConsumerLagRecords), last.Sum(ops.ConsumerLagRecords),
				last.Sum(ops.DriftOpenNow), w.log.Name())
		case <-w.exited:
			return nil, fmt.Errorf("worker: exited before %s: %v (its log: %s)", what, w.err, w.log.Name())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop stops the worker with SIGTERM and returns its peak resident set in
// bytes until then: its VmHWM. (The rusage of a child started by a big
// process reports the parent's peak, which the child's exec inherits.)
func (w *Process) Stop() (peakRSS float64, err error) {
	peakRSS, ok := VmHWM(w.cmd.Process.Pid)
	if !ok {
		err = fmt.Errorf("no VmHWM in /proc/%d/status", w.cmd.Process.Pid)
	}
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.exited:
	case <-time.After(time.Minute):
		w.Kill()
		return peakRSS, fmt.Errorf("worker: did not stop within a minute of SIGTERM (its log: %s)", w.log.Name())
	}
	if w.err != nil && err == nil {
		err = fmt.Errorf("worker: %v (its log: %s)", w.err, w.log.Name())
	}
	return peakRSS, err
}

// Kill stops the worker at once, if it still runs.
func (w *Process) Kill() {
	select {
	case <-w.exited:
	default:
		_ = w.cmd.Process.Kill()
		<-w.exited
	}
}

// VmHWM reads a process's peak resident set (VmHWM), in bytes.
func VmHWM(pid int) (float64, bool) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmHWM:" {
			kib, _ := strconv.ParseFloat(f[1], 64)
			return kib * 1024, true
		}
	}
	return 0, false
}

// Done tells that a worker owns at least partitions partitions, has
// read every one of total input records and every change, and holds open
// exactly open drifts (total or open < 0: any).
func Done(partitions, total, open int) func(m Metrics) bool {
	return func(m Metrics) bool {
		return (total < 0 || m.Sum(ops.EventsTotal) == float64(total)) && m.Series(ops.ConsumerLagRecords) >= partitions &&
			m.Sum(ops.ConsumerLagRecords) == 0 && (open < 0 || m.Sum(ops.DriftOpenNow) == float64(open))
	}
}

// ConsumeParse is the baseline of the worker's speed: it reads topics to
// their ends with franz-go's PollFetches and parses each key and value
// with fastjson, and returns the records read and the seconds from the
// first fetch to the last.
func ConsumeParse(ctx context.Context, addr string, topics []string) (n int64, secs float64, err error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topics...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return 0, 0, err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return 0, 0, err
	}
	var want int64
	ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
	var p fastjson.Parser
	var start time.Time
	for n < want {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			return n, 0, err
		}
		if start.IsZero() {
			start = time.Now()
		}
		for it := fs.RecordIter(); !it.Done(); {
			r := it.Next()
			n++
			if r.Key != nil {
				_, _ = p.ParseBytes(r.Key)
			}
			if r.Value != nil {
				_, _ = p.ParseBytes(r.Value) // poison fails to parse, as it should
			}
		}
	}
	return n, time.Since(start).Seconds(), nil
}

// FreePort returns a loopback address with a port free at the time.
func FreePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// Started is when the process was started.
func (w *Process) Started() time.Time { return w.started }
