package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/pipeline/dump"
	"github.com/cdcrecon/cdcrecon/pipeline/registry"
	"github.com/cdcrecon/cdcrecon/processors/config"
)

// lineFunc appends the output line of one record to buf; false when the
// record was reported and skipped instead.
type lineFunc func(ctx context.Context, buf []byte, r *kgo.Record) ([]byte, bool)

func kcatLines(_ context.Context, buf []byte, r *kgo.Record) ([]byte, bool) {
	return dump.AppendLine(buf, dump.FromKafka(r)), true
}

// tailSerde builds the decoder of tail --decode: with the registry of
// --registry, or of --config's schema_registry section, or none.
func tailSerde(url, cfgFile string) (*registry.Serde, error) {
	var rc config.SchemaRegistry
	switch {
	case url != "" && cfgFile != "":
		return nil, usageError("give --registry or --config, not both")
	case url != "":
		rc.URL = url
		if err := rc.Validate(); err != nil {
			return nil, usageError("--registry: %v", err)
		}
	case cfgFile != "":
		c, err := config.Load(cfgFile)
		if err != nil {
			return nil, &exitError{code: exitFailure, err: err}
		}
		rc = c.SchemaRegistry
	}
	cl, err := registry.NewClient(rc)
	if err != nil {
		return nil, &exitError{code: exitFailure, err: err}
	}
	return registry.NewSerde(cl), nil
}

// decodedLine is the JSON line tail --decode prints per record.
type decodedLine struct {
	Topic     string  `json:"topic"`
	Partition int32   `json:"partition"`
	Offset    int64   `json:"offset"`
	Timestamp int64   `json:"ts"`
	Key       *string `json:"key"`
	Schema    string  `json:"schema"`
	Version   int     `json:"version,omitempty"`
	Encoding  string  `json:"encoding"`
	Value     any     `json:"value"`
}

func decodedLines(serde *registry.Serde, stderr io.Writer) lineFunc {
	return func(ctx context.Context, buf []byte, r *kgo.Record) ([]byte, bool) {
		fail := func(err error) ([]byte, bool) {
			fmt.Fprintf(stderr, "cdcrecon: %s/%d/%d: %v\n", r.Topic, r.Partition, r.Offset, err)
			return buf, false
		}
		rec, sch, enc, err := serde.Decode(ctx, r.Value)
		if err != nil {
			return fail(err)
		}
		l := decodedLine{
			Topic: r.Topic, Partition: r.Partition, Offset: r.Offset,
			Timestamp: r.Timestamp.UnixMilli(), Schema: sch.FullName, Version: sch.Version,
			Encoding: string(enc), Value: rec,
		}
		if r.Key != nil {
			k := string(r.Key)
			if !utf8.ValidString(k) {
				k = fmt.Sprintf("%x", r.Key)
			}
			l.Key = &k
		}
		b, err := json.Marshal(l)
		if err != nil {
			return fail(fmt.Errorf("writing JSON: %w", err))
		}
		return append(append(buf, b...), '\n'), true
	}
}
