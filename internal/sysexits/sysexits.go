// Package sysexits holds the exit statuses of sysexits.h, which the
// programs calling sendmail test, and which facteur's other tools use for
// the same meanings.
package sysexits

const (
	OK          = 0
	Usage       = 64 // the command line is wrong
	DataErr     = 65 // the input is wrong (a message, a password)
	NoUser      = 67 // no such user, no such mailbox
	Unavailable = 69 // refused for good
	TempFail    = 75 // try again later
	Config      = 78 // the configuration is wrong or missing
)
