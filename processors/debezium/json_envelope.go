package debezium

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/cdcrecon/cdcrecon/processors/canon"
)

// The envelope of a JSON message: its payload, row images and source
// block, and the unwrapped (ExtractNewRecordState) form.

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
