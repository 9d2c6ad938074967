// Package compat checks Avro schema compatibility by Avro's
// schema-resolution rules, with hamba/avro. Only tests import it — the
// versions of schemas/avro must stay compatible, and what a registry
// holds must read the latest — so hamba/avro stays out of the binary.
package compat

import (
	"fmt"

	"github.com/hamba/avro/v2"
)

// Compatible reports whether data written under the writer schema can be
// read with the reader schema, by Avro's schema-resolution rules; the error
// says where it cannot. BACKWARD compatibility of a new version is
// Compatible(new, old); FORWARD is Compatible(old, new); FULL is both.
func Compatible(reader, writer string) error {
	r, err := parseModel(reader)
	if err != nil {
		return fmt.Errorf("reader schema: %w", err)
	}
	w, err := parseModel(writer)
	if err != nil {
		return fmt.Errorf("writer schema: %w", err)
	}
	return avro.NewSchemaCompatibility().Compatible(r, w)
}

// parseModel parses with a cache of its own: two versions of one record
// name must not meet in hamba's global cache.
func parseModel(text string) (avro.Schema, error) {
	return avro.ParseWithCache(text, "", &avro.SchemaCache{})
}
