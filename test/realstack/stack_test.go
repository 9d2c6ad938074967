package realstack

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/processors/debezium"
	"github.com/cdcrecon/cdcrecon/schemas"
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
	src, tgt := s.postgresPair(t)
	s.StartKafka()
	kafkaUp := time.Since(started)
	s.StartConnect(s.pgConnectors(t, src, tgt, nil))
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

	// Each connector re-reads a chosen row when asked on its Kafka signal
	// topic: an incremental snapshot of one key, watermarked through the
	// signalling table.
	for name, c := range s.connectors {
		requestReRead(t, s.Kafka, c["signal.kafka.topic"], c["topic.prefix"], "public.orders", "id = 2")
		topic := c["topic.prefix"] + ".public.orders"
		if !awaitReRead(t, s.Kafka, topic, `{"id":2}`) {
			t.Errorf("connector %s: no incremental-snapshot read of orders id 2 on %s after the signal", name, topic)
		}
	}
	compareWithSimulator(t, s, src)
}

// requestReRead sends a connector the execute-snapshot signal for the rows
// of table that filter selects, on its Kafka signal topic, keyed by its
// topic prefix as Debezium requires.
func requestReRead(t *testing.T, addr, signals, prefix, table, filter string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	value, _ := json.Marshal(map[string]any{"type": "execute-snapshot", "data": map[string]any{
		"data-collections": []string{table}, "type": "incremental",
		"additional-conditions": []map[string]string{{"data-collection": table, "filter": filter}}}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: signals, Key: []byte(prefix), Value: value}).FirstErr(); err != nil {
		t.Fatalf("signal to %s: %v", signals, err)
	}
}

// awaitReRead reads topic until a read event ("op": "r") of an
// incremental snapshot for key arrives, for 90 s at most.
func awaitReRead(t *testing.T, addr, topic, key string) bool {
	t.Helper()
	var want any
	_ = json.Unmarshal([]byte(key), &want)
	return scanTopic(t, addr, topic, func(r *kgo.Record) bool {
		var k struct{ Payload json.RawMessage }
		var v struct {
			Payload struct {
				Op     string
				Source struct{ Snapshot string }
			}
		}
		if json.Unmarshal(r.Key, &k) != nil || json.Unmarshal(r.Value, &v) != nil {
			return false
		}
		var got any
		_ = json.Unmarshal(k.Payload, &got)
		return v.Payload.Op == "r" && v.Payload.Source.Snapshot == "incremental" && fmt.Sprint(got) == fmt.Sprint(want)
	})
}

// scanTopic reads topic from its start, handing each record to fn until
// fn says it is done, for 90 s at most; it reports whether fn was done.
func scanTopic(t *testing.T, addr, topic string, fn func(*kgo.Record) bool) bool {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		done := false
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			done = done || fn(r)
		})
		if done {
			return true
		}
	}
	return false
}

// readKeys reads a topic from its start until it has seen n distinct keys
// (or 90 s pass), decoding every value as a Debezium event.
func readKeys(t *testing.T, addr, topic string, n int) map[string]bool {
	t.Helper()
	dec := debezium.NewDecoder(debezium.Config{})
	keys := map[string]bool{}
	scanTopic(t, addr, topic, func(r *kgo.Record) bool {
		ev, err := dec.Decode(context.Background(), r.Key, r.Value)
		if err != nil {
			t.Errorf("%s offset %d: %v\n%s", topic, r.Offset, err, r.Value)
		} else if ev.Kind != debezium.Heartbeat {
			keys[string(r.Key)] = true
		}
		return len(keys) >= n
	})
	return keys
}

// TestPostgresPairDrift: the compose scenario on the real stack. The
// source is written while replication runs, the target tampered with
// behind its back, and a cdcrecon worker on the real broker must end with
// exactly the drift a SQL comparison of the two databases finds.
func TestPostgresPairDrift(t *testing.T) {
	s := New(t)
	src, tgt := s.postgresPair(t)
	s.StartKafka()
	s.StartConnect(s.pgConnectors(t, src, tgt, nil))
	t.Logf("running %s", s.Versions())
	w := s.StartWorker(t, filepath.Join(compose, "cdcrecon.yaml"))

	for _, sql := range []string{
		"INSERT INTO orders (id, customer_id, total, status) VALUES (4, 1, 42.00, 'new'), (5, 2, 7.25, 'new')",
		"UPDATE orders SET status = 'shipped', updated_at = now() WHERE id = 1",
		"INSERT INTO customers VALUES (4, 'Barbara', 'barbara@example.com')",
		"DELETE FROM orders WHERE id = 3",
		// The TOASTed description stays as it is: Debezium sends it as
		// unavailable on both sides.
		"UPDATE products SET price = 47.50 WHERE id = 3",
		// 0.9995 s rounds up into the next second at the target's ms.
		"INSERT INTO products VALUES (4, 'Chair', 80.10, '{\"legs\": 4, \"arms\": true}', '2026-11-21 10:00:03.9995+00', 'A chair')",
	} {
		src.SQL(t, "shop", "-c", sql)
	}
	replicated := "SELECT (SELECT count(*) FROM orders WHERE id IN (4, 5)) = 2 AND (SELECT count(*) FROM orders WHERE id = 3) = 0 AND (SELECT count(*) FROM customers WHERE id = 4) = 1 AND (SELECT count(*) FROM products WHERE id = 4) = 1"
	eventuallySQL(t, tgt, "replication of the source's writes", replicated)
	for _, sql := range []string{
		"UPDATE orders SET total = 0 WHERE id = 2",
		"DELETE FROM orders WHERE id = 4",
		"INSERT INTO customers VALUES (99, 'ghost', NULL)",
		"UPDATE customers SET email = 'ada@tampered.example' WHERE id = 1",
		"UPDATE products SET attrs = '{\"color\": \"blue\", \"watts\": 40}' WHERE id = 1",
	} {
		tgt.SQL(t, "shop", "-c", sql)
	}

	truth := sqlDrift(t, src, tgt)
	if len(truth) != 5 {
		t.Fatalf("the SQL comparison finds %v; the scenario tampers with 5 rows", truth)
	}
	got := w.AwaitDrift(t, truth, 2*time.Minute)
	report(t, "postgres", truth, got)
	checkCompensations(t, w, truth, pgRows(t, src))
	checkAgrees(t, s, w, truth)
}

// postgresPair starts the compose stack's PostgreSQL pair: both with its
// schema, the source with its rows and publication, the target
// subscribed to it.
func (s *Stack) postgresPair(t testing.TB) (src, tgt *Postgres) {
	t.Helper()
	src, tgt = s.StartPostgres("source"), s.StartPostgres("target")
	for pg, products := range map[*Postgres]string{src: "products-source.sql", tgt: "products-target.sql"} {
		pg.SQL(t, "postgres", "-c", "CREATE DATABASE shop")
		pg.SQL(t, "shop", "-f", filepath.Join(compose, "schema.sql"))
		pg.SQL(t, "shop", "-f", filepath.Join(compose, products))
	}
	src.SQL(t, "shop", "-f", filepath.Join(compose, "source.sql"))
	sub := exec.Command("sh", filepath.Join(compose, "subscribe.sh"))
	sub.Env = append(os.Environ(), "SOURCE_HOST=127.0.0.1", "SOURCE_PORT="+strconv.Itoa(src.Port),
		"TARGET_HOST=127.0.0.1", "TARGET_PORT="+strconv.Itoa(tgt.Port))
	if out, err := sub.CombinedOutput(); err != nil {
		t.Fatalf("subscribe.sh: %v\n%s", err, out)
	}
	eventuallySQL(t, tgt, "the initial copy", "SELECT (SELECT count(*) FROM orders) = 3 AND (SELECT count(*) FROM customers) = 3 AND (SELECT count(*) FROM products) = 3")
	return src, tgt
}

// pgConnectors is the compose stack's two connectors pointed at this
// stack's databases and broker, with extra's settings (nil for none).
func (s *Stack) pgConnectors(t testing.TB, src, tgt *Postgres, extra func() map[string]string) map[string]Connector {
	t.Helper()
	out := map[string]Connector{}
	for name, pg := range map[string]*Postgres{"source": src, "target": tgt} {
		set := map[string]string{"database.hostname": "127.0.0.1", "database.port": strconv.Itoa(pg.Port),
			"signal.kafka.bootstrap.servers": s.Kafka}
		if extra != nil {
			maps.Copy(set, extra())
		}
		out[name] = ReadConnector(t, filepath.Join(compose, "connector-"+name+".json"), set)
	}
	return out
}

// eventuallySQL waits up to a minute for query to return true.
func eventuallySQL(t testing.TB, pg *Postgres, what, query string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); pg.SQL(t, "shop", "-c", query) != "t"; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within a minute (%s)", what, query)
		}
	}
}

// sqlDrift is the ground truth: both databases' tables read out and
// compared by key, in the drift's terms ("table {key}" → kind, and the
// differing columns of a value mismatch).
func sqlDrift(t *testing.T, src, tgt *Postgres) map[string]string {
	t.Helper()
	read := func(pg *Postgres, table string) string {
		return pg.SQL(t, "shop", "-c", "SELECT row_to_json(r)::text FROM "+table+" r")
	}
	out := map[string]string{}
	for _, table := range []string{"customers", "orders", "products"} {
		compareRows(t, out, table, read(src, table), read(tgt, table))
	}
	return out
}

// normalised is a column's value as both databases are compared: the
// products table's timestamps at the target's millisecond precision,
// rounded as PostgreSQL stores them; JSON objects and numbers by value
// (encoding/json already decodes them so).
func normalised(table, col string, v any) any {
	if table == "products" && col == "added_at" {
		if ts, err := time.Parse(time.RFC3339Nano, fmt.Sprint(v)); err == nil {
			return ts.Round(time.Millisecond).UTC().Format(time.RFC3339Nano)
		}
	}
	return v
}

// compareRows adds to out the drift between two tables' rows, given as
// one JSON object per line with an "id".
func compareRows(t *testing.T, out map[string]string, table, src, tgt string) {
	t.Helper()
	read := func(text string) map[string]map[string]any {
		rows := map[string]map[string]any{}
		addRows(t, rows, table, text)
		return rows
	}
	a, b := read(src), read(tgt)
	for k, ra := range a {
		rb, ok := b[k]
		if !ok {
			out[k] = "missing_in_target"
			continue
		}
		var cols []string
		for c, v := range ra {
			if fmt.Sprint(normalised(table, c, v)) != fmt.Sprint(normalised(table, c, rb[c])) {
				cols = append(cols, c)
			}
		}
		if len(cols) > 0 {
			slices.Sort(cols)
			out[k] = "value_mismatch " + strings.Join(cols, ",")
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out[k] = "extra_in_target"
		}
	}
}

// report logs a scenario's drift against the SQL ground truth (expected,
// found, missed, false) and fails on any difference.
func report(t *testing.T, scenario string, truth, got map[string]string) {
	t.Helper()
	var missed, falsePos []string
	for k, v := range truth {
		if got[k] != v {
			missed = append(missed, k+" "+v)
		}
	}
	for k, v := range got {
		if truth[k] != v {
			falsePos = append(falsePos, k+" "+v)
		}
	}
	slices.Sort(missed)
	slices.Sort(falsePos)
	t.Logf("%s: drift expected %d (by SQL), found %d, missed %d, false %d", scenario, len(truth), len(got), len(missed), len(falsePos))
	if len(missed) > 0 || len(falsePos) > 0 {
		t.Errorf("%s: missed %v\nfalse %v", scenario, missed, falsePos)
	}
}

// TestPostgresPairUnderFaults: writes go on at a steady rate for the whole
// test — inserts, updates, deletes, a key change, a transaction over both
// tables — while the target is tampered with, Kafka Connect is killed
// with SIGKILL and restarted (Debezium sends again what it had not
// flushed), the broker restarts, and the worker is killed and restarted.
// After the writes stop and replication settles, the worker's open drift
// must equal the SQL comparison of the databases.
func TestPostgresPairUnderFaults(t *testing.T) {
	s := New(t)
	src, tgt := s.postgresPair(t)
	s.StartKafka()
	s.OffsetFlush = 5 * time.Second // see injectFaults
	s.StartConnect(s.pgConnectors(t, src, tgt, nil))
	w := s.StartWorker(t, filepath.Join(compose, "cdcrecon.yaml"))

	// The writer owns orders from 100 on and customers from 100 on; the
	// tampering touches only rows below, so the truth is the tampering's.
	stop := writeSteadily(t, func(sql string) error {
		cmd := exec.Command("psql", "-h", "127.0.0.1", "-p", strconv.Itoa(src.Port), "-U", "postgres", "-d", "shop", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%v\n%s", err, out)
		}
		return nil
	}, "now()")
	time.Sleep(3 * time.Second)
	for _, sql := range []string{
		"UPDATE orders SET total = 0 WHERE id = 2",
		"DELETE FROM orders WHERE id = 3",
		"INSERT INTO customers VALUES (99, 'ghost', NULL)",
		"UPDATE customers SET email = 'ada@tampered.example' WHERE id = 1",
	} {
		tgt.SQL(t, "shop", "-c", sql)
	}
	writes := injectFaults(t, s, w, stop)

	verdict(t, s, w, "postgres under faults", writes, func() map[string]string { return sqlDrift(t, src, tgt) },
		func() map[string]map[string]any { return pgRows(t, src) })
}

// written are the tables writeSteadily writes.
var written = []string{"orders", "customers"}

// writeSteadily writes on the source every 50 ms until the returned stop
// is called, which returns how many writes ran: inserts, updates, deletes,
// a key change and a transaction over both tables, on orders and
// customers from id 100 on. now is the SQL of the current time.
func writeSteadily(t *testing.T, run func(sql string) error, now string) (stop func() int) {
	return writeEvery(t, run, func(i int) string {
		switch i % 6 {
		case 0, 1:
			return fmt.Sprintf("INSERT INTO orders (id, customer_id, total, status) VALUES (%d, 1, %d.25, 'new')", i, i)
		case 2:
			return fmt.Sprintf("UPDATE orders SET status = 'paid', total = total + 1, updated_at = %s WHERE id = %d", now, i-2)
		case 3:
			return fmt.Sprintf("DELETE FROM orders WHERE id = %d", i-2)
		case 4:
			// A key change: delete and insert in one event pair.
			return fmt.Sprintf("UPDATE orders SET id = %d WHERE id = %d", i+1000000, i-4)
		}
		return fmt.Sprintf("BEGIN; INSERT INTO customers VALUES (%d, 'c%d', NULL); UPDATE orders SET customer_id = %d WHERE id = %d; COMMIT", i, i, i, i-5)
	})
}

// writeEvery runs the statements next gives for i = 100, 101, ... every
// 50 ms until stopped, and returns how many ran.
func writeEvery(t *testing.T, run func(sql string) error, next func(i int) string) (stop func() int) {
	quit := make(chan struct{})
	done := make(chan int)
	go func() {
		n := 0
		defer func() { done <- n }()
		for i := 100; ; i++ {
			select {
			case <-quit:
				return
			case <-time.After(50 * time.Millisecond):
			}
			sql := next(i)
			if err := run(sql); err != nil {
				t.Errorf("writer: %s: %v", sql, err)
				return
			}
			n++
		}
	}()
	return func() int {
		close(quit)
		return <-done
	}
}

// injectFaults, while the writes go on: kills Kafka Connect with SIGKILL
// and restarts it (with offsets stored every 5 s, it sends again what it
// sent since), requiring the re-sent events counted as duplicates;
// restarts the broker; kills the worker with SIGKILL and starts it again
// on its state. Then it stops the writes and waits for the restarted
// worker to read every input past the writes' last seconds. It returns
// how many writes ran.
func injectFaults(t *testing.T, s *Stack, w *Worker, stopWrites func() int) int {
	t.Helper()
	time.Sleep(2 * time.Second)
	at := time.Now()
	s.KillConnect()
	t.Logf("Connect killed and RUNNING again after %s", time.Since(at).Round(time.Second))
	time.Sleep(3 * time.Second)
	at = time.Now()
	s.RestartKafka(2 * time.Second)
	t.Logf("broker restarted, answering after %s", time.Since(at).Round(time.Second))
	// The re-sent events are dropped as duplicates, counted by this
	// worker process before it is killed.
	var dups float64
	for deadline := time.Now().Add(time.Minute); dups <= 0; time.Sleep(500 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no duplicates counted within a minute of Connect's restart: it re-sent nothing, or nothing was recognised")
		}
		dups = w.Metric("cdcrecon_duplicates_total")
	}
	t.Logf("%.0f events Connect sent again after it was killed counted as duplicates", dups)
	w.Kill(t)
	killed := time.Now()
	t.Log("worker killed and started again")
	time.Sleep(5 * time.Second)
	writes := stopWrites()
	// The restarted worker reads on from its own state once the broker
	// has expired the killed member's session and handed it the
	// partitions; every connector must have delivered the last writes.
	// The last seconds': a customer is written about every half second,
	// and a MySQL-family binlog stamps its events to the whole second.
	w.AwaitRead(t, time.Now().Add(-3*time.Second), 2*time.Minute, written...)
	t.Logf("the restarted worker has read the last writes %s after it started", time.Since(killed).Round(time.Second))
	return writes
}

// TestMariaDBPairUnderFaults: the PostgreSQL scenario on MariaDB — a
// source and its replica by MariaDB's own replication, the replica at its
// own decimal scale and timestamp precision, a Debezium connector on
// each; steady writes on the source for the whole test, tampering on the
// target, Connect and the worker killed with SIGKILL, the broker
// restarted. The worker's open drift must equal the SQL comparison.
// Maven Central here serves no debezium-connector-mariadb, and the MySQL
// connector of Debezium 3.6 refuses MariaDB; the MySQL connector 2.6
// captures it (connector.adapter=mariadb), on Connect 3.7.
func TestMariaDBPairUnderFaults(t *testing.T) {
	s := New(t)
	src, tgt := s.mariadbPair(t)
	s.StartKafka()
	s.OffsetFlush = 5 * time.Second // see injectFaults
	s.StartMariaDBConnect(s.mariadbConnectors(t, src, tgt))
	t.Logf("running %s, MariaDB %s", s.Versions(), src.SQL(t, "SELECT VERSION()"))
	w := s.StartWorker(t, filepath.Join(Dir(), "mariadb", "cdcrecon.yaml"))

	stop := writeSteadily(t, func(sql string) error {
		_, err := src.query("USE shop; " + sql)
		return err
	}, "CURRENT_TIMESTAMP(6)")
	time.Sleep(3 * time.Second)
	// Writes on a replica go to a GTID domain of their own, as MariaDB
	// asks: in the replicated domain they would break its GTID order.
	tgt.SQL(t, "SET SESSION gtid_domain_id = 2; USE shop; UPDATE orders SET total = 0 WHERE id = 2; DELETE FROM orders WHERE id = 3; "+
		"INSERT INTO customers VALUES (99, 'ghost', NULL); UPDATE customers SET email = 'ada@tampered.example' WHERE id = 1")
	writes := injectFaults(t, s, w, stop)

	verdict(t, s, w, "mariadb under faults", writes, func() map[string]string { return mariaDrift(t, src, tgt) },
		func() map[string]map[string]any { return mariaRows(t, src) })

	// Each connector re-reads a chosen row when asked on its Kafka signal
	// topic, watermarked through its own signalling table.
	for name, c := range s.connectors {
		requestReRead(t, s.Kafka, c["signal.kafka.topic"], c["topic.prefix"], "shop.orders", "id = 2")
		if topic := c["topic.prefix"] + ".shop.orders"; !awaitReRead(t, s.Kafka, topic, `{"id":2}`) {
			t.Errorf("connector %s: no incremental-snapshot read of orders id 2 on %s after the signal", name, topic)
		}
	}
}

// verdict settles a faults scenario: once replication has settled, the
// SQL comparison must find the 4 tampered rows, the worker's open drift
// must equal it, each drifted row must have the compensation that
// repairs it (from the source's rows), and check over the tail dumps
// must agree.
func verdict(t *testing.T, s *Stack, w *Worker, scenario string, writes int, compare func() map[string]string, source func() map[string]map[string]any) {
	t.Helper()
	truth := settled(t, compare)
	if len(truth) != 4 {
		t.Errorf("the SQL comparison finds %v; the scenario tampers with 4 rows", truth)
	}
	got := w.AwaitDrift(t, truth, 3*time.Minute)
	t.Logf("%d source writes; the restarted worker counted %.0f events, %.0f duplicates", writes,
		w.Metric("cdcrecon_events_total"), w.Metric("cdcrecon_duplicates_total"))
	report(t, scenario, truth, got)
	checkCompensations(t, w, truth, source())
	checkAgrees(t, s, w, truth)
}

// settled returns the SQL comparison once replication has settled: two
// readings of the databases in a row agree.
func settled(t *testing.T, compare func() map[string]string) map[string]string {
	t.Helper()
	var truth map[string]string
	for prev := map[string]string(nil); ; prev = truth {
		truth = compare()
		if prev != nil && maps.Equal(prev, truth) {
			return truth
		}
		time.Sleep(2 * time.Second)
	}
}

// mariaTables are the MariaDB pair's tables and columns.
var mariaTables = map[string][]string{"customers": {"id", "name", "email"}, "orders": {"id", "customer_id", "total", "status", "updated_at"}}

// mariaLines reads a MariaDB table, one JSON object per row, as the pair
// is compared: timestamps to the replica's millisecond, cut off as
// cdcrecon.yaml says, in RFC 3339 (the servers run in UTC); decimals by
// value, as JSON numbers.
func mariaLines(t *testing.T, m *MariaDB, table string) string {
	t.Helper()
	var args []string
	for _, c := range mariaTables[table] {
		expr := c
		if c == "updated_at" {
			expr = "CONCAT(LEFT(DATE_FORMAT(updated_at, '%Y-%m-%dT%H:%i:%s.%f'), 23), 'Z')"
		}
		args = append(args, "'"+c+"'", expr)
	}
	return m.SQL(t, "SELECT JSON_OBJECT("+strings.Join(args, ", ")+") FROM shop."+table)
}

// mariaDrift is the SQL comparison of the MariaDB pair.
func mariaDrift(t *testing.T, src, tgt *MariaDB) map[string]string {
	t.Helper()
	out := map[string]string{}
	for table := range mariaTables {
		compareRows(t, out, table, mariaLines(t, src, table), mariaLines(t, tgt, table))
	}
	return out
}

// mariaRows reads a MariaDB server's rows as the pair is compared:
// "table {key}" → row.
func mariaRows(t *testing.T, m *MariaDB) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for table := range mariaTables {
		addRows(t, out, table, mariaLines(t, m, table))
	}
	return out
}

// addRows adds to out a table's rows, given as one JSON object per line
// with an "id", by "table {key}".
func addRows(t *testing.T, out map[string]map[string]any, table, lines string) {
	t.Helper()
	for _, line := range strings.Split(lines, "\n") {
		if line == "" {
			continue
		}
		var row map[string]any
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			t.Fatalf("%s: %v: %s", table, err, line)
		}
		key, _ := json.Marshal(map[string]any{"id": row["id"]})
		out[table+" "+string(key)] = row
	}
}

// eventuallyMaria waits up to a minute for query to return 1.
func eventuallyMaria(t *testing.T, m *MariaDB, what, query string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if out, err := m.query(query); err == nil && out == "1" {
			return
		}
		if time.Now().After(deadline) {
			status, _ := m.query(`SHOW SLAVE STATUS\G`)
			t.Fatalf("%s: not within a minute (%s)\n%s", what, query, status)
		}
	}
}

// checkCompensations requires, for every drifted row of truth, the
// compensation that repairs exactly it: a delete of an extra row, an
// upsert of a missing or mismatched one carrying the source's values
// (every column of a missing row but its key, which is the command's key;
// the mismatched columns of a mismatched one).
func checkCompensations(t *testing.T, w *Worker, truth map[string]string, src map[string]map[string]any) {
	t.Helper()
	comps := w.Compensations(t)
	for row, drift := range truth {
		c := comps[row]
		kind, cols, _ := strings.Cut(drift, " ")
		switch {
		case c == nil:
			t.Errorf("no compensation for %s (%s)", row, drift)
			continue
		case kind == "extra_in_target":
			if c.Action != schemas.Delete {
				t.Errorf("compensation of %s (%s): %s, want delete", row, drift, c.Action)
			}
			continue
		case c.Action != schemas.Upsert:
			t.Errorf("compensation of %s (%s): %s, want upsert", row, drift, c.Action)
			continue
		}
		b, _ := json.Marshal(c.Row)
		var got map[string]any
		_ = json.Unmarshal(b, &got)
		want := src[row]
		check := strings.Split(cols, ",")
		if kind == "missing_in_target" {
			// The row's columns; its key is the command's key.
			check = nil
			for col := range want {
				if col != "id" {
					check = append(check, col)
				}
			}
		}
		if k, _ := json.Marshal(c.Key); !strings.HasSuffix(row, " "+string(k)) {
			t.Errorf("compensation of %s has key %s", row, k)
		}
		// A compensation carries the values as compared: what the target
		// stores at its own precision.
		table, _, _ := strings.Cut(row, " ")
		for _, col := range check {
			if !sameValue(got[col], normalised(table, col, want[col])) {
				t.Errorf("compensation of %s (%s): %s = %v, want the source's %v", row, drift, col, got[col], want[col])
			}
		}
	}
	// Rows whose drift opened and resolved while replication lagged keep
	// their last compensation on the topic: the drift topic says it is
	// over, which is what apply will go by.
	stale := 0
	for row := range comps {
		if _, ok := truth[row]; !ok {
			stale++
		}
	}
	t.Logf("compensations: %d for the %d drifted rows checked, %d of drifts since resolved", len(comps)-stale, len(truth), stale)
}

// sameValue compares a compensation's value with a database's: numbers
// by value, whether either side writes them as text, and timestamps by
// instant, whatever their zone's notation.
func sameValue(a, b any) bool {
	if fmt.Sprint(a) == fmt.Sprint(b) {
		return true
	}
	ta, errA := time.Parse(time.RFC3339Nano, fmt.Sprint(a))
	tb, errB := time.Parse(time.RFC3339Nano, fmt.Sprint(b))
	if errA == nil && errB == nil {
		return ta.Equal(tb)
	}
	fa, errA := strconv.ParseFloat(fmt.Sprint(a), 64)
	fb, errB := strconv.ParseFloat(fmt.Sprint(b), 64)
	return errA == nil && errB == nil && fa == fb
}

// pgRows reads a PostgreSQL database's tables: "table {key}" → row.
func pgRows(t *testing.T, pg *Postgres) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, table := range []string{"customers", "orders", "products"} {
		addRows(t, out, table, pg.SQL(t, "shop", "-c", "SELECT row_to_json(r)::text FROM "+table+" r"))
	}
	return out
}

// checkAgrees dumps the worker's input topics from the real broker with
// `cdcrecon tail` and runs `cdcrecon check` over the dumps with the
// worker's configuration: the offline verdict must be the SQL truth too.
func checkAgrees(t *testing.T, s *Stack, w *Worker, truth map[string]string) {
	t.Helper()
	var dumps []string
	for _, tb := range w.cfg.Tables {
		for _, topic := range []string{tb.Source.Topic, tb.Target.Topic} {
			f := filepath.Join(s.dir, topic+".jsonl")
			out, err := exec.Command(Binary(t), "tail", "--brokers", s.Kafka, "--topic", topic, "--from", "earliest", "--exit").Output()
			if err != nil {
				t.Fatalf("cdcrecon tail %s: %v", topic, err)
			}
			if err := os.WriteFile(f, out, 0o644); err != nil {
				t.Fatal(err)
			}
			dumps = append(dumps, f)
		}
	}
	cmd := exec.Command(Binary(t), append([]string{"check", "--config", w.Config}, dumps...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if code := cmd.ProcessState.ExitCode(); code != 0 && code != 1 {
		t.Fatalf("cdcrecon check: %v\n%s", err, stderr.String())
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		var d struct {
			Table   string
			Key     json.RawMessage
			Kind    string
			Columns []string
		}
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Fatalf("check output %q: %v", line, err)
		}
		got[d.Table+" "+string(d.Key)] = DriftKind(d.Kind, d.Columns)
	}
	report(t, "check over the tail dumps", truth, got)
}

// TestPostgresPairAvro: the PostgreSQL pair with Debezium's output in Avro
// through Apicurio Registry (Apicurio's converter, in Confluent's wire
// format with the registry's content ids), read by the worker through the
// registry's Confluent-compatible API, where it also registers its own
// outputs' schemas. The drift must equal the SQL comparison, as in JSON.
func TestPostgresPairAvro(t *testing.T) {
	s := New(t)
	reg := s.StartRegistry()
	src, tgt := s.postgresPair(t)
	s.StartKafka()
	avro := func() map[string]string {
		m := map[string]string{}
		for _, side := range []string{"key", "value"} {
			for k, v := range map[string]string{
				"":                                   "io.apicurio.registry.utils.converter.AvroConverter",
				".apicurio.registry.url":             reg + "/apis/registry/v2",
				".apicurio.registry.auto-register":   "true",
				".apicurio.registry.find-latest":     "true",
				".apicurio.registry.as-confluent":    "true",
				".apicurio.registry.use-id":          "contentId",
				".apicurio.registry.headers.enabled": "false",
				".schemas.enable":                    "true",
			} {
				m[side+".converter"+k] = v
			}
		}
		return m
	}
	s.StartConnect(s.pgConnectors(t, src, tgt, avro))
	w := s.StartWorkerRegistry(t, filepath.Join(compose, "cdcrecon.yaml"), reg+"/apis/ccompat/v7")

	src.SQL(t, "shop", "-c", "INSERT INTO orders (id, customer_id, total, status) VALUES (4, 1, 42.00, 'new')")
	eventuallySQL(t, tgt, "replication of the source's writes", "SELECT count(*) = 1 FROM orders WHERE id = 4")
	for _, sql := range []string{
		"UPDATE orders SET total = 0 WHERE id = 2",
		"DELETE FROM orders WHERE id = 4",
		"INSERT INTO customers VALUES (99, 'ghost', NULL)",
	} {
		tgt.SQL(t, "shop", "-c", sql)
	}
	truth := sqlDrift(t, src, tgt)
	if len(truth) != 3 {
		t.Fatalf("the SQL comparison finds %v; the scenario tampers with 3 rows", truth)
	}
	got := w.AwaitDrift(t, truth, 2*time.Minute)
	report(t, "postgres in Avro", truth, got)
	resp, err := http.Get(reg + "/apis/ccompat/v7/subjects")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var subjects []string
	_ = json.NewDecoder(resp.Body).Decode(&subjects)
	t.Logf("subjects in the registry: %v", subjects)
	for _, want := range []string{w.cfg.Topics.Drift + "-value", "src.public.orders-value"} {
		if !slices.Contains(subjects, want) {
			t.Errorf("subject %s is not in the registry: %v", want, subjects)
		}
	}
}

// mariadbPair starts the MariaDB pair: the target a replica of the
// source, the schema and rows created on the source and replicated, then
// the replica's own types (target.sql).
func (s *Stack) mariadbPair(t *testing.T) (src, tgt *MariaDB) {
	t.Helper()
	dir := filepath.Join(Dir(), "mariadb")
	src, tgt = s.StartMariaDB("msource", 1), s.StartMariaDB("mtarget", 2)
	tgt.ReplicateFrom(t, src)
	for _, f := range []struct {
		m    *MariaDB
		file string
	}{{src, "schema.sql"}, {tgt, "target.sql"}} {
		sql, err := os.ReadFile(filepath.Join(dir, f.file))
		if err != nil {
			t.Fatal(err)
		}
		if f.m == tgt {
			eventuallyMaria(t, tgt, "the schema and rows replicated", "SELECT count(*) = 3 FROM shop.orders")
		}
		f.m.SQL(t, string(sql))
	}
	return src, tgt
}

// mariadbConnectors is the MariaDB pair's two connectors pointed at this
// stack's databases and broker.
func (s *Stack) mariadbConnectors(t *testing.T, src, tgt *MariaDB) map[string]Connector {
	t.Helper()
	connector := func(file string, m *MariaDB) Connector {
		return ReadConnector(t, filepath.Join(Dir(), "mariadb", file), map[string]string{"database.hostname": "127.0.0.1",
			"database.port": strconv.Itoa(m.Port), "schema.history.internal.kafka.bootstrap.servers": s.Kafka,
			"signal.kafka.bootstrap.servers": s.Kafka})
	}
	return map[string]Connector{"msource": connector("connector-source.json", src), "mtarget": connector("connector-target.json", tgt)}
}
