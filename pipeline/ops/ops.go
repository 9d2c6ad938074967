// Package ops is the worker's operational surface: Prometheus metrics,
// and the /metrics, /healthz and /readyz endpoints on one HTTP listener.
//
// The stages report through Metrics' methods; nil Metrics is valid and
// records nothing, so offline runs need no registry.
//
// Dependencies: Prometheus' client library.
package ops

import (
	"context"
	"fmt"
	"net"
	"net/http"
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
	latency       *prometheus.HistogramVec
}

// NewMetrics registers the worker's metrics, and Go's and the process's,
// in a fresh registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cdcrecon_events_total",
			Help: "Input messages read, by table and side (source, target)."}, []string{"table", "side"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cdcrecon_duplicates_total",
			Help: "Row events dropped as duplicates of events already seen, by table and side."}, []string{"table", "side"}),
		invalid: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cdcrecon_invalid_total",
			Help: "Malformed input messages sent to the dead-letter topic, by table and side."}, []string{"table", "side"}),
		driftOpened: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cdcrecon_drift_opened_total",
			Help: "Drifts opened, by table."}, []string{"table"}),
		driftResolved: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cdcrecon_drift_resolved_total",
			Help: "Drifts resolved, by table."}, []string{"table"}),
		driftOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "cdcrecon_drift_open",
			Help: "Drifts open now, by table."}, []string{"table"}),
		watermark: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "cdcrecon_watermark_seconds",
			Help: "Latest event time read from each input partition, Unix seconds."}, []string{"side", "input"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "cdcrecon_consumer_lag_records",
			Help: "Records not yet read of each input and changes partition this worker owns."}, []string{"topic", "partition"}),
		stateBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cdcrecon_state_bytes",
			Help: "Size of the worker's state directory (Pebble), bytes."}),
		stateKeys: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cdcrecon_state_keys_in_memory",
			Help: "Rows whose reconciliation state the worker holds in memory."}),
		rebuilding: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cdcrecon_rebuilding_partitions",
			Help: "Changes partitions this worker is rebuilding the state of, not yet past the offset committed when it was given them."}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "cdcrecon_stage_batch_seconds",
			Help:    "Time to handle one batch, by stage (ingest, reconcile).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"stage"}),
	}
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

// DriftOpened and DriftResolved record a drift record of a table.
func (m *Metrics) DriftOpened(table string) {
	if m == nil {
		return
	}
	m.driftOpened.WithLabelValues(table).Inc()
	m.driftOpen.WithLabelValues(table).Inc()
}

// DriftResolved records a resolution.
func (m *Metrics) DriftResolved(table string) {
	if m == nil {
		return
	}
	m.driftResolved.WithLabelValues(table).Inc()
	m.driftOpen.WithLabelValues(table).Dec()
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
