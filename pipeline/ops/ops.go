// Package ops is the worker's operational surface: Prometheus metrics,
// and the /metrics, /healthz and /readyz endpoints on one HTTP listener.
//
// The stages report through Metrics' methods; nil Metrics is valid and
// records nothing, so offline runs need no registry.
package ops

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the worker's metrics, in their own registry.
type Metrics struct {
	Registry *prometheus.Registry

	events        *prometheus.CounterVec
	duplicates    *prometheus.CounterVec
	invalid       *prometheus.CounterVec
	driftOpened   *prometheus.CounterVec
	driftResolved *prometheus.CounterVec
	driftOpen     *prometheus.GaugeVec
	watermark     *prometheus.GaugeVec
	lag           *prometheus.GaugeVec
	stateBytes    prometheus.Gauge
	stateKeys     prometheus.Gauge
	rebuilding    prometheus.Gauge
	snapshots     *prometheus.CounterVec
	restores      prometheus.Counter
	verdicts      *prometheus.CounterVec
	signals       *prometheus.CounterVec
	applied       *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	panics        *prometheus.CounterVec
	publishFails  *prometheus.CounterVec
	registryFails prometheus.Counter
	reachable     prometheus.Gauge

	mu      sync.Mutex
	failing map[string]error // by output topic: the last publish's error
}

// Version is the binary's version, for build_info and --version: the
// module version it was built at, or "devel".
func Version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// Revision is the VCS revision the binary was built from, or "".
func Revision() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return ""
}

// The metrics' names: an interface of their own, which dashboards and
// alerts read, and so do cdcrecon's demo and bench.
const (
	EventsTotal           = "cdcrecon_events_total"
	DuplicatesTotal       = "cdcrecon_duplicates_total"
	InvalidTotal          = "cdcrecon_invalid_total"
	DriftOpenedTotal      = "cdcrecon_drift_opened_total"
	DriftResolvedTotal    = "cdcrecon_drift_resolved_total"
	DriftOpenNow          = "cdcrecon_drift_open"
	WatermarkSeconds      = "cdcrecon_watermark_seconds"
	ConsumerLagRecords    = "cdcrecon_consumer_lag_records"
	StateBytes            = "cdcrecon_state_bytes"
	StateKeysInMemory     = "cdcrecon_state_keys_in_memory"
	RebuildingPartitions  = "cdcrecon_rebuilding_partitions"
	StageBatchSeconds     = "cdcrecon_stage_batch_seconds"
	PanicsTotal           = "cdcrecon_panics_total"
	PublishFailuresTotal  = "cdcrecon_publish_failures_total"
	RegistryFailuresTotal = "cdcrecon_registry_failures_total"
	BrokerReachable       = "cdcrecon_broker_reachable"
	BuildInfo             = "cdcrecon_build_info"
	SnapshotsTotal        = "cdcrecon_state_snapshots_total"
	RestoresTotal         = "cdcrecon_state_restores_total"
	VerdictsTotal         = "cdcrecon_verify_verdicts_total"
	SignalsTotal          = "cdcrecon_verify_signals_total"
	ApplyCommandsTotal    = "cdcrecon_apply_commands_total"
)

// NewMetrics registers the worker's metrics, and Go's and the process's,
// in a fresh registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: EventsTotal,
			Help: "Input messages read, by table and side (source, target)."}, []string{"table", "side"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{Name: DuplicatesTotal,
			Help: "Row events dropped as duplicates of events already seen, by table and side."}, []string{"table", "side"}),
		invalid: prometheus.NewCounterVec(prometheus.CounterOpts{Name: InvalidTotal,
			Help: "Malformed input messages sent to the dead-letter topic, by table and side."}, []string{"table", "side"}),
		driftOpened: prometheus.NewCounterVec(prometheus.CounterOpts{Name: DriftOpenedTotal,
			Help: "Drifts opened, by table."}, []string{"table"}),
		driftResolved: prometheus.NewCounterVec(prometheus.CounterOpts{Name: DriftResolvedTotal,
			Help: "Drifts resolved, by table."}, []string{"table"}),
		driftOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: DriftOpenNow,
			Help: "Drifts open now, by table."}, []string{"table"}),
		watermark: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: WatermarkSeconds,
			Help: "Latest event time read from each input partition, Unix seconds."}, []string{"side", "input"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: ConsumerLagRecords,
			Help: "Records not yet read of each input and changes partition this worker owns."}, []string{"topic", "partition"}),
		stateBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: StateBytes,
			Help: "Size of the worker's state directory (Pebble), bytes."}),
		stateKeys: prometheus.NewGauge(prometheus.GaugeOpts{Name: StateKeysInMemory,
			Help: "Rows whose reconciliation state the worker holds in memory."}),
		rebuilding: prometheus.NewGauge(prometheus.GaugeOpts{Name: RebuildingPartitions,
			Help: "Changes partitions this worker is rebuilding the state of, not yet past the offset committed when it was given them."}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: StageBatchSeconds,
			Help:    "Time to handle one batch, by stage (ingest, reconcile).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"stage"}),
	}
	m.panics = prometheus.NewCounterVec(prometheus.CounterOpts{Name: PanicsTotal,
		Help: "Panics recovered in a stage's handler, by stage; the batch is retried, and the worker stops on a storage failure or after 3 in a row."}, []string{"stage"})
	m.publishFails = prometheus.NewCounterVec(prometheus.CounterOpts{Name: PublishFailuresTotal,
		Help: "Failed publishes of a batch of output records, by topic (each is retried)."}, []string{"topic"})
	m.registryFails = prometheus.NewCounter(prometheus.CounterOpts{Name: RegistryFailuresTotal,
		Help: "Output records that could not be encoded because the schema registry was out of reach."})
	m.reachable = prometheus.NewGauge(prometheus.GaugeOpts{Name: BrokerReachable,
		Help: "1 when the worker's last look-up of the topics' end offsets succeeded, else 0 (and the lag is then absent: unknown)."})
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: BuildInfo,
		Help: "Always 1; the labels name the binary's version, revision and Go version."}, []string{"version", "revision", "go_version"})
	buildInfo.WithLabelValues(Version(), Revision(), runtime.Version()).Set(1)
	m.snapshots = prometheus.NewCounterVec(prometheus.CounterOpts{Name: SnapshotsTotal,
		Help: "Snapshots of changes partitions written to the state topic, by kind (full: the keys and a trailer; trailer: a trailer alone, no key having changed)."}, []string{"kind"})
	m.restores = prometheus.NewCounter(prometheus.CounterOpts{Name: RestoresTotal,
		Help: "Changes partitions whose state was restored from the state topic."})
	m.verdicts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: VerdictsTotal,
		Help: "Verdicts on drifts whose rows were re-read, by table, verdict (confirmed, stream_gap, unverified) and side (for stream_gap the side whose stream was wrong, for unverified the side that did not answer; none for confirmed)."}, []string{"table", "verdict", "side"})
	m.signals = prometheus.NewCounterVec(prometheus.CounterOpts{Name: SignalsTotal,
		Help: "Re-read signals sent to the connectors, by table, side and outcome (sent; stale: older than verify.timeout, not sent; failed: not delivered, retried with the batch)."}, []string{"table", "side", "outcome"})
	m.failing = map[string]error{}
	m.applied = prometheus.NewCounterVec(prometheus.CounterOpts{Name: ApplyCommandsTotal,
		Help: "Compensation commands decided by cdcrecon apply, by table and outcome (applied, superseded, skipped, failed)."}, []string{"table", "outcome"})
	m.Registry.MustRegister(m.panics, m.publishFails, m.registryFails, m.reachable, buildInfo, m.snapshots, m.restores, m.verdicts, m.signals, m.applied)
	m.Registry.MustRegister(m.events, m.duplicates, m.invalid, m.driftOpened, m.driftResolved, m.driftOpen,
		m.watermark, m.lag, m.stateBytes, m.stateKeys, m.rebuilding, m.latency, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Ingested records one batch of an input partition.
func (m *Metrics) Ingested(table, side string, events, duplicates, invalid int) {
	if m == nil {
		return
	}
	m.events.WithLabelValues(table, side).Add(float64(events))
	m.duplicates.WithLabelValues(table, side).Add(float64(duplicates))
	m.invalid.WithLabelValues(table, side).Add(float64(invalid))
}

// Watermark records an input partition's latest event time.
func (m *Metrics) Watermark(side, input string, t time.Time) {
	if m == nil {
		return
	}
	m.watermark.WithLabelValues(side, input).Set(float64(t.UnixMilli()) / 1000)
}

// Tables makes the per-table series exist from the start, at 0, so that
// "no drift" can be told from "no data yet".
func (m *Metrics) Tables(tables, sides []string) {
	if m == nil {
		return
	}
	for _, t := range tables {
		m.driftOpened.WithLabelValues(t)
		m.driftResolved.WithLabelValues(t)
		m.driftOpen.WithLabelValues(t).Set(0)
		for _, s := range sides {
			m.events.WithLabelValues(t, s)
			m.duplicates.WithLabelValues(t, s)
			m.invalid.WithLabelValues(t, s)
		}
	}
}

// DriftOpened and DriftResolved record a drift record of a table.
func (m *Metrics) DriftOpened(table string) {
	if m == nil {
		return
	}
	m.driftOpened.WithLabelValues(table).Inc()
}

// DriftResolved records a resolution.
func (m *Metrics) DriftResolved(table string) {
	if m == nil {
		return
	}
	m.driftResolved.WithLabelValues(table).Inc()
}

// DriftOpen sets the drifts open now in the state of the partitions this
// worker owns, by table (tables missing from open have none).
func (m *Metrics) DriftOpen(tables []string, open map[string]int64) {
	if m == nil {
		return
	}
	for _, t := range tables {
		m.driftOpen.WithLabelValues(t).Set(float64(max(open[t], 0)))
	}
}

// Panic counts a panic recovered in a stage.
func (m *Metrics) Panic(stage string) {
	if m != nil {
		m.panics.WithLabelValues(stage).Inc()
	}
}

// Published records the outcome of publishing a batch to topic: a
// failure is counted (a registry out of reach also as such) and makes
// Failing report it until a publish to that topic succeeds.
func (m *Metrics) Published(topic string, err error, registry bool) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err == nil {
		delete(m.failing, topic)
		return
	}
	m.publishFails.WithLabelValues(topic).Inc()
	if registry {
		m.registryFails.Inc()
	}
	m.failing[topic] = err
}

// Failing returns an error naming an output topic whose last publish
// failed, or nil.
func (m *Metrics) Failing() error {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	topics := make([]string, 0, len(m.failing))
	for t := range m.failing {
		topics = append(topics, t)
	}
	if len(topics) == 0 {
		return nil
	}
	sort.Strings(topics)
	return fmt.Errorf("publishing to %s fails: %w", topics[0], m.failing[topics[0]])
}

// Reachable records whether the brokers answered the worker's last look-up.
func (m *Metrics) Reachable(ok bool) {
	if m == nil {
		return
	}
	if ok {
		m.reachable.Set(1)
	} else {
		m.reachable.Set(0)
	}
}

// Lag records how many records of an input partition are not yet read.
func (m *Metrics) Lag(topic string, partition int32, records int64) {
	if m == nil {
		return
	}
	m.lag.WithLabelValues(topic, fmt.Sprint(partition)).Set(float64(records))
}

// ForgetLag drops the lag of every partition (before the owned ones are
// reported again: a partition that moved away is no longer this worker's).
func (m *Metrics) ForgetLag() {
	if m != nil {
		m.lag.Reset()
	}
}

// State records the state's size on disk and the keys in memory.
func (m *Metrics) State(bytes uint64, keys int64) {
	if m == nil {
		return
	}
	m.stateBytes.Set(float64(bytes))
	m.stateKeys.Set(float64(keys))
}

// Verdict counts a verdict on a re-read drift.
func (m *Metrics) Verdict(table, verdict, side string) {
	if m == nil {
		return
	}
	if side == "" {
		side = "none"
	}
	m.verdicts.WithLabelValues(table, verdict, side).Inc()
}

// Applied counts a compensation command apply decided, by its outcome.
func (m *Metrics) Applied(table, outcome string) {
	if m != nil {
		m.applied.WithLabelValues(table, outcome).Inc()
	}
}

// Signal counts re-read signals of a table's side by outcome: sent,
// stale or failed.
func (m *Metrics) Signal(table, side, outcome string) {
	if m != nil {
		m.signals.WithLabelValues(table, side, outcome).Inc()
	}
}

// Snapshot counts a snapshot written to the state topic: full, or a
// trailer alone.
func (m *Metrics) Snapshot(full bool) {
	if m == nil {
		return
	}
	kind := "trailer"
	if full {
		kind = "full"
	}
	m.snapshots.WithLabelValues(kind).Inc()
}

// Restored counts a partition restored from the state topic.
func (m *Metrics) Restored() {
	if m != nil {
		m.restores.Inc()
	}
}

// Rebuilding records how many changes partitions are being rebuilt.
func (m *Metrics) Rebuilding(n int) {
	if m != nil {
		m.rebuilding.Set(float64(n))
	}
}

// Batch records how long a stage took over one batch.
func (m *Metrics) Batch(stage string, d time.Duration) {
	if m == nil {
		return
	}
	m.latency.WithLabelValues(stage).Observe(d.Seconds())
}

// Server serves /metrics, /healthz (the process is up) and /readyz (ready
// returns nil: the worker is consuming).
type Server struct {
	srv *http.Server
	ln  net.Listener
}

// Serve starts listening on addr (host:port; port 0 picks one).
func Serve(addr string, m *Metrics, ready func() error) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening for metrics on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	s := &Server{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln: ln}
	// Serve returns when Close shuts the server down; should the listener
	// fail before that, /healthz stops answering, which is the signal.
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server.
func (s *Server) Close(ctx context.Context) error { return s.srv.Shutdown(ctx) }
