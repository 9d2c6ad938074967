package dump

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// ParseLine parses one dump line. The record's byte slices do not alias b.
//
// A line is one JSON object with kcat's fields; anything else on the line,
// an unknown field or a field of the wrong type is an error naming it.
// The scanner reads the line once, copying only the strings it keeps:
// loading a dump of millions of messages is bound by this function.
func ParseLine(b []byte) (Record, error) {
	s := scanner{b: b}
	var (
		rec                    Record
		topic                  []byte
		hasTopic, hasPartition bool
		partition              int64
	)
	s.ws()
	if err := s.expect('{'); err != nil {
		return rec, err
	}
	s.ws()
	if s.peek() == '}' {
		s.i++
	} else {
		for {
			s.ws()
			name, err := s.str()
			if err != nil {
				return rec, err
			}
			s.ws()
			if err := s.expect(':'); err != nil {
				return rec, err
			}
			s.ws()
			field := string(name)
			switch field {
			case "topic":
				topic, hasTopic, err = s.nullableStr()
			case "partition":
				partition, hasPartition, err = s.nullableInt(32)
			case "offset":
				rec.Offset, _, err = s.nullableInt(64)
			case "ts":
				var ts int64
				var ok bool
				if ts, ok, err = s.nullableInt(64); ok {
					rec.Timestamp = time.UnixMilli(ts)
				}
			case "tstype":
				var t []byte
				if t, _, err = s.nullableStr(); err == nil {
					switch string(t) {
					case "", "create", "unknown":
					case "logappend":
						rec.LogAppendTime = true
					default:
						return rec, fmt.Errorf(`field "tstype": unknown value %q`, t)
					}
				}
			case "key":
				rec.Key, _, err = s.nullableStr()
			case "payload":
				rec.Value, _, err = s.nullableStr()
			case "headers":
				rec.Headers, err = s.headers()
			case "broker", "key_schema_id", "value_schema_id":
				// Written by kcat (-s avro writes the schema ids; they
				// stay in the payload bytes too).
				err = s.skip(0)
			default:
				return rec, fmt.Errorf("parsing JSON: unknown field %q", field)
			}
			if err != nil {
				var fe *fieldError
				if errors.As(err, &fe) {
					return rec, fmt.Errorf("field %q: %s", field, fe.msg)
				}
				return rec, err
			}
			s.ws()
			if s.peek() == ',' {
				s.i++
				continue
			}
			if err := s.expect('}'); err != nil {
				return rec, err
			}
			break
		}
	}
	s.ws()
	if s.i < len(s.b) {
		return rec, errors.New("parsing JSON: more than one value on the line")
	}
	switch {
	case !hasTopic || len(topic) == 0:
		return rec, errors.New(`field "topic": missing or empty`)
	case !hasPartition:
		return rec, errors.New(`field "partition": missing`)
	case partition < 0:
		return rec, fmt.Errorf(`field "partition": negative (%d)`, partition)
	}
	rec.Topic, rec.Partition = string(topic), int32(partition)
	return rec, nil
}

// fieldError is a well-formed value of the wrong type for its field.
type fieldError struct{ msg string }

func (e *fieldError) Error() string { return e.msg }

// scanner reads one JSON line. Syntax errors say "parsing JSON" and where.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) syntax(what string) error {
	if s.i >= len(s.b) {
		return fmt.Errorf("parsing JSON: unexpected end of line, want %s", what)
	}
	return fmt.Errorf("parsing JSON: at byte %d: unexpected %q, want %s", s.i, s.b[s.i], what)
}

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) expect(c byte) error {
	if s.peek() != c {
		return s.syntax(strconv.QuoteRune(rune(c)))
	}
	s.i++
	return nil
}

// rawStr returns the bytes between a string's quotes, escapes unresolved,
// after checking that every escape is valid and no control byte appears.
func (s *scanner) rawStr() (raw []byte, escaped bool, err error) {
	if err := s.expect('"'); err != nil {
		return nil, false, err
	}
	start := s.i
	for {
		// Jump to the next quote or backslash; what lies between must
		// hold no control byte.
		rest := s.b[s.i:]
		j := bytes.IndexByte(rest, '"')
		if j < 0 {
			s.i = len(s.b)
			return nil, false, s.syntax(`'"' closing the string`)
		}
		if k := bytes.IndexByte(rest[:j], '\\'); k >= 0 {
			j = k
		}
		for _, c := range rest[:j] {
			if c < 0x20 {
				s.i += bytes.IndexByte(rest, c)
				return nil, false, s.syntax("a string character (control bytes must be escaped)")
			}
		}
		s.i += j
		if s.b[s.i] == '"' {
			s.i++
			return s.b[start : s.i-1], escaped, nil
		}
		escaped = true
		s.i++
		switch s.peek() {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			s.i++
		case 'u':
			s.i++
			for range 4 {
				if !isHex(s.peek()) {
					return nil, false, s.syntax("a hex digit of a \\u escape")
				}
				s.i++
			}
		default:
			return nil, false, s.syntax("an escape character")
		}
	}
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// str reads a string and returns its bytes, escapes resolved, in a fresh
// slice.
func (s *scanner) str() ([]byte, error) {
	raw, escaped, err := s.rawStr()
	if err != nil {
		return nil, err
	}
	if !escaped {
		return append(make([]byte, 0, len(raw)), raw...), nil
	}
	out, err := unquote(raw)
	if err != nil {
		return nil, fmt.Errorf("parsing JSON: %w", err)
	}
	return out, nil
}

// nullableStr reads a string or null; ok is false for null.
func (s *scanner) nullableStr() (v []byte, ok bool, err error) {
	switch s.peek() {
	case 'n':
		return nil, false, s.literal("null")
	case '"':
		v, err := s.str()
		return v, err == nil, err
	}
	start := s.i
	if err := s.skip(0); err != nil {
		return nil, false, err
	}
	return nil, false, &fieldError{fmt.Sprintf("want a string or null, got %.20s", s.b[start:s.i])}
}

// nullableInt reads an integer of the given bit size, or null.
func (s *scanner) nullableInt(bits int) (v int64, ok bool, err error) {
	if s.peek() == 'n' {
		return 0, false, s.literal("null")
	}
	start := s.i
	if err := s.skip(0); err != nil {
		return 0, false, err
	}
	text := s.b[start:s.i]
	n, err := strconv.ParseInt(string(text), 10, bits)
	if err != nil {
		return 0, false, &fieldError{fmt.Sprintf("want an integer of %d bits, got %.20s", bits, text)}
	}
	return n, true, nil
}

// headers reads kcat's headers: null, or an array alternating names
// (strings) and values (strings or null).
func (s *scanner) headers() ([]Header, error) {
	if s.peek() == 'n' {
		return nil, s.literal("null")
	}
	if s.peek() != '[' {
		return nil, &fieldError{"want an array of name/value pairs"}
	}
	s.i++
	var hs []Header
	var name []byte
	n := 0
	s.ws()
	if s.peek() == ']' {
		s.i++
		return nil, nil
	}
	for {
		s.ws()
		v, ok, err := s.nullableStr()
		if err != nil {
			var fe *fieldError
			if errors.As(err, &fe) {
				return nil, &fieldError{fmt.Sprintf("element %d: %s", n, fe.msg)}
			}
			return nil, err
		}
		if n%2 == 0 {
			if !ok {
				return nil, &fieldError{fmt.Sprintf("element %d: want a header name string", n)}
			}
			name = v
		} else {
			hs = append(hs, Header{Key: string(name), Value: v})
		}
		n++
		s.ws()
		if s.peek() == ',' {
			s.i++
			continue
		}
		if err := s.expect(']'); err != nil {
			return nil, err
		}
		break
	}
	if n%2 != 0 {
		return nil, &fieldError{"odd number of elements, want name/value pairs"}
	}
	return hs, nil
}

func (s *scanner) literal(lit string) error {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return s.syntax(lit)
	}
	s.i += len(lit)
	return nil
}

// maxDepth bounds the nesting skip follows.
const maxDepth = 64

// skip reads over any JSON value, checking its syntax.
func (s *scanner) skip(depth int) error {
	if depth > maxDepth {
		return errors.New("parsing JSON: nested too deeply")
	}
	switch c := s.peek(); {
	case c == '"':
		_, _, err := s.rawStr()
		return err
	case c == 'n':
		return s.literal("null")
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == '-' || '0' <= c && c <= '9':
		return s.number()
	case c == '[' || c == '{':
		close := byte(']')
		if c == '{' {
			close = '}'
		}
		s.i++
		s.ws()
		if s.peek() == close {
			s.i++
			return nil
		}
		for {
			s.ws()
			if c == '{' {
				if _, _, err := s.rawStr(); err != nil {
					return err
				}
				s.ws()
				if err := s.expect(':'); err != nil {
					return err
				}
				s.ws()
			}
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			s.ws()
			if s.peek() == ',' {
				s.i++
				continue
			}
			return s.expect(close)
		}
	}
	return s.syntax("a JSON value")
}

// number reads a JSON number.
func (s *scanner) number() error {
	digits := func() int {
		n := 0
		for '0' <= s.peek() && s.peek() <= '9' {
			s.i++
			n++
		}
		return n
	}
	if s.peek() == '-' {
		s.i++
	}
	if s.peek() == '0' {
		s.i++
	} else if digits() == 0 {
		return s.syntax("a digit")
	}
	if s.peek() == '.' {
		s.i++
		if digits() == 0 {
			return s.syntax("a digit after '.'")
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if digits() == 0 {
			return s.syntax("a digit of the exponent")
		}
	}
	return nil
}
