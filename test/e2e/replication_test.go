package e2e

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReplicationSQL runs the stack's database half on local PostgreSQL
// binaries, as the compose services would: two clusters with logical
// decoding, schema.sql on both, each side's products-*.sql, and source.sql on the source, subscribe.sh (twice: it must be
// idempotent), then the end-to-end scenario's writes, which must reach the
// target by logical replication, and its tampering, which must apply.
func TestReplicationSQL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two PostgreSQL clusters")
	}
	for _, tool := range []string{"initdb", "pg_ctl", "psql"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("PostgreSQL's %s is not installed: %v", tool, err)
		}
	}
	// PostgreSQL refuses to run as root: the clusters run as nobody then.
	var cred *syscall.Credential
	dir, err := os.MkdirTemp("", "cdcrecon-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if os.Getuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			t.Skipf("running as root and no user nobody to run PostgreSQL as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	server := func(args ...string) {
		t.Helper()
		cmd := exec.Command(args[0], args[1:]...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	start := func(name string) string {
		t.Helper()
		data := filepath.Join(dir, name)
		server("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
		port := freePort(t)
		server("pg_ctl", "-D", data, "-l", filepath.Join(dir, name+".log"), "-w", "-o",
			fmt.Sprintf("-c wal_level=logical -c max_replication_slots=10 -c max_wal_senders=10 -c listen_addresses=127.0.0.1 -p %s -k %s", port, dir),
			"start")
		t.Cleanup(func() { server("pg_ctl", "-D", data, "-m", "immediate", "stop") })
		return port
	}
	psql := func(port, db string, args ...string) string {
		t.Helper()
		out, err := exec.Command("psql", append([]string{"-h", "127.0.0.1", "-p", port, "-U", "postgres", "-d", db, "-tA", "-v", "ON_ERROR_STOP=1"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("psql %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	compose := filepath.Join(root, "test/e2e/compose")
	src, tgt := start("source"), start("target")
	for port, products := range map[string]string{src: "products-source.sql", tgt: "products-target.sql"} {
		psql(port, "postgres", "-c", "CREATE DATABASE shop")
		psql(port, "shop", "-f", filepath.Join(compose, "schema.sql"))
		psql(port, "shop", "-f", filepath.Join(compose, products))
	}
	psql(src, "shop", "-f", filepath.Join(compose, "source.sql"))
	if got := psql(src, "shop", "-c", "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_publication_tables WHERE pubname = 'shop_pub'"); got != "customers,orders,products" {
		t.Errorf("publication shop_pub has %q, want customers,orders,products", got)
	}
	for range 2 {
		cmd := exec.Command("sh", filepath.Join(compose, "subscribe.sh"))
		cmd.Env = append(os.Environ(), "SOURCE_HOST=127.0.0.1", "SOURCE_PORT="+src, "TARGET_HOST=127.0.0.1", "TARGET_PORT="+tgt)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("subscribe.sh: %v\n%s", err, out)
		}
	}
	eventually := func(what, port, query string) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); psql(port, "shop", "-c", query) != "t"; time.Sleep(200 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 30s (%s)", what, query)
			}
		}
	}
	eventually("the initial copy", tgt, "SELECT (SELECT count(*) FROM orders) = 3 AND (SELECT count(*) FROM customers) = 3")
	for _, sql := range sourceWrites {
		psql(src, "shop", "-c", sql)
	}
	eventually("replication of the source's writes", tgt, replicated)
	for _, sql := range tampering {
		psql(tgt, "shop", "-c", sql)
	}
	if got := psql(tgt, "shop", "-c", "SELECT total FROM orders WHERE id = 2"); got != "0.00" {
		t.Errorf("tampered total: %q", got)
	}
	if got := psql(src, "shop", "-c", "SELECT total FROM orders WHERE id = 2"); got != "99.99" {
		t.Errorf("the source's total: %q, want 99.99 (the end-to-end test expects it in the compensation)", got)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}
