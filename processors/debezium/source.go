package debezium

import "strconv"

// sourceBlock collects the fields of a Debezium source block that cdcrecon
// uses, as text, whatever the wire format.
type sourceBlock struct {
	connector, db, schema, table, collection string
	tsMs, tsSec                              int64
	snapshot                                 bool
	// position fields by name
	lsn, txID, sequence                        string
	file, pos, row, gtid                       string
	changeLsn, commitLsn, serialNo             string
	ord, scn, commitScn, rsID, ssn             string
	hasLsn, hasFile, hasChange, hasScn, hasOrd bool
}

// set records one source field. text is the field's value as text (the
// number's digits, the string's contents); null fields are not passed.
func (s *sourceBlock) set(name, text string) {
	switch name {
	case "connector":
		s.connector = text
	case "db":
		s.db = text
	case "schema":
		s.schema = text
	case "table":
		s.table = text
	case "collection":
		s.collection = text
	case "ts_ms":
		s.tsMs, _ = strconv.ParseInt(text, 10, 64)
	case "ts_sec":
		s.tsSec, _ = strconv.ParseInt(text, 10, 64)
	case "snapshot":
		// Boolean in old connectors; true/first/first_in_data_collection/
		// last/last_in_data_collection/incremental/false in new ones.
		s.snapshot = text != "false" && text != ""
	case "lsn":
		s.lsn, s.hasLsn = text, true
	case "txId":
		s.txID = text
	case "sequence":
		s.sequence = text
	case "file":
		s.file, s.hasFile = text, true
	case "pos":
		s.pos = text
	case "row":
		s.row = text
	case "gtid":
		s.gtid = text
	case "change_lsn":
		s.changeLsn, s.hasChange = text, true
	case "commit_lsn":
		s.commitLsn, s.hasChange = text, true
	case "event_serial_no":
		s.serialNo = text
	case "ord":
		s.ord, s.hasOrd = text, true
	case "scn":
		s.scn, s.hasScn = text, true
	case "commit_scn":
		s.commitScn = text
	case "rs_id":
		s.rsID = text
	case "ssn":
		s.ssn = text
	}
}

// source builds the event's Source, recognising the connector by its
// position fields when the block does not name it (old connectors).
func (s *sourceBlock) source() Source {
	src := Source{Connector: s.connector, Database: s.db, Schema: s.schema, Table: s.table, Snapshot: s.snapshot}
	if src.Table == "" {
		src.Table = s.collection
	}
	if src.Connector == "" {
		switch {
		case s.hasLsn:
			src.Connector = "postgresql"
		case s.hasFile:
			src.Connector = "mysql"
		case s.hasScn:
			src.Connector = "oracle"
		case s.hasOrd:
			src.Connector = "mongodb"
		case s.hasChange:
			if s.serialNo != "" {
				src.Connector = "sqlserver"
			} else {
				src.Connector = "db2"
			}
		}
	}
	p := make(Position, 0, 4)
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
