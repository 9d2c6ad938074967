package kafka

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Metadata keys. Entries whose names start with MetaPrefix are reserved: the
// Subscriber sets them and the Publisher does not turn them into headers.
const (
	MetaPrefix = "kafka."
	// MetaKey is the record key. Absent means a null key. The Publisher
	// reads it to key the record it produces.
	MetaKey = "kafka.key"
	// MetaTopic is the topic the record was consumed from.
	MetaTopic = "kafka.topic"
	// MetaPartition is the partition the record was consumed from.
	MetaPartition = "kafka.partition"
	// MetaOffset is the record's offset; in batch mode, the first record's.
	MetaOffset = "kafka.offset"
	// MetaLastOffset is the last record's offset in batch mode.
	MetaLastOffset = "kafka.last_offset"
	// MetaCount is the number of records in a batch message.
	MetaCount = "kafka.count"
	// MetaTimestamp is the record timestamp in Unix milliseconds. When set on
	// a published message, the Publisher uses it as the record's timestamp.
	MetaTimestamp = "kafka.timestamp"

	// uuidHeader carries the Watermill message UUID, under the name the
	// Sarama-based Watermill Kafka Pub/Sub uses, so both interoperate.
	uuidHeader = "_watermill_message_uuid"
)

// recordMessage turns a consumed record into a Watermill message. Records
// without a UUID header get the stable id "topic/partition/offset", so a
// redelivered record keeps its id.
func recordMessage(r *kgo.Record) *message.Message {
	md := make(message.Metadata, 5+len(r.Headers))
	var id string
	for _, h := range r.Headers {
		if h.Key == uuidHeader {
			id = string(h.Value)
			continue
		}
		md[h.Key] = string(h.Value)
	}
	if id == "" {
		id = recordID(r.Topic, r.Partition, r.Offset)
	}
	if r.Key != nil {
		md[MetaKey] = string(r.Key)
	}
	md[MetaTopic] = r.Topic
	md[MetaPartition] = strconv.FormatInt(int64(r.Partition), 10)
	md[MetaOffset] = strconv.FormatInt(r.Offset, 10)
	md[MetaTimestamp] = strconv.FormatInt(r.Timestamp.UnixMilli(), 10)
	msg := message.NewMessage(id, r.Value)
	msg.Metadata = md
	return msg
}

func recordID(topic string, partition int32, offset int64) string {
	b := make([]byte, 0, len(topic)+24)
	b = append(b, topic...)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(partition), 10)
	b = append(b, '/')
	b = strconv.AppendInt(b, offset, 10)
	return string(b)
}

// messageRecord turns a message to publish into a record for topic.
func messageRecord(topic string, msg *message.Message) (*kgo.Record, error) {
	r := &kgo.Record{Topic: topic, Value: msg.Payload}
	r.Headers = make([]kgo.RecordHeader, 0, len(msg.Metadata)+1)
	r.Headers = append(r.Headers, kgo.RecordHeader{Key: uuidHeader, Value: []byte(msg.UUID)})
	for k, v := range msg.Metadata {
		switch {
		case k == MetaKey:
			r.Key = []byte(v)
		case k == MetaPartition:
			n, err := strconv.ParseInt(v, 10, 32)
			if err != nil || n < 0 {
				return nil, errInvalidMetadata(k, v)
			}
			r.Partition = int32(n)
			r.Context = explicitCtx
		case k == MetaTimestamp:
			ms, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, errInvalidMetadata(k, v)
			}
			r.Timestamp = time.UnixMilli(ms)
		case strings.HasPrefix(k, MetaPrefix):
		default:
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
		}
	}
	// Map order is random; sorted headers keep produced records identical
	// across runs.
	slices.SortFunc(r.Headers[1:], func(a, b kgo.RecordHeader) int { return strings.Compare(a.Key, b.Key) })
	return r, nil
}

func errInvalidMetadata(key, value string) error {
	return fmt.Errorf("metadata %s: invalid value %q", key, value)
}
