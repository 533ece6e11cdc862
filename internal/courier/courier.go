// Package courier holds the queue's couriers (queue.Courier): Remote
// carries mail to other domains' MX hosts over SMTP, Maildir stores mail
// for local users in their Maildirs, and LMTP hands it to a mailbox server
// such as Dovecot. The daemon picks one by the recipients' domain.
package courier
