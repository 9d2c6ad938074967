package debezium

import "strconv"

// sourceBlock collects the fields of a Debezium source block that cdcrecon
// uses, as text, whatever the wire format.
type sourceBlock struct {
	connector, db, schema, table, collection string
	tsMs, tsSec                              int64
	snapshot, incremental                    bool
	// position fields by name
	lsn, txID, sequence            string
	file, pos, row, gtid           string
	changeLsn, commitLsn, serialNo string
	ord, scn, commitScn, rsID, ssn string
}

// text returns where the text of a source field goes, or nil for a field
// cdcrecon does not use, so that decoders need not copy it.
func (s *sourceBlock) text(name string) *string {
	switch name {
	case "connector":
		return &s.connector
	case "db":
		return &s.db
	case "schema":
		return &s.schema
	case "table":
		return &s.table
	case "collection":
		return &s.collection
	case "lsn":
		return &s.lsn
	case "txId":
		return &s.txID
	case "sequence":
		return &s.sequence
	case "file":
		return &s.file
	case "pos":
		return &s.pos
	case "row":
		return &s.row
	case "gtid":
		return &s.gtid
	case "change_lsn":
		return &s.changeLsn
	case "commit_lsn":
		return &s.commitLsn
	case "event_serial_no":
		return &s.serialNo
	case "ord":
		return &s.ord
	case "scn":
		return &s.scn
	case "commit_scn":
		return &s.commitScn
	case "rs_id":
		return &s.rsID
	case "ssn":
		return &s.ssn
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
func (s *sourceBlock) setSnapshot(text string) {
	s.snapshot = text != "false" && text != ""
	s.incremental = text == "incremental"
}

// source builds the event's Source, recognising the connector by its
// position fields when the block does not name it (old connectors). The
// position is appended to buf when it is not nil.
func (s *sourceBlock) source(buf Position) Source {
	src := Source{Connector: s.connector, Database: s.db, Schema: s.schema, Table: s.table, Snapshot: s.snapshot, Incremental: s.incremental}
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
