package debezium

import (
	"fmt"
	"strconv"
	"strings"
)

// shape is what the top-level field names of a decoded value say about its
// kind; JSON and Avro decoding classify through it alike.
type shape struct {
	n                                            int
	op, source, images, tsMs, status, id, schema bool
	unwrapped, heartbeatSchema                   bool
}

// topField classifies a top-level field name of a value.
type topField int8

// Field classes.
const (
	fOther topField = iota
	fOp
	fBefore
	fAfter
	fSource
	fTsMs
	fStatus
	fID
	fSchema    // a schema change's ddl, tableChanges or databaseName
	fUnwrapped // an ExtractNewRecordState "__" field
)

func classify(name string) topField {
	switch name {
	case "op":
		return fOp
	case "before":
		return fBefore
	case "after":
		return fAfter
	case "source":
		return fSource
	case "ts_ms":
		return fTsMs
	case "status":
		return fStatus
	case "id":
		return fID
	case "ddl", "tableChanges", "databaseName":
		return fSchema
	}
	if strings.HasPrefix(name, "__") {
		return fUnwrapped
	}
	return fOther
}

func (s *shape) see(f topField) {
	s.n++
	switch f {
	case fOp:
		s.op = true
	case fSource:
		s.source = true
	case fBefore, fAfter:
		s.images = true
	case fTsMs:
		s.tsMs = true
	case fStatus:
		s.status = true
	case fID:
		s.id = true
	case fSchema:
		s.schema = true
	case fUnwrapped:
		s.unwrapped = true
	}
}

// kind returns Change for a change envelope, the non-row kinds, or 0 for
// an ExtractNewRecordState row (or a bad envelope, see badEnvelope).
func (s *shape) kind() MessageKind {
	switch {
	case s.op && (s.source || s.images):
		return RowEvent
	case s.status && s.id && !s.op:
		return Transaction
	case s.schema && !s.op:
		return SchemaChange
	case s.n == 1 && s.tsMs, s.heartbeatSchema:
		return Heartbeat
	}
	return 0
}

// badEnvelope reports an "op" without any other envelope field and without
// the "__" fields of an unwrapped row.
func (s *shape) badEnvelope() bool { return s.op && !s.unwrapped }

// nonRow completes an event of a kind without rows: a transaction marker
// (status BEGIN or END, and its id), a schema change or a heartbeat.
func nonRow(ev *Event, k MessageKind, sb *sourceBlock, envMs int64, status, id string) error {
	ev.Kind, ev.Time = k, envMs
	switch k {
	case Transaction:
		ev.TxStatus, ev.TxID = status, id
		if status != "BEGIN" && status != "END" {
			return atField("status", fmt.Errorf("unknown transaction status %q", status))
		}
	case SchemaChange:
		ev.Source, ev.Time = sb.source(nil), sb.time(envMs)
	}
	return nil
}

// changeOp reads a row operation code: c, u, d, r or t.
func changeOp(text string) (Op, error) {
	if len(text) != 1 || !strings.Contains("cudrt", text) {
		return 0, fmt.Errorf("unknown operation %q", text)
	}
	return Op(text[0]), nil
}

// unwrapped collects the "__"-prefixed metadata fields of an
// ExtractNewRecordState row (__op, __deleted, __ts_ms, __source_*), which
// JSON and Avro decoding read alike.
type unwrapped struct {
	sb      sourceBlock
	deleted bool
	envMs   int64
}

// meta records a field named name (with its "__") whose value reads as
// text ("" for null). isMeta is false for the row's own columns.
func (u *unwrapped) meta(ev *Event, name, text string) (isMeta bool, err error) {
	m, ok := strings.CutPrefix(name, "__")
	if !ok {
		return false, nil
	}
	switch m = strings.TrimPrefix(m, "source_"); m {
	case "op":
		op, err := changeOp(text)
		if err != nil {
			return true, atField(name, err)
		}
		ev.Op = op
	case "deleted":
		u.deleted = text == "true"
	case "ts_ms":
		u.envMs, _ = strconv.ParseInt(text, 10, 64)
	default:
		if text != "" {
			u.sb.set(m, text)
		}
	}
	return true, nil
}

// finish completes the event with its row: a delete's before image, else
// the after image.
func (u *unwrapped) finish(ev *Event, row Row) {
	ev.Source, ev.Time = u.sb.source(nil), u.sb.time(u.envMs)
	if u.deleted || ev.Op == Delete {
		ev.Op, ev.Before = Delete, row
	} else {
		ev.After = row
	}
}
