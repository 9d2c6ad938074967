// Package realstack starts and stops the real components the end-to-end
// suite runs against, as local processes on loopback: an Apache Kafka
// broker in KRaft mode and Kafka Connect with the Debezium connectors,
// from the jars test/realstack/pom.xml resolves into lib/, and PostgreSQL
// clusters from the machine's binaries. It waits on each by its own
// protocol, keeps the logs of a failed test, and tears everything down
// when the test ends, failed or not.
package realstack

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Dir is this package's directory: the pom.xml and lib/.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// Required reports whether a missing component fails the test instead of
// skipping it (make e2e-local sets CDCRECON_REALSTACK=required).
func Required() bool { return os.Getenv("CDCRECON_REALSTACK") == "required" }

// skip skips the test with the reason, or fails it when the suite is
// required.
func skip(t testing.TB, format string, args ...any) {
	t.Helper()
	if Required() {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

// Stack is a running set of components. Every field is set by the Start
// function that started that component.
type Stack struct {
	t   testing.TB
	dir string
	lib string

	// Kafka is the broker's bootstrap address.
	Kafka string
	// Connect is Kafka Connect's REST base URL.
	Connect string

	logs []string

	kafkaProps string
	kafkaCmd   *exec.Cmd
	connectLib string
	// OffsetFlush is how often Connect stores its connectors' offsets
	// (offset.flush.interval.ms); what they sent since is sent again
	// after Connect is killed. Default 1s; set before StartConnect.
	OffsetFlush time.Duration
	connectArgs []string
	connectors  map[string]Connector
	connectCmd  *exec.Cmd
}

// KillConnect kills Kafka Connect with SIGKILL and starts it again on its
// offsets file: its connectors resume from their last flushed offsets,
// sending again what they had sent since.
func (s *Stack) KillConnect() {
	s.t.Helper()
	kill(s.connectCmd)
	s.startConnect()
}

// RestartKafka stops the broker (SIGTERM, a clean shutdown), waits
// downFor, and starts it again on its log.
func (s *Stack) RestartKafka(downFor time.Duration) {
	s.t.Helper()
	_ = syscall.Kill(-s.kafkaCmd.Process.Pid, syscall.SIGTERM)
	for deadline := time.Now().Add(60 * time.Second); !exited(s.kafkaCmd) && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	kill(s.kafkaCmd)
	time.Sleep(downFor)
	s.startKafka()
}

// New prepares a stack in a temporary directory: the jars must have been
// resolved (mvn -f test/realstack/pom.xml dependency:copy-dependencies)
// and Java must be on the PATH, else the test skips saying so.
func New(t testing.TB) *Stack {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a Kafka broker, Kafka Connect and databases")
	}
	if _, err := exec.LookPath("java"); err != nil {
		skip(t, "java is not installed: %v", err)
	}
	lib := filepath.Join(Dir(), "lib")
	broker, _ := filepath.Glob(filepath.Join(lib, "broker", "kafka_2.13-*.jar"))
	connect, _ := filepath.Glob(filepath.Join(lib, "connect", "connect-runtime-*.jar"))
	if len(broker) == 0 || len(connect) == 0 {
		skip(t, "the real stack's jars are not resolved: run mvn -B -q -f %s dependency:copy-dependencies", filepath.Join(Dir(), "pom.xml"))
	}
	dir, err := os.MkdirTemp("", "cdcrecon-realstack-")
	if err != nil {
		t.Fatal(err)
	}
	// The PostgreSQL clusters run as nobody under root: let them in.
	_ = os.Chmod(dir, 0o755)
	s := &Stack{t: t, dir: dir, lib: lib}
	t.Cleanup(func() {
		if t.Failed() {
			s.dumpLogs()
			t.Logf("real stack directory kept: %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	return s
}

// dumpLogs prints the end of every component's log.
func (s *Stack) dumpLogs() {
	for _, l := range s.logs {
		b, _ := os.ReadFile(l)
		if len(b) > 8000 {
			b = b[len(b)-8000:]
		}
		s.t.Logf("--- %s (end)\n%s", l, b)
	}
}

// FreePort returns a free TCP port on loopback.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// java starts a JVM on the stack's classpath, its output in a log named
// after it; it is killed when the test ends.
func (s *Stack) java(name, classpath, heap string, args ...string) *exec.Cmd {
	s.t.Helper()
	all := append([]string{"-Xms128m", "-Xmx" + heap, "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-Dlog4j2.configurationFile=" + filepath.Join(s.dir, "log4j2.properties"),
		"-cp", filepath.Join(s.lib, classpath, "*")}, args...)
	cmd := exec.Command("java", all...)
	s.start(cmd, filepath.Join(s.dir, name+".log"))
	return cmd
}

// childAttr puts a child in a process group of its own (kill ends its
// children too) and has the kernel kill it if this process dies first: an
// interrupted test leaves nothing running.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// start starts cmd with its output in the log file (created, or appended
// to), as a watched child that the test's end kills.
func (s *Stack) start(cmd *exec.Cmd, log string) {
	s.t.Helper()
	f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	defer f.Close()
	if !slices.Contains(s.logs, log) {
		s.logs = append(s.logs, log)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = childAttr()
	}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("starting %s: %v", cmd.Path, err)
	}
	watch(cmd)
	s.t.Cleanup(func() { kill(cmd) })
}

// started holds, for every child started, a channel closed once it has
// exited (its Wait returned).
var started sync.Map

// watch waits for a started child in the background; see kill and exited.
func watch(cmd *exec.Cmd) {
	done := make(chan struct{})
	started.Store(cmd, done)
	go func() { _ = cmd.Wait(); close(done) }()
}

// exited reports whether a watched child has exited.
func exited(cmd *exec.Cmd) bool {
	v, ok := started.Load(cmd)
	if !ok {
		return false
	}
	select {
	case <-v.(chan struct{}):
		return true
	default:
		return false
	}
}

// kill ends a watched child and its children and waits for it.
func kill(cmd *exec.Cmd) {
	v, ok := started.Load(cmd)
	if !ok || cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-v.(chan struct{})
}

func (s *Stack) write(name, content string) string {
	s.t.Helper()
	p := filepath.Join(s.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		s.t.Fatal(err)
	}
	return p
}

const log4j = `status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = OUT
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
logger.connect.name = org.apache.kafka.connect.runtime.Connect
logger.connect.level = INFO
logger.dbz.name = io.debezium
logger.dbz.level = INFO
`

// StartKafka formats a single-node KRaft log and starts the broker on a
// free loopback port, then waits until it answers a metadata request.
// Group session timeouts down to 1 s are allowed, records of any age kept.
func (s *Stack) StartKafka() {
	s.t.Helper()
	s.write("log4j2.properties", log4j)
	port, ctrl := FreePort(s.t), FreePort(s.t)
	s.Kafka = fmt.Sprintf("127.0.0.1:%d", port)
	props := s.write("server.properties", fmt.Sprintf(`process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:%[2]d
listeners=PLAINTEXT://127.0.0.1:%[1]d,CONTROLLER://127.0.0.1:%[2]d
advertised.listeners=PLAINTEXT://127.0.0.1:%[1]d,CONTROLLER://127.0.0.1:%[2]d
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=%[3]s
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
log.retention.ms=-1
`, port, ctrl, filepath.Join(s.dir, "kafka-data")))
	id := strings.TrimSpace(s.run("kafka-storage", "kafka.tools.StorageTool", "random-uuid"))
	s.run("kafka-storage", "kafka.tools.StorageTool", "format", "--standalone", "-t", id, "-c", props)
	s.kafkaProps = props
	s.startKafka()
}

// startKafka starts the broker on its formatted log and waits for it.
func (s *Stack) startKafka() {
	s.t.Helper()
	s.kafkaCmd = s.java("kafka", "broker", "512m", "kafka.Kafka", s.kafkaProps)
	s.waitFor("the Kafka broker answering metadata", 90*time.Second, func() error {
		cl, err := kgo.NewClient(kgo.SeedBrokers(s.Kafka))
		if err != nil {
			return err
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err = kadm.NewClient(cl).ListBrokers(ctx)
		return err
	})
}

// run runs a Java main to its end and returns its output.
func (s *Stack) run(name, main string, args ...string) string {
	s.t.Helper()
	all := append([]string{"-Xmx256m", "-Dlog4j2.configurationFile=" + filepath.Join(s.dir, "log4j2.properties"),
		"-cp", filepath.Join(s.lib, "broker", "*"), main}, args...)
	out, err := exec.Command("java", all...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// waitFor polls ready until it returns nil or the timeout passes.
func (s *Stack) waitFor(what string, timeout time.Duration, ready func() error) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := ready()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Connector is a connector's configuration, as the compose stack's
// connector-*.json files hold it.
type Connector map[string]string

// ReadConnector reads a connector file and sets the values of set on it.
func ReadConnector(t testing.TB, file string, set map[string]string) Connector {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var c Connector
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	for k, v := range set {
		c[k] = v
	}
	return c
}

// StartConnect starts Kafka Connect standalone on the broker with the
// connectors (by name), then waits until each and its task are RUNNING.
func (s *Stack) StartConnect(connectors map[string]Connector) {
	s.t.Helper()
	s.startConnectOn("connect", connectors)
}

// StartMariaDBConnect starts Kafka Connect 3.7 with the Debezium 2.6
// MySQL connector, the one served here that captures MariaDB (with
// connector.adapter=mariadb), from lib/connect-mariadb.
func (s *Stack) StartMariaDBConnect(connectors map[string]Connector) {
	s.t.Helper()
	if m, _ := filepath.Glob(filepath.Join(s.lib, "connect-mariadb", "debezium-connector-mysql-*.jar")); len(m) == 0 {
		skip(s.t, "no jars in %s: run make realstack-jars", filepath.Join(s.lib, "connect-mariadb"))
	}
	s.startConnectOn("connect-mariadb", connectors)
}

func (s *Stack) startConnectOn(lib string, connectors map[string]Connector) {
	s.t.Helper()
	s.connectLib = lib
	port := FreePort(s.t)
	s.Connect = fmt.Sprintf("http://127.0.0.1:%d", port)
	args := []string{"org.apache.kafka.connect.cli.ConnectStandalone", s.write("connect.properties", fmt.Sprintf(`bootstrap.servers=%s
listeners=http://127.0.0.1:%d
key.converter=org.apache.kafka.connect.json.JsonConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
key.converter.schemas.enable=true
value.converter.schemas.enable=true
offset.storage.file.filename=%s
offset.flush.interval.ms=%d
plugin.discovery=only_scan
`, s.Kafka, port, filepath.Join(s.dir, "connect.offsets"), cmp.Or(s.OffsetFlush, time.Second).Milliseconds()))}
	for name, c := range connectors {
		c["name"] = name
		b, _ := json.Marshal(c)
		args = append(args, s.write("connector-"+name+".json", string(b)))
	}
	s.connectArgs, s.connectors = args, connectors
	s.createSignalTopics()
	s.startConnect()
}

// createSignalTopics creates the connectors' Kafka signal topics, one
// partition each as Debezium requires, before Connect starts: a signal
// channel that starts on a missing topic sees it only at its next
// metadata refresh.
func (s *Stack) createSignalTopics() {
	s.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.Kafka))
	if err != nil {
		s.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range s.connectors {
		if topic := c["signal.kafka.topic"]; topic != "" {
			resp, err := kadm.NewClient(cl).CreateTopic(ctx, 1, -1, nil, topic)
			if err == nil && resp.Err != nil && !errors.Is(resp.Err, kerr.TopicAlreadyExists) {
				err = resp.Err
			}
			if err != nil {
				s.t.Fatalf("creating signal topic %s: %v", topic, err)
			}
		}
	}
}

// startConnect starts Connect and waits for its connectors.
func (s *Stack) startConnect() {
	s.t.Helper()
	s.connectCmd = s.java("connect", s.connectLib, "768m", s.connectArgs...)
	for name := range s.connectors {
		s.waitFor("connector "+name+" RUNNING", 180*time.Second, func() error { return s.connectorRunning(name) })
	}
}

func (s *Stack) connectorRunning(name string) error {
	if exited(s.connectCmd) {
		s.t.Fatalf("Kafka Connect exited before connector %s ran (its log follows at the end)", name)
	}
	resp, err := http.Get(s.Connect + "/connectors/" + name + "/status")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var st struct {
		Connector struct{ State, Trace string }
		Tasks     []struct{ State, Trace string }
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &st) != nil {
		return fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	if st.Connector.State != "RUNNING" || len(st.Tasks) == 0 || st.Tasks[0].State != "RUNNING" {
		if len(st.Tasks) > 0 && st.Tasks[0].State == "FAILED" {
			s.t.Fatalf("connector %s failed: %s", name, st.Tasks[0].Trace)
		}
		return fmt.Errorf("connector %s, tasks %+v", st.Connector.State, st.Tasks)
	}
	return nil
}

// Postgres is a running PostgreSQL cluster.
type Postgres struct {
	Port int
	dir  string
}

// StartPostgres initialises and starts a PostgreSQL cluster with logical
// decoding, trusting local connections, as nobody when run as root.
func (s *Stack) StartPostgres(name string) *Postgres {
	s.t.Helper()
	for _, tool := range []string{"initdb", "pg_ctl", "psql"} {
		if pgTool(tool) == "" {
			skip(s.t, "PostgreSQL's %s is not installed (apt-get install postgresql)", tool)
		}
	}
	cred := s.nobody()
	data := filepath.Join(s.dir, name)
	if cred != nil {
		if err := os.MkdirAll(data, 0o700); err != nil {
			s.t.Fatal(err)
		}
		if err := os.Chown(data, int(cred.Uid), int(cred.Gid)); err != nil {
			s.t.Fatal(err)
		}
	}
	server := func(args ...string) {
		s.t.Helper()
		cmd := exec.Command(pgTool(args[0]), args[1:]...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		if out, err := cmd.CombinedOutput(); err != nil {
			s.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	server("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
	port := FreePort(s.t)
	// The server is this process's child, not pg_ctl's daemon: it dies
	// with the test even when the test is interrupted.
	cmd := exec.Command(pgTool("postgres"), "-D", data, "-c", "wal_level=logical", "-c", "max_replication_slots=10",
		"-c", "max_wal_senders=10", "-c", "listen_addresses=127.0.0.1", "-p", strconv.Itoa(port), "-k", data)
	cmd.SysProcAttr = childAttr()
	cmd.SysProcAttr.Credential = cred
	s.start(cmd, filepath.Join(s.dir, name+".log"))
	pg := &Postgres{Port: port, dir: data}
	s.waitFor("PostgreSQL "+name+" answering", 60*time.Second, func() error {
		return exec.Command("psql", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "postgres", "-d", "postgres", "-c", "SELECT 1").Run()
	})
	return pg
}

// pgTool finds a PostgreSQL program: on the PATH, or where Debian's
// packages put the server's (/usr/lib/postgresql/VERSION/bin); "" when
// neither has it.
func pgTool(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	m, _ := filepath.Glob(filepath.Join("/usr/lib/postgresql", "*", "bin", name))
	if len(m) == 0 {
		return ""
	}
	return m[len(m)-1]
}

// nobody is the credential servers that refuse root run under, or nil.
func (s *Stack) nobody() *syscall.Credential {
	if os.Getuid() != 0 {
		return nil
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		skip(s.t, "running as root and no user nobody to run PostgreSQL as: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

// SQL runs statements with psql on a database and returns the output,
// unaligned and without headers.
func (p *Postgres) SQL(t testing.TB, db string, args ...string) string {
	t.Helper()
	out, err := exec.Command("psql", append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(p.Port), "-U", "postgres", "-d", db,
		"-tA", "-v", "ON_ERROR_STOP=1"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("psql %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// Versions returns what the stack runs, for the test's log.
func (s *Stack) Versions() string {
	var v []string
	lib := cmp.Or(s.connectLib, "connect")
	for _, pat := range []string{"broker/kafka_2.13-*.jar", lib + "/connect-runtime-*.jar", lib + "/debezium-connector-postgres-*.jar", lib + "/debezium-connector-mysql-*.jar"} {
		if m, _ := filepath.Glob(filepath.Join(s.lib, pat)); len(m) > 0 {
			v = append(v, strings.TrimSuffix(filepath.Base(m[0]), ".jar"))
		}
	}
	if out, err := exec.Command(pgTool("postgres"), "--version").Output(); err == nil {
		v = append(v, strings.TrimSpace(string(out)))
	} else if out, err := exec.Command("psql", "--version").Output(); err == nil {
		v = append(v, strings.TrimSpace(string(out)))
	}
	if out, err := exec.Command("java", "-version").CombinedOutput(); err == nil {
		v = append(v, strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0])
	}
	return strings.Join(v, ", ")
}
