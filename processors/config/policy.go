package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/zeebo/xxh3"
	"go.yaml.in/yaml/v3"
)

// Policy says what a table's drifts ask for and which columns the target
// owns. The zero Policy is source_wins over every compared column.
type Policy struct {
	// Version names this revision of the policy in every drift and
	// compensation record ("orders@v3"); default a digest of the policy
	// itself, so that any change to it shows.
	Version string `yaml:"version"`
	// Rule is source_wins (default: the target is made to match the
	// source), newest_wins (the row whose NewestBy column is greater
	// wins), manual (drifts are reported and flagged for a person, never
	// compensated) or never_delete (a row absent from the source yields no
	// delete in the target).
	Rule string `yaml:"rule"`
	// NewestBy is the canonical column newest_wins compares.
	NewestBy string `yaml:"newest_by"`
	// Columns holds per-column ownership, by canonical name.
	Columns map[string]ColumnPolicy `yaml:"columns"`
}

// ColumnPolicy is one column's ownership.
type ColumnPolicy struct {
	// Owner is source (default) or target: a column the target owns is
	// neither compared nor written by compensation.
	Owner string `yaml:"owner"`
}

// Policy rules.
const (
	SourceWins  = "source_wins"
	NewestWins  = "newest_wins"
	Manual      = "manual"
	NeverDelete = "never_delete"
)

var ruleValues = []string{SourceWins, NewestWins, Manual, NeverDelete}

// RuleName is the rule in force: Rule, or source_wins when unset.
func (p Policy) RuleName() string {
	if p.Rule == "" {
		return SourceWins
	}
	return p.Rule
}

// Owned lists the columns the target owns, sorted.
func (p Policy) Owned() []string {
	var cols []string
	for _, c := range slices.Sorted(maps.Keys(p.Columns)) {
		if p.Columns[c].Owner == "target" {
			cols = append(cols, c)
		}
	}
	return cols
}

// Name names the policy in force for table in output records: the table,
// "@" and the Version, or a digest of the policy when it has none.
func (p Policy) Name(table string) string {
	if p.Version != "" {
		return table + "@" + p.Version
	}
	b, _ := json.Marshal(struct {
		Rule, NewestBy string
		Owned          []string
	}{p.RuleName(), p.NewestBy, p.Owned()})
	return fmt.Sprintf("%s@%08x", table, uint32(xxh3.Hash(b)))
}

// Verify configures the re-reading of drifted rows through the sides'
// Debezium connectors (incremental snapshot signals).
type Verify struct {
	// Delay is how long, in event time, a drift must stay open before its
	// rows are re-read. Default 10s.
	Delay time.Duration `yaml:"delay"`
	// Timeout is how long, in event time after the request, the re-read
	// rows may take; a drift without them is then unverified. Default 2m.
	Timeout time.Duration `yaml:"timeout"`
	// Settle is how long after a side's connector answered a request the
	// verdict waits for the rest of its rows. Default 2s.
	Settle time.Duration `yaml:"settle"`
	// MaxKeys bounds the keys of one signal. Default 100.
	MaxKeys int `yaml:"max_keys"`
	// Rate bounds the signals a worker sends per second. Default 20.
	Rate float64 `yaml:"rate"`
}

// SideVerify is how to ask one side's connector for a re-read.
type SideVerify struct {
	// SignalTopic is the connector's Kafka signal topic
	// (signal.kafka.topic; the connector needs "kafka" among its
	// signal.enabled.channels).
	SignalTopic string `yaml:"signal_topic"`
	// Prefix is the connector's topic.prefix, the key of its signals.
	Prefix string `yaml:"prefix"`
	// Collection is the table as the connector names it in signals
	// ("public.orders", "shop.orders"); default the side's topic without
	// the prefix and its dot.
	Collection string `yaml:"collection"`
	// Quote is how the database quotes identifiers in the re-read's
	// condition: double (PostgreSQL, the default) or backtick (MySQL,
	// MariaDB).
	Quote string `yaml:"quote"`
}

// CollectionName is the table's name in signals to this side.
func (v *SideVerify) CollectionName(topic string) string {
	if v.Collection != "" {
		return v.Collection
	}
	return strings.TrimPrefix(topic, v.Prefix+".")
}

// Verifies reports whether the table's drifts are re-read: both sides
// name a signal topic.
func (t *Table) Verifies() bool { return t.Source.Verify != nil && t.Target.Verify != nil }

func (c *Config) validatePolicy(p string, t *Table, add func(*Error)) {
	pol := t.Policy
	if pol.Rule != "" && !slices.Contains(ruleValues, pol.Rule) {
		add(c.errorAt(p+".policy.rule", "unknown rule %q (want one of %s)", pol.Rule, strings.Join(ruleValues, ", ")))
	}
	owned := pol.Owned()
	for _, col := range slices.Sorted(maps.Keys(pol.Columns)) {
		cp := p + ".policy.columns." + col
		switch o := pol.Columns[col].Owner; o {
		case "", "source", "target":
		default:
			add(c.errorAt(cp+".owner", "unknown owner %q (want source or target)", o))
		}
		if slices.Contains(t.Key, col) && pol.Columns[col].Owner == "target" {
			add(c.errorAt(cp+".owner", "key column %q cannot be owned by the target", col))
		}
		if slices.Contains(t.Compare, col) && pol.Columns[col].Owner == "target" {
			add(c.errorAt(cp+".owner", "column %q is in compare: a column the target owns is not compared", col))
		}
	}
	switch {
	case pol.RuleName() == NewestWins && pol.NewestBy == "":
		add(c.errorAt(p+".policy.newest_by", "newest_wins needs the column it compares"))
	case pol.RuleName() != NewestWins && pol.NewestBy != "":
		add(c.errorAt(p+".policy.newest_by", "applies to rule newest_wins only"))
	case pol.NewestBy != "":
		col := pol.NewestBy
		switch {
		case slices.Contains(t.Key, col):
			add(c.errorAt(p+".policy.newest_by", "%q is a key column", col))
		case slices.Contains(owned, col):
			add(c.errorAt(p+".policy.newest_by", "%q is owned by the target, so not compared", col))
		case slices.Contains(t.Ignore, col) || len(t.Compare) > 0 && !slices.Contains(t.Compare, col):
			add(c.errorAt(p+".policy.newest_by", "%q is not compared (ignored or outside compare): its value is not kept", col))
		}
	}
	if (t.Source.Verify == nil) != (t.Target.Verify == nil) {
		side := "source"
		if t.Target.Verify == nil {
			side = "target"
		}
		add(c.errorAt(p+"."+side+".verify", "re-reads need both sides: the %s has no verify", side))
	}
	for _, side := range []struct {
		name string
		s    *Side
	}{{"source", &t.Source}, {"target", &t.Target}} {
		v := side.s.Verify
		if v == nil {
			continue
		}
		vp := p + "." + side.name + ".verify"
		if v.SignalTopic == "" {
			add(c.errorAt(vp+".signal_topic", "the connector's signal topic is required"))
		}
		if v.Prefix == "" {
			add(c.errorAt(vp+".prefix", "the connector's topic.prefix is required: it keys the signals"))
		} else if v.Collection == "" && !strings.HasPrefix(side.s.Topic, v.Prefix+".") {
			add(c.errorAt(vp+".collection", "topic %q does not start with prefix %q: name the table as the connector does", side.s.Topic, v.Prefix))
		}
		switch v.Quote {
		case "", "double", "backtick":
		default:
			add(c.errorAt(vp+".quote", "unknown quoting %q (want double or backtick)", v.Quote))
		}
	}
}

func (c *Config) validateVerify(add func(*Error)) {
	v := c.Verify
	if v.Delay < 0 {
		add(c.errorAt("verify.delay", "must not be negative, got %s", v.Delay))
	}
	switch {
	case v.Timeout < time.Second:
		add(c.errorAt("verify.timeout", "must be at least 1s, got %s", v.Timeout))
	case v.Timeout <= c.Idle.SafetyMargin:
		// A side whose heartbeats do not move its clock is decided up to
		// the safety margin late; a request is then that old when sent.
		add(c.errorAt("verify.timeout", "must be over idle.safety_margin (%s), got %s: decisions, and so re-read requests, can lag the wall clock by the margin", c.Idle.SafetyMargin, v.Timeout))
	}
	if v.Settle < 0 || v.Settle >= v.Timeout {
		add(c.errorAt("verify.settle", "must be at least 0 and under verify.timeout, got %s", v.Settle))
	}
	if v.MaxKeys < 1 || v.MaxKeys > 1000 {
		add(c.errorAt("verify.max_keys", "must be in 1..1000 (one incremental-snapshot chunk), got %d", v.MaxKeys))
	}
	if v.Rate <= 0 {
		add(c.errorAt("verify.rate", "must be positive, got %g", v.Rate))
	}
}

// PolicyFile is a file of policies by table name, for check --policy:
//
//	tables:
//	  orders: {rule: manual, version: v4}
type PolicyFile struct {
	Tables map[string]Policy `yaml:"tables"`
}

// WithPolicies returns a copy of c whose tables take the policies of the
// policy file at path (tables it leaves out keep theirs), validated as
// the configuration's own; errors name the policy file's lines.
func (c *Config) WithPolicies(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{File: path, Err: err}
	}
	pc := &Config{File: path, lines: map[string]int{}}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &Error{File: path, Line: yamlLine(err), Err: fmt.Errorf("parsing YAML: %w", trimYAML(err))}
	}
	if len(doc.Content) == 0 {
		return nil, &Error{File: path, Err: errors.New("empty policy file")}
	}
	var pf PolicyFile
	if errs := pc.checkKeys(doc.Content[0], reflect.TypeOf(pf), ""); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := doc.Content[0].Decode(&pf); err != nil {
		return nil, &Error{File: path, Line: yamlLine(err), Err: trimYAML(err)}
	}
	if len(pf.Tables) == 0 {
		return nil, pc.errorAt("tables", "names no table")
	}
	out := *c
	out.Tables = slices.Clone(c.Tables)
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(pf.Tables)) {
		p := "tables." + name
		i := slices.IndexFunc(out.Tables, func(t Table) bool { return t.Name == name })
		if i < 0 {
			errs = append(errs, pc.errorAt(p, "no table %q in %s", name, c.File))
			continue
		}
		out.Tables[i].Policy = pf.Tables[name]
		// The file's fields are tables.NAME.X; validatePolicy's are
		// P.policy.X.
		moved := map[string]int{}
		for k, line := range pc.lines {
			if rest, ok := strings.CutPrefix(k, p); ok {
				moved[p+".policy"+rest] = line
			}
		}
		maps.Copy(pc.lines, moved)
		pc.validatePolicy(p, &out.Tables[i], func(e *Error) {
			e.Field = strings.Replace(e.Field, p+".policy", p, 1)
			errs = append(errs, e)
		})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &out, nil
}
