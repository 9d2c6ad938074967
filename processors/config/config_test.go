package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Each file in testdata/bad starts with "# want: " and the error it must
// produce (a prefix of the message is enough).
func TestBadConfigs(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*.yaml")
	if len(files) < 10 {
		t.Fatalf("only %d bad configs", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(string(b), "\n")
			want, ok := strings.CutPrefix(first, "# want: ")
			if !ok {
				t.Fatal("first line must be # want: <error>")
			}
			_, err = Parse(b, strings.TrimPrefix(f, "testdata/"))
			if err == nil {
				t.Fatalf("no error, want %q", want)
			}
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("error\n  %s\nwant it to contain\n  %s", err, want)
			}
		})
	}
}

func TestDesignExample(t *testing.T) {
	cfg, err := Load("testdata/good/design.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Window.Size != time.Minute || cfg.Window.Grace != 30*time.Second || cfg.Dedupe.Retention != 24*time.Hour {
		t.Errorf("window/dedupe = %+v %+v", cfg.Window, cfg.Dedupe)
	}
	if cfg.SchemaRegistry.URL != "http://localhost:8081" {
		t.Errorf("registry = %q", cfg.SchemaRegistry.URL)
	}
	tb := cfg.Tables[0]
	if tb.Name != "orders" || len(tb.Key) != 1 || tb.Key[0] != "id" || tb.Target.Rename["order_total"] != "total" {
		t.Errorf("table = %+v", tb)
	}
	if sd := tb.Target.SoftDelete; sd == nil || sd.Column != "is_deleted" || sd.Value != true {
		t.Errorf("soft delete = %+v", sd)
	}
	if n := tb.Normalize["price"]; n.Tolerance == nil || *n.Tolerance != 0.01 {
		t.Errorf("price = %+v", n)
	}
	if tb.Normalize["created_at"].Precision() != time.Millisecond || tb.Normalize["paid"].As != "bool" {
		t.Errorf("normalize = %+v", tb.Normalize)
	}
	// Defaults fill what the file leaves out.
	if cfg.Topics.Drift != "cdcrecon.drift" || cfg.Kafka.Partitions != 8 {
		t.Errorf("defaults = %+v %+v", cfg.Topics, cfg.Kafka)
	}
}

func TestErrorsNameEveryProblem(t *testing.T) {
	_, err := Parse([]byte(`
tables:
  - name: a
    source: {topic: x}
    target: {topic: x}
    normalize:
      b: {as: nope}
`), "c.yaml")
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`c.yaml:3: tables[0].key: table "a" has no key columns`,
		`c.yaml:5: tables[0].target.topic: topic "x" is already used by tables[0].source.topic`,
		`c.yaml:7: tables[0].normalize.b.as: unknown value "nope"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestOwnTopicsAreApart: the topics cdcrecon writes are neither a
// table's topic, nor a heartbeat topic, nor one another.
func TestOwnTopicsAreApart(t *testing.T) {
	_, err := Parse([]byte(`
topics: {drift: pg.public.orders, checksums: cdcrecon.compensation}
idle: {heartbeats: {source: [cdcrecon.dlq]}}
tables:
  - {name: orders, key: [id], source: {topic: pg.public.orders}, target: {topic: b}}
`), "own.yaml")
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`own.yaml:2: topics.checksums: topic "cdcrecon.compensation" is already used by topics.compensation`,
		`own.yaml:3: idle.heartbeats.source[0]: topic "cdcrecon.dlq" is topics.dlq, written by cdcrecon`,
		`own.yaml:5: tables[0].source.topic: topic "pg.public.orders" is already used by topics.drift`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestSecretsFromTheEnvironment: a set variable overrides the file's
// secret; SASL without a password anywhere is an error naming the field
// and the variable; a TLS certificate needs its key.
func TestSecretsFromTheEnvironment(t *testing.T) {
	const base = `
kafka: {sasl: {mechanism: SCRAM-SHA-512, username: u, password: from-file}}
schema_registry: {url: "https://registry.example", username: ru, password: rp}
tables:
  - {name: t, key: [id], source: {topic: a}, target: {topic: b}}
`
	t.Setenv(EnvKafkaPassword, "from-env")
	t.Setenv(EnvRegistryPassword, "")
	cfg, err := Parse([]byte(base), "c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Kafka.SASL.Password != "from-env" || cfg.SchemaRegistry.Password != "rp" {
		t.Errorf("passwords %q and %q: the set variable wins, the empty one does not", cfg.Kafka.SASL.Password, cfg.SchemaRegistry.Password)
	}
	t.Setenv(EnvKafkaPassword, "")
	_, err = Parse([]byte(strings.Replace(base, ", password: from-file", "", 1)), "c.yaml")
	if err == nil || !strings.Contains(err.Error(), "c.yaml:2: kafka.sasl") || !strings.Contains(err.Error(), EnvKafkaPassword) {
		t.Errorf("SASL without a password: %v", err)
	}
	_, err = Parse([]byte("kafka: {tls: {cert_file: c.pem}}\n"+base[strings.Index(base, "schema_registry"):]), "c.yaml")
	if err == nil || !strings.Contains(err.Error(), "kafka.tls: cert_file and key_file go together") {
		t.Errorf("a certificate without its key: %v", err)
	}
}
