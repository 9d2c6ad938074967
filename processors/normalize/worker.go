package normalize

import (
	"context"
	"fmt"

	"github.com/cdcrecon/cdcrecon/processors/debezium"
)

// ErrUnknownTopic reports a message of a topic no table reads.
var ErrUnknownTopic = fmt.Errorf("no table reads this topic")

// Worker decodes and maps messages, the per-event path of a pipeline
// stage: row images go from the JSON straight into their canonical slots,
// the columns a table does not compare are skipped unread, and the state
// is reused from message to message. A Worker is not safe for concurrent
// use; use one per goroutine.
type Worker struct {
	m      *Mapper
	dec    *debezium.Decoder
	states map[*Table]*[3]*mapState
}

// NewWorker returns a Worker decoding with dec, which it then owns.
func (m *Mapper) NewWorker(dec *debezium.Decoder) *Worker {
	return &Worker{m: m, dec: dec, states: make(map[*Table]*[3]*mapState)}
}

// Map decodes and maps one message of topic. The Change, its key, row and
// their values are valid until the next call of Map: they live in memory
// the Worker reuses, so that mapping a message allocates nothing. Copy
// what must outlive that (canon.AppendRow, the KeyBytes).
//
// Errors: ErrUnknownTopic, a
// *debezium.MalformedError or a mapping error (both permanent: the message
// belongs in the dead-letter queue), or a transient error from the Schema
// Registry.
func (w *Worker) Map(ctx context.Context, topic string, key, value []byte) (Change, error) {
	t, side, ok := w.m.Route(topic)
	if !ok {
		return Change{}, fmt.Errorf("topic %s: %w", topic, ErrUnknownTopic)
	}
	ss := w.states[t]
	if ss == nil {
		ss = new([3]*mapState)
		w.states[t] = ss
	}
	st := ss[side]
	if st == nil {
		st = newMapState(t, side)
		st.reuse = true
		ss[side] = st
	}
	st.begin()
	ev, err := w.dec.DecodeProjected(ctx, key, value, st)
	if err != nil {
		st.stale = true // keep no shape from a broken message
		st.end()
		return Change{}, err
	}
	if st.stale { // a new column: decode again, now that it is known
		st.end()
		ev, err := w.dec.Decode(ctx, key, value)
		if err != nil {
			return Change{}, err
		}
		return t.Map(side, &ev, value)
	}
	c, err := st.finish(&ev, value)
	st.end()
	return c, err
}
