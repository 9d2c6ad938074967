package debezium

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
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

// envFields is what one pass over a payload object collects.
type envFields struct {
	shape         shape
	op            string
	tsMs          int64
	status, id    string
	sb            sourceBlock
	before, after Row
	docImages     bool    // an image was a string: MongoDB's extended JSON
	projected     [2]bool // images decoded straight into the projector
}

// imageOrProject reads a before or after image: straight into the
// projector when there is one and the image is an object, else as a Row.
func (c *jsonCtx) imageOrProject(n *node, img Image, f *envFields) error {
	if c.d.proj != nil && c.s.peek() == kObject {
		f.projected[img] = true
		return c.projectRow(n, img)
	}
	row, err := c.image(n, &f.docImages)
	if img == BeforeImage {
		f.before = row
	} else {
		f.after = row
	}
	return err
}

// payload decodes the payload at the scanner.
func (c *jsonCtx) payload(n *node, ev *Event) error {
	s := &c.s
	start := s.afterWS()
	switch s.peek() {
	case kNull:
		s.literal("null")
		ev.Kind = Tombstone // the legacy {"schema":null,"payload":null}
		return s.err
	case kObject:
	default:
		return errors.New("not a JSON object")
	}
	var f envFields
	for first := true; ; first = false {
		raw, esc, ok := s.keyIn(&c.d.order.payload, first)
		if !ok {
			break
		}
		key := c.keyBytes(raw, esc)
		cls := classify(unsafeString(key))
		f.shape.see(cls)
		var err error
		switch cls {
		case fOp:
			if s.peek() == kString {
				r, e := s.str()
				f.op = c.text(r, e)
			} else {
				s.skip(0)
			}
		case fBefore:
			err = atFieldIf("before", c.imageOrProject(n.field("before"), BeforeImage, &f))
		case fAfter:
			err = atFieldIf("after", c.imageOrProject(n.field("after"), AfterImage, &f))
		case fSource:
			err = atFieldIf("source", c.source(&f.sb))
		case fTsMs:
			f.tsMs = c.int64()
		case fStatus:
			f.status = c.scalarText()
		case fID:
			f.id = c.scalarText()
		default:
			s.skip(0)
		}
		if err != nil {
			return err
		}
	}
	if s.err != nil {
		return s.err
	}
	f.shape.heartbeatSchema = n != nil && strings.HasSuffix(n.name, "Heartbeat")
	switch f.shape.kind() {
	case RowEvent:
		var pos Position
		if c.d.proj != nil {
			pos = c.d.reuse.pos[:0]
		}
		ev.Source, ev.Time = f.sb.source(pos), f.sb.time(f.tsMs)
		if c.d.proj != nil && ev.Source.Position != nil {
			c.d.reuse.pos = ev.Source.Position[:0]
		}
		if f.op == "m" {
			ev.Kind = Message
			return nil
		}
		op, err := changeOp(f.op)
		if err != nil {
			return atField("op", err)
		}
		ev.Kind, ev.Op = RowEvent, op
		ev.Before, ev.After = f.before, f.after
		if f.projected[BeforeImage] {
			ev.HasBefore = true
		}
		if f.projected[AfterImage] {
			ev.HasAfter = true
		}
		if f.docImages && ev.Source.Connector != "mongodb" {
			return errors.New("row is a string, not an object")
		}
		return checkImages(ev)
	case Transaction, SchemaChange, Heartbeat:
		return nonRow(ev, f.shape.kind(), &f.sb, f.tsMs, f.status, f.id)
	}
	if f.shape.badEnvelope() {
		return atField("op", errors.New("envelope without source, before or after"))
	}
	// An ExtractNewRecordState row: read the payload again as a row. An
	// object named before or after was one of its columns, not an image.
	if c.d.proj != nil && (f.projected[BeforeImage] || f.projected[AfterImage]) {
		c.d.proj.Reset()
	}
	end := s.i
	s.i = start
	if err := c.unwrapped(n, ev); err != nil {
		return err
	}
	s.i = end
	return nil
}

func atFieldIf(name string, err error) error {
	if err == nil {
		return nil
	}
	return atField(name, err)
}

// checkImages enforces what each operation needs.
func checkImages(ev *Event) error {
	switch ev.Op {
	case Create, Read, Update:
		if ev.After == nil && !ev.HasAfter {
			return fmt.Errorf("op %q without after", string(ev.Op))
		}
	}
	return nil
}

// image decodes a before or after image: an object, null, or (MongoDB) a
// document in extended JSON text.
func (c *jsonCtx) image(n *node, doc *bool) (Row, error) {
	s := &c.s
	switch s.peek() {
	case kNull:
		s.literal("null")
		return nil, s.err
	case kObject:
		return c.row(n, nil, 16)
	case kString:
		*doc = true
		raw, esc := s.str()
		if s.err != nil {
			return nil, s.err
		}
		if esc {
			raw = appendUnescaped(nil, raw)
		}
		return mongoDocument(string(raw))
	}
	s.skip(0)
	return nil, errors.New("row is not an object")
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

// unwrapped decodes an ExtractNewRecordState row: the row's columns plus
// "__"-prefixed metadata fields.
func (c *jsonCtx) unwrapped(n *node, ev *Event) error {
	s := &c.s
	ev.Kind, ev.Op, ev.Unwrapped = RowEvent, Update, true
	var u unwrapped
	row := make(Row, 0, 16)
	any := false
	for first := true; ; first = false {
		raw, esc, ok := s.key(first)
		if !ok {
			break
		}
		any = true
		key := c.keyBytes(raw, esc)
		if bytes.HasPrefix(key, []byte("__")) {
			if _, err := u.meta(ev, string(key), c.scalarText()); err != nil {
				return err
			}
			continue
		}
		name := c.str(key)
		val, err := c.value(n.field(name), 0)
		if err != nil {
			return atField(name, err)
		}
		row = append(row, canon.Column{Name: name, Value: val})
	}
	if s.err != nil {
		return s.err
	}
	if !any {
		return errors.New("empty object is not a Debezium message")
	}
	u.finish(ev, row)
	return nil
}

// source reads a source block.
func (c *jsonCtx) source(sb *sourceBlock) error {
	s := &c.s
	switch s.peek() {
	case kNull:
		s.literal("null")
		return s.err
	case kObject:
	default:
		s.skip(0)
		return errors.New("not an object")
	}
	for first := true; ; first = false {
		raw, esc, ok := s.keyIn(&c.d.order.source, first)
		if !ok {
			break
		}
		key := c.keyBytes(raw, esc)
		switch string(key) {
		case "ts_ms":
			sb.tsMs = c.int64()
		case "ts_sec":
			sb.tsSec = c.int64()
		case "snapshot":
			sb.setSnapshot(c.scalarText())
		default:
			if p := sb.text(unsafeString(key)); p != nil && s.peek() != kNull {
				*p = c.scalarText()
				continue
			}
			s.skip(0)
		}
	}
	return s.err
}

// row decodes an object into a row, converting each field by the struct
// schema n (nil: schemaless). The row is appended to dst when it is not
// nil, else to a new one of capHint columns.
func (c *jsonCtx) row(n *node, dst Row, capHint int) (Row, error) {
	s := &c.s
	if n != nil && len(n.fields) > capHint {
		capHint = len(n.fields)
	}
	row := dst
	if row == nil {
		row = make(Row, 0, capHint)
	}
	next := 0 // fields usually come in schema order: try that one first
	last := &c.d.lastNames[0]
	if c.key {
		last = &c.d.lastNames[1]
	}
	names := *last
	order := &c.d.order.images[0] // both images, when decoded as rows, share one
	if c.key {
		order = &c.d.order.key
	}
	for first := true; ; first = false {
		raw, esc, ok := s.keyIn(order, first)
		if !ok {
			break
		}
		var name string
		var fn *node
		switch i := len(row); {
		case n != nil && !esc:
			if f := n.fieldInOrder(&next, raw); f != nil {
				name, fn = f.name, f.node
			} else {
				name = c.text(raw, esc)
			}
		case n == nil && i < len(names) && !esc && names[i] == string(raw):
			name = names[i] // schemaless rows repeat their column names
		case n == nil:
			name = strings.Clone(c.text(raw, esc)) // kept in lastNames, beyond this message
		default:
			name = c.text(raw, esc)
			fn = n.field(name)
		}
		val, err := c.value(fn, 0)
		if err != nil {
			return nil, atField(name, err)
		}
		row = append(row, canon.Column{Name: name, Value: val})
	}
	if n == nil && s.err == nil && !sameNames(names, row) {
		names = names[:0]
		for _, col := range row {
			names = append(names, col.Name)
		}
		*last = names
	}
	return row, s.err
}

// projectRow decodes an object row straight into the projector: skipped
// columns are not converted, and no row is built.
func (c *jsonCtx) projectRow(n *node, img Image) error {
	s, p := &c.s, c.d.proj
	next := 0
	for first := true; ; first = false {
		raw, esc, ok := s.keyIn(&c.d.order.images[img], first)
		if !ok {
			break
		}
		name := raw
		if esc {
			name = appendUnescaped(nil, raw) // rare: its own copy, nested keys reuse c.tmp
		}
		var fn *node
		if f := n.fieldInOrder(&next, name); f != nil {
			fn = f.node
		}
		h := p.Column(img, name)
		if h < 0 {
			s.skip(0)
			continue
		}
		var err error
		if fn == nil {
			c.val, err = c.schemaless(s.peek(), 0)
		} else {
			c.val, err = c.value(fn, 0)
		}
		if err != nil {
			return atField(string(name), err)
		}
		p.Value(img, h, &c.val)
	}
	return s.err
}

func sameNames(names []string, row Row) bool {
	if len(names) != len(row) {
		return false
	}
	for i, col := range row {
		if names[i] != col.Name {
			return false
		}
	}
	return true
}

func kindName(t tok) string {
	switch t {
	case kObject:
		return "object"
	case kArray:
		return "array"
	case kString:
		return "string"
	case kNumber:
		return "number"
	case kTrue, kFalse:
		return "boolean"
	case kNull:
		return "null"
	}
	return "invalid"
}

func wrongType(n *node, t tok) error {
	return fmt.Errorf("%s value where the schema says %s", kindName(t), typeName(n.typ))
}

func typeName(t ctype) string {
	for name, v := range ctypes {
		if v == t && name != "float" && name != "double" {
			return name
		}
	}
	return "any"
}

// value converts the JSON value at the scanner by its schema node (nil:
// schemaless).
func (c *jsonCtx) value(n *node, depth int) (canon.Value, error) {
	s := &c.s
	t := s.peek()
	if t == kNull {
		s.literal("null")
		return canon.Value{}, s.err
	}
	if depth > maxDepth {
		return canon.Value{}, errors.New("value nested too deeply")
	}
	if n == nil || n.typ == tAny {
		return c.schemaless(t, depth)
	}
	if t == kBad || t == kEnd {
		s.skip(0)
		return canon.Value{}, s.err
	}
	switch n.typ {
	case tInt8, tInt16, tInt32, tInt64:
		if t != kNumber {
			s.skip(0)
			return canon.Value{}, wrongType(n, t)
		}
		raw, x, isInt := s.integer()
		var err error
		if !isInt {
			x, err = strconv.ParseInt(unsafeString(raw), 10, 64)
		}
		if err != nil {
			if n.name == "" { // e.g. BIGINT UNSIGNED beyond int64: keep the digits
				if num, ok := canon.ParseNumber(raw); ok {
					return num, nil
				}
			}
			return canon.Value{}, fmt.Errorf("bad integer %s", raw)
		}
		return fromInt(n, x)
	case tFloat32, tFloat64:
		if t != kNumber {
			s.skip(0)
			return canon.Value{}, wrongType(n, t)
		}
		raw := s.number()
		f, err := strconv.ParseFloat(unsafeString(raw), 64)
		if err != nil {
			return canon.Value{}, fmt.Errorf("bad number %s", raw)
		}
		return fromFloat(n, f), nil
	case tBool:
		if t != kTrue && t != kFalse {
			s.skip(0)
			return canon.Value{}, wrongType(n, t)
		}
		if t == kTrue {
			s.literal("true")
		} else {
			s.literal("false")
		}
		return canon.BoolValue(t == kTrue), s.err
	case tString:
		if t != kString {
			s.skip(0)
			return canon.Value{}, wrongType(n, t)
		}
		return fromString(n, c.text(s.str()))
	case tBytes:
		if t == kNumber && n.name == nameDecimal { // decimal.format=NUMERIC
			if num, ok := canon.ParseNumber(s.number()); ok {
				return num, nil
			}
			return canon.Value{}, errors.New("bad decimal")
		}
		if t != kString {
			s.skip(0)
			return canon.Value{}, wrongType(n, t)
		}
		raw, esc := s.str()
		if esc {
			raw = appendUnescaped(nil, raw)
		}
		b := make([]byte, base64.StdEncoding.DecodedLen(len(raw)))
		k, err := base64.StdEncoding.Decode(b, raw)
		if err != nil {
			return canon.Value{}, errors.New("bytes not in base64")
		}
		return fromBytes(n, b[:k])
	case tArray:
		if t != kArray {
			s.skip(0)
			return canon.Value{}, wrongType(n, t)
		}
		return c.array(n.items, depth)
	case tMap, tStruct:
		if t != kObject {
			s.skip(0)
			return canon.Value{}, wrongType(n, t)
		}
		fields, err := c.fields(n, depth)
		if err != nil {
			return canon.Value{}, err
		}
		return structValue(n, fields)
	}
	return c.schemaless(t, depth)
}

// array reads an array's elements by their schema (nil: schemaless). A
// lone unchanged-TOAST placeholder stands for the whole array.
func (c *jsonCtx) array(items *node, depth int) (canon.Value, error) {
	s := &c.s
	var elems []canon.Value
	for first := true; s.elem(first); first = false {
		e, err := c.value(items, depth+1)
		if err != nil {
			return canon.Value{}, atField(strconv.Itoa(len(elems)), err)
		}
		elems = append(elems, e)
	}
	if s.err != nil {
		return canon.Value{}, s.err
	}
	if len(elems) == 1 && elems[0].Kind() == canon.Unavailable {
		return elems[0], nil
	}
	return canon.ArrayValue(elems), nil
}

// fields reads an object's fields: by a struct's field schemas, a map's
// value schema, or schemaless (n nil).
func (c *jsonCtx) fields(n *node, depth int) ([]canon.Field, error) {
	s := &c.s
	var fields []canon.Field
	for first := true; ; first = false {
		raw, esc, ok := s.key(first)
		if !ok {
			break
		}
		name := c.text(raw, esc)
		var fn *node
		if n != nil {
			fn = n.items
			if n.typ == tStruct {
				fn = n.field(name)
			}
		}
		fv, err := c.value(fn, depth+1)
		if err != nil {
			return nil, atField(name, err)
		}
		fields = append(fields, canon.Field{Name: name, Value: fv})
	}
	return fields, s.err
}

// structValue turns decoded struct fields into one value: a decimal or a
// geometry for those logical types, else an Object.
func structValue(n *node, fields []canon.Field) (canon.Value, error) {
	get := func(name string) (canon.Value, bool) {
		for _, f := range fields {
			if f.Name == name {
				return f.Value, true
			}
		}
		return canon.Value{}, false
	}
	if v, ok, err := fromStruct(n, get); ok {
		return v, err
	}
	return canon.ObjectValue(fields), nil
}

// schemaless converts JSON as it is: numbers stay numbers (exact digits),
// strings stay strings.
func (c *jsonCtx) schemaless(t tok, depth int) (canon.Value, error) {
	s := &c.s
	if depth > maxDepth {
		return canon.Value{}, errors.New("value nested too deeply")
	}
	switch t {
	case kNull:
		s.literal("null")
		return canon.Value{}, s.err
	case kTrue:
		s.literal("true")
		return canon.BoolValue(true), s.err
	case kFalse:
		s.literal("false")
		return canon.BoolValue(false), s.err
	case kNumber:
		raw, n, isInt := s.integer()
		if isInt {
			return canon.IntValue(n), nil
		}
		if s.err != nil {
			return canon.Value{}, s.err
		}
		num, ok := canon.ParseNumber(raw)
		if !ok {
			return canon.Value{}, fmt.Errorf("bad number %s", raw)
		}
		return num, nil
	case kString:
		raw, esc := s.str()
		if !esc && string(raw) == canon.UnavailablePlaceholder {
			return canon.UnavailableValue(), nil
		}
		return canon.StringValue(c.text(raw, esc)), s.err
	case kArray:
		return c.array(nil, depth)
	case kObject:
		fields, err := c.fields(nil, depth)
		if err != nil {
			return canon.Value{}, err
		}
		return canon.ObjectValue(fields), nil
	}
	s.skip(0)
	if s.err == nil {
		s.fail("value expected")
	}
	return canon.Value{}, s.err
}
