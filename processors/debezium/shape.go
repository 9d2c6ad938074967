package debezium

import "strings"

// shape is what the top-level field names of a decoded value say about its
// kind; JSON and Avro decoding classify through it alike.
type shape struct {
	n                                            int
	op, source, images, tsMs, status, id, schema bool
	unwrapped, heartbeatSchema                   bool
}

func (s *shape) see(name string) {
	s.n++
	switch name {
	case "op":
		s.op = true
	case "source":
		s.source = true
	case "before", "after":
		s.images = true
	case "ts_ms":
		s.tsMs = true
	case "status":
		s.status = true
	case "id":
		s.id = true
	case "ddl", "tableChanges", "databaseName":
		s.schema = true
	default:
		if strings.HasPrefix(name, "__") {
			s.unwrapped = true
		}
	}
}

// kind returns Change for a change envelope, the non-row kinds, or 0 for
// an ExtractNewRecordState row (or a bad envelope, see badEnvelope).
func (s *shape) kind() Kind {
	switch {
	case s.op && (s.source || s.images):
		return Change
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
