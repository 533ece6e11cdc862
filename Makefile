# facteur: build, test, install. `make build` as yourself, then `sudo make
# install` sets up a real MX: binary, user, data directory, configuration
# (kept if present), systemd unit, and the documentation the unit names.
PREFIX  ?= /usr/local
CONFDIR ?= /etc/facteur
DATADIR ?= /var/lib/facteur
UNITDIR ?= /etc/systemd/system
DOCDIR  ?= $(PREFIX)/share/doc/facteur

GOBUILD = go build -ldflags "-X facteur/internal/config.systemFile=$(CONFDIR)/facteur.toml" -o facteur ./cmd/facteur

.PHONY: build test install install-sendmail fuzz bench

# The binary looks for $(CONFDIR)/facteur.toml when no --config is given.
build:
	$(GOBUILD)

# install takes ./facteur as built, and rebuilds it only when a source is
# newer: root, under `sudo make install`, often has no Go on its PATH. Give
# `make build` the CONFDIR you give `make install`.
facteur: $(shell find cmd internal -name '*.go' ! -name '*_test.go') go.mod go.sum
	@command -v go >/dev/null || { echo "make: ./facteur is missing or older than the sources, and there is no go on this PATH (sudo's often lacks it): run 'make build' as yourself first, then 'sudo make install'" >&2; exit 1; }
	$(GOBUILD)

test:
	go test -race -count=1 ./...

install: facteur
	install -D -m 0755 facteur $(DESTDIR)$(PREFIX)/bin/facteur
	getent passwd facteur >/dev/null || useradd --system --home-dir $(DATADIR) --shell /usr/sbin/nologin facteur
	install -d -o facteur -g facteur -m 0700 $(DESTDIR)$(DATADIR)
	install -d -m 0755 $(DESTDIR)$(CONFDIR)
	test -e $(DESTDIR)$(CONFDIR)/facteur.toml || install -m 0644 facteur.example.toml $(DESTDIR)$(CONFDIR)/facteur.toml
	test -e $(DESTDIR)$(CONFDIR)/users || install -m 0644 /dev/null $(DESTDIR)$(CONFDIR)/users
	test -e $(DESTDIR)$(CONFDIR)/passwords || install -o facteur -g facteur -m 0600 /dev/null $(DESTDIR)$(CONFDIR)/passwords
	install -D -m 0644 contrib/facteur.service $(DESTDIR)$(UNITDIR)/facteur.service
	install -D -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md
	$(if $(wildcard docs/*.md),install -D -m 0644 -t $(DESTDIR)$(DOCDIR)/docs $(wildcard docs/*.md))
	@echo "installed: edit $(CONFDIR)/facteur.toml and $(CONFDIR)/users, then: systemctl daemon-reload && systemctl enable --now facteur"

# The sendmail name for cron, PHP and mutt; replaces any other MTA's.
install-sendmail: install
	ln -sf $(PREFIX)/bin/facteur $(DESTDIR)/usr/sbin/sendmail

fuzz:
	bash fuzz.sh

bench:
	bash bench/run.sh
