package debezium

import (
	"strings"

	"github.com/cdcrecon/cdcrecon/processors/canon"
)

// A row image of a JSON message: decoded whole, or projected into the
// table's columns.

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
