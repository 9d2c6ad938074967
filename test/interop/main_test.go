// Package interop runs the cdcrecon binary against Debian's kcat
// (librdkafka), an independent Kafka client.
package interop

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cdcrecon/cdcrecon/test/testbin"
)

var cdcrecon string // path of the binary built for this run

func TestMain(m *testing.M) { testbin.Main(m, &cdcrecon) }

func needKcat(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Skip("kcat is not installed (apt-get install kcat); .ci/run installs it")
	}
}

// runningBroker is a "cdcrecon broker" process.
type runningBroker struct {
	cmd    *exec.Cmd
	addr   string
	stdout *bufio.Reader
}

func startBroker(t *testing.T, args ...string) *runningBroker {
	t.Helper()
	cmd := exec.Command(cdcrecon, append([]string{"broker", "--listen", "127.0.0.1:0"}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b := &runningBroker{cmd: cmd, stdout: bufio.NewReader(out)}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := b.stdout.ReadString('\n')
	if err != nil {
		t.Fatalf("reading broker banner: %v", err)
	}
	// "cdcrecon broker listening on ADDR (...)"
	fields := strings.Fields(line)
	if len(fields) < 5 || fields[2] != "listening" {
		t.Fatalf("unexpected banner %q", line)
	}
	b.addr = fields[4]
	return b
}

// stop sends SIGTERM and checks the broker exits cleanly and says so.
func (b *runningBroker) stop(t *testing.T) {
	t.Helper()
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(b.stdout)
	done := make(chan error, 1)
	go func() { done <- b.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("broker exited with %v after SIGTERM", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("broker did not stop within 10s of SIGTERM")
	}
	if !strings.Contains(string(rest), "stopped") {
		t.Errorf("broker did not report stopping: %q", rest)
	}
}

func run(t *testing.T, stdin []byte, name string, args ...string) (stdout, stderr []byte, code int) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return o.Bytes(), e.Bytes(), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running %s: %v", name, err)
	}
	return o.Bytes(), e.Bytes(), 0
}

func mustRun(t *testing.T, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	out, errOut, code := run(t, stdin, name, args...)
	if code != 0 {
		t.Fatalf("%s %s: exit %d\n%s", name, strings.Join(args, " "), code, errOut)
	}
	return out
}
