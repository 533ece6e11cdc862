package sendmail

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/emersion/go-smtp"
)

// Exit codes from sysexits.h, which callers of sendmail test.
const (
	ExOK          = 0
	ExUsage       = 64
	ExDataErr     = 65
	ExNoUser      = 67
	ExUnavailable = 69
	ExTempFail    = 75
	ExConfig      = 78
)

// ErrNotRunning means nothing answered on the relay listener.
var ErrNotRunning = errors.New("facteur is not running")

// Submit hands m to the server's relay listener at addr.
func Submit(addr string, m *Message) error {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return fmt.Errorf("%w (%v)", ErrNotRunning, err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Minute))
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello("localhost"); err != nil {
		return err
	}
	opts := &smtp.MailOptions{}
	if !ascii(m.From) || !allASCII(m.Rcpts) {
		opts.UTF8 = true
	}
	if err := c.Mail(m.From, opts); err != nil {
		return fmt.Errorf("sender <%s>: %w", m.From, err)
	}
	for _, r := range m.Rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			return fmt.Errorf("recipient <%s>: %w", r, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(m.Data); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// ExitCode maps a submission error to what sendmail callers expect.
func ExitCode(err error) int {
	var se *smtp.SMTPError
	switch {
	case err == nil:
		return ExOK
	case errors.As(err, &se) && se.Code/100 == 4:
		return ExTempFail
	case errors.As(err, &se) && (se.EnhancedCode[1] == 1 || se.Code == 550 || se.Code == 553):
		return ExNoUser
	case errors.As(err, &se):
		return ExUnavailable
	}
	// Not running, connection broken: the caller may try again.
	return ExTempFail
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func allASCII(ss []string) bool {
	for _, s := range ss {
		if !ascii(s) {
			return false
		}
	}
	return true
}
