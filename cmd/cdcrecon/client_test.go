package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrecon/cdcrecon/pipeline/broker"
	"github.com/cdcrecon/cdcrecon/pipeline/kafka"
	"github.com/cdcrecon/cdcrecon/pipeline/load"
	"github.com/cdcrecon/cdcrecon/processors/config"
)

// selfSigned makes a certificate for 127.0.0.1 and writes it, as the CA
// clients trust, to dir/ca.pem.
func selfSigned(t *testing.T, dir string) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cdcrecon test broker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, ca
}

// TestRunOverTLSAndSCRAM: against a broker that takes only TLS and
// SCRAM-SHA-256, the worker reconciles with the credentials of its
// configuration (the password from the environment, never logged), and a
// wrong password stops it at start with an authentication error.
func TestRunOverTLSAndSCRAM(t *testing.T) {
	dir := t.TempDir()
	cert, ca := selfSigned(t, dir)
	b, err := broker.Start(broker.Config{Opts: []kfake.Opt{
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "recon", "s3cret-pass"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	yaml := func(name string) string {
		p := filepath.Join(dir, name+".yaml")
		body := fmt.Sprintf(`kafka:
  brokers: [%s]
  group: tls-test
  tls: {ca_file: %s}
  sasl: {mechanism: SCRAM-SHA-256, username: recon}
state: {dir: %s}
window: {size: 1m, grace: 1s}
tables:
  - name: orders
    key: [id]
    source: {topic: pg.public.orders}
    target:
      topic: mysql.shop.orders
      rename: {order_total: total}
    normalize:
      total: {as: decimal}
      paid: {as: bool}
`, b.Addr(), ca, filepath.Join(dir, "state-"+name))
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := yaml("good")

	// Load the example dumps over TLS and SCRAM, with the producer the
	// configuration describes.
	t.Setenv(config.EnvKafkaPassword, "s3cret-pass")
	cfg, err := config.Load(good)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := kafkaClient(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := load.New(cc, load.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"../../examples/dumps/source.jsonl", "../../examples/dumps/target.jsonl"} {
		if _, err := p.File(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(context.Background()); err != nil {
		t.Fatalf("producing over TLS and SCRAM: %v", err)
	}
	p.Close()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var logs bytes.Buffer
	go func() {
		done <- run(ctx, []string{"--log-level", "debug", "run", "--config", good}, nil, &bytes.Buffer{}, &logs)
	}()
	// The worker is through when the changes topic holds the six events.
	deadline := time.Now().Add(20 * time.Second)
	for {
		n, err := topicEnd(cc, "cdcrecon.changes")
		if err == nil && n >= 6 {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("the worker did not ingest over TLS and SCRAM (changes: %d, %v); logs:\n%s", n, err, logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("run: exit %d:\n%s", code, logs.String())
	}
	if strings.Contains(logs.String(), "s3cret-pass") {
		t.Error("the password appears in the logs")
	}

	t.Setenv(config.EnvKafkaPassword, "wrong")
	var out2 bytes.Buffer
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel2()
	if code := run(ctx2, []string{"run", "--config", yaml("bad")}, nil, &bytes.Buffer{}, &out2); code != exitFailure {
		t.Fatalf("a wrong password: exit %d, want %d: %s", code, exitFailure, out2.String())
	}
	if !strings.Contains(strings.ToLower(out2.String()), "sasl") && !strings.Contains(strings.ToLower(out2.String()), "authentication") {
		t.Errorf("the error does not say authentication failed: %s", out2.String())
	}
}

// topicEnd sums the end offsets of a topic's partitions.
func topicEnd(cc kafka.ClientConfig, topic string) (int64, error) {
	cl, err := kgo.NewClient(cc.ClientOpts()...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return 0, err
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n, nil
}
