package topology_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/cdcrecon/cdcrecon/pipeline/topology"
	"github.com/cdcrecon/cdcrecon/processors/config"
	"github.com/cdcrecon/cdcrecon/processors/normalize"
)

// TestDefinePinsTheNames: the consumer groups and topics a configuration
// gives. The group names are an upgrade contract — a release that named
// them otherwise would start every group over from nothing — so they are
// written out here, not derived.
func TestDefinePinsTheNames(t *testing.T) {
	for _, c := range []struct {
		name, yaml string
		want       topology.Topology
	}{
		{"defaults", `
tables:
  - {name: orders, key: [id], source: {topic: pg.public.orders}, target: {topic: mysql.shop.orders}}
  - {name: customers, key: [id], source: {topic: pg.public.customers}, target: {topic: mysql.shop.customers}}
`, topology.Topology{
			Inputs: []topology.Input{
				{Table: "orders", Side: normalize.Source, Topic: "pg.public.orders", Group: "cdcrecon.ingest.pg.public.orders"},
				{Table: "orders", Side: normalize.Target, Topic: "mysql.shop.orders", Group: "cdcrecon.ingest.mysql.shop.orders"},
				{Table: "customers", Side: normalize.Source, Topic: "pg.public.customers", Group: "cdcrecon.ingest.pg.public.customers"},
				{Table: "customers", Side: normalize.Target, Topic: "mysql.shop.customers", Group: "cdcrecon.ingest.mysql.shop.customers"},
			},
			Changes: "cdcrecon.changes", Partitions: 8, ReconcileGroup: "cdcrecon.reconcile",
			Drift: "cdcrecon.drift", Compensation: "cdcrecon.compensation", Checksums: "cdcrecon.checksums", DLQ: "cdcrecon.dlq",
			State: "cdcrecon.state", ChangesRetention: 7 * 24 * time.Hour, SnapshotInterval: time.Minute,
		}},
		{"named", `
kafka: {group: shop, partitions: 3}
topics: {changes: shop.changes, drift: shop.drift, compensation: shop.comp, checksums: shop.sums, dlq: shop.dlq, state: shop.state}
state: {snapshot_interval: 10s, changes_retention: 48h}
tables:
  - {name: orders, key: [id], source: {topic: a}, target: {topic: b}}
`, topology.Topology{
			Inputs: []topology.Input{
				{Table: "orders", Side: normalize.Source, Topic: "a", Group: "shop.ingest.a"},
				{Table: "orders", Side: normalize.Target, Topic: "b", Group: "shop.ingest.b"},
			},
			Changes: "shop.changes", Partitions: 3, ReconcileGroup: "shop.reconcile",
			Drift: "shop.drift", Compensation: "shop.comp", Checksums: "shop.sums", DLQ: "shop.dlq",
			State: "shop.state", ChangesRetention: 48 * time.Hour, SnapshotInterval: 10 * time.Second,
		}},
	} {
		cfg, err := config.Parse([]byte(c.yaml), c.name+".yaml")
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got := topology.Define(cfg)
		if !reflect.DeepEqual(*got, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, *got, c.want)
		}
	}
	top := topology.Define(mustParse(t))
	if got := top.Tables(); !reflect.DeepEqual(got, []string{"orders", "customers"}) {
		t.Errorf("tables %v", got)
	}
	if got := top.InputTopics(); !reflect.DeepEqual(got, []string{"pg.public.orders", "mysql.shop.orders", "pg.public.customers", "mysql.shop.customers"}) {
		t.Errorf("input topics %v", got)
	}
	if got := top.Internal(); !reflect.DeepEqual(got, []string{"cdcrecon.changes", "cdcrecon.drift", "cdcrecon.compensation", "cdcrecon.checksums", "cdcrecon.dlq", "cdcrecon.state"}) {
		t.Errorf("internal topics %v", got)
	}
}

func mustParse(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(`
tables:
  - {name: orders, key: [id], source: {topic: pg.public.orders}, target: {topic: mysql.shop.orders}}
  - {name: customers, key: [id], source: {topic: pg.public.customers}, target: {topic: mysql.shop.customers}}
`), "two.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
