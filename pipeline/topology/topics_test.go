package topology_test

import (
	"context"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/pipeline/broker"
	"github.com/cdcrecon/cdcrecon/pipeline/topology"
	"github.com/cdcrecon/cdcrecon/processors/config"
)

// TestEnsureInternalCreatesAndRefuses: the internal topics are created
// with the settings state needs (the changes topic deleting by age, the
// state topic compacted), and pre-created topics whose settings would
// lose state are refused with the setting to change and the command that
// changes it.
func TestEnsureInternalCreatesAndRefuses(t *testing.T) {
	top := topology.Define(mustParse(t))
	ctx := context.Background()
	for _, c := range []struct {
		name string
		// precreate makes topics before EnsureInternal runs: name to
		// partitions and configs.
		precreate map[string]map[string]*string
		parts     int32
		wantErr   []string
	}{
		{name: "fresh"},
		{name: "compacted changes", precreate: map[string]map[string]*string{top.Changes: {"cleanup.policy": kadm.StringPtr("compact")}},
			wantErr: []string{"changes topic cdcrecon.changes has cleanup.policy=compact", "--add-config cleanup.policy=delete"}},
		{name: "short retention", precreate: map[string]map[string]*string{top.Changes: {"retention.ms": kadm.StringPtr("60000")}},
			wantErr: []string{"retention.ms=60000, under 4 × state.snapshot_interval (4m0s)", "--entity-name cdcrecon.changes --add-config retention.ms=604800000"}},
		{name: "state deletes by age", precreate: map[string]map[string]*string{top.State: {"cleanup.policy": kadm.StringPtr("delete")}},
			wantErr: []string{"state topic cdcrecon.state has cleanup.policy=delete", "--add-config cleanup.policy=compact"}},
		{name: "state records too small", precreate: map[string]map[string]*string{top.State: {"cleanup.policy": kadm.StringPtr("compact"), "max.message.bytes": kadm.StringPtr("100000")}},
			wantErr: []string{"state topic cdcrecon.state has max.message.bytes=100000"}},
		{name: "partition count", precreate: map[string]map[string]*string{top.State: {"cleanup.policy": kadm.StringPtr("compact")}}, parts: 3,
			wantErr: []string{"state topic cdcrecon.state has 3 partitions, kafka.partitions says 8"}},
		{name: "right settings", precreate: map[string]map[string]*string{
			top.Changes: {"retention.ms": kadm.StringPtr("86400000")},
			top.State:   {"cleanup.policy": kadm.StringPtr("compact"), "max.message.bytes": kadm.StringPtr("20000000")}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := broker.Start(broker.Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			adm := kadm.NewClient(cl)
			parts := c.parts
			if parts == 0 {
				parts = int32(top.Partitions)
			}
			for topic, cfgs := range c.precreate {
				if _, err := adm.CreateTopic(ctx, parts, 1, cfgs, topic); err != nil {
					t.Fatal(err)
				}
			}
			err = top.EnsureInternal(ctx, adm)
			if len(c.wantErr) > 0 {
				if err == nil {
					t.Fatal("EnsureInternal took topics that would lose state")
				}
				for _, w := range c.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q\nlacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			described, err := adm.DescribeTopicConfigs(ctx, top.Changes, top.State)
			if err != nil {
				t.Fatal(err)
			}
			if len(described) != 2 {
				t.Fatalf("described %d topics", len(described))
			}
			for _, rc := range described {
				got := map[string]string{}
				for _, cfg := range rc.Configs {
					got[cfg.Key] = cfg.MaybeValue()
				}
				switch rc.Name {
				case top.Changes:
					if got["cleanup.policy"] != "delete" || got["retention.ms"] == "" || got["retention.ms"] == "-1" {
						t.Errorf("changes topic: cleanup.policy=%s retention.ms=%s", got["cleanup.policy"], got["retention.ms"])
					}
				case top.State:
					if got["cleanup.policy"] != "compact" {
						t.Errorf("state topic: cleanup.policy=%s", got["cleanup.policy"])
					}
				}
			}
		})
	}
}

// TestEnsureSignals: the connectors' signal topics a configuration names
// are created with one partition when missing; one with more is refused,
// since Debezium reads partition 0 alone.
func TestEnsureSignals(t *testing.T) {
	cfg, err := config.Parse([]byte(`
tables:
  - name: orders
    key: [id]
    source: {topic: pg.public.orders, verify: {signal_topic: pg-signal, prefix: pg}}
    target: {topic: mysql.shop.orders, verify: {signal_topic: my-signal, prefix: mysql}}
  - name: customers
    key: [id]
    source: {topic: pg.public.customers, verify: {signal_topic: pg-signal, prefix: pg}}
    target: {topic: mysql.shop.customers, verify: {signal_topic: my-signal, prefix: mysql}}
`), "signals.yaml")
	if err != nil {
		t.Fatal(err)
	}
	top := topology.Define(cfg)
	if strings.Join(top.Signals, ",") != "my-signal,pg-signal" {
		t.Fatalf("signal topics %v, want my-signal and pg-signal once each", top.Signals)
	}
	b, err := broker.Start(broker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := context.Background()
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "pg-signal"); err != nil {
		t.Fatal(err)
	}
	if err := top.EnsureSignals(ctx, adm); err != nil {
		t.Fatal(err)
	}
	fresh, err := kgo.NewClient(kgo.SeedBrokers(b.Addr())) // no cached metadata
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	details, err := kadm.NewClient(fresh).ListTopics(ctx, top.Signals...)
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range top.Signals {
		if n := len(details[topic].Partitions); n != 1 {
			t.Errorf("%s has %d partitions, want 1 (%v)", topic, n, details[topic].Err)
		}
	}
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, "wide-signal"); err != nil {
		t.Fatal(err)
	}
	top.Signals = []string{"wide-signal"}
	err = top.EnsureSignals(ctx, adm)
	if err == nil || !strings.Contains(err.Error(), "signal topic wide-signal has 3 partitions: Debezium reads partition 0") {
		t.Fatalf("a signal topic of 3 partitions: %v", err)
	}
}
