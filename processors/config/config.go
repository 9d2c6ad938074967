// Package config reads and validates cdcrecon's YAML configuration file.
// Every error names the file, the line and the field at fault.
package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"time"
)

// Config is the whole configuration file. Zero fields take the defaults
// documented on each type (see Default).
type Config struct {
	Kafka          Kafka          `yaml:"kafka"`
	SchemaRegistry SchemaRegistry `yaml:"schema_registry"`
	State          State          `yaml:"state"`
	Window         Window         `yaml:"window"`
	Dedupe         Dedupe         `yaml:"dedupe"`
	Topics         Topics         `yaml:"topics"`
	HTTP           HTTP           `yaml:"http"`
	Idle           Idle           `yaml:"idle"`
	Verify         Verify         `yaml:"verify"`
	Apply          Apply          `yaml:"apply"`
	Tables         []Table        `yaml:"tables"`

	// File is the path the configuration was read from ("" when built in
	// code); errors name it.
	File string `yaml:"-"`
	// InstanceID names this worker process in its groups (a command-line
	// setting, not a file's: see kafka.SubscriberConfig.InstanceID).
	InstanceID string `yaml:"-"`
	// lines maps field paths ("tables[0].key") to their line in File.
	lines map[string]int
}

// Kafka is the connection to the brokers.
type Kafka struct {
	// Brokers are seed broker addresses. Default [localhost:9092].
	Brokers []string `yaml:"brokers"`
	// Group is the consumer group of the workers. Default "cdcrecon".
	Group string `yaml:"group"`
	// Partitions is the partition count of the internal changes topic
	// when cdcrecon creates it. Default 8.
	Partitions int `yaml:"partitions"`
	// SessionTimeout is how long the group waits for a silent worker (one
	// that crashed) before its partitions go to the others. Default 10s.
	SessionTimeout time.Duration `yaml:"session_timeout"`
	TLS            *TLS          `yaml:"tls"`
	SASL           *SASL         `yaml:"sasl"`
}

// TLS configures TLS to the brokers.
type TLS struct {
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// SASL configures SASL authentication to the brokers.
type SASL struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	Password  string `yaml:"password"`
}

// SchemaRegistry is the optional Confluent-compatible Schema Registry.
type SchemaRegistry struct {
	// URL of the registry, http or https; empty means none (Avro input is
	// then rejected and outputs use Avro single-object encoding).
	URL string `yaml:"url"`
	// Username and Password: HTTP basic auth. Default none.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// Token: bearer auth, instead of basic. Default none.
	Token string `yaml:"token"`
}

// Validate checks the registry settings on their own, for a registry given
// outside a file; Config.Validate reports the same problems with their
// line.
func (r SchemaRegistry) Validate() error {
	var errs []error
	for _, p := range r.problems() {
		errs = append(errs, fmt.Errorf("%s: %s", p.field, p.msg))
	}
	return errors.Join(errs...)
}

type problem struct{ field, msg string }

func (r SchemaRegistry) problems() []problem {
	var ps []problem
	if r.URL == "" {
		if r.Username != "" || r.Password != "" || r.Token != "" {
			ps = append(ps, problem{"url", "credentials are set but no url"})
		}
		return ps
	}
	if u, err := url.Parse(r.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		ps = append(ps, problem{"url", fmt.Sprintf("want an http:// or https:// URL, got %q", r.URL)})
	}
	if r.Token != "" && (r.Username != "" || r.Password != "") {
		ps = append(ps, problem{"token", "set a token or a username and password, not both"})
	}
	if (r.Username == "") != (r.Password == "") {
		ps = append(ps, problem{"username", "username and password go together"})
	}
	return ps
}

// State is where the worker keeps its Pebble state.
type State struct {
	// Dir is the state directory. Default "./cdcrecon-state".
	Dir string `yaml:"dir"`
	// KeysInMemory is how many rows' reconciliation state a worker keeps
	// in memory, all partitions together; rows idle beyond that live in
	// the state directory until their next change. Default 262,144 (a
	// few hundred bytes each).
	KeysInMemory int `yaml:"keys_in_memory"`
	// SnapshotInterval is the longest a changes partition whose state
	// changed goes without a snapshot on the state topic (one is also
	// taken once a partition has read four times as many changes as it
	// has keys). Default 1m.
	SnapshotInterval time.Duration `yaml:"snapshot_interval"`
	// ChangesRetention is the changes topic's retention.ms when cdcrecon
	// creates it. The changes a snapshot makes unnecessary are deleted
	// as it completes, so the retention only bounds the topic when
	// snapshots stop: it must cover the longest the workers may all be
	// down. Default 7 days; at least 4 snapshot intervals.
	ChangesRetention time.Duration `yaml:"changes_retention"`
}

// Window configures checksum windows and the allowed replication lag.
type Window struct {
	// Size is the tumbling checksum window. Default 1m.
	Size time.Duration `yaml:"size"`
	// Grace is how far the target may lag the source. Default 30s.
	Grace time.Duration `yaml:"grace"`
}

// Dedupe configures duplicate detection.
type Dedupe struct {
	// Retention is how long, in event time, an event identity is
	// remembered. Default 24h.
	Retention time.Duration `yaml:"retention"`
}

// HTTP is the worker's listener for /metrics, /healthz and /readyz.
type HTTP struct {
	// Listen is host:port. Default "127.0.0.1:9464" (loopback only); ""
	// turns the listener off.
	Listen string `yaml:"listen"`
}

// Idle configures how the worker moves the clock of a side without
// traffic, which would otherwise hold back every decision that needs it.
type Idle struct {
	// SafetyMargin: an input partition read to its high watermark counts
	// as complete up to the wall clock minus this margin. An event that
	// reaches Kafka later than this after its commit is then late (it
	// takes effect at the first undecided instant). Default 30s; 0 turns
	// the wall clock off.
	SafetyMargin time.Duration `yaml:"safety_margin"`
	// Interval is how often the worker checks. Default 1s.
	Interval time.Duration `yaml:"interval"`
	// Heartbeats lists each side's Debezium heartbeat topics: an input
	// partition read to its high watermark counts as complete up to its
	// side's latest heartbeat.
	Heartbeats Heartbeats `yaml:"heartbeats"`
}

// Heartbeats lists heartbeat topics by side.
type Heartbeats struct {
	Source []string `yaml:"source"`
	Target []string `yaml:"target"`
}

// Topics names the output topics.
type Topics struct {
	Changes      string `yaml:"changes"`      // default cdcrecon.changes
	Drift        string `yaml:"drift"`        // default cdcrecon.drift
	Compensation string `yaml:"compensation"` // default cdcrecon.compensation
	Checksums    string `yaml:"checksums"`    // default cdcrecon.checksums
	DLQ          string `yaml:"dlq"`          // default cdcrecon.dlq
	State        string `yaml:"state"`        // default cdcrecon.state
	Audit        string `yaml:"audit"`        // default cdcrecon.audit
}

// Table is one reconciled table.
type Table struct {
	// Name identifies the table in outputs.
	Name string `yaml:"name"`
	// Key lists the canonical key columns, in order.
	Key    []string `yaml:"key"`
	Source Side     `yaml:"source"`
	Target Side     `yaml:"target"`
	// Ignore lists canonical columns left out of the comparison.
	Ignore []string `yaml:"ignore"`
	// Compare, when set, lists exactly the compared columns.
	Compare []string `yaml:"compare"`
	// Redact lists columns whose values appear in outputs only as digests.
	Redact []string `yaml:"redact"`
	// Normalize holds per-column normalisation, by canonical name.
	Normalize map[string]Normalize `yaml:"normalize"`
	// Policy: column ownership and what a drift asks for.
	Policy Policy `yaml:"policy"`
}

// Side is one side's topic and how its columns map to canonical ones.
type Side struct {
	Topic string `yaml:"topic"`
	// Rename maps this side's column names to canonical names.
	Rename map[string]string `yaml:"rename"`
	// SoftDelete marks rows as absent (target side only).
	SoftDelete *SoftDelete `yaml:"soft_delete"`
	// Verify, on both sides, has drifted rows re-read by the connectors.
	Verify *SideVerify `yaml:"verify"`
	// Database is the target's database, which apply repairs; default
	// apply.database (target side only).
	Database *Database `yaml:"database"`
	// Table is the target's table as its database names it
	// ("public.orders", "shop.orders"); default the topic without its
	// first dotted part, the connector's prefix (target side only).
	Table string `yaml:"table"`
}

// SoftDelete says which column value marks a row deleted.
type SoftDelete struct {
	// Column is the soft-delete column, by this side's name.
	Column string `yaml:"column"`
	// Value marks a deleted row. Default true.
	Value any `yaml:"value"`
}

// Normalize is the normalisation of one column.
type Normalize struct {
	// As converts values before comparing: bool (0/1, "t"/"f"), decimal
	// (strings, or base64 bytes with Scale), timestamp (strings, or
	// numbers in Unit since the epoch), json (text compared canonically)
	// or string (any value by its text).
	As string `yaml:"as"`
	// Scale is the decimal scale of base64-encoded decimals (as: decimal).
	Scale *int `yaml:"scale"`
	// Unit is the unit of numeric timestamps (as: timestamp): days, s, ms
	// (default), us or ns.
	Unit string `yaml:"unit"`
	// TimestampPrecision truncates instants and times: s, ms, us or ns.
	TimestampPrecision string `yaml:"timestamp_precision"`
	// TimestampRounding is how TimestampPrecision drops digits: truncate
	// (the default) or nearest, as PostgreSQL and MySQL store a value
	// with more fractional digits than the column keeps.
	TimestampRounding string `yaml:"timestamp_rounding"`
	// Tolerance compares numbers as equal when at most this far apart.
	Tolerance *float64 `yaml:"tolerance"`
	// Trim removes leading and trailing white space from strings.
	Trim bool `yaml:"trim"`
	// CaseInsensitive compares strings under Unicode case folding.
	CaseInsensitive bool `yaml:"case_insensitive"`
}

// Hints accepted by Normalize.As.
var asValues = []string{"bool", "decimal", "timestamp", "json", "string"}

// Units of Normalize.Unit and TimestampPrecision.
var (
	unitValues      = map[string]time.Duration{"days": 24 * time.Hour, "s": time.Second, "ms": time.Millisecond, "us": time.Microsecond, "ns": time.Nanosecond}
	precisionValues = map[string]time.Duration{"s": time.Second, "ms": time.Millisecond, "us": time.Microsecond, "ns": time.Nanosecond}
)

// UnitDuration returns the duration of a Unit ("" is ms).
func (n Normalize) UnitDuration() time.Duration {
	if n.Unit == "" {
		return time.Millisecond
	}
	return unitValues[n.Unit]
}

// Precision returns the TimestampPrecision as a duration, 0 when unset.
func (n Normalize) Precision() time.Duration { return precisionValues[n.TimestampPrecision] }

// Default returns the built-in defaults, the base every file overrides.
func Default() Config {
	return Config{
		Kafka:  Kafka{Brokers: []string{"localhost:9092"}, Group: "cdcrecon", Partitions: 8, SessionTimeout: 10 * time.Second},
		State:  State{Dir: "./cdcrecon-state", KeysInMemory: 1 << 18, SnapshotInterval: time.Minute, ChangesRetention: 7 * 24 * time.Hour},
		HTTP:   HTTP{Listen: "127.0.0.1:9464"},
		Window: Window{Size: time.Minute, Grace: 30 * time.Second},
		Dedupe: Dedupe{Retention: 24 * time.Hour},
		Idle:   Idle{SafetyMargin: 30 * time.Second, Interval: time.Second},
		Verify: Verify{Delay: 10 * time.Second, Timeout: 2 * time.Minute, Settle: 2 * time.Second, MaxKeys: 100, Rate: 20},
		Apply: Apply{Concurrency: 4, Rate: 50, Retries: 5, Backoff: 200 * time.Millisecond, Timeout: 10 * time.Second,
			CatchUp: 30 * time.Second},
		Topics: Topics{
			Changes: "cdcrecon.changes", Drift: "cdcrecon.drift", Compensation: "cdcrecon.compensation",
			Checksums: "cdcrecon.checksums", DLQ: "cdcrecon.dlq", State: "cdcrecon.state", Audit: "cdcrecon.audit",
		},
	}
}

// Error is a configuration error at a place in the file.
type Error struct {
	File  string
	Line  int    // 0 when unknown
	Field string // path such as tables[1].normalize.paid.as
	Err   error
}

func (e *Error) Error() string {
	loc := e.File
	if loc == "" {
		loc = "config"
	}
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", loc, e.Line)
	}
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %v", loc, e.Field, e.Err)
	}
	return fmt.Sprintf("%s: %v", loc, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// errorAt builds an Error for a field path, with the line it was read from.
func (c *Config) errorAt(field string, format string, args ...any) *Error {
	line := c.lines[field]
	for p := field; line == 0 && p != ""; {
		p = parentPath(p)
		line = c.lines[p]
	}
	return &Error{File: c.File, Line: line, Field: field, Err: fmt.Errorf(format, args...)}
}

func parentPath(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '.' || p[i] == '[' {
			return p[:i]
		}
	}
	return ""
}

// Validate checks the configuration and returns every problem found,
// joined, each an *Error.
func (c *Config) Validate() error {
	var errs []error
	add := func(e *Error) { errs = append(errs, e) }
	if len(c.Kafka.Brokers) == 0 {
		add(c.errorAt("kafka.brokers", "at least one broker is required"))
	}
	if c.Kafka.Group == "" {
		add(c.errorAt("kafka.group", "must not be empty"))
	}
	if c.HTTP.Listen != "" {
		if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
			add(c.errorAt("http.listen", "want host:port, got %q", c.HTTP.Listen))
		}
	}
	if c.State.KeysInMemory < 0 {
		add(c.errorAt("state.keys_in_memory", "must not be negative, got %d", c.State.KeysInMemory))
	}
	if c.State.SnapshotInterval < time.Second {
		add(c.errorAt("state.snapshot_interval", "must be at least 1s, got %s", c.State.SnapshotInterval))
	} else if c.State.ChangesRetention < 4*c.State.SnapshotInterval {
		add(c.errorAt("state.changes_retention", "must be at least 4 × state.snapshot_interval (%s), got %s: a restore needs the changes since the snapshot before the last", 4*c.State.SnapshotInterval, c.State.ChangesRetention))
	}
	if c.Kafka.SessionTimeout < time.Second {
		add(c.errorAt("kafka.session_timeout", "must be at least 1s, got %s", c.Kafka.SessionTimeout))
	}
	if c.Kafka.Partitions <= 0 {
		add(c.errorAt("kafka.partitions", "must be positive, got %d", c.Kafka.Partitions))
	}
	if s := c.Kafka.SASL; s != nil {
		switch s.Mechanism {
		case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		default:
			add(c.errorAt("kafka.sasl.mechanism", "unknown mechanism %q (want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", s.Mechanism))
		}
		if s.Username == "" || s.Password == "" {
			add(c.errorAt("kafka.sasl", "username and password are required (or %s and %s)", EnvKafkaUsername, EnvKafkaPassword))
		}
	}
	if t := c.Kafka.TLS; t != nil && (t.CertFile == "") != (t.KeyFile == "") {
		add(c.errorAt("kafka.tls", "cert_file and key_file go together"))
	}
	for _, p := range c.SchemaRegistry.problems() {
		add(c.errorAt("schema_registry."+p.field, "%s", p.msg))
	}
	if c.Window.Size <= 0 {
		add(c.errorAt("window.size", "must be positive, got %s", c.Window.Size))
	}
	if c.Window.Grace < 0 {
		add(c.errorAt("window.grace", "must not be negative, got %s", c.Window.Grace))
	}
	if c.Idle.SafetyMargin < 0 {
		add(c.errorAt("idle.safety_margin", "must not be negative, got %s", c.Idle.SafetyMargin))
	}
	if c.Idle.Interval < 10*time.Millisecond {
		add(c.errorAt("idle.interval", "must be at least 10ms, got %s", c.Idle.Interval))
	}
	if c.Dedupe.Retention <= 0 {
		add(c.errorAt("dedupe.retention", "must be positive, got %s", c.Dedupe.Retention))
	}
	if len(c.Tables) == 0 {
		add(c.errorAt("tables", "at least one table is required"))
	}
	c.validateVerify(add)
	c.validateApply(add)
	// The topics cdcrecon writes are its own: no two the same, and none a
	// table's or a heartbeat topic.
	topics := map[string]string{}
	for _, own := range []struct{ field, topic string }{{"topics.changes", c.Topics.Changes}, {"topics.drift", c.Topics.Drift},
		{"topics.compensation", c.Topics.Compensation}, {"topics.checksums", c.Topics.Checksums}, {"topics.dlq", c.Topics.DLQ}, {"topics.state", c.Topics.State}, {"topics.audit", c.Topics.Audit}} {
		switch {
		case own.topic == "":
			add(c.errorAt(own.field, "must not be empty"))
		case topics[own.topic] != "":
			add(c.errorAt(own.field, "topic %q is already used by %s", own.topic, topics[own.topic]))
		default:
			topics[own.topic] = own.field
		}
	}
	for _, side := range []struct {
		name   string
		topics []string
	}{{"source", c.Idle.Heartbeats.Source}, {"target", c.Idle.Heartbeats.Target}} {
		for i, topic := range side.topics {
			if own := topics[topic]; own != "" {
				add(c.errorAt(fmt.Sprintf("idle.heartbeats.%s[%d]", side.name, i), "topic %q is %s, written by cdcrecon", topic, own))
			}
		}
	}
	names := map[string]string{}
	for i := range c.Tables {
		t := &c.Tables[i]
		p := fmt.Sprintf("tables[%d]", i)
		if t.Name == "" {
			add(c.errorAt(p+".name", "a table needs a name"))
		} else if prev, dup := names[t.Name]; dup {
			add(c.errorAt(p+".name", "table %q is also defined at %s", t.Name, prev))
		} else {
			names[t.Name] = p
		}
		if len(t.Key) == 0 {
			add(c.errorAt(p+".key", "table %q has no key columns", t.Name))
		}
		for _, side := range []struct {
			name string
			s    *Side
		}{{"source", &t.Source}, {"target", &t.Target}} {
			sp := p + "." + side.name
			switch topic := side.s.Topic; {
			case topic == "":
				add(c.errorAt(sp+".topic", "a %s topic is required", side.name))
			case topics[topic] != "":
				add(c.errorAt(sp+".topic", "topic %q is already used by %s", topic, topics[topic]))
			default:
				topics[topic] = sp + ".topic"
			}
			if sd := side.s.SoftDelete; sd != nil {
				if side.name == "source" {
					add(c.errorAt(sp+".soft_delete", "soft deletes apply to the target only"))
				} else if sd.Column == "" {
					add(c.errorAt(sp+".soft_delete.column", "a soft-delete column is required"))
				}
			}
		}
		for _, side := range []struct {
			name   string
			topics []string
		}{{"source", c.Idle.Heartbeats.Source}, {"target", c.Idle.Heartbeats.Target}} {
			for i, topic := range side.topics {
				if topic == t.Source.Topic || topic == t.Target.Topic {
					add(c.errorAt(fmt.Sprintf("idle.heartbeats.%s[%d]", side.name, i), "topic %q is a table's topic, not a heartbeat topic", topic))
				}
			}
		}
		c.validatePolicy(p, t, add)
		if len(t.Ignore) > 0 && len(t.Compare) > 0 {
			add(c.errorAt(p+".compare", "set either ignore or compare, not both"))
		}
		for _, col := range t.Key {
			if slices.Contains(t.Ignore, col) {
				add(c.errorAt(p+".ignore", "key column %q cannot be ignored", col))
			}
		}
		for _, col := range slices.Sorted(maps.Keys(t.Normalize)) {
			n := t.Normalize[col]
			np := p + ".normalize." + col
			if n.As != "" && !slices.Contains(asValues, n.As) {
				add(c.errorAt(np+".as", "unknown value %q (want one of bool, decimal, timestamp, json, string)", n.As))
			}
			if n.Unit != "" {
				if _, ok := unitValues[n.Unit]; !ok {
					add(c.errorAt(np+".unit", "unknown unit %q (want days, s, ms, us or ns)", n.Unit))
				} else if n.As != "timestamp" {
					add(c.errorAt(np+".unit", "unit applies to as: timestamp only"))
				}
			}
			if n.Scale != nil && n.As != "decimal" {
				add(c.errorAt(np+".scale", "scale applies to as: decimal only"))
			}
			switch n.TimestampRounding {
			case "", "truncate":
			case "nearest":
				if n.TimestampPrecision == "" {
					add(c.errorAt(np+".timestamp_rounding", "needs timestamp_precision"))
				}
			default:
				add(c.errorAt(np+".timestamp_rounding", "unknown rounding %q (want truncate or nearest)", n.TimestampRounding))
			}
			if n.TimestampPrecision != "" {
				if _, ok := precisionValues[n.TimestampPrecision]; !ok {
					add(c.errorAt(np+".timestamp_precision", "unknown precision %q (want s, ms, us or ns)", n.TimestampPrecision))
				}
			}
			if n.Tolerance != nil && *n.Tolerance < 0 {
				add(c.errorAt(np+".tolerance", "must not be negative"))
			}
		}
	}
	return errors.Join(errs...)
}
