package debezium

import "strconv"

// sourceBlock collects the fields of a Debezium source block that cdcrecon
// uses, as text, whatever the wire format.
type sourceBlock struct {
	connector, db, schema, table, collection string
	tsMs, tsSec                              int64
	snapshot                                 bool
	// position fields by name
	lsn, txID, sequence            string
	file, pos, row, gtid           string
	changeLsn, commitLsn, serialNo string
	ord, scn, commitScn, rsID, ssn string
}

// sourceField names the fields of a source block that cdcrecon uses.
type sourceField int8

// Source fields; the text fields are srcText and those that follow.
const (
	srcOther sourceField = iota
	srcTsMs
	srcTsSec
	srcSnapshot
	srcConnector
	srcDB
	srcSchema
	srcTable
	srcCollection
	srcLsn
	srcTxID
	srcSequence
	srcFile
	srcPos
	srcRow
	srcGtid
	srcChangeLsn
	srcCommitLsn
	srcSerialNo
	srcOrd
	srcScn
	srcCommitScn
	srcRsID
	srcSsn

	srcText = srcConnector
)

var sourceFields = map[string]sourceField{
	"ts_ms": srcTsMs, "ts_sec": srcTsSec, "snapshot": srcSnapshot,
	"connector": srcConnector, "db": srcDB, "schema": srcSchema, "table": srcTable,
	"collection": srcCollection, "lsn": srcLsn, "txId": srcTxID, "sequence": srcSequence,
	"file": srcFile, "pos": srcPos, "row": srcRow, "gtid": srcGtid,
	"change_lsn": srcChangeLsn, "commit_lsn": srcCommitLsn, "event_serial_no": srcSerialNo,
	"ord": srcOrd, "scn": srcScn, "commit_scn": srcCommitScn, "rs_id": srcRsID, "ssn": srcSsn,
}

// sourceFieldOf classifies a source field name (srcOther: unused), as a
// keyOrder tag.
func sourceFieldOf(name string) int8 { return int8(sourceFields[name]) }

// textOf returns where the text of a text field (srcText and above) goes.
func (s *sourceBlock) textOf(f sourceField) *string {
	switch f {
	case srcConnector:
		return &s.connector
	case srcDB:
		return &s.db
	case srcSchema:
		return &s.schema
	case srcTable:
		return &s.table
	case srcCollection:
		return &s.collection
	case srcLsn:
		return &s.lsn
	case srcTxID:
		return &s.txID
	case srcSequence:
		return &s.sequence
	case srcFile:
		return &s.file
	case srcPos:
		return &s.pos
	case srcRow:
		return &s.row
	case srcGtid:
		return &s.gtid
	case srcChangeLsn:
		return &s.changeLsn
	case srcCommitLsn:
		return &s.commitLsn
	case srcSerialNo:
		return &s.serialNo
	case srcOrd:
		return &s.ord
	case srcScn:
		return &s.scn
	case srcCommitScn:
		return &s.commitScn
	case srcRsID:
		return &s.rsID
	case srcSsn:
		return &s.ssn
	}
	return nil
}

// text returns where the text of a source field goes, or nil for a field
// cdcrecon does not use, so that decoders need not copy it.
func (s *sourceBlock) text(name string) *string {
	if f := sourceFields[name]; f >= srcText {
		return s.textOf(f)
	}
	return nil
}

// set records one source field. text is the field's value as text (the
// number's digits, the string's contents); null fields are not passed.
func (s *sourceBlock) set(name, text string) {
	switch name {
	case "ts_ms":
		s.tsMs, _ = strconv.ParseInt(text, 10, 64)
	case "ts_sec":
		s.tsSec, _ = strconv.ParseInt(text, 10, 64)
	case "snapshot":
		s.setSnapshot(text)
	default:
		if p := s.text(name); p != nil {
			*p = text
		}
	}
}

// setSnapshot reads the snapshot flag: a boolean in old connectors;
// true/first/first_in_data_collection/last/last_in_data_collection/
// incremental/false in new ones.
func (s *sourceBlock) setSnapshot(text string) { s.snapshot = text != "false" && text != "" }

// source builds the event's Source, recognising the connector by its
// position fields when the block does not name it (old connectors). The
// position is appended to buf when it is not nil.
func (s *sourceBlock) source(buf Position) Source {
	src := Source{Connector: s.connector, Database: s.db, Schema: s.schema, Table: s.table, Snapshot: s.snapshot}
	if src.Table == "" {
		src.Table = s.collection
	}
	if src.Connector == "" {
		switch {
		case s.lsn != "":
			src.Connector = "postgresql"
		case s.file != "":
			src.Connector = "mysql"
		case s.scn != "":
			src.Connector = "oracle"
		case s.ord != "":
			src.Connector = "mongodb"
		case s.changeLsn != "" || s.commitLsn != "":
			if s.serialNo != "" {
				src.Connector = "sqlserver"
			} else {
				src.Connector = "db2"
			}
		}
	}
	p := buf
	if p == nil {
		p = make(Position, 0, 4)
	}
	add := func(name, v string) {
		if v != "" {
			p = append(p, PosField{name, v})
		}
	}
	switch src.Connector {
	case "postgresql":
		add("lsn", s.lsn)
		add("txId", s.txID)
		add("sequence", s.sequence)
	case "mysql", "mariadb":
		add("file", s.file)
		add("pos", s.pos)
		add("row", s.row)
		add("gtid", s.gtid)
	case "sqlserver", "db2":
		add("change_lsn", s.changeLsn)
		add("commit_lsn", s.commitLsn)
		add("event_serial_no", s.serialNo)
	case "mongodb":
		add("ord", s.ord)
		if s.tsMs != 0 {
			add("ts_ms", strconv.FormatInt(s.tsMs, 10))
		}
	case "oracle":
		add("scn", s.scn)
		add("commit_scn", s.commitScn)
		add("rs_id", s.rsID)
		add("ssn", s.ssn)
	}
	if len(p) > 0 {
		src.Position = p
	}
	return src
}

// time returns the event time: source.ts_ms, else ts_sec, else the
// envelope's ts_ms.
func (s *sourceBlock) time(envelopeMs int64) int64 {
	switch {
	case s.tsMs > 0:
		return s.tsMs
	case s.tsSec > 0:
		return s.tsSec * 1000
	}
	return envelopeMs
}
