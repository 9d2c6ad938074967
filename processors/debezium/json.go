package debezium

import (
	"bytes"
	"errors"
	"strconv"
	"unsafe"

	"github.com/cdcrecon/cdcrecon/processors/canon"
)

// maxDepth bounds nesting of values so hostile input cannot exhaust the
// stack.
const maxDepth = 64

// envelopePrefix starts every JsonConverter message with schemas enabled.
const envelopePrefix = `{"schema":`

// jsonCtx is the state of decoding one JSON message. For Decode, the
// strings it produces are copied into one arena, so an event costs one
// allocation for all its text and does not reference the message's buffer.
// For DecodeProjected, unescaped text is the message's own and the arena
// is the Decoder's, reused from message to message.
type jsonCtx struct {
	d     *Decoder
	s     scanner
	arena []byte
	// env is set when the payload sits in a {"schema","payload"} envelope
	// whose closing brace is still to be read; resume, when positive, is
	// where scanning continues after a payload that preceded its schema.
	env    bool
	resume int
	key    bool // decoding a message key
	tmp    [64]byte
	val    canon.Value // the value projectRow hands over
}

func (d *Decoder) newCtx(b []byte) *jsonCtx {
	var arena []byte
	if d.proj != nil {
		arena = d.ctx.arena // the message's key and value share the reused arena
	}
	d.ctx = jsonCtx{d: d, s: scanner{b: b}, arena: arena}
	return &d.ctx
}

// str copies b into the arena and returns it as a string that stays valid
// for as long as the event lives.
func (c *jsonCtx) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	c.grow()
	if len(c.arena)+len(b) > cap(c.arena) { // only when a payload is read twice
		return string(b)
	}
	start := len(c.arena)
	c.arena = append(c.arena, b...)
	return unsafe.String(&c.arena[start], len(b))
}

// msgStr returns bytes of the message as a string: copied into the arena,
// or the message's own bytes when decoding for DecodeProjected, whose
// results are valid only while the message is.
func (c *jsonCtx) msgStr(b []byte) string {
	if c.d.proj != nil {
		return unsafeString(b)
	}
	return c.str(b)
}

// grow allocates the arena on first use, as large as what is left of the
// message: the text still to be read cannot be longer.
func (c *jsonCtx) grow() {
	if c.arena == nil {
		c.arena = make([]byte, 0, len(c.s.b)-c.s.i+1)
	}
}

// text returns a string's contents, unescaped, in the arena; raw is the
// message's.
func (c *jsonCtx) text(raw []byte, escaped bool) string {
	if !escaped {
		return c.msgStr(raw)
	}
	c.grow()
	start := len(c.arena)
	if len(c.arena)+len(raw) > cap(c.arena) {
		return string(appendUnescaped(nil, raw))
	}
	c.arena = appendUnescaped(c.arena, raw)
	if len(c.arena) == start {
		return ""
	}
	return unsafe.String(&c.arena[start], len(c.arena)-start)
}

// keyBytes returns a key's contents, unescaped into a scratch buffer when
// needed; valid until the next call.
func (c *jsonCtx) keyBytes(raw []byte, escaped bool) []byte {
	if !escaped {
		return raw
	}
	return appendUnescaped(c.tmp[:0], raw)
}

// open positions the scanner at the payload and returns its schema node
// (nil when schemaless). A JsonConverter envelope whose schema is byte for
// byte the last one seen is recognised without reading the schema.
func (c *jsonCtx) open() (*node, error) {
	d, b, s := c.d, c.s.b, &c.s
	if last := d.last.raw; last != nil && len(b) > len(envelopePrefix)+len(last) &&
		bytes.HasPrefix(b, []byte(envelopePrefix)) && bytes.HasPrefix(b[len(envelopePrefix):], last) {
		i := len(envelopePrefix) + len(last)
		if rest, ok := bytes.CutPrefix(b[i:], []byte(`,"payload":`)); ok {
			s.i, c.env = len(b)-len(rest), true
			return d.last.node, nil
		}
	}
	if s.peek() != kObject {
		return nil, nil
	}
	raw, esc, ok := s.key(true)
	if !ok || esc {
		s.i, s.err = 0, nil
		return nil, nil
	}
	switch string(raw) {
	case "schema":
		start := s.afterWS()
		s.skip(0)
		schemaRaw := b[start:s.i]
		if k, _, ok := s.key(false); !ok || string(k) != "payload" {
			if s.err != nil {
				return nil, s.err
			}
			s.i, s.err = 0, nil // an object whose first column is named schema
			return nil, nil
		}
		n, err := d.schemaFor(schemaRaw)
		if err != nil {
			return nil, err
		}
		c.env = true
		if start == len(envelopePrefix) {
			d.last.raw, d.last.node = bytes.Clone(schemaRaw), n
		}
		return n, nil
	case "payload":
		payloadAt := s.afterWS()
		s.skip(0)
		k, _, ok := s.key(false)
		if !ok || string(k) != "schema" {
			if s.err != nil {
				return nil, s.err
			}
			s.i, s.err = 0, nil
			return nil, nil
		}
		start := s.afterWS()
		s.skip(0)
		schemaRaw := b[start:s.i]
		if _, _, more := s.key(false); more || s.err != nil {
			if s.err != nil {
				return nil, s.err
			}
			s.i, s.err = 0, nil
			return nil, nil
		}
		n, err := d.schemaFor(schemaRaw)
		if err != nil {
			return nil, err
		}
		c.resume, s.i = s.i, payloadAt
		return n, nil
	}
	s.i, s.err = 0, nil
	return nil, nil
}

// afterWS skips white space and returns the position.
func (s *scanner) afterWS() int {
	s.ws()
	return s.i
}

// close reads what follows the payload and checks nothing else does.
func (c *jsonCtx) close() error {
	s := &c.s
	switch {
	case c.resume > 0:
		s.i = c.resume
	case c.env:
		if _, _, ok := s.key(false); ok {
			s.fail("unexpected key after payload")
		}
	}
	s.end()
	return s.err
}

// schemaFor returns the parsed node of a JsonConverter schema, from the
// cache when these exact bytes were seen before.
func (d *Decoder) schemaFor(raw []byte) (*node, error) {
	if n, ok := d.schemas[string(raw)]; ok {
		return n, nil
	}
	var n *node
	if string(raw) != "null" {
		var err error
		if n, err = parseConnectSchema(raw); err != nil {
			return nil, atField("schema", err)
		}
	}
	if len(d.schemas) >= d.cfg.MaxSchemas {
		clear(d.schemas)
	}
	d.schemas[string(raw)] = n
	return n, nil
}

func (d *Decoder) decodeJSONKey(b []byte, mongo bool) (Row, error) {
	c := d.newCtx(b)
	c.key = true
	n, err := c.open()
	if err != nil {
		return nil, malformed("key", err)
	}
	var row Row
	switch c.s.peek() {
	case kNull:
		c.s.literal("null")
	case kObject:
		var dst Row
		if d.proj != nil {
			dst = d.reuse.key[:0]
		}
		if row, err = c.row(n, dst, 2); err != nil {
			return nil, malformed("key", err)
		}
		if d.proj != nil {
			d.reuse.key = row[:0]
		}
	default:
		return nil, malformed("key", errors.New("not a JSON object"))
	}
	if err := c.close(); err != nil {
		return nil, malformed("key", err)
	}
	if mongo {
		// A MongoDB key holds the document id as extended JSON text.
		for i, col := range row {
			if col.Value.Kind() == canon.String {
				if v, err := mongoValue(col.Value.Str()); err == nil {
					row[i].Value = v
				}
			}
		}
	}
	return row, nil
}

func (d *Decoder) decodeJSONValue(b []byte, ev *Event) error {
	c := d.newCtx(b)
	n, err := c.open()
	if err == nil {
		err = c.payload(n, ev)
	}
	if err == nil {
		err = c.close()
	}
	if err != nil {
		*ev = Event{}
		return malformed("value", err)
	}
	return nil
}

func (c *jsonCtx) int64() int64 {
	s := &c.s
	if s.peek() != kNumber {
		s.skip(0)
		return 0
	}
	raw, n, ok := s.integer()
	if !ok {
		n, _ = strconv.ParseInt(unsafeString(raw), 10, 64)
	}
	return n
}

// scalarText reads a string, number or boolean as text ("" for null).
func (c *jsonCtx) scalarText() string {
	s := &c.s
	switch s.peek() {
	case kString:
		return c.text(s.str())
	case kNumber:
		return c.msgStr(s.number())
	case kTrue:
		s.literal("true")
		return "true"
	case kFalse:
		s.literal("false")
		return "false"
	}
	s.skip(0)
	return ""
}

func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
