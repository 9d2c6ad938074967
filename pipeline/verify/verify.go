// Package verify sends the re-read requests the reconciler decides to the
// sides' Debezium connectors: each one an execute-snapshot signal of type
// incremental whose additional-conditions select the requested keys, on
// the connector's Kafka signal topic, keyed by its topic.prefix.
//
// Sending is a side effect of the live worker only. The requests are
// decided from the changes alone (processors/consistency), so a replay
// decides the same ones; whether they were sent changes nothing but what
// the connectors read back.
package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"golang.org/x/time/rate"

	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
	"github.com/cdcrecon/cdcrecon/pipeline/ops"
	"github.com/cdcrecon/cdcrecon/processors/config"
	"github.com/cdcrecon/cdcrecon/processors/consistency"
	"github.com/cdcrecon/cdcrecon/processors/normalize"
	"github.com/cdcrecon/cdcrecon/schemas"
)

// Sender sends re-read signals. It is safe for concurrent use.
type Sender struct {
	tables  map[string]*config.Table
	limiter *rate.Limiter
	timeout time.Duration
	pub     message.Publisher
	metrics *ops.Metrics
	// Now is the wall clock; tests set it.
	Now func() time.Time
}

// New returns a Sender publishing through pub, at most verify.rate signals
// a second with bursts of as many.
func New(cfg *config.Config, pub message.Publisher, m *ops.Metrics) *Sender {
	s := &Sender{tables: map[string]*config.Table{}, timeout: cfg.Verify.Timeout, pub: pub, metrics: m, Now: time.Now,
		limiter: rate.NewLimiter(rate.Limit(cfg.Verify.Rate), max(1, int(cfg.Verify.Rate)))}
	for i := range cfg.Tables {
		s.tables[cfg.Tables[i].Name] = &cfg.Tables[i]
	}
	return s
}

// Signal is a request as its connector reads it.
type Signal struct {
	Topic string // the connector's signal topic
	Key   string // its topic.prefix
	Value []byte // {"id", "type": "execute-snapshot", "data": {...}}
}

// signal is Debezium's execute-snapshot signal document.
type signal struct {
	ID   string       `json:"id"`
	Type string       `json:"type"`
	Data snapshotData `json:"data"`
}

type snapshotData struct {
	Collections []string    `json:"data-collections"`
	Type        string      `json:"type"`
	Conditions  []condition `json:"additional-conditions"`
}

type condition struct {
	Collection string `json:"data-collection"`
	Filter     string `json:"filter"`
}

// Format makes a request's signal.
func (s *Sender) Format(r consistency.Request) (Signal, error) {
	t := s.tables[r.Table]
	if t == nil {
		return Signal{}, fmt.Errorf("re-read request of table %q, which is not configured", r.Table)
	}
	side := &t.Source
	if r.Side == normalize.Target {
		side = &t.Target
	}
	v := side.Verify
	if v == nil {
		return Signal{}, fmt.Errorf("re-read request of table %s: its %s has no verify", r.Table, r.Side)
	}
	coll := v.CollectionName(side.Topic)
	filter, err := Condition(r.Keys, v.Quote)
	if err != nil {
		return Signal{}, fmt.Errorf("re-read request %s of table %s: %w", r.ID, r.Table, err)
	}
	body, err := json.Marshal(signal{ID: r.ID, Type: "execute-snapshot",
		Data: snapshotData{Collections: []string{coll}, Type: "incremental", Conditions: []condition{{coll, filter}}}})
	if err != nil {
		return Signal{}, err
	}
	return Signal{Topic: v.SignalTopic, Key: v.Prefix, Value: body}, nil
}

// Condition is the SQL condition selecting keys: "id" IN (1, 2) for a
// one-column key, ("a" = 1 AND "b" = 'x') OR ... for others. quote is
// double (PostgreSQL, the default) or backtick (MySQL, MariaDB).
func Condition(keys []schemas.Columns, quote string) (string, error) {
	if len(keys) == 0 {
		return "", fmt.Errorf("no keys")
	}
	q := func(name string) string {
		if quote == "backtick" {
			return "`" + strings.ReplaceAll(name, "`", "``") + "`"
		}
		return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
	}
	var b strings.Builder
	if len(keys[0]) == 1 {
		b.WriteString(q(keys[0][0].Name) + " IN (")
		for i, k := range keys {
			lit, err := literal(k[0])
			if err != nil {
				return "", err
			}
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(lit)
		}
		b.WriteString(")")
		return b.String(), nil
	}
	for i, k := range keys {
		if i > 0 {
			b.WriteString(" OR ")
		}
		b.WriteString("(")
		for j, c := range k {
			lit, err := literal(c)
			if err != nil {
				return "", err
			}
			if j > 0 {
				b.WriteString(" AND ")
			}
			b.WriteString(q(c.Name) + " = " + lit)
		}
		b.WriteString(")")
	}
	return b.String(), nil
}

// literal writes a key value as SQL: numbers as they are, booleans as
// TRUE or FALSE, anything else as a string literal of its text.
func literal(c schemas.Column) (string, error) {
	if c.Redacted {
		return "", fmt.Errorf("key column %s is redacted", c.Name)
	}
	var v any
	d := json.NewDecoder(strings.NewReader(c.Value))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return "", fmt.Errorf("key column %s: %w", c.Name, err)
	}
	switch x := v.(type) {
	case json.Number:
		return x.String(), nil
	case bool:
		if x {
			return "TRUE", nil
		}
		return "FALSE", nil
	case string:
		return "'" + strings.ReplaceAll(x, "'", "''") + "'", nil
	case nil:
		return "", fmt.Errorf("key column %s is null", c.Name)
	}
	return "'" + strings.ReplaceAll(c.Value, "'", "''") + "'", nil
}

// Send publishes the requests' signals, in order, waiting on the rate
// limit. A request older than verify.timeout by the wall clock is not
// sent: its drift is unverified by the time an answer could come (a
// partition catching up on old changes decides such requests again).
func (s *Sender) Send(ctx context.Context, reqs []consistency.Request) error {
	for _, r := range reqs {
		side := r.Side.String()
		if s.Now().Sub(r.At) > s.timeout {
			s.metrics.Signal(r.Table, side, "stale")
			continue
		}
		sig, err := s.Format(r)
		if err != nil {
			return err
		}
		if err := s.limiter.Wait(ctx); err != nil {
			return err
		}
		m := message.NewMessage(r.ID, sig.Value)
		m.Metadata.Set(kafka.MetaKey, sig.Key)
		if err := s.pub.Publish(sig.Topic, m); err != nil {
			s.metrics.Signal(r.Table, side, "failed")
			return fmt.Errorf("sending re-read signal %s to %s: %w", r.ID, sig.Topic, err)
		}
		s.metrics.Signal(r.Table, side, "sent")
	}
	return nil
}
