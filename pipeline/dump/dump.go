// Package dump reads and writes topic dumps in kcat's -J line format: one
// JSON object per line with "topic", "partition", "offset", "ts", "key",
// "payload" and an optional "headers" array of alternating names and values.
// Keys, payloads and header values are strings or null.
//
// kcat writes key and payload bytes verbatim inside the JSON string, escaping
// only quotes, backslashes and control characters, so a dump of binary data
// (Avro, for instance) is not valid UTF-8. This package keeps those bytes
// exactly: it unescapes strings itself instead of letting encoding/json
// replace invalid UTF-8, and writes them back the way kcat does. A dump read
// and written again is byte-identical in its keys, payloads and headers.
//
// It imports nothing of ours.
package dump

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode/utf8"
)

// Header is one record header. A nil Value is a null header value.
type Header struct {
	Key   string
	Value []byte
}

// Record is one line of a dump. A nil Key or Value is JSON null.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	// Timestamp is the record's timestamp; the zero time when the line has
	// no "ts".
	Timestamp time.Time
	// LogAppendTime is true when the timestamp was set by the broker.
	LogAppendTime bool
	Headers       []Header
	Key           []byte
	Value         []byte
}

// LineError is a line that could not be read, with its position.
type LineError struct {
	File string
	Line int
	Err  error
}

func (e *LineError) Error() string {
	return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
}

func (e *LineError) Unwrap() error { return e.Err }

// Reader reads records from a dump, one line at a time. Blank lines are
// skipped. It is not safe for concurrent use.
type Reader struct {
	name string
	sc   *bufio.Scanner
	line int
	par  *parallel // set by NewParallelReader
}

// maxLine bounds one dump line; Debezium messages with large schemas run to
// hundreds of kilobytes.
const maxLine = 64 << 20

// NewReader reads the dump r; name is used in errors (a file name).
func NewReader(r io.Reader, name string) *Reader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	return &Reader{name: name, sc: sc}
}

// Line is the number of the line last read.
func (r *Reader) Line() int {
	if r.par != nil {
		return r.par.line
	}
	return r.line
}

// Next returns the next record, io.EOF at the end, a *LineError for a line
// that is not a valid dump record (the reader can go on past it), or another
// error when reading fails.
func (r *Reader) Next() (Record, error) {
	if r.par != nil {
		return r.par.next()
	}
	for r.sc.Scan() {
		r.line++
		b := bytes.TrimSpace(r.sc.Bytes())
		if len(b) == 0 {
			continue
		}
		rec, err := ParseLine(b)
		if err != nil {
			return Record{}, &LineError{File: r.name, Line: r.line, Err: err}
		}
		return rec, nil
	}
	if err := r.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return Record{}, &LineError{File: r.name, Line: r.line + 1, Err: fmt.Errorf("line longer than %d bytes", maxLine)}
		}
		return Record{}, fmt.Errorf("reading %s: %w", r.name, err)
	}
	return Record{}, io.EOF
}

// unquote resolves JSON escapes in s, copying every other byte unchanged.
func unquote(s []byte) ([]byte, error) {
	out := make([]byte, len(s)) // escapes only shrink
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			out[n] = c
			n++
			continue
		}
		i++
		if i >= len(s) {
			return nil, errors.New("string ends inside an escape")
		}
		switch s[i] {
		case '"', '\\', '/':
			out[n] = s[i]
		case 'b':
			out[n] = '\b'
		case 'f':
			out[n] = '\f'
		case 'n':
			out[n] = '\n'
		case 'r':
			out[n] = '\r'
		case 't':
			out[n] = '\t'
		case 'u':
			r, k, err := unicodeEscape(s[i-1:])
			if err != nil {
				return nil, err
			}
			n += utf8.EncodeRune(out[n:], r) - 1 // a \u escape is longer than its UTF-8
			i += k - 2
		default:
			return nil, fmt.Errorf("invalid escape \\%c", s[i])
		}
		n++
	}
	return out[:n:n], nil
}

// unicodeEscape reads \uXXXX (and a following low surrogate) at the start of
// s, returning the code point and the bytes consumed.
func unicodeEscape(s []byte) (rune, int, error) {
	hex := func(b []byte) (rune, error) {
		if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
			return 0, errors.New("invalid \\u escape")
		}
		v, err := strconv.ParseUint(string(b[2:6]), 16, 16)
		if err != nil {
			return 0, errors.New("invalid \\u escape")
		}
		return rune(v), nil
	}
	r, err := hex(s)
	if err != nil {
		return 0, 0, err
	}
	if r >= 0xD800 && r < 0xDC00 {
		if lo, err := hex(s[6:]); err == nil && lo >= 0xDC00 && lo < 0xE000 {
			return (r-0xD800)<<10 + (lo - 0xDC00) + 0x10000, 12, nil
		}
	}
	return r, 6, nil
}
