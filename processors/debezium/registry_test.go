package debezium_test

import (
	"context"
	"fmt"
	"sync"

	"github.com/cdcrecon/cdcrecon/processors/debezium"
)

// memRegistry is a schema registry in memory, for the decoder's tests: a
// debezium.SchemaFetcher answering as a registry client does, with the
// ids Register hands out. The registry's HTTP client is pipeline/registry's
// and tested there.
type memRegistry struct {
	mu  sync.Mutex
	ids map[string]int
	all []string
}

// Register returns schema's id, the same for the same text.
func (r *memRegistry) Register(schema string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if id, ok := r.ids[schema]; ok {
		return id
	}
	if r.ids == nil {
		r.ids = map[string]int{}
	}
	r.all = append(r.all, schema)
	r.ids[schema] = len(r.all)
	return len(r.all)
}

func (r *memRegistry) FetchSchema(_ context.Context, id int) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if id < 1 || id > len(r.all) {
		return "", fmt.Errorf("id %d: %w", id, debezium.ErrSchemaNotFound)
	}
	return r.all[id-1], nil
}
