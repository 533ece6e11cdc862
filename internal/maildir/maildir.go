// Package maildir delivers messages into Maildirs: each copy is written under
// Maildir/tmp, fsync'd and renamed into Maildir/new, so a reader only ever sees
// complete messages and a message reported delivered survives a crash.
package maildir

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"facteur/internal/durable"
)

// Store delivers into the Maildirs under one root: mailbox M lives at
// <root>/M/Maildir. It holds no mutable state and is safe for concurrent use.
type Store struct {
	root  string
	host  string // hostname escaped for use in file names
	sync  durable.Mode
	names *namer // process, or a fixed one in tests
}

// New returns a Store for the Maildirs under root. hostname goes into every
// file name, with the process's own random part, so that several hosts can
// share one Maildir (NFS); sync is how each copy is made durable.
func New(root, hostname string, sync durable.Mode) *Store {
	// The Maildir convention escapes the two characters that cannot appear in
	// a file name or would be taken for the start of the flags.
	host := strings.NewReplacer("/", `\057`, ":", `\072`).Replace(hostname)
	return &Store{root: root, host: host, sync: sync, names: process}
}

// ValidMailbox reports whether name is safe as one path element under the
// Maildir root: 1 to 64 bytes of [A-Za-z0-9._+-], not starting with '.'. This
// rules out "", ".", "..", "/", NUL, control characters and hidden names.
func ValidMailbox(name string) bool {
	if name == "" || len(name) > 64 || name[0] == '.' {
		return false
	}
	for i := range len(name) {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '_', c == '+', c == '-':
		default:
			return false
		}
	}
	return true
}

// Junk is the Maildir++ folder of suspected spam, which Dovecot and IMAP
// clients show as Junk: <Maildir>/.Junk/{tmp,new,cur}.
const Junk = ".Junk"

// dir is a subdirectory (tmp, new, cur) of mailbox's inbox, or of its
// Maildir++ folder when folder is not "".
func (s *Store) dir(mailbox, folder, sub string) string {
	return filepath.Join(s.root, mailbox, "Maildir", folder, sub)
}

// prepare creates the Maildir of mailbox, and its folder when not "".
// Deliveries call it only when a step fails for want of a directory (see
// retry): stat'ing three directories before every delivery cost more than
// the retry ever will.
func (s *Store) prepare(mailbox, folder string) error {
	for _, f := range []string{"", folder} {
		for _, sub := range []string{"tmp", "new", "cur"} {
			if err := durable.MkdirAll(s.dir(mailbox, f, sub)); err != nil {
				return fmt.Errorf("maildir: prepare %s: %w", mailbox, err)
			}
		}
		if f != "" {
			// Maildir++ marks a folder so; Courier and Dovecot look for it.
			mark := s.dir(mailbox, f, "maildirfolder")
			fd, err := os.OpenFile(mark, os.O_WRONLY|os.O_CREATE, 0o600)
			if err != nil {
				return fmt.Errorf("maildir: prepare %s: %w", mailbox, err)
			}
			fd.Close()
		}
	}
	return nil
}

// ReturnPath is the header line final delivery adds (RFC 5321 4.4): the
// envelope sender, "" for the null sender. Line breaks are dropped so that
// the sender can never add a header of its own.
func ReturnPath(sender string) []byte {
	sender = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return -1
		}
		return r
	}, sender)
	return []byte("Return-Path: <" + sender + ">\r\n")
}
