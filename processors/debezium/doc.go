// Package debezium decodes Debezium change messages — JsonConverter output
// with and without schemas, Avro in the Confluent wire format,
// ExtractNewRecordState ("unwrap") rows — into Events: an operation, the
// message key and the before and after rows as canonical values, the event
// time and the connector position.
//
// Messages that carry no row — transaction BEGIN/END markers, heartbeats,
// schema changes, PostgreSQL logical decoding messages, tombstones — are
// classified by Kind rather than rejected. Malformed input yields a
// *MalformedError naming the part and field at fault; it is permanent and
// belongs in a dead-letter queue. Nothing in this package panics on input.
//
// Values are converted by the Kafka Connect schema when the message has one
// (Decimal bytes with their scale, VariableScaleDecimal, every
// io.debezium.time type, Json, Uuid, geometries), and kept as JSON gives
// them when it has none; processors/normalize applies the table's hints.
package debezium
