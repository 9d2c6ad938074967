// Package registry connects cdcrecon to a Confluent-compatible Schema
// Registry through franz-go's pkg/sr: Fetcher gives the Debezium decoder
// its input schemas, Serde encodes and decodes the output topics in the
// Confluent wire format or, without a registry, Avro single-object
// encoding.
package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/cdcrecon/cdcrecon/processors/debezium"
)

// ErrUnavailable marks a registry failure that may pass: the registry out
// of reach or erring. Input that needs it is retried, not set aside.
var ErrUnavailable = errors.New("schema registry unavailable")

// DecoderConfig is the Debezium decoder's configuration: Avro input needs
// the Schema Registry, when there is one (rc not nil).
func DecoderConfig(rc *sr.Client) debezium.Config {
	var dec debezium.Config
	if rc != nil {
		dec.Registry = debezium.NewSchemaCache(Fetcher{Client: rc})
	}
	return dec
}

// Fetcher fetches Avro schemas by id. It implements debezium.SchemaFetcher.
type Fetcher struct {
	Client *sr.Client
}

// FetchSchema returns the text of schema id.
func (f Fetcher) FetchSchema(ctx context.Context, id int) (string, error) {
	s, err := f.Client.SchemaByID(ctx, id)
	if err != nil {
		var re *sr.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
			return "", fmt.Errorf("id %d: %w", id, debezium.ErrSchemaNotFound)
		}
		return "", fmt.Errorf("fetching schema id %d: %w: %w", id, ErrUnavailable, err)
	}
	if s.Type != sr.TypeAvro {
		return "", fmt.Errorf("id %d is %s: %w", id, s.Type, debezium.ErrNotAvro)
	}
	return s.Schema, nil
}
