// Package smtptest holds the fakes that tests of every facteur package share:
// a throwaway certificate authority, a DNS server and remote mail servers, all
// on loopback addresses and all stopped by t.Cleanup.
package smtptest
