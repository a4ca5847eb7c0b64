# ofmprobe: the two commands the README promises, and a few more.
#   make scan   builds ofmprobe, brings the Samba lab up and sweeps it (the main job, as root)
#   make test   installs what the tests need, brings the lab up, runs every test, brings the lab down (as root)

GO      ?= go
BIN     := bin/ofmprobe
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LAB     := bash testdata/lab/lab.sh

.PHONY: build scan test unit fuzz bench gobench lab-up lab-down lab-status clean

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/ofmprobe

# The main job: a real scan of the lab's hosts from its scanner namespace. Exit 1 (hosts fail) is the expected answer.
scan: build lab-up
	ip netns exec ofmlab-scan $(BIN) scan --format table 198.18.0.0/24 || [ $$? -eq 1 ]
	@echo "The lab stays up for you to explore (ip netns exec ofmlab-scan $(BIN) scan ...); 'make lab-down' removes it."

test:
	bash testdata/lab/test.sh

# Unit tests only: no root, no lab (the lab tests run only with OFMPROBE_LAB=1, which test.sh sets).
unit:
	$(GO) test ./...

FUZZTIME ?= 30s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test $$pkg -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) || exit 1; \
	  done; \
	done

# Timed sweeps of the lab /20 and /16 against nmap and nbtscan, scored against the lab's truth; writes BENCHMARKS.md
# (about 45 minutes: nmap takes about 5 of them per /20 run, and the slow /16 and the TCP-only rows add 15). As root,
# with the lab up. BENCH_ONLY=16,slow16 runs only those rows (testdata/lab/benchmarks.sh says more).
bench: lab-up
	bash testdata/lab/benchmarks.sh

# The codec, grading and writer benchmarks (testing.B); no root, no lab. (The NBSTAT socket benchmarks send UDP to
# a responder on 127.0.0.1.)
gobench:
	$(GO) test -run '^$$' -bench . -benchmem ./probe/... ./catalog/ ./report/

lab-up:
	$(LAB) up

lab-down:
	$(LAB) down

lab-status:
	$(LAB) status

clean:
	rm -rf bin
