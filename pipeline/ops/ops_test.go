package ops_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cdcrecon/cdcrecon/pipeline/ops"
)

// TestGaugesSayWhatIsKnown: per-table series exist at 0 from the start;
// the open-drift gauge is never negative and covers every table; the lag
// of a partition that moved away is forgotten, not left at its last
// value; an unreachable broker reads 0.
func TestGaugesSayWhatIsKnown(t *testing.T) {
	m := ops.NewMetrics()
	m.Tables([]string{"orders", "customers"}, []string{"source", "target"})
	if n, err := testutil.GatherAndCount(m.Registry, ops.DriftOpenNow, ops.EventsTotal); err != nil || n != 2+4 {
		t.Fatalf("%d series at the start (%v), want 2 drift gauges and 4 event counters", n, err)
	}
	m.DriftOpen([]string{"orders", "customers"}, map[string]int64{"orders": 3, "customers": -1})
	want := `
# HELP cdcrecon_drift_open Drifts open now, by table.
# TYPE cdcrecon_drift_open gauge
cdcrecon_drift_open{table="customers"} 0
cdcrecon_drift_open{table="orders"} 3
`
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want), ops.DriftOpenNow); err != nil {
		t.Error(err)
	}
	m.Lag("pg.public.orders", 0, 5)
	m.Lag("pg.public.orders", 1, 0)
	m.ForgetLag()
	m.Lag("pg.public.orders", 1, 2)
	if n, _ := testutil.GatherAndCount(m.Registry, ops.ConsumerLagRecords); n != 1 {
		t.Errorf("%d lag series after partition 0 moved away, want 1", n)
	}
	m.Reachable(false)
	if n, _ := testutil.GatherAndCount(m.Registry, ops.BrokerReachable); n != 1 {
		t.Fatal("no cdcrecon_broker_reachable")
	}
	got, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range got {
		if f.GetName() == ops.BrokerReachable && f.GetMetric()[0].GetGauge().GetValue() != 0 {
			t.Errorf("broker reachable %v after a failed look-up", f.GetMetric()[0].GetGauge().GetValue())
		}
	}
}

// TestFailingUntilAPublishSucceeds: a failed publish makes the worker
// unready, naming the topic, until a publish to that topic succeeds; a
// registry out of reach counts as such too.
func TestFailingUntilAPublishSucceeds(t *testing.T) {
	m := ops.NewMetrics()
	if m.Failing() != nil {
		t.Fatal("failing before anything was published")
	}
	m.Published("cdcrecon.drift", errors.New("registry down"), true)
	m.Published("cdcrecon.checksums", nil, false)
	if err := m.Failing(); err == nil || !strings.Contains(err.Error(), "cdcrecon.drift") {
		t.Errorf("Failing() = %v, want the drift topic named", err)
	}
	if n := registryFailures(t, m); n != 1 {
		t.Errorf("registry failures %v, want 1", n)
	}
	m.Published("cdcrecon.drift", nil, false)
	if err := m.Failing(); err != nil {
		t.Errorf("still failing after a publish succeeded: %v", err)
	}
	var nilMetrics *ops.Metrics // a stage without metrics calls them all the same
	nilMetrics.Published("t", errors.New("x"), false)
	nilMetrics.DriftOpen([]string{"a"}, nil)
	if nilMetrics.Failing() != nil {
		t.Error("nil metrics report a failure")
	}
}

func registryFailures(t *testing.T, m *ops.Metrics) float64 {
	t.Helper()
	fs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if f.GetName() == ops.RegistryFailuresTotal {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("no " + ops.RegistryFailuresTotal)
	return 0
}
