package debezium

import (
	"context"
	"unsafe"

	"github.com/cdcrecon/cdcrecon/processors/canon"
)

// Image names a row image of an event.
type Image uint8

// Images. An ExtractNewRecordState row is always the After image, also
// when it is a delete.
const (
	BeforeImage Image = 0
	AfterImage  Image = 1
)

// A Projector receives the columns of an event's row images while they are
// decoded, in place of Event.Before and Event.After: it can skip the
// columns it does not need unread and put the others where it wants them,
// with no intermediate row.
type Projector interface {
	// Column is called for each column of an image with the column's name
	// as the message writes it, valid during the call only. It returns a
	// handle for the value, or a negative number to skip the value.
	Column(image Image, name []byte) int
	// Value delivers the value of a column that Column took. *v is valid
	// during the call only.
	Value(image Image, handle int, v *canon.Value)
	// Reset discards every column received for the message so far: it
	// turned out not to be an envelope, and its columns follow again.
	Reset()
}

// DecodeProjected decodes one message like Decode, but hands the columns
// of its row images to p and leaves the Event's Before and After nil; the
// Event's HasBefore and HasAfter tell which images the message held. The
// key is decoded into Event.Key as by Decode. On error, p may have
// received some columns.
//
// Unlike Decode's, the Event and the values p receives are valid only
// until the next call of DecodeProjected, and while key and value are
// unchanged: their text is the message's own or lives, with the key's row
// and the position, in memory the Decoder reuses, so that a message costs
// no allocation.
func (d *Decoder) DecodeProjected(ctx context.Context, key, value []byte, p Projector) (Event, error) {
	d.proj = p
	defer func() { d.proj = nil }()
	r := &d.reuse
	// The text of a message read once is never longer than the message.
	if need := len(key) + len(value) + 1; cap(r.arena) < need {
		r.arena = make([]byte, 0, max(need, 2*cap(r.arena)))
	}
	d.ctx.arena = r.arena[:0]
	return d.Decode(ctx, key, value)
}

// project hands a decoded row to the projector, for the images that are
// not decoded straight into it (MongoDB documents, Avro, unwrapped rows).
func project(p Projector, img Image, row Row) {
	for i := range row {
		col := &row[i]
		name := unsafe.Slice(unsafe.StringData(col.Name), len(col.Name))
		if h := p.Column(img, name); h >= 0 {
			p.Value(img, h, &col.Value)
		}
	}
}

// Project hands the row images of a decoded event to p, as
// DecodeProjected would have: an ExtractNewRecordState row as the After
// image, whatever its operation.
func Project(p Projector, ev *Event) {
	if ev.Unwrapped {
		row := ev.After
		if row == nil {
			row = ev.Before
		}
		project(p, AfterImage, row)
		return
	}
	project(p, BeforeImage, ev.Before)
	project(p, AfterImage, ev.After)
}

// projectImages hands the images decoded as rows to the projector and
// clears them.
func (d *Decoder) projectImages(ev *Event) {
	if d.proj == nil {
		return
	}
	ev.HasBefore = ev.HasBefore || ev.Before != nil
	ev.HasAfter = ev.HasAfter || ev.After != nil
	Project(d.proj, ev)
	if ev.Unwrapped {
		ev.HasBefore, ev.HasAfter = false, true
	}
	ev.Before, ev.After = nil, nil
}
