# cdcrecon — see README.md. Every target runs on a fresh clone with Go and
# the module proxy; `make test` is the test command CI runs.

GO        ?= go
BIN       ?= bin/cdcrecon
BENCHOUT  ?= bench.txt
# Tools pinned in test/tools/go.mod (go get -tool there to upgrade).
TOOL      = $(GO) tool -modfile=test/tools/go.mod

.PHONY: build demo test test-short e2e e2e-local realstack-jars fuzz lint bench soak clean

build:
	$(GO) build -o $(BIN) ./cmd/cdcrecon

# The one-command demo: an embedded broker, simulated traffic with faults,
# a worker, and its recall and precision against the ground truth.
demo: build
	./$(BIN) demo

# vet, then every test under the race detector in random order. Suites that
# need kcat or Docker skip with the reason when those are absent.
# test/e2e, the docker-compose suite, is a module of its own (its
# testcontainers graph stays out of the product's).
test:
	$(GO) vet ./...
	cd test/e2e && $(GO) vet ./...
	$(GO) test -race -shuffle=on -timeout 45m ./...
	cd test/e2e && $(GO) test -race -shuffle=on -timeout 10m ./...

# The inner loop: every test but the long ones (the chaos and fault
# runs, worker processes, the real stack), which -short skips. CI runs
# them all (make test).
test-short:
	$(GO) test -short ./...
	cd test/e2e && $(GO) test -short ./...

# The docker-compose stack end to end (needs a Docker engine): builds and
# brings up docker-compose.yml, writes to the source, tampers with the
# target, requires cdcrecon's drift and compensation records, and takes the
# stack down. Without Docker it fails (make test skips it instead).
e2e:
	cd test/e2e && CDCRECON_E2E=1 $(GO) test -run '^TestComposeEndToEnd$$' -v -count 1 -timeout 20m .

# The real stack's jars (Kafka, Connect, Debezium) from Maven Central into
# test/realstack/lib; Maven's local repository caches them.
realstack-jars:
	mvn -B -q -f test/realstack/pom.xml dependency:copy-dependencies

# The end-to-end suite on the real stack, as local processes: Apache Kafka
# (KRaft) and Kafka Connect with Debezium from Maven Central, PostgreSQL
# from the machine. A missing component fails it (make test skips instead).
e2e-local: realstack-jars
	CDCRECON_REALSTACK=required $(GO) test -v -count 1 -timeout 45m ./test/realstack

# A short run of every fuzz target, counted in executions rather than
# seconds: a -fuzztime duration can fail with "context deadline exceeded"
# on a loaded machine (go.dev/issue/75804, fixed after Go 1.26).
# FUZZTIME=5m for a longer run.
FUZZTIME ?= 200000x
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseLine$$' -fuzztime $(FUZZTIME) ./pipeline/dump
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeBatch$$' -fuzztime $(FUZZTIME) ./pipeline/kafka
	$(GO) test -run '^$$' -fuzz '^FuzzJSONDecoder$$' -fuzztime $(FUZZTIME) ./processors/debezium
	$(GO) test -run '^$$' -fuzz '^FuzzAvroDecoder$$' -fuzztime $(FUZZTIME) ./processors/debezium
	$(GO) test -run '^$$' -fuzz '^FuzzTimestamp$$' -fuzztime $(FUZZTIME) ./processors/debezium
	$(GO) test -run '^$$' -fuzz '^FuzzCanonical$$' -fuzztime $(FUZZTIME) ./processors/canon
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./schemas
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeRecord$$' -fuzztime $(FUZZTIME) ./processors/changes

lint:
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	cd test/e2e && $(GO) vet ./...
	$(TOOL) staticcheck ./...
	cd test/e2e && $(GO) tool -modfile=../tools/go.mod staticcheck ./...

# The benchmarks of BENCHMARKS.md: `cdcrecon bench` (the streaming
# worker's events/s, detection latency, peak RSS, recall and precision,
# medians of three runs), then the Go benchmarks, summarised by benchstat
# (medians with their spread).
bench: build
	./$(BIN) bench --runs 3 | tee bench-worker.txt
	$(GO) test -run '^$$' -bench 'BenchmarkConsume' -benchtime 3x -count 6 ./pipeline/kafka | tee $(BENCHOUT)
	$(GO) test -run '^$$' -bench 'BenchmarkEvent' -benchtime 1s -count 6 ./processors/normalize | tee -a $(BENCHOUT)
	$(GO) test -run '^$$' -bench 'BenchmarkDrift' -count 6 ./schemas | tee -a $(BENCHOUT)
	$(GO) test -run '^$$' -bench 'BenchmarkCheck|BenchmarkRun' -benchtime 1x -count 3 -timeout 60m ./cmd/cdcrecon | tee -a $(BENCHOUT)
	$(GO) test -run '^$$' -bench 'BenchmarkWorkerRestart|BenchmarkStateRecovery' -benchtime 1x -count 3 -timeout 90m ./cmd/cdcrecon | tee -a $(BENCHOUT)
	$(TOOL) benchstat $(BENCHOUT)

# BENCHMARKS.md's soak: one worker for 20 minutes at a steady rate, its
# disk use sampled every 30 s.
soak:
	$(GO) test -run '^$$' -bench 'BenchmarkSoak' -benchtime 1x -timeout 60m -v ./cmd/cdcrecon | tee soak.txt

clean:
	rm -rf bin $(BENCHOUT) bench-worker.txt
