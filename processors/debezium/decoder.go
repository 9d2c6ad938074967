package debezium

import (
	"context"
	"errors"
	"sync"
)

// Config configures a Decoder.
type Config struct {
	// Registry fetches the Avro schemas of Confluent wire-format messages
	// by id. Nil means Avro messages are rejected as malformed. Share one
	// Registry between decoders: it caches each schema once.
	Registry *SchemaCache
	// MaxSchemas bounds the number of distinct JsonConverter schemas a
	// Decoder keeps parsed. Default 256.
	MaxSchemas int
}

// Decoder decodes messages. Each distinct JsonConverter schema is parsed
// once and kept (up to MaxSchemas). A Decoder is not safe for concurrent
// use; use one per goroutine.
type Decoder struct {
	cfg     Config
	schemas map[string]*node
	// last is the last compactly written schema, for the fast path.
	last struct {
		raw  []byte
		node *node
	}
	ctx jsonCtx
	// lastNames are the column names of the last schemaless value row and
	// key, kept (outside any message's memory) for the next to reuse.
	lastNames [2][]string
	proj      Projector // set during DecodeProjected
	// reuse is the memory DecodeProjected reuses from message to message:
	// the arena of the message's text, the key's row and the position.
	reuse struct {
		arena []byte
		key   Row
		pos   Position
	}
	// order remembers the keys of the last message's objects, by place.
	order struct {
		payload, source, key keyOrder
		images               [2]keyOrder
	}
}

// NewDecoder returns a Decoder.
func NewDecoder(cfg Config) *Decoder {
	if cfg.MaxSchemas <= 0 {
		cfg.MaxSchemas = 256
	}
	return &Decoder{cfg: cfg, schemas: make(map[string]*node)}
}

// Decode decodes one message from its key and value (either may be nil).
// The returned Event does not reference key or value.
//
// Errors: a *MalformedError for bad input (permanent); an error from the
// Schema Registry (transient unless IsMalformed) when an Avro schema cannot
// be fetched; ctx bounds that fetch.
func (d *Decoder) Decode(ctx context.Context, key, value []byte) (Event, error) {
	var ev Event
	if err := d.decodeValue(ctx, value, &ev); err != nil {
		return Event{}, err
	}
	d.projectImages(&ev)
	if len(key) > 0 {
		k, err := d.decodeKey(ctx, key, ev.Source.Connector == "mongodb")
		if err != nil {
			return Event{}, err
		}
		ev.Key = k
	}
	return ev, nil
}

// DecodeKey decodes a message key alone.
func (d *Decoder) DecodeKey(ctx context.Context, key []byte) (Row, error) {
	return d.decodeKey(ctx, key, false)
}

func (d *Decoder) decodeValue(ctx context.Context, value []byte, ev *Event) error {
	switch {
	case isBlank(value):
		ev.Kind = Tombstone
		return nil
	case value[0] == confluentMagic:
		return d.decodeAvroValue(ctx, value, ev)
	}
	return d.decodeJSONValue(value, ev)
}

func (d *Decoder) decodeKey(ctx context.Context, key []byte, mongo bool) (Row, error) {
	if isBlank(key) {
		return nil, nil
	}
	if key[0] == confluentMagic {
		return d.decodeAvroKey(ctx, key)
	}
	return d.decodeJSONKey(key, mongo)
}

func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

// SchemaFetcher fetches the text of an Avro schema by its Schema Registry
// id. pipeline/registry implements it over franz-go's pkg/sr.
type SchemaFetcher interface {
	// FetchSchema returns the schema text, ErrSchemaNotFound when the
	// registry has no such id, ErrNotAvro when the schema is of another
	// type, or another (transient) error.
	FetchSchema(ctx context.Context, id int) (string, error)
}

// Errors a SchemaFetcher reports for ids that can never decode: messages
// carrying them are malformed.
var (
	ErrSchemaNotFound = errors.New("schema id not found in the registry")
	ErrNotAvro        = errors.New("schema is not Avro")
)

// SchemaCache caches Avro schemas by id, fetching each once. It is safe for
// concurrent use.
type SchemaCache struct {
	fetch SchemaFetcher
	mu    sync.Mutex
	byID  map[int]*avroSchema
}

// NewSchemaCache returns a Registry over a fetcher.
func NewSchemaCache(f SchemaFetcher) *SchemaCache {
	return &SchemaCache{fetch: f, byID: make(map[int]*avroSchema)}
}

func (r *SchemaCache) schema(ctx context.Context, id int) (*avroSchema, error) {
	r.mu.Lock()
	s, ok := r.byID[id]
	r.mu.Unlock()
	if ok {
		return s, nil
	}
	text, err := r.fetch.FetchSchema(ctx, id)
	switch {
	case errors.Is(err, ErrSchemaNotFound), errors.Is(err, ErrNotAvro):
		return nil, &MalformedError{Part: "schema", Err: err}
	case err != nil:
		return nil, err
	}
	s, err = newAvroSchema(text)
	if err != nil {
		return nil, &MalformedError{Part: "schema", Err: err}
	}
	r.mu.Lock()
	r.byID[id] = s
	r.mu.Unlock()
	return s, nil
}
