// Package schemas holds the versioned Avro schemas of cdcrecon's output
// topics — drift, compensation, checksums and dead letters — with a Go type
// mirroring each, its encodings and the rules that keep versions readable
// both ways.
//
// The schemas are the .avsc files under avro/, embedded in the binary. A
// file is named NAME.vN.avsc and carries the same N in its
// "cdcrecon.version" property. Writers use the latest version of a name;
// readers decode any version, known or fetched from a registry, by decoding
// with the writer's schema and taking fields by name: a field the writer
// lacks keeps its Go zero value, which is the reader schema's default.
//
// Evolution rules, checked by the tests for every pair of versions of a
// name: a new version may add a field only with a default (null for an
// optional one) and may remove only a field that has one; it may not rename
// a field, change a type other than by Avro's promotions, or add an enum
// symbol. Each version must read data of the previous one and the other way
// round (FULL compatibility), so producers and consumers upgrade in any
// order. Compatible checks a pair by Avro's schema-resolution rules.
//
// The changes topic between the stages is internal: it carries the
// canonical row encoding of processors/canon, not Avro, and has no schema
// here.
//
// Encodings: AppendSingleObject writes Avro single-object encoding (0xC3
// 0x01, the schema's CRC-64-AVRO fingerprint little-endian, the body);
// pipeline/registry writes the Confluent wire format when a Schema Registry
// is configured. Both end in the same Avro binary body.
//
// The compatibility of the versions is checked with schemas/compat, which
// only tests import.
package schemas
