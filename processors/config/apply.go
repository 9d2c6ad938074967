package config

import (
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Apply configures `cdcrecon apply`, which repairs target databases from
// the compensation topic.
type Apply struct {
	// Database is the target database of every table without a
	// target.database of its own.
	Database *Database `yaml:"database"`
	// Group is apply's consumer group on the compensation topic. Default
	// "<kafka.group>-apply".
	Group string `yaml:"group"`
	// Concurrency bounds the commands run at once, across keys; one key's
	// commands always run in order. Default 4.
	Concurrency int `yaml:"concurrency"`
	// Rate bounds the commands run per second. Default 50.
	Rate float64 `yaml:"rate"`
	// Retries bounds the retries of a command after a transient database
	// error (a lost connection, a deadlock, a serialization failure).
	// Default 5.
	Retries int `yaml:"retries"`
	// Backoff is the wait before the first retry, doubling each time.
	// Default 200ms.
	Backoff time.Duration `yaml:"backoff"`
	// Timeout bounds one attempt of a command, its transaction included.
	// Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// CatchUp bounds how long a command whose drift record has not been
	// read yet waits for it. Default 30s.
	CatchUp time.Duration `yaml:"catch_up"`
}

// Database is how to reach a target database.
type Database struct {
	// Driver is postgres (through pgx) or mysql (MySQL and MariaDB,
	// through go-sql-driver/mysql).
	Driver string `yaml:"driver"`
	// DSN is the driver's connection string; it replaces Host, Port,
	// User, Name and Params.
	DSN  string `yaml:"dsn"`
	Host string `yaml:"host"`
	Port int    `yaml:"port"`
	User string `yaml:"user"`
	Name string `yaml:"name"`
	// PasswordEnv names the environment variable holding the password.
	PasswordEnv string `yaml:"password_env"`
	// Params are extra connection parameters: run-time parameters for
	// PostgreSQL, session variables for MySQL (gtid_domain_id: 2).
	Params map[string]string `yaml:"params"`
}

// Drivers.
const (
	Postgres = "postgres"
	MySQL    = "mysql"
)

// ApplyTable is the target table a table's commands repair, with its
// database: the table's own or apply's.
func (c *Config) ApplyTable(t *Table) (*Database, string) {
	db := t.Target.Database
	if db == nil {
		db = c.Apply.Database
	}
	name := t.Target.Table
	if name == "" {
		// A Debezium topic is prefix.schema.table: the table is what
		// follows the prefix.
		if _, rest, ok := strings.Cut(t.Target.Topic, "."); ok {
			name = rest
		} else {
			name = t.Target.Topic
		}
	}
	return db, name
}

// Password is the password from the environment, "" when not set.
func (d *Database) Password() string {
	if d.PasswordEnv == "" {
		return ""
	}
	return os.Getenv(d.PasswordEnv)
}

// Key identifies the database, so that tables on one share its pool.
func (d *Database) Key() string {
	return fmt.Sprintf("%s|%s|%s|%d|%s|%s|%s|%v", d.Driver, d.DSN, d.Host, d.Port, d.User, d.Name, d.PasswordEnv, d.Params)
}

// Address names the database in messages, without its password.
func (d *Database) Address() string {
	if d.DSN != "" {
		if u, err := url.Parse(d.DSN); err == nil && u.Scheme != "" {
			u.User = url.User(u.User.Username())
			return d.Driver + " " + u.Redacted()
		}
		if at := strings.LastIndex(d.DSN, "@"); at >= 0 {
			return d.Driver + " " + d.DSN[at+1:]
		}
		return d.Driver
	}
	return d.Driver + " " + d.User + "@" + d.Host + ":" + strconv.Itoa(d.Port) + "/" + d.Name
}

func (c *Config) validateApply(add func(*Error)) {
	a := c.Apply
	if a.Concurrency < 1 {
		add(c.errorAt("apply.concurrency", "must be at least 1, got %d", a.Concurrency))
	}
	if a.Rate <= 0 {
		add(c.errorAt("apply.rate", "must be positive, got %g", a.Rate))
	}
	if a.Retries < 0 {
		add(c.errorAt("apply.retries", "must not be negative, got %d", a.Retries))
	}
	if a.Backoff <= 0 {
		add(c.errorAt("apply.backoff", "must be positive, got %s", a.Backoff))
	}
	if a.Timeout < 100*time.Millisecond {
		add(c.errorAt("apply.timeout", "must be at least 100ms, got %s", a.Timeout))
	}
	if a.CatchUp < 0 {
		add(c.errorAt("apply.catch_up", "must not be negative, got %s", a.CatchUp))
	}
	if a.Database != nil {
		c.validateDatabase("apply.database", a.Database, add)
	}
	for i := range c.Tables {
		if db := c.Tables[i].Target.Database; db != nil {
			c.validateDatabase(fmt.Sprintf("tables[%d].target.database", i), db, add)
		}
	}
	if c.Tables != nil {
		for i := range c.Tables {
			if c.Tables[i].Source.Database != nil {
				add(c.errorAt(fmt.Sprintf("tables[%d].source.database", i), "apply writes to the target only"))
			}
			if c.Tables[i].Source.Table != "" {
				add(c.errorAt(fmt.Sprintf("tables[%d].source.table", i), "apply writes to the target only"))
			}
		}
	}
}

func (c *Config) validateDatabase(p string, d *Database, add func(*Error)) {
	switch d.Driver {
	case Postgres, MySQL:
	case "":
		add(c.errorAt(p+".driver", "required: postgres or mysql"))
	default:
		add(c.errorAt(p+".driver", "unknown driver %q (want postgres or mysql)", d.Driver))
	}
	if d.DSN == "" {
		if d.Host == "" {
			add(c.errorAt(p+".host", "required without a dsn"))
		}
		if d.User == "" {
			add(c.errorAt(p+".user", "required without a dsn"))
		}
		if d.Name == "" {
			add(c.errorAt(p+".name", "the database name is required without a dsn"))
		}
	} else if d.Host != "" || d.Port != 0 || d.User != "" || d.Name != "" || len(d.Params) > 0 {
		add(c.errorAt(p+".dsn", "a dsn replaces host, port, user, name and params: give one or the other"))
	}
	if d.Port < 0 || d.Port > 65535 {
		add(c.errorAt(p+".port", "want 1..65535, got %d", d.Port))
	}
}

// ApplyGroup is apply's consumer group.
func (c *Config) ApplyGroup() string {
	if c.Apply.Group != "" {
		return c.Apply.Group
	}
	return c.Kafka.Group + "-apply"
}
