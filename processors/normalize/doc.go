// Package normalize maps decoded Debezium events onto a configured table's
// canonical form: which table and side a topic feeds, the canonical key,
// the canonical row (renamed, filtered, normalised, sorted), whether the
// row is present (deletes and soft deletes make it absent), the event
// identity used to drop duplicates, and the digests and field-level
// comparison of canonical rows.
//
// Table.Map maps an event decoded by debezium.Decoder.Decode; a Worker
// does decoding and mapping in one pass (debezium.Decoder.DecodeProjected),
// the per-event path of the pipeline. Both give the same Change.
//
// The rules are those of DESIGN.md's reference semantics; see the package
// tests for each one.
package normalize
