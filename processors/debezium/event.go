package debezium

import (
	"errors"
	"fmt"

	"github.com/cdcrecon/cdcrecon/processors/canon"
)

// MessageKind classifies a message.
type MessageKind uint8

// Kinds of message. Only RowEvent carries rows; the others are recognised
// Debezium messages that are not row events.
const (
	// RowEvent is a row event (ops c, u, d, r) or a truncate (op t).
	RowEvent MessageKind = iota + 1
	// Tombstone is a null value (or the legacy {"schema":null,
	// "payload":null}) that follows a delete for log compaction.
	Tombstone
	// Transaction is a transaction metadata BEGIN or END marker.
	Transaction
	// Heartbeat is a connector heartbeat; its Time advances the side's clock.
	Heartbeat
	// SchemaChange is a DDL / schema history event.
	SchemaChange
	// Message is a PostgreSQL logical decoding message (op m).
	Message
)

var kindNames = [...]string{"", "change", "tombstone", "transaction", "heartbeat", "schema_change", "message"}

func (k MessageKind) String() string {
	if int(k) < len(kindNames) && k != 0 {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Op is a Debezium operation code.
type Op byte

// Operations.
const (
	Create   Op = 'c'
	Update   Op = 'u'
	Delete   Op = 'd'
	Read     Op = 'r' // snapshot read
	Truncate Op = 't'
)

func (o Op) String() string {
	if o == 0 {
		return ""
	}
	return string(rune(o))
}

// Row is a decoded row: its columns in message order, named as the
// connector names them.
type Row []canon.Column

// Get returns the named column's value.
func (r Row) Get(name string) (canon.Value, bool) {
	for _, c := range r {
		if c.Name == name {
			return c.Value, true
		}
	}
	return canon.Value{}, false
}

// Event is one decoded message.
type Event struct {
	Kind MessageKind
	// Op is set for Change events.
	Op Op
	// Key is the decoded message key; nil when the message has none.
	Key Row
	// Before and After are the row images; nil when absent (an insert has
	// no before, a delete no after, a PostgreSQL update without REPLICA
	// IDENTITY FULL no before), and always nil from DecodeProjected.
	Before, After Row
	// HasBefore and HasAfter are set by DecodeProjected for the images the
	// message held.
	HasBefore, HasAfter bool
	// Time is the event time in Unix milliseconds: source.ts_ms, else
	// source.ts_sec × 1000 (old connectors), else the envelope's ts_ms
	// (snapshot rows of old connectors carry a zero source time).
	Time int64
	// Source describes where the event comes from.
	Source Source
	// Unwrapped is set for ExtractNewRecordState rows.
	Unwrapped bool
	// TxStatus and TxID are set for Transaction events.
	TxStatus, TxID string
}

// Source is what an event's source block says about its origin.
type Source struct {
	// Connector is postgresql, mysql, sqlserver, mongodb, oracle, db2, or
	// empty when neither named nor recognisable.
	Connector string
	Database  string
	Schema    string
	// Table is the table or, for MongoDB, the collection.
	Table string
	// Snapshot is set for events of an initial or incremental snapshot.
	Snapshot bool
	// Incremental is set for events of an incremental snapshot (an
	// execute-snapshot signal's re-read of chosen rows).
	Incremental bool
	// Position is the connector's position of the event, the fields that
	// identify it in the connector's log, in a fixed order per connector.
	// All rows of one snapshot share a position.
	Position Position
}

// Position is a connector log position: named fields, as text.
type Position []PosField

// PosField is one field of a Position.
type PosField struct{ Name, Value string }

// AppendBinary appends a stable encoding of p: per field, uvarint-prefixed
// name and value.
func (p Position) AppendBinary(b []byte) []byte {
	for _, f := range p {
		b = appendStr(b, f.Name)
		b = appendStr(b, f.Value)
	}
	return b
}

func appendStr(b []byte, s string) []byte {
	n := uint64(len(s))
	for n >= 0x80 {
		b = append(b, byte(n)|0x80)
		n >>= 7
	}
	b = append(b, byte(n))
	return append(b, s...)
}

// MalformedError reports a message that cannot be decoded. It is
// permanent: decoding it again gives the same error.
type MalformedError struct {
	// Part is "key" or "value".
	Part string
	// Field is the path of the offending field ("after.price"), if known.
	Field string
	Err   error
}

func (e *MalformedError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("malformed %s: field %s: %v", e.Part, e.Field, e.Err)
	}
	return fmt.Sprintf("malformed %s: %v", e.Part, e.Err)
}

func (e *MalformedError) Unwrap() error { return e.Err }

// IsMalformed reports whether err is (or wraps) a *MalformedError.
func IsMalformed(err error) bool {
	var m *MalformedError
	return errors.As(err, &m)
}

// fieldError is an error at a field path, built inside out while the
// decoder unwinds.
type fieldError struct {
	path string
	err  error
}

func (e *fieldError) Error() string { return e.path + ": " + e.err.Error() }

func atField(name string, err error) error {
	var fe *fieldError
	if errors.As(err, &fe) {
		return &fieldError{path: name + "." + fe.path, err: fe.err}
	}
	return &fieldError{path: name, err: err}
}

func malformed(part string, err error) error {
	var fe *fieldError
	if errors.As(err, &fe) {
		return &MalformedError{Part: part, Field: fe.path, Err: fe.err}
	}
	return &MalformedError{Part: part, Err: err}
}
