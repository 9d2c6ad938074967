package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tcexec "github.com/testcontainers/testcontainers-go/exec"
	"github.com/testcontainers/testcontainers-go/modules/compose"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/pipeline/registry"
	"github.com/cdcrecon/cdcrecon/processors/config"
	"github.com/cdcrecon/cdcrecon/schemas"
)

// The scenario: writes to the source, the query that is true once the
// target has them, then tampering with the target behind replication's
// back. TestReplicationSQL runs the same statements on local clusters.
var (
	sourceWrites = []string{
		"INSERT INTO orders (id, customer_id, total, status) VALUES (4, 1, 42.00, 'new'), (5, 2, 7.25, 'new')",
		"UPDATE orders SET status = 'shipped', updated_at = now() WHERE id = 1",
	}
	replicated = "SELECT (SELECT count(*) FROM orders WHERE id IN (4, 5)) = 2 AND (SELECT status FROM orders WHERE id = 1) = 'shipped'"
	tampering  = []string{
		"UPDATE orders SET total = 0 WHERE id = 2",
		"DELETE FROM orders WHERE id = 4",
		"INSERT INTO customers VALUES (99, 'ghost', NULL)",
	}
)

// requireDocker skips the test, with the reason, when no Docker engine
// answers; with CDCRECON_E2E set (make e2e) it fails instead.
func requireDocker(t *testing.T) {
	t.Helper()
	p, err := testcontainers.ProviderDocker.GetProvider()
	if err == nil {
		defer p.Close()
		err = p.Health(context.Background())
	}
	if err == nil {
		return
	}
	if os.Getenv("CDCRECON_E2E") != "" {
		t.Fatalf("CDCRECON_E2E is set but no Docker engine answers: %v", err)
	}
	t.Skipf("no Docker engine answers (%v): the compose stack needs one; run `make e2e` where Docker runs. "+
		"TestComposeFile, TestDockerfileBuild and TestReplicationSQL check the stack without it", err)
}

// TestComposeEndToEnd brings docker-compose.yml up, writes to the source,
// tampers with the target behind replication's back, and requires from
// cdcrecon exactly the drift that tampering made, with the commands that
// repair it: a changed value, a row deleted from the target, a row the
// source never had.
func TestComposeEndToEnd(t *testing.T) {
	requireDocker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	stack, err := compose.NewDockerComposeWith(compose.WithStackFiles(filepath.Join(root, "docker-compose.yml")),
		compose.StackIdentifier("cdcrecon-e2e"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			logs(t, stack, "cdcrecon", "connectors", "replication")
		}
		if err := stack.Down(context.Background(), compose.RemoveOrphans(true), compose.RemoveVolumes(true)); err != nil {
			t.Errorf("compose down: %v", err)
		}
	})
	if err := stack.Up(ctx); err != nil {
		t.Fatalf("compose up: %v", err)
	}

	psql := func(db, sql string) string {
		t.Helper()
		c, err := stack.ServiceContainer(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		code, out, err := c.Exec(ctx, []string{"psql", "-U", "postgres", "-d", "shop", "-tA", "-v", "ON_ERROR_STOP=1", "-c", sql}, tcexec.Multiplexed())
		b, _ := io.ReadAll(out)
		if err != nil || code != 0 {
			t.Fatalf("%s: %s: exit %d %v: %s", db, sql, code, err, b)
		}
		return strings.TrimSpace(string(b))
	}
	eventually := func(what string, limit time.Duration, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(limit); !ok(); time.Sleep(time.Second) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %s", what, limit)
			}
		}
	}

	// Writes to the source reach the target by logical replication.
	for _, sql := range sourceWrites {
		psql("source", sql)
	}
	eventually("replication of the source's writes", time.Minute, func() bool { return psql("target", replicated) == "t" })
	for _, sql := range tampering {
		psql("target", sql)
	}

	cfg, err := config.Load(filepath.Join(root, "test/e2e/compose/cdcrecon.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		`orders {"id":2}`:     "value_mismatch total",
		`orders {"id":4}`:     "missing_in_target",
		`customers {"id":99}`: "extra_in_target",
	}
	wantActions := map[string]string{`orders {"id":2}`: "upsert", `orders {"id":4}`: "upsert", `customers {"id":99}`: "delete"}
	var drift map[string]string
	var comps map[string]*schemas.Compensation
	eventually("cdcrecon's drift and compensation records", 5*time.Minute, func() bool {
		drift, comps = readOutputs(t, ctx, cfg)
		return len(drift) >= len(want) && len(comps) >= len(wantActions)
	})
	for row, kind := range want {
		if drift[row] != kind {
			t.Errorf("drift of %s: %q, want %q", row, drift[row], kind)
		}
	}
	for row, kind := range drift {
		if _, ok := want[row]; !ok {
			t.Errorf("false drift: %s %s", row, kind)
		}
	}
	for row, action := range wantActions {
		c := comps[row]
		if c == nil || string(c.Action) != action {
			t.Errorf("compensation of %s: %+v, want %s", row, c, action)
			continue
		}
		if row == `orders {"id":2}` {
			// The repair restores the source's value.
			row, _ := json.Marshal(c.Row)
			if !strings.Contains(string(row), `"total":"99.99"`) && !strings.Contains(string(row), `"total":99.99`) {
				t.Errorf("compensation of %s: row %s, want the source's total 99.99", c.DriftID, row)
			}
		}
	}
}

// readOutputs reads cdcrecon's drift and compensation topics from the
// host: each open drift's row with its kind (and columns), each
// compensation by row.
func readOutputs(t *testing.T, ctx context.Context, cfg *config.Config) (map[string]string, map[string]*schemas.Compensation) {
	t.Helper()
	rc, err := registry.NewClient(config.SchemaRegistry{URL: "http://localhost:8081"})
	if err != nil {
		t.Fatal(err)
	}
	serde := registry.NewSerde(rc)
	cl, err := kgo.NewClient(kgo.SeedBrokers("localhost:29092"), kgo.ConsumeTopics(cfg.Topics.Drift, cfg.Topics.Compensation),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	drift, comps := map[string]string{}, map[string]*schemas.Compensation{}
	rowOf := func(table string, key schemas.Columns) string {
		k, _ := json.Marshal(key)
		return table + " " + string(k)
	}
	for {
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if fs.Empty() {
			return drift, comps
		}
		fs.EachRecord(func(r *kgo.Record) {
			rec, _, _, err := serde.Decode(ctx, r.Value)
			if err != nil {
				t.Errorf("%s offset %d: %v", r.Topic, r.Offset, err)
				return
			}
			switch v := rec.(type) {
			case *schemas.Drift:
				row := rowOf(v.Table, v.Key)
				if v.Status == schemas.Resolved {
					delete(drift, row)
					return
				}
				kind := string(v.Kind)
				if len(v.Columns) > 0 {
					cols := slices.Clone(v.Columns)
					slices.Sort(cols)
					kind += " " + strings.Join(cols, ",")
				}
				drift[row] = kind
			case *schemas.Compensation:
				comps[rowOf(v.Table, v.Key)] = v
			}
		})
	}
}

// logs prints the last lines of services' logs, for a failed run.
func logs(t *testing.T, stack *compose.DockerCompose, services ...string) {
	for _, s := range services {
		c, err := stack.ServiceContainer(context.Background(), s)
		if err != nil {
			continue
		}
		r, err := c.Logs(context.Background())
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(r)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		t.Logf("--- %s (last lines)\n%s", s, strings.Join(lines[max(0, len(lines)-40):], "\n"))
	}
	fmt.Fprintln(os.Stderr)
}
