// Package schemas holds the versioned Avro schemas of cdcrecon's output
// topics (drift, compensation, checksums, dead letters). It imports nothing
// of ours.
package schemas
