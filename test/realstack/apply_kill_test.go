package realstack

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/pipeline/broker"
	"github.com/cdcrecon/cdcrecon/pipeline/registry"
	"github.com/cdcrecon/cdcrecon/processors/canon"
	"github.com/cdcrecon/cdcrecon/processors/config"
	"github.com/cdcrecon/cdcrecon/schemas"
)

// The kill test's commands: rows 1..n of accounts drifted (balance 0,
// status 'tampered' on the target), each with its open drift record and
// an upsert back to (balance id.50, status 'ok'). A trigger on the target
// logs every write to a row, so "applied once" is the database's word,
// not apply's.
const killRows = 120

const applyKillConfig = `kafka: {brokers: [%[1]s], group: kill}
topics: {drift: kill.drift, compensation: kill.compensation, audit: %[2]s}
apply:
  group: %[3]s
  concurrency: 4
  rate: %[5]d
  database: {driver: postgres, host: 127.0.0.1, port: %[4]d, user: postgres, name: shop}
tables:
  - name: accounts
    key: [id]
    source: {topic: src.public.accounts}
    target: {topic: tgt.public.accounts}
`

func digest(v canon.Value) string {
	var h canon.Hasher
	return fmt.Sprintf("%016x", h.Value(v))
}

func column(name string, v canon.Value) schemas.Column {
	return schemas.Column{Name: name, Value: string(canon.AppendJSON(nil, v)), Digest: digest(v)}
}

// seedAccounts starts a PostgreSQL target with n drifted accounts (and the
// write-logging trigger) and an embedded broker holding their drift
// records and commands.
func seedAccounts(t testing.TB, s *Stack, n int) (*Postgres, *broker.Broker) {
	t.Helper()
	pg := s.StartPostgres("target")
	pg.SQL(t, "postgres", "-c", "CREATE DATABASE shop")
	pg.SQL(t, "shop", "-c", `CREATE TABLE accounts (id integer PRIMARY KEY, balance numeric(10,2) NOT NULL, status text NOT NULL);
		CREATE TABLE writes (id integer NOT NULL, op text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
		CREATE FUNCTION log_write() RETURNS trigger AS $$ BEGIN INSERT INTO writes (id, op) VALUES (coalesce(NEW.id, OLD.id), TG_OP); RETURN NEW; END $$ LANGUAGE plpgsql;
		INSERT INTO accounts SELECT g, 0, 'tampered' FROM generate_series(1, `+strconv.Itoa(n)+`) g;
		CREATE TRIGGER log_write AFTER INSERT OR UPDATE OR DELETE ON accounts FOR EACH ROW EXECUTE FUNCTION log_write();`)

	b, err := broker.Start(broker.Config{Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	serde := registry.NewSerde(nil)
	var recs []*kgo.Record
	for id := 1; id <= n; id++ {
		key := schemas.Columns{column("id", canon.IntValue(int64(id)))}
		d := &schemas.Drift{ID: fmt.Sprintf("d-%d", id), Table: "accounts", Key: key, Kind: schemas.ValueMismatch, Status: schemas.Open,
			Columns:  []string{"balance", "status"},
			Source:   schemas.Columns{column("balance", canon.DecimalValue(bigInt(int64(id)*100+50), 2)), column("status", canon.StringValue("ok"))},
			Target:   schemas.Columns{column("balance", canon.IntValue(0)), column("status", canon.StringValue("tampered"))},
			OpenedAt: time.UnixMilli(1_700_000_000_000), Decision: schemas.Compensate}
		c := &schemas.Compensation{ID: fmt.Sprintf("c-%d", id), DriftID: d.ID, Table: "accounts", TargetTopic: "tgt.public.accounts",
			Action: schemas.Upsert, Key: key, Row: d.Source, DriftOpenedAt: d.OpenedAt}
		k := []byte(fmt.Sprintf(`{"id":%d}`, id))
		for topic, r := range map[string]schemas.Record{"kill.drift": d, "kill.compensation": c} {
			v, err := serde.Encode(ctx, nil, topic, r)
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, &kgo.Record{Topic: topic, Key: k, Value: v})
		}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	return pg, b
}

func TestApplyKilledMidBatch(t *testing.T) {
	s := New(t)
	pg, b := seedAccounts(t, s, killRows)
	cfg := s.write("apply-kill.yaml", fmt.Sprintf(applyKillConfig, b.Addr(), "kill.audit", "kill-apply", pg.Port, 40))
	// At 40 commands a second the run takes 3 s: killed after one, it has
	// applied some, and some of a batch it has not committed.
	first := exec.Command(Binary(t), "apply", "--config", cfg, "--instance-id", "first", "--log-level", "info")
	first.SysProcAttr = childAttr()
	log := filepath.Join(s.dir, "apply-first.log")
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	first.Stdout, first.Stderr = f, f
	s.logs = append(s.logs, log)
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	watch(first)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if n, _ := strconv.Atoi(pg.SQL(t, "shop", "-c", "SELECT count(*) FROM writes")); n >= 30 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("apply wrote fewer than 30 rows in a minute")
		}
	}
	kill(first)
	before, _ := strconv.Atoi(pg.SQL(t, "shop", "-c", "SELECT count(*) FROM writes"))
	if before >= killRows {
		t.Fatalf("apply had written all %d rows before the kill: the test did not kill it mid-run", before)
	}
	out, err := runBounded(t, 3*time.Minute, "apply", "--config", cfg, "--instance-id", "second", "--exit")
	if err != nil {
		t.Fatalf("apply after the kill: %v\n%s", err, out)
	}
	t.Logf("killed after %d writes; the second run: %s", before, lastLine(out))

	// The database's word: each row written exactly once, all repaired.
	if dup := pg.SQL(t, "shop", "-c", "SELECT string_agg(id::text, ',') FROM (SELECT id FROM writes GROUP BY id HAVING count(*) > 1) x"); dup != "" {
		t.Errorf("rows written more than once: %s", dup)
	}
	if n := pg.SQL(t, "shop", "-c", "SELECT count(DISTINCT id) FROM writes"); n != strconv.Itoa(killRows) {
		t.Errorf("%s rows written, want %d", n, killRows)
	}
	if bad := pg.SQL(t, "shop", "-c", "SELECT count(*) FROM accounts WHERE balance <> id + 0.5 OR status <> 'ok'"); bad != "0" {
		t.Errorf("%s rows not repaired", bad)
	}
	// Every command has an audit record: applied, or — the batch the kill
	// cut short — found already as it would make it.
	audits := readAudits(t, b.Addr(), "kill.audit")
	applied := map[string]int{}
	for _, a := range audits {
		switch {
		case a.Outcome == schemas.Applied:
			applied[a.CompensationID]++
		case a.Outcome == schemas.Superseded && strings.Contains(a.Reason, "already as the command would make it"):
		default:
			t.Errorf("%s: %s: %s", a.CompensationID, a.Outcome, a.Reason)
		}
	}
	seen := map[string]bool{}
	for _, a := range audits {
		seen[a.CompensationID] = true
	}
	for id := 1; id <= killRows; id++ {
		c := fmt.Sprintf("c-%d", id)
		if !seen[c] {
			t.Errorf("%s: no audit record", c)
		}
		if applied[c] > 1 {
			t.Errorf("%s: %d applied records", c, applied[c])
		}
	}
	// Outcomes are published as they are decided: only a command the kill
	// caught between its commit and its record's acknowledgement (at most
	// one per concurrent key) shows as found already applied instead.
	if n := len(applied); n < killRows-4 {
		t.Errorf("%d commands have an applied record, want at least %d of the %d written", n, killRows-4, killRows)
	}
	t.Logf("%d of %d commands recorded applied", len(applied), killRows)

	// Replaying the whole topic under a new group applies nothing: every
	// row has moved on from the drift's record of it.
	replay := s.write("apply-replay.yaml", fmt.Sprintf(applyKillConfig, b.Addr(), "kill.audit-replay", "kill-replay", pg.Port, 40))
	out, err = runBounded(t, 3*time.Minute, "apply", "--config", replay, "--exit")
	if err != nil {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	if want := fmt.Sprintf("accounts: 0 applied, %d superseded, 0 skipped, 0 failed", killRows); !strings.Contains(string(out), want) {
		t.Errorf("replay from the start: want %q, got\n%s", want, lastLine(out))
	}
	if n := pg.SQL(t, "shop", "-c", "SELECT count(*) FROM writes"); n != strconv.Itoa(killRows) {
		t.Errorf("after the replay %s writes, want %d", n, killRows)
	}
}

// runBounded runs the binary for at most limit; past it, SIGQUIT makes
// the process print its goroutines, which the error then shows.
func runBounded(t testing.TB, limit time.Duration, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(Binary(t), args...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return buf.Bytes(), err
	case <-time.After(limit):
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		<-done
		return buf.Bytes(), fmt.Errorf("still running after %s: stopped with SIGQUIT", limit)
	}
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// readAudits reads an audit topic from its start to its end.
func readAudits(t *testing.T, addr, topic string) []*schemas.Audit {
	t.Helper()
	w := &Worker{kafka: addr, cfg: mustDefault()}
	var out []*schemas.Audit
	w.read(t, topic, func(r schemas.Record) {
		if a, ok := r.(*schemas.Audit); ok {
			out = append(out, a)
		}
	})
	return out
}

func bigInt(n int64) *big.Int { return big.NewInt(n) }

func mustDefault() *config.Config {
	c := config.Default()
	return &c
}

// BenchmarkApply measures cdcrecon apply repairing benchRows rows of a
// PostgreSQL target — each a locked read, compare-and-set, write and audit
// record, 4 at a time, the process's start and the drift topic's reading
// included — against a baseline in the same run: the same UPDATEs, each
// in its own transaction, from 4 connections of the same driver.
func BenchmarkApply(b *testing.B) {
	const benchRows = 1000
	for range b.N {
		s := New(b)
		pg, br := seedAccounts(b, s, benchRows)
		cfg := s.write("apply-bench.yaml", fmt.Sprintf(applyKillConfig, br.Addr(), "kill.audit", "bench", pg.Port, 1000000))
		cmd := exec.Command(Binary(b), "apply", "--config", cfg, "--exit")
		start := time.Now()
		out, err := cmd.CombinedOutput()
		took := time.Since(start)
		if want := fmt.Sprintf("accounts: %d applied", benchRows); err != nil || !strings.Contains(string(out), want) {
			b.Fatalf("apply: %v; want %q in\n%s", err, want, lastLine(out))
		}
		pg.SQL(b, "shop", "-c", "UPDATE accounts SET balance = 0, status = 'tampered'")
		db, err := sql.Open("pgx", fmt.Sprintf("postgres://postgres@127.0.0.1:%d/shop", pg.Port))
		if err != nil {
			b.Fatal(err)
		}
		ids := make(chan int, benchRows)
		for id := 1; id <= benchRows; id++ {
			ids <- id
		}
		close(ids)
		start = time.Now()
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for id := range ids {
					tx, err := db.Begin()
					if err == nil {
						_, err = tx.Exec("UPDATE accounts SET balance = $1::text::numeric(10,2), status = $2::text WHERE id = $3::text::integer",
							fmt.Sprintf("%d.50", id), "ok", strconv.Itoa(id))
					}
					if err == nil {
						err = tx.Commit()
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		base := time.Since(start)
		db.Close()
		b.ReportMetric(benchRows/took.Seconds(), "commands/s")
		b.ReportMetric(benchRows/base.Seconds(), "baseline-updates/s")
		b.ReportMetric(took.Seconds(), "apply-s")
	}
}
