// Package e2e is the docker-compose stack: cdcrecon against a PostgreSQL
// source, its logical replica and real Debezium connectors. Where no
// Docker engine runs, the stack is checked without one: the compose file
// against the Compose specification (compose-go, as docker compose loads
// it) and against the files it mounts, the Dockerfile's build outside
// Docker, and the databases' SQL and replication on local PostgreSQL
// binaries. TestComposeEndToEnd runs the stack itself (make e2e).
package e2e

import (
	"bufio"
	"context"
	"debug/elf"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/cdcrecon/cdcrecon/processors/config"
)

// root is the repository's root, where docker-compose.yml is.
const root = "../.."

// loadCompose loads docker-compose.yml as docker compose does:
// interpolated, validated against the Compose specification, with paths
// resolved.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(abs, "docker-compose.yml")},
		cli.WithWorkingDirectory(abs), cli.WithName("cdcrecon"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := cli.ProjectFromOptions(context.Background(), opts)
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return p
}

// connector is a Debezium connector's registered configuration.
type connector map[string]string

func loadConnector(t *testing.T, file string) connector {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var c connector
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return c
}

// TestComposeFile checks the stack as the issue describes it and as the
// files it mounts expect it: every mount exists, every dependency is a
// service, the connectors reach the databases and name the topics and
// heartbeats cdcrecon's configuration reads, and cdcrecon's addresses are
// the services'.
func TestComposeFile(t *testing.T) {
	p := loadCompose(t)
	names := p.ServiceNames()
	slices.Sort(names)
	want := []string{"cdcrecon", "connect", "connectors", "kafka", "replication", "schema-registry", "source", "target"}
	if !slices.Equal(names, want) {
		t.Fatalf("services %v, want %v", names, want)
	}
	svc := func(name string) types.ServiceConfig {
		s, err := p.GetService(name)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	env := func(s types.ServiceConfig, k string) string {
		if v := s.Environment[k]; v != nil {
			return *v
		}
		return ""
	}

	// Kafka runs in KRaft mode: it is its own controller, no ZooKeeper.
	kafka := svc("kafka")
	if roles := env(kafka, "KAFKA_PROCESS_ROLES"); !strings.Contains(roles, "controller") || !strings.Contains(roles, "broker") {
		t.Errorf("kafka: KAFKA_PROCESS_ROLES %q, want broker and controller (KRaft)", roles)
	}
	for _, s := range p.Services {
		if strings.Contains(s.Image, "zookeeper") {
			t.Errorf("service %s runs ZooKeeper", s.Name)
		}
		for dep := range s.DependsOn {
			if _, err := p.GetService(dep); err != nil {
				t.Errorf("service %s depends on %s: %v", s.Name, dep, err)
			}
		}
		// Every file or directory a service mounts is in the repository.
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("service %s mounts %s: %v", s.Name, v.Source, err)
			}
		}
	}

	// Both databases decode logically (Debezium needs it on each).
	for _, db := range []string{"source", "target"} {
		if cmd := strings.Join(svc(db).Command, " "); !strings.Contains(cmd, "wal_level=logical") {
			t.Errorf("%s: command %q lacks wal_level=logical", db, cmd)
		}
	}
	if c := svc("connectors").DependsOn["replication"]; c.Condition != types.ServiceConditionCompletedSuccessfully {
		t.Errorf("connectors: depends on replication with %q, want it completed", c.Condition)
	}

	// cdcrecon is built from the Dockerfile and reads the mounted file.
	cd := svc("cdcrecon")
	if cd.Build == nil || cd.Build.Dockerfile != "Dockerfile" {
		t.Fatalf("cdcrecon: build %+v, want the repository's Dockerfile", cd.Build)
	}
	if _, err := os.Stat(filepath.Join(cd.Build.Context, cd.Build.Dockerfile)); err != nil {
		t.Errorf("cdcrecon: %v", err)
	}
	var cfgFile string
	for _, v := range cd.Volumes {
		if v.Target == "/etc/cdcrecon/config.yaml" {
			cfgFile = v.Source
		}
	}
	if cfgFile == "" || !slices.Contains(cd.Command, "/etc/cdcrecon/config.yaml") {
		t.Fatalf("cdcrecon: its command %v and mounts do not agree on /etc/cdcrecon/config.yaml", cd.Command)
	}
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatalf("cdcrecon's configuration: %v", err)
	}
	for _, b := range cfg.Kafka.Brokers {
		host, port, _ := net.SplitHostPort(b)
		if _, err := p.GetService(host); err != nil || port != "9092" {
			t.Errorf("cdcrecon.yaml: broker %s is not the kafka service's internal listener", b)
		}
	}
	if !strings.HasPrefix(cfg.SchemaRegistry.URL, "http://schema-registry:8081") {
		t.Errorf("cdcrecon.yaml: schema_registry.url %q is not the schema-registry service", cfg.SchemaRegistry.URL)
	}
	_, metricsPort, _ := net.SplitHostPort(cfg.HTTP.Listen)
	published := false
	for _, port := range cd.Ports {
		published = published || port.Published == metricsPort
	}
	if !published {
		t.Errorf("cdcrecon: metrics port %s (http.listen) is not published", metricsPort)
	}

	// Each side's connector writes the topics and heartbeats cdcrecon
	// reads, from the database its hostname names.
	for _, side := range []struct {
		file, db   string
		heartbeats []string
		topics     func(config.Table) string
	}{
		{"connector-source.json", "source", cfg.Idle.Heartbeats.Source, func(t config.Table) string { return t.Source.Topic }},
		{"connector-target.json", "target", cfg.Idle.Heartbeats.Target, func(t config.Table) string { return t.Target.Topic }},
	} {
		c := loadConnector(t, filepath.Join(root, "test/e2e/compose", side.file))
		if c["database.hostname"] != side.db {
			t.Errorf("%s: database.hostname %q, want %s", side.file, c["database.hostname"], side.db)
		}
		if c["connector.class"] != "io.debezium.connector.postgresql.PostgresConnector" || c["plugin.name"] != "pgoutput" {
			t.Errorf("%s: want Debezium's PostgreSQL connector on pgoutput", side.file)
		}
		prefix := c["topic.prefix"]
		if want := []string{"__debezium-heartbeat." + prefix}; !slices.Equal(side.heartbeats, want) {
			t.Errorf("cdcrecon.yaml: %s heartbeats %v, want %v", side.db, side.heartbeats, want)
		}
		if c["heartbeat.interval.ms"] == "" {
			t.Errorf("%s: no heartbeat.interval.ms: an idle side would never move", side.file)
		}
		included := strings.Split(c["table.include.list"], ",")
		for _, tab := range cfg.Tables {
			topic := side.topics(tab)
			table := strings.TrimPrefix(topic, prefix+".")
			if table == topic || !slices.Contains(included, table) {
				t.Errorf("cdcrecon.yaml: table %s reads %s, which connector %s (prefix %s, tables %v) does not write",
					tab.Name, topic, side.file, prefix, included)
			}
		}
	}
}

// TestScripts checks the one-shot jobs' shell scripts parse.
func TestScripts(t *testing.T) {
	for _, s := range []string{"register.sh", "subscribe.sh"} {
		if out, err := exec.Command("sh", "-n", filepath.Join(root, "test/e2e/compose", s)).CombinedOutput(); err != nil {
			t.Errorf("%s: %v: %s", s, err, out)
		}
	}
}

// TestDockerfileBuild runs the Dockerfile's `go build` line as it is
// written, outside Docker, and checks the binary is static (the runtime
// image has no libc) and runs.
func TestDockerfileBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	f, err := os.Open(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var build string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "RUN ") && strings.Contains(line, "go build") {
			build = strings.TrimPrefix(line, "RUN ")
		}
	}
	if build == "" || !strings.Contains(build, "-o /out/cdcrecon") || !strings.Contains(build, "CGO_ENABLED=0") {
		t.Fatalf("Dockerfile: no static `go build ... -o /out/cdcrecon` line (found %q)", build)
	}
	out := t.TempDir()
	cmd := exec.Command("sh", "-c", strings.ReplaceAll(build, "/out/", out+"/"))
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", build, err, b)
	}
	bin := filepath.Join(out, "cdcrecon")
	e, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, prog := range e.Progs {
		if prog.Type == elf.PT_INTERP {
			t.Errorf("%s is dynamically linked: distroless/static has no loader", bin)
		}
	}
	help, err := exec.Command(bin, "run", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(help), "--config") {
		t.Errorf("cdcrecon run --help: %v\n%s", err, help)
	}
}
