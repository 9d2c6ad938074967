// Package test holds cdcrecon's cross-process suites: the built binary
// against independent clients (kcat, Python's confluent-kafka and avro) and,
// behind a Docker check, the docker-compose stack. Each suite skips with the
// reason when a tool it needs is absent; .ci/run installs them.
package test
