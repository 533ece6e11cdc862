# facteur: build, test, install. `make install` as root sets up a real MX:
# binary, user, data directory, configuration (kept if present), systemd unit.
PREFIX  ?= /usr/local
CONFDIR ?= /etc/facteur
DATADIR ?= /var/lib/facteur
UNITDIR ?= /etc/systemd/system

.PHONY: build test install install-sendmail fuzz bench

# The binary looks for $(CONFDIR)/facteur.toml when no --config is given.
build:
	go build -ldflags "-X facteur/internal/config.systemFile=$(CONFDIR)/facteur.toml" -o facteur ./cmd/facteur

test:
	go test -race -count=1 ./...

install: build
	install -D -m 0755 facteur $(DESTDIR)$(PREFIX)/bin/facteur
	getent passwd facteur >/dev/null || useradd --system --home-dir $(DATADIR) --shell /usr/sbin/nologin facteur
	install -d -o facteur -g facteur -m 0700 $(DESTDIR)$(DATADIR)
	install -d -m 0755 $(DESTDIR)$(CONFDIR)
	test -e $(DESTDIR)$(CONFDIR)/facteur.toml || install -m 0644 facteur.example.toml $(DESTDIR)$(CONFDIR)/facteur.toml
	test -e $(DESTDIR)$(CONFDIR)/users || install -m 0644 /dev/null $(DESTDIR)$(CONFDIR)/users
	test -e $(DESTDIR)$(CONFDIR)/passwords || install -o facteur -g facteur -m 0600 /dev/null $(DESTDIR)$(CONFDIR)/passwords
	install -D -m 0644 contrib/facteur.service $(DESTDIR)$(UNITDIR)/facteur.service
	@echo "installed: edit $(CONFDIR)/facteur.toml and $(CONFDIR)/users, then: systemctl daemon-reload && systemctl enable --now facteur"

# The sendmail name for cron, PHP and mutt; replaces any other MTA's.
install-sendmail: install
	ln -sf $(PREFIX)/bin/facteur $(DESTDIR)/usr/sbin/sendmail

fuzz:
	bash fuzz.sh

bench:
	bash bench/run.sh
