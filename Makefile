# mxfront — see README.md. Everything here works on a fresh machine with Go;
# `make test` installs the end-to-end peers (Debian packages) when run as root.
GO      ?= go
# Static binaries: chain mode starts a process per connection, and dynamic
# linking alone costs it milliseconds. (-race in `make test` needs cgo, so
# it is set per build command.) No build tags: `go build ./cmd/...` and
# `go install` make the same tools. mxfront (chain mode) is lean because
# of what cmd/mxfront imports, which a test checks.
STATIC  := CGO_ENABLED=0
GOFLAGS_BUILD ?= -trimpath
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.1.0-dev)
PREFIX  ?= /usr/local
DESTDIR ?=
# mxfront runs chain mode itself and execs mxfront-cli (serve, check,
# greylist, help) from beside itself or from here.
LIBEXECDIR ?= $(PREFIX)/libexec/mxfront
# -s -w: no symbol table or DWARF (stack traces keep their function names);
# measured ~0.2-0.4 ms less per chain-mode start. goexec, the benchmark's
# floor, is built the same way.
LDFLAGS := -s -w -X main.libexecDir=$(LIBEXECDIR) -X github.com/mxfront/mxfront/cmd/internal/run.version=$(VERSION)
BIN     := bin
MANPAGES := man/mxfront.8 man/mxfilter.8
RUNDIR  := $(CURDIR)/run

.PHONY: all build run test unit e2e peers vet bench man check-man install clean fuzz

all: build

build:
	$(STATIC) $(GO) build $(GOFLAGS_BUILD) -ldflags '$(LDFLAGS)' -o $(BIN)/ \
		./cmd/mxfront ./cmd/mxfront-cli ./cmd/mxfilter ./testdata/goexec

# The demo SMTP sink that `make run` and the benchmarks put behind mxfront.
$(BIN)/mxsink: $(wildcard testdata/mxsink/*.go)
	$(STATIC) $(GO) build $(GOFLAGS_BUILD) -o $@ ./testdata/mxsink

# Quick start: mxfront serve on loopback in front of the demo sink. See README.
run: build $(BIN)/mxsink
	@mkdir -p $(RUNDIR)
	@echo "mxfront: serving on 127.0.0.1:2525 (Ctrl-C stops); try:"
	@echo "  swaks --server 127.0.0.1:2525 --to you@example.org          # passes"
	@echo "  swaks --server 127.0.0.1:2525 --to you@example.org --local-interface 127.0.0.66   # refused"
	$(BIN)/mxfront serve --listen 127.0.0.1:2525 --hostname mx.example.test \
		--deny-file contrib/demo.deny --log stderr -- \
		$(BIN)/mxsink -hostname mx.example.test -spool $(RUNDIR)/spool

peers:
	@if [ "$$(id -u)" = 0 ]; then sh test/peers.sh; \
	else echo "make: not root: not installing end-to-end peers (see test/peers.sh)"; fi

# staticcheck at a pinned version, through the module proxy (STYLE.md).
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

vet:
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi

# Every test: unit, fuzz corpora, golden files and the end-to-end suite.
test: peers vet check-man
	$(GO) test -race -count=1 -timeout 40m ./...

unit:
	$(GO) test -count=1 -short ./...

bench: build $(BIN)/mxsink
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(GO) run ./test/load -bin $(BIN)

# Every fuzz target for FUZZTIME each (the corpora under testdata/fuzz
# run in `make test` too). A finding stops it; its input is written under
# the package's testdata/fuzz: fix the bug and commit the input.
FUZZTIME ?= 30s
fuzz:
	GO=$(GO) test/fuzz.sh $(FUZZTIME)

man: $(MANPAGES)

man/%.8: man/%.8.md
	$(GO) tool go-md2man -in $< -out $@

# CI fails when a committed man page is not what its source generates.
check-man:
	@for m in $(MANPAGES); do \
		[ -f $$m.md ] || continue; \
		$(GO) tool go-md2man -in $$m.md -out $$m.tmp || exit 1; \
		if ! cmp -s $$m $$m.tmp; then rm -f $$m.tmp; \
			echo "$$m is out of date with $$m.md: run 'make man' and commit it"; exit 1; fi; \
		rm -f $$m.tmp; \
	done

install: build
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(PREFIX)/share/man/man8 \
		$(DESTDIR)$(PREFIX)/share/doc/mxfront/examples
	install -m 755 $(BIN)/mxfront $(DESTDIR)$(PREFIX)/sbin/mxfront
	install -m 755 $(BIN)/mxfront-cli $(DESTDIR)$(LIBEXECDIR)/mxfront-cli
	install -m 755 $(BIN)/mxfilter $(DESTDIR)$(PREFIX)/sbin/mxfilter
	install -m 644 $(MANPAGES) $(DESTDIR)$(PREFIX)/share/man/man8/
	cd contrib && find . -type f | while read -r f; do \
		install -D -m 644 "$$f" "$(DESTDIR)$(PREFIX)/share/doc/mxfront/examples/$$f" || exit 1; done

clean:
	rm -rf $(BIN) $(RUNDIR)
