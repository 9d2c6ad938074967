// Package processors holds cdcrecon's stages as plain Go over domain
// types, one subpackage per stage: config (the configuration file), canon
// (canonical values, encoding, digests), debezium (decoding), normalize
// (mapping onto a table's canonical rows), and next dedupe and reconcile.
// They import neither Watermill nor franz-go's client; pipeline/ adapts
// them into Watermill handlers.
package processors
