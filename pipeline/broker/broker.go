// Package broker runs an embedded Kafka-protocol broker (franz-go's kfake)
// for local use, offline runs and tests. It speaks the real Kafka protocol
// over TCP, so every client — ours, kcat, librdkafka — talks to it as to any
// Kafka cluster.
//
// It imports nothing of ours.
package broker

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Config configures an embedded broker. The zero value is valid: a
// non-persistent broker on a random loopback port.
type Config struct {
	// Listen is the TCP address to listen on. Default "127.0.0.1:0" (a random
	// free port on loopback).
	Listen string
	// DataDir, when set, makes the broker persistent: topics, records, group
	// offsets and producer state are written there and reloaded on start.
	// Default "" (in memory only).
	DataDir string
	// Partitions is the partition count of automatically created topics.
	// Default 1.
	Partitions int
	// MaxMessageBytes is the largest record batch the broker takes
	// (Kafka's message.max.bytes). Default 1048588, Kafka's.
	MaxMessageBytes int
	// CleanerInterval is how often the broker compacts compacted topics
	// and deletes records past the retention.ms a topic sets (Kafka's
	// log.cleaner.backoff.ms; topics that set none keep every record).
	// Default 30s.
	CleanerInterval time.Duration
	// Logger receives the broker's own log lines. Default: discarded.
	Logger *slog.Logger
	// Opts are extra kfake options (TLS, SASL users, seeded topics), applied
	// after ours.
	Opts []kfake.Opt
}

// Validate reports a configuration error, naming the field.
func (c Config) Validate() error {
	if c.MaxMessageBytes < 0 {
		return fmt.Errorf("max message bytes: must not be negative, got %d", c.MaxMessageBytes)
	}
	if c.Partitions < 0 {
		return fmt.Errorf("partitions: must not be negative, got %d", c.Partitions)
	}
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	}
	return nil
}

// Broker is a running embedded broker.
type Broker struct {
	cluster *kfake.Cluster
	addr    string
	expirer *expirer
	closing sync.Once
}

// Start starts a broker and returns once it accepts connections.
func Start(cfg Config) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	listen := cfg.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	partitions := cfg.Partitions
	if partitions == 0 {
		partitions = 1
	}
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("creating data dir: %w", err)
		}
	}
	// kfake picks its own 127.0.0.1 address; ListenFn puts it where asked.
	var listenErr error
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(partitions),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			ln, err := net.Listen(network, listen)
			listenErr = err
			return ln, err
		}),
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	// The cleaner runs every CleanerInterval: compacted topics are
	// compacted and a topic's retention.ms is enforced, as on a real
	// broker. A topic that sets no retention keeps its records: dumps
	// loaded here carry the timestamps of their day, which a default of
	// seven days would delete at once.
	interval := cfg.CleanerInterval
	if interval <= 0 {
		interval = 30 * time.Second
	}
	bcfg := map[string]string{"log.cleaner.backoff.ms": strconv.FormatInt(interval.Milliseconds(), 10), "log.retention.ms": "-1"}
	if cfg.MaxMessageBytes > 0 {
		bcfg["message.max.bytes"] = strconv.Itoa(cfg.MaxMessageBytes)
	}
	opts = append(opts, kfake.BrokerConfigs(bcfg))
	if cfg.Logger != nil {
		opts = append(opts, kfake.WithLogger(logAdapter{cfg.Logger}))
	}
	opts = append(opts, cfg.Opts...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		if listenErr != nil {
			return nil, fmt.Errorf("listening on %s: %w", listen, listenErr)
		}
		return nil, fmt.Errorf("starting broker: %w", err)
	}
	addrs := c.ListenAddrs()
	if len(addrs) == 0 {
		c.Close()
		return nil, errors.New("starting broker: no listener")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Broker{cluster: c, addr: addrs[0], expirer: newExpirer(c, addrs[0], log)}
	go b.expirer.run()
	return b, nil
}

// Addr is the host:port clients connect to.
func (b *Broker) Addr() string { return b.addr }

// Cluster exposes the underlying kfake cluster for tests that steer it.
func (b *Broker) Cluster() *kfake.Cluster { return b.cluster }

// Close stops the broker, writing its state to the data dir if it has one.
// It is safe to call more than once.
func (b *Broker) Close() {
	b.closing.Do(func() {
		b.expirer.close()
		b.cluster.Close()
	})
}

type logAdapter struct{ l *slog.Logger }

func (a logAdapter) Logf(level kfake.LogLevel, msg string, args ...any) {
	text := fmt.Sprintf(msg, args...)
	switch level {
	case kfake.LogLevelError:
		a.l.Error(text)
	case kfake.LogLevelWarn:
		a.l.Warn(text)
	case kfake.LogLevelInfo:
		a.l.Info(text)
	default:
		a.l.Debug(text)
	}
}
