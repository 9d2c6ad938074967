package registry

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/cdcrecon/cdcrecon/processors/config"
	"github.com/cdcrecon/cdcrecon/schemas"
)

// NewClient returns a client for the configured registry, with basic or
// bearer auth, or nil when no URL is configured. opts come after ours.
func NewClient(cfg config.SchemaRegistry, opts ...sr.ClientOpt) (*sr.Client, error) {
	if cfg.URL == "" {
		return nil, nil
	}
	o := []sr.ClientOpt{sr.URLs(cfg.URL), sr.UserAgent("cdcrecon")}
	switch {
	case cfg.Token != "":
		o = append(o, sr.BearerToken(cfg.Token))
	case cfg.Username != "":
		o = append(o, sr.BasicAuth(cfg.Username, cfg.Password))
	}
	cl, err := sr.NewClient(append(o, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("creating schema registry client for %s: %w", cfg.URL, err)
	}
	return cl, nil
}

// Encoding names how a record was encoded.
type Encoding string

// Encodings.
const (
	Confluent    Encoding = "confluent"     // 0x00, schema id (4 bytes, big-endian), body
	SingleObject Encoding = "single-object" // 0xC3 0x01, fingerprint, body
)

// Serde encodes the records of the output topics and decodes them again.
// With a registry client it writes the Confluent wire format: the latest
// version of the record's schema, registered under the subject
// "<topic>-value" on first use, its id cached. Without one it writes Avro
// single-object encoding. Decode reads both, whichever the writer used;
// a registry id is looked up once and cached. A Serde is safe for
// concurrent use.
type Serde struct {
	client *sr.Client
	mu     sync.Mutex
	ids    map[subjectSchema]int
	byID   map[int]*schemas.Schema
	header sr.ConfluentHeader
}

type subjectSchema struct {
	subject string
	schema  *schemas.Schema
}

// NewSerde returns a Serde over client, which may be nil: no registry.
func NewSerde(client *sr.Client) *Serde {
	return &Serde{client: client, ids: map[subjectSchema]int{}, byID: map[int]*schemas.Schema{}}
}

// Encoding tells what Encode writes.
func (s *Serde) Encoding() Encoding {
	if s.client == nil {
		return SingleObject
	}
	return Confluent
}

// Encode appends r, encoded for topic, to dst.
func (s *Serde) Encode(ctx context.Context, dst []byte, topic string, r schemas.Record) ([]byte, error) {
	sch := schemas.Latest(r.SchemaName())
	if s.client == nil {
		return schemas.AppendSingleObject(dst, sch, r)
	}
	id, err := s.register(ctx, topic+"-value", sch)
	if err != nil {
		return dst, err
	}
	n := len(dst)
	dst, err = s.header.AppendEncode(dst, id, nil)
	if err != nil {
		return dst[:n], fmt.Errorf("writing confluent header: %w", err)
	}
	out, err := schemas.AppendBinary(dst, sch, r)
	if err != nil {
		return dst[:n], err
	}
	return out, nil
}

// register returns the id of sch under subject, registering it the first
// time. A registry that refuses it (an incompatible change under the
// subject's compatibility level) makes a permanent error.
func (s *Serde) register(ctx context.Context, subject string, sch *schemas.Schema) (int, error) {
	key := subjectSchema{subject, sch}
	s.mu.Lock()
	id, ok := s.ids[key]
	s.mu.Unlock()
	if ok {
		return id, nil
	}
	ss, err := s.client.CreateSchema(ctx, subject, sr.Schema{Schema: sch.Text, Type: sr.TypeAvro})
	if err != nil {
		return 0, fmt.Errorf("registering %s under subject %s: %w", sch, subject, err)
	}
	s.mu.Lock()
	s.ids[key] = ss.ID
	s.byID[ss.ID] = sch
	s.mu.Unlock()
	return ss.ID, nil
}

// Decode decodes a record in either encoding, returning it with its
// writer's schema and the encoding. A registry id needs a registry client.
func (s *Serde) Decode(ctx context.Context, b []byte) (schemas.Record, *schemas.Schema, Encoding, error) {
	switch {
	case schemas.IsSingleObject(b):
		r, sch, err := schemas.DecodeSingleObject(b)
		return r, sch, SingleObject, err
	case len(b) > 0 && b[0] == 0:
		id, body, err := s.header.DecodeID(b)
		if err != nil {
			return nil, nil, Confluent, fmt.Errorf("reading confluent header: %w", err)
		}
		sch, err := s.schemaByID(ctx, id)
		if err != nil {
			return nil, nil, Confluent, err
		}
		r, err := schemas.Decode(sch, body)
		return r, sch, Confluent, err
	case len(b) == 0:
		return nil, nil, "", errors.New("empty value: not an Avro record")
	}
	return nil, nil, "", fmt.Errorf("first byte 0x%02x: neither the confluent wire format (0x00) nor single-object encoding (0xC3 0x01)", b[0])
}

func (s *Serde) schemaByID(ctx context.Context, id int) (*schemas.Schema, error) {
	s.mu.Lock()
	sch, ok := s.byID[id]
	s.mu.Unlock()
	if ok {
		return sch, nil
	}
	if s.client == nil {
		return nil, fmt.Errorf("record carries schema id %d, but no schema registry is configured", id)
	}
	text, err := Fetcher{Client: s.client}.FetchSchema(ctx, id)
	if err != nil {
		return nil, err
	}
	if sch, err = schemas.Parse(text); err != nil {
		return nil, fmt.Errorf("schema id %d: %w", id, err)
	}
	if known := schemas.ByFingerprint(sch.Fingerprint()); known != nil {
		sch = known // an embedded version: keep its name and version
	}
	s.mu.Lock()
	s.byID[id] = sch
	s.mu.Unlock()
	return sch, nil
}
