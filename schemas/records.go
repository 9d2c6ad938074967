package schemas

import (
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"
)

// Record is a value of one of the schemas: *Drift, *Compensation,
// *Checksum or *DeadLetter. Its Go fields follow the latest version of its
// schema; encoding under an older version leaves out the fields that
// version lacks, and decoding data of an older version leaves them zero,
// which is their default.
type Record interface {
	// SchemaName names the record's schema: DriftName, ...
	SchemaName() string
	native() map[string]any
	setNative(r *nativeReader)
}

func newRecord(fullName string) Record {
	switch fullName {
	case "io.cdcrecon.Drift":
		return new(Drift)
	case "io.cdcrecon.Compensation":
		return new(Compensation)
	case "io.cdcrecon.Checksum":
		return new(Checksum)
	case "io.cdcrecon.DeadLetter":
		return new(DeadLetter)
	case "io.cdcrecon.Audit":
		return new(Audit)
	}
	return nil
}

// Column is one named value of a row.
type Column struct {
	Name string
	// Value is the canonical value as JSON text. Empty when Redacted.
	Value string
	// Digest is the xxh3 digest of the value's canonical encoding, 16 hex
	// digits: what a redacted column shows.
	Digest   string
	Redacted bool
}

// Columns is a row or a key. A nil Columns is an absent row (null); an
// empty one is a row without compared columns. In JSON it is an object of
// name to value, a redacted value showing as {"redacted": DIGEST}.
type Columns []Column

// MarshalJSON writes the columns as one object, in their order.
func (cs Columns) MarshalJSON() ([]byte, error) {
	if cs == nil {
		return []byte("null"), nil
	}
	b := []byte{'{'}
	for i, c := range cs {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, c.Name)
		b = append(b, ':')
		switch {
		case c.Redacted:
			b = append(b, `{"redacted":`...)
			b = strconv.AppendQuote(b, c.Digest)
			b = append(b, '}')
		case json.Valid([]byte(c.Value)):
			b = append(b, c.Value...)
		default: // not JSON text: show it as a string rather than fail
			b = strconv.AppendQuote(b, c.Value)
		}
	}
	return append(b, '}'), nil
}

// DriftKind says how a key is inconsistent.
type DriftKind string

// Drift kinds, as in DESIGN.md.
const (
	MissingInTarget DriftKind = "missing_in_target"
	ExtraInTarget   DriftKind = "extra_in_target"
	ValueMismatch   DriftKind = "value_mismatch"
)

// DriftStatus is a drift's lifecycle state.
type DriftStatus string

// Drift statuses.
const (
	Open     DriftStatus = "open"
	Resolved DriftStatus = "resolved"
)

// Drift is a record of the drift topic (drift.vN.avsc).
type Drift struct {
	ID         string      `json:"id"`
	Table      string      `json:"table"`
	Key        Columns     `json:"key"`
	Kind       DriftKind   `json:"kind"`
	Status     DriftStatus `json:"status"`
	Columns    []string    `json:"columns"`
	Source     Columns     `json:"source"`
	Target     Columns     `json:"target"`
	OpenedAt   time.Time   `json:"opened_at"`
	ResolvedAt *time.Time  `json:"resolved_at"`
	// Reason is new in version 2; empty is null.
	Reason string `json:"reason,omitempty"`
	// Verification, VerifiedSide, Policy and Decision are new in version
	// 3; empty is null.
	Verification Verification `json:"verification,omitempty"`
	VerifiedAt   *time.Time   `json:"verified_at,omitempty"`
	VerifiedSide string       `json:"verified_side,omitempty"`
	Policy       string       `json:"policy,omitempty"`
	Decision     Decision     `json:"decision,omitempty"`
	// CompensationID is new in version 4: on a resolution, the id of the
	// compensation command the drift was given; empty is null.
	CompensationID string `json:"compensation_id,omitempty"`
}

// Verification is what re-reading a drift's rows found.
type Verification string

// Verifications.
const (
	Pending    Verification = "pending"
	Confirmed  Verification = "confirmed"
	StreamGap  Verification = "stream_gap"
	Unverified Verification = "unverified"
)

// Decision is what a table's policy made of a drift.
type Decision string

// Decisions.
const (
	Compensate  Decision = "compensate"
	ManualCheck Decision = "manual"
	TargetNewer Decision = "target_newer"
	KeepRow     Decision = "never_delete"
	Verifying   Decision = "verifying"
)

// SchemaName implements Record.
func (*Drift) SchemaName() string { return DriftName }

func (d *Drift) native() map[string]any {
	return map[string]any{
		"id":              d.ID,
		"table":           d.Table,
		"key":             d.Key.native(),
		"kind":            string(d.Kind),
		"status":          string(d.Status),
		"columns":         stringsNative(d.Columns),
		"source":          d.Source.optNative(),
		"target":          d.Target.optNative(),
		"opened_at":       d.OpenedAt,
		"resolved_at":     optTime(d.ResolvedAt),
		"reason":          optString(d.Reason),
		"verification":    optString(string(d.Verification)),
		"verified_at":     optTime(d.VerifiedAt),
		"verified_side":   optString(d.VerifiedSide),
		"policy":          optString(d.Policy),
		"decision":        optString(string(d.Decision)),
		"compensation_id": optString(d.CompensationID),
	}
}

func (d *Drift) setNative(r *nativeReader) {
	*d = Drift{
		ID:             r.str("id"),
		Table:          r.str("table"),
		Key:            r.columns("key"),
		Kind:           DriftKind(r.str("kind")),
		Status:         DriftStatus(r.str("status")),
		Columns:        r.strings("columns"),
		Source:         r.columns("source"),
		Target:         r.columns("target"),
		OpenedAt:       r.time("opened_at"),
		ResolvedAt:     r.optTime("resolved_at"),
		Reason:         r.str("reason"),
		Verification:   Verification(r.str("verification")),
		VerifiedAt:     r.optTime("verified_at"),
		VerifiedSide:   r.str("verified_side"),
		Policy:         r.str("policy"),
		Decision:       Decision(r.str("decision")),
		CompensationID: r.str("compensation_id"),
	}
}

// Action is what a compensation command does to the target row.
type Action string

// Compensation actions.
const (
	Upsert     Action = "upsert"
	Delete     Action = "delete"
	SoftDelete Action = "soft_delete"
)

// Compensation is a record of the compensation topic
// (compensation.vN.avsc).
type Compensation struct {
	ID            string    `json:"id"`
	DriftID       string    `json:"drift_id"`
	Table         string    `json:"table"`
	TargetTopic   string    `json:"target_topic"`
	Action        Action    `json:"action"`
	Key           Columns   `json:"key"`
	Row           Columns   `json:"row"`
	DriftOpenedAt time.Time `json:"drift_opened_at"`
	// Policy and Verification are new in version 2; empty is null.
	Policy       string       `json:"policy,omitempty"`
	Verification Verification `json:"verification,omitempty"`
}

// SchemaName implements Record.
func (*Compensation) SchemaName() string { return CompensationName }

func (c *Compensation) native() map[string]any {
	return map[string]any{
		"id":              c.ID,
		"drift_id":        c.DriftID,
		"table":           c.Table,
		"target_topic":    c.TargetTopic,
		"action":          string(c.Action),
		"key":             c.Key.native(),
		"row":             c.Row.optNative(),
		"drift_opened_at": c.DriftOpenedAt,
		"policy":          optString(c.Policy),
		"verification":    optString(string(c.Verification)),
	}
}

func (c *Compensation) setNative(r *nativeReader) {
	*c = Compensation{
		ID:            r.str("id"),
		DriftID:       r.str("drift_id"),
		Table:         r.str("table"),
		TargetTopic:   r.str("target_topic"),
		Action:        Action(r.str("action")),
		Key:           r.columns("key"),
		Row:           r.columns("row"),
		DriftOpenedAt: r.time("drift_opened_at"),
		Policy:        r.str("policy"),
		Verification:  Verification(r.str("verification")),
	}
}

// Digest128 is an order-independent digest of a set of rows.
type Digest128 [16]byte

// MarshalJSON writes the digest as 32 hex digits.
func (d Digest128) MarshalJSON() ([]byte, error) {
	return strconv.AppendQuote(nil, hex.EncodeToString(d[:])), nil
}

// SideDigest is the digest of one side's rows over a window's keys.
type SideDigest struct {
	Count  int64     `json:"count"`
	Digest Digest128 `json:"digest"`
}

func (s SideDigest) native() map[string]any {
	return map[string]any{"count": s.Count, "digest": s.Digest[:]}
}

// Checksum is a record of the checksums topic (checksum.vN.avsc).
type Checksum struct {
	Table       string     `json:"table"`
	Partition   int32      `json:"partition"`
	WindowStart time.Time  `json:"window_start"`
	WindowEnd   time.Time  `json:"window_end"`
	Source      SideDigest `json:"source"`
	Target      SideDigest `json:"target"`
	Consistent  bool       `json:"consistent"`
	DriftIDs    []string   `json:"drift_ids"`
}

// SchemaName implements Record.
func (*Checksum) SchemaName() string { return ChecksumName }

func (c *Checksum) native() map[string]any {
	return map[string]any{
		"table":        c.Table,
		"partition":    c.Partition,
		"window_start": c.WindowStart,
		"window_end":   c.WindowEnd,
		"source":       c.Source.native(),
		"target":       c.Target.native(),
		"consistent":   c.Consistent,
		"drift_ids":    stringsNative(c.DriftIDs),
	}
}

func (c *Checksum) setNative(r *nativeReader) {
	*c = Checksum{
		Table:       r.str("table"),
		Partition:   r.int32("partition"),
		WindowStart: r.time("window_start"),
		WindowEnd:   r.time("window_end"),
		Source:      r.sideDigest("source"),
		Target:      r.sideDigest("target"),
		Consistent:  r.bool("consistent"),
		DriftIDs:    r.strings("drift_ids"),
	}
}

// Header is a Kafka record header.
type Header struct {
	Key   string `json:"key"`
	Value []byte `json:"value"` // nil is a null value
}

// DeadLetter is a record of the dead-letter topic (deadletter.vN.avsc).
type DeadLetter struct {
	Topic     string    `json:"topic"`
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	Timestamp time.Time `json:"timestamp"`
	Key       []byte    `json:"key"`   // nil is a null key
	Value     []byte    `json:"value"` // nil is a null value (a tombstone)
	Headers   []Header  `json:"headers"`
	Stage     string    `json:"stage"`
	Reason    string    `json:"reason"`
}

// SchemaName implements Record.
func (*DeadLetter) SchemaName() string { return DeadLetterName }

func (d *DeadLetter) native() map[string]any {
	hs := make([]any, len(d.Headers))
	for i, h := range d.Headers {
		hs[i] = map[string]any{"key": h.Key, "value": optBytes(h.Value)}
	}
	return map[string]any{
		"topic":     d.Topic,
		"partition": d.Partition,
		"offset":    d.Offset,
		"timestamp": d.Timestamp,
		"key":       optBytes(d.Key),
		"value":     optBytes(d.Value),
		"headers":   hs,
		"stage":     d.Stage,
		"reason":    d.Reason,
	}
}

func (d *DeadLetter) setNative(r *nativeReader) {
	*d = DeadLetter{
		Topic:     r.str("topic"),
		Partition: r.int32("partition"),
		Offset:    r.long("offset"),
		Timestamp: r.time("timestamp"),
		Key:       r.bytes("key"),
		Value:     r.bytes("value"),
		Stage:     r.str("stage"),
		Reason:    r.str("reason"),
	}
	r.each("headers", func(h *nativeReader) {
		d.Headers = append(d.Headers, Header{Key: h.str("key"), Value: h.bytes("value")})
	})
}

// Outcome is what apply did with a compensation command.
type Outcome string

// Outcomes.
const (
	Applied    Outcome = "applied"
	Superseded Outcome = "superseded"
	Skipped    Outcome = "skipped"
	Failed     Outcome = "failed"
)

// Audit is a record of the audit topic (audit.vN.avsc): one compensation
// command's outcome.
type Audit struct {
	CompensationID string    `json:"compensation_id"`
	DriftID        string    `json:"drift_id"`
	Table          string    `json:"table"`
	TargetTable    string    `json:"target_table"`
	Database       string    `json:"database"`
	Action         Action    `json:"action"`
	Key            Columns   `json:"key"`
	Outcome        Outcome   `json:"outcome"`
	Reason         string    `json:"reason"`
	Statement      string    `json:"statement,omitempty"` // empty is null
	Params         Columns   `json:"params"`
	Attempts       int32     `json:"attempts"`
	Policy         string    `json:"policy,omitempty"`
	Verification   string    `json:"verification,omitempty"`
	InstanceID     string    `json:"instance_id"`
	At             time.Time `json:"at"`
}

// SchemaName implements Record.
func (*Audit) SchemaName() string { return AuditName }

func (a *Audit) native() map[string]any {
	return map[string]any{
		"compensation_id": a.CompensationID,
		"drift_id":        a.DriftID,
		"table":           a.Table,
		"target_table":    a.TargetTable,
		"database":        a.Database,
		"action":          string(a.Action),
		"key":             a.Key.native(),
		"outcome":         string(a.Outcome),
		"reason":          a.Reason,
		"statement":       optString(a.Statement),
		"params":          a.Params.optNative(),
		"attempts":        a.Attempts,
		"policy":          optString(a.Policy),
		"verification":    optString(a.Verification),
		"instance_id":     a.InstanceID,
		"at":              a.At,
	}
}

func (a *Audit) setNative(r *nativeReader) {
	*a = Audit{
		CompensationID: r.str("compensation_id"),
		DriftID:        r.str("drift_id"),
		Table:          r.str("table"),
		TargetTable:    r.str("target_table"),
		Database:       r.str("database"),
		Action:         Action(r.str("action")),
		Key:            r.columns("key"),
		Outcome:        Outcome(r.str("outcome")),
		Reason:         r.str("reason"),
		Statement:      r.str("statement"),
		Params:         r.columns("params"),
		Attempts:       r.int32("attempts"),
		Policy:         r.str("policy"),
		Verification:   r.str("verification"),
		InstanceID:     r.str("instance_id"),
		At:             r.time("at"),
	}
}
