package realstack

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/processors/debezium"
)

// compose is the compose stack's directory: its SQL and connector files
// are the real stack's too, so the two cannot drift apart.
var compose = filepath.Join(Dir(), "..", "e2e", "compose")

// TestPostgresPairStreams brings up PostgreSQL source → target by logical
// replication, a KRaft broker and Kafka Connect with Debezium's
// PostgreSQL connector on each database, and reads both sides' change
// topics: every row of the source's snapshot must arrive from both, as
// Debezium envelopes our decoder reads, the target's after replication.
func TestPostgresPairStreams(t *testing.T) {
	s := New(t)
	started := time.Now()
	src, tgt := s.StartPostgres("source"), s.StartPostgres("target")
	for _, pg := range []*Postgres{src, tgt} {
		pg.SQL(t, "postgres", "-c", "CREATE DATABASE shop")
		pg.SQL(t, "shop", "-f", filepath.Join(compose, "schema.sql"))
	}
	src.SQL(t, "shop", "-f", filepath.Join(compose, "source.sql"))
	sub := exec.Command("sh", filepath.Join(compose, "subscribe.sh"))
	sub.Env = append(os.Environ(), "SOURCE_HOST=127.0.0.1", "SOURCE_PORT="+strconv.Itoa(src.Port),
		"TARGET_HOST=127.0.0.1", "TARGET_PORT="+strconv.Itoa(tgt.Port))
	if out, err := sub.CombinedOutput(); err != nil {
		t.Fatalf("subscribe.sh: %v\n%s", err, out)
	}
	s.StartKafka()
	kafkaUp := time.Since(started)
	s.StartConnect(map[string]Connector{
		"source": ReadConnector(t, filepath.Join(compose, "connector-source.json"),
			map[string]string{"database.hostname": "127.0.0.1", "database.port": strconv.Itoa(src.Port)}),
		"target": ReadConnector(t, filepath.Join(compose, "connector-target.json"),
			map[string]string{"database.hostname": "127.0.0.1", "database.port": strconv.Itoa(tgt.Port)}),
	})
	t.Logf("running %s; databases and broker up in %s, connectors RUNNING after %s", s.Versions(),
		kafkaUp.Round(time.Second), time.Since(started).Round(time.Second))

	want := src.SQL(t, "shop", "-c", "SELECT count(*) FROM orders")
	n, _ := strconv.Atoi(want)
	for _, topic := range []string{"src.public.orders", "tgt.public.orders"} {
		keys := readKeys(t, s.Kafka, topic, n)
		if len(keys) != n {
			t.Errorf("%s: %d distinct keys, want the %d orders", topic, len(keys), n)
		}
	}
}

// readKeys reads a topic from its start until it has seen n distinct keys
// (or 90 s pass), decoding every value as a Debezium event.
func readKeys(t *testing.T, addr, topic string, n int) map[string]bool {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dec := debezium.NewDecoder(debezium.Config{})
	keys := map[string]bool{}
	for len(keys) < n && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			ev, err := dec.Decode(ctx, r.Key, r.Value)
			if err != nil {
				t.Errorf("%s offset %d: %v\n%s", topic, r.Offset, err, r.Value)
				return
			}
			if ev.Kind != debezium.Heartbeat {
				keys[string(r.Key)] = true
			}
		})
	}
	return keys
}
