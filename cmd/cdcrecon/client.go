package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
	"github.com/cdcrecon/cdcrecon/processors/config"
)

// kafkaClient is the Kafka client configuration of a configuration file:
// its brokers, TLS and SASL. Errors name the field.
func kafkaClient(cfg *config.Config, log *slog.Logger) (kafka.ClientConfig, error) {
	cc := kafka.ClientConfig{Brokers: cfg.Kafka.Brokers, Logger: log}
	if t := cfg.Kafka.TLS; t != nil {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify}
		if t.CAFile != "" {
			pem, err := os.ReadFile(t.CAFile)
			if err != nil {
				return cc, fmt.Errorf("%s: kafka.tls.ca_file: %w", cfg.File, err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return cc, fmt.Errorf("%s: kafka.tls.ca_file: no PEM certificate in %s", cfg.File, t.CAFile)
			}
		}
		if t.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
			if err != nil {
				return cc, fmt.Errorf("%s: kafka.tls.cert_file/key_file: %w", cfg.File, err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		cc.Opts = append(cc.Opts, kgo.Dialer((&tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: tc}).DialContext))
	}
	if s := cfg.Kafka.SASL; s != nil {
		switch s.Mechanism {
		case "PLAIN":
			cc.Opts = append(cc.Opts, kgo.SASL(plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism()))
		case "SCRAM-SHA-256":
			cc.Opts = append(cc.Opts, kgo.SASL(scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism()))
		case "SCRAM-SHA-512":
			cc.Opts = append(cc.Opts, kgo.SASL(scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism()))
		}
	}
	return cc, nil
}
