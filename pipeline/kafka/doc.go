// Package kafka is cdcrecon's Watermill transport: a message.Publisher and a
// message.Subscriber built on franz-go.
//
// Delivery contract of the Subscriber:
//
//   - Consumer groups: every Subscribe call joins the configured group as one
//     member; members of a group split the topic's partitions.
//   - Each assigned partition is one ordered stream: the next message of a
//     partition is not delivered before the previous one is acked. Different
//     partitions are delivered concurrently.
//   - Offsets are committed only up to acked messages. A Nack redelivers the
//     same record after a backoff; nothing is ever skipped.
//   - On revoke, acked offsets are committed and everything else is dropped
//     unacknowledged, to be consumed again by the next owner. On partition
//     loss nothing is committed.
//   - In batch mode one message carries all records fetched for a partition
//     (up to MaxBatchRecords) and is acked or nacked as a whole; see
//     DecodeBatch.
//
// Kafka attributes travel as message metadata (see the Meta* constants);
// record headers become metadata entries of the same name and back.
package kafka
