package realstack

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// MariaDB is a running MariaDB server.
type MariaDB struct {
	Port int
	// ServerID is its server_id, unique in the replication topology.
	ServerID int
	socket   string
}

// StartMariaDB initialises and starts a MariaDB server with a row-based
// binary log, as Debezium needs, on a free loopback port. A replica logs
// what it applies too (log_slave_updates), so that its own connector sees
// it. Replication leaves out the signalling table shop.debezium_signal,
// which each server's connector has of its own, and converts a column to
// the replica's type when the two differ. Run as the mysql user when root.
func (s *Stack) StartMariaDB(name string, serverID int) *MariaDB {
	s.t.Helper()
	for _, tool := range []string{"mariadbd", "mariadb-install-db", "mariadb"} {
		if _, err := exec.LookPath(tool); err != nil {
			skip(s.t, "MariaDB's %s is not installed (apt-get install mariadb-server): %v", tool, err)
		}
	}
	data := filepath.Join(s.dir, name)
	if err := os.MkdirAll(data, 0o755); err != nil {
		s.t.Fatal(err)
	}
	run := "mysql"
	if os.Getuid() == 0 {
		u, err := user.Lookup("mysql")
		if err != nil {
			skip(s.t, "running as root and no user mysql to run MariaDB as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(data, uid, gid); err != nil {
			s.t.Fatal(err)
		}
	} else {
		u, _ := user.Current()
		run = u.Username
	}
	out, err := exec.Command("mariadb-install-db", "--no-defaults", "--datadir="+data, "--user="+run,
		"--auth-root-authentication-method=normal", "--skip-test-db").CombinedOutput()
	if err != nil {
		s.t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	port := FreePort(s.t)
	m := &MariaDB{Port: port, ServerID: serverID, socket: filepath.Join(data, "mysqld.sock")}
	cmd := exec.Command("mariadbd", "--no-defaults", "--datadir="+data, "--user="+run,
		"--bind-address=127.0.0.1", "--port="+strconv.Itoa(port), "--socket="+m.socket,
		"--pid-file="+filepath.Join(data, "mysqld.pid"),
		"--server-id="+strconv.Itoa(serverID), "--log-bin=binlog", "--binlog-format=ROW", "--binlog-row-image=FULL",
		"--log-slave-updates=ON", "--skip-name-resolve", "--innodb-buffer-pool-size=64M", "--default-time-zone=+00:00",
		// Each server's connector has a signalling table of its own.
		"--replicate-wild-ignore-table=shop.debezium_signal",
		// A replica may store a column at another scale or precision.
		"--slave-type-conversions=ALL_NON_LOSSY,ALL_LOSSY")
	s.start(cmd, filepath.Join(s.dir, name+".log"))
	s.waitFor("MariaDB "+name+" answering", 60*time.Second, func() error {
		_, err := m.query("SELECT 1")
		return err
	})
	// Debezium and replication connect as this user over TCP.
	m.SQL(s.t, "CREATE USER 'cdc'@'%' IDENTIFIED BY 'cdc'; GRANT ALL PRIVILEGES ON *.* TO 'cdc'@'%' WITH GRANT OPTION; FLUSH PRIVILEGES")
	return m
}

func (m *MariaDB) query(sql string) (string, error) {
	out, err := exec.Command("mariadb", "--no-defaults", "-uroot", "--socket="+m.socket, "-N", "-B", "-e", sql).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%v: %s", err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// SQL runs statements as root over the server's socket and returns the
// output, tab-separated and without headers.
func (m *MariaDB) SQL(t testing.TB, sql string) string {
	t.Helper()
	out, err := m.query(sql)
	if err != nil {
		t.Fatalf("mariadb %q: %v", sql, err)
	}
	return out
}

// ReplicateFrom makes m a replica of src from src's current binlog
// position, by MariaDB's own replication.
func (m *MariaDB) ReplicateFrom(t testing.TB, src *MariaDB) {
	t.Helper()
	status := strings.Fields(src.SQL(t, "SHOW MASTER STATUS"))
	if len(status) < 2 {
		t.Fatalf("SHOW MASTER STATUS on the source: %q", status)
	}
	m.SQL(t, fmt.Sprintf("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%d, MASTER_USER='cdc', MASTER_PASSWORD='cdc', "+
		"MASTER_LOG_FILE='%s', MASTER_LOG_POS=%s; START SLAVE", src.Port, status[0], status[1]))
}
