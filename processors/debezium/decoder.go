package debezium

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/sr"
)

// Config configures a Decoder.
type Config struct {
	// Registry fetches the Avro schemas of Confluent wire-format messages
	// by id. Nil means Avro messages are rejected as malformed. Share one
	// Registry between decoders: it caches each schema once.
	Registry *Registry
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
	// lastNames are the column names of the last schemaless row, kept
	// (outside any message's memory) so that the next row reuses them.
	lastNames []string
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

// Registry fetches and caches Avro schemas by id from a Schema Registry.
// It is safe for concurrent use.
type Registry struct {
	client *sr.Client
	mu     sync.Mutex
	byID   map[int]*avroSchema
}

// NewRegistry returns a Registry over a franz-go Schema Registry client.
func NewRegistry(client *sr.Client) *Registry {
	return &Registry{client: client, byID: make(map[int]*avroSchema)}
}

func (r *Registry) schema(ctx context.Context, id int) (*avroSchema, error) {
	r.mu.Lock()
	s, ok := r.byID[id]
	r.mu.Unlock()
	if ok {
		return s, nil
	}
	sch, err := r.client.SchemaByID(ctx, id)
	if err != nil {
		var re *sr.ResponseError
		if errors.As(err, &re) && re.StatusCode == 404 {
			return nil, &MalformedError{Part: "schema", Err: errors.New("schema id not found in the registry")}
		}
		return nil, err
	}
	if sch.Type != sr.TypeAvro {
		return nil, &MalformedError{Part: "schema", Err: errors.New("schema " + strings.ToLower(sch.Type.String()) + " is not Avro")}
	}
	s, err = newAvroSchema(sch.Schema)
	if err != nil {
		return nil, &MalformedError{Part: "schema", Err: err}
	}
	r.mu.Lock()
	r.byID[id] = s
	r.mu.Unlock()
	return s, nil
}
