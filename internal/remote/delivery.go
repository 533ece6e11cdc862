package remote

// delivery is the state of one Deliver call.
type delivery struct {
	msgs []*Message
	out  [][]Result // Status 0: not decided yet
	open []bool     // no host has taken the message, nor did we settle it
	last []Result   // why the last host tried did not take the message
	// paths are From and Rcpts as written on the wire.
	from  []string
	rcpts [][]string
}

// onlyReports tells whether every message still open is a TLS report.
func (d *delivery) onlyReports() bool {
	for i, m := range d.msgs {
		if d.open[i] && !m.TLSReport {
			return false
		}
	}
	return true
}

// newDelivery prepares the state and refuses addresses that cannot be
// written on the wire at all; rcptPath writes recipients (path, or
// lmtpPath).
func newDelivery(msgs []*Message, rcptPath func(string) (string, error)) *delivery {
	d := &delivery{
		msgs:  msgs,
		out:   make([][]Result, len(msgs)),
		open:  make([]bool, len(msgs)),
		last:  make([]Result, len(msgs)),
		from:  make([]string, len(msgs)),
		rcpts: make([][]string, len(msgs)),
	}
	for i, m := range msgs {
		d.out[i] = make([]Result, len(m.Rcpts))
		d.rcpts[i] = make([]string, len(m.Rcpts))
		for j, rcpt := range m.Rcpts {
			d.out[i][j].Rcpt = rcpt
			p, err := rcptPath(rcpt)
			if err != nil {
				d.decide(i, j, Result{Status: Permanent, Enhanced: "5.1.3", Text: "bad recipient address: " + err.Error()})
			}
			d.rcpts[i][j] = p
		}
		d.open[i] = len(d.waiting(i)) > 0
		p, err := path(m.From)
		if err != nil {
			d.take(i, Result{Status: Permanent, Enhanced: "5.1.7", Text: "bad sender address: " + err.Error()})
		}
		d.from[i] = p
	}
	return d
}

// waiting lists the recipients of message i without a result.
func (d *delivery) waiting(i int) []int {
	var js []int
	for j, r := range d.out[i] {
		if r.Status == 0 {
			js = append(js, j)
		}
	}
	return js
}

// decide sets the result of recipient j of message i.
func (d *delivery) decide(i, j int, r Result) {
	r.Rcpt = d.out[i][j].Rcpt
	d.out[i][j] = r
}

// take closes message i, giving r to every recipient still without a result.
func (d *delivery) take(i int, r Result) {
	for _, j := range d.waiting(i) {
		d.decide(i, j, r)
	}
	d.open[i] = false
}

// fail records why a host did not take message i; the next host may.
func (d *delivery) fail(i int, r Result) { d.last[i] = r }

func (d *delivery) failOpen(r Result) {
	for i := range d.msgs {
		if d.open[i] {
			d.fail(i, r)
		}
	}
}

// holdBack gives r to the open messages from from on, which a session
// that ended early never tried.
func (d *delivery) holdBack(from int, r Result) {
	for i := from; i < len(d.msgs); i++ {
		if d.open[i] {
			d.fail(i, r)
		}
	}
}

func (d *delivery) pending() bool {
	for _, o := range d.open {
		if o {
			return true
		}
	}
	return false
}

func (d *delivery) openIDs() []string {
	var ids []string
	for i, m := range d.msgs {
		if d.open[i] {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

// finishOpen gives every message no host took the last host's reason.
func (d *delivery) finishOpen() {
	for i := range d.msgs {
		if !d.open[i] {
			continue
		}
		r := d.last[i]
		if r.Status == 0 {
			r = Result{Status: Transient, Enhanced: "4.4.4", Text: "no MX host to try"}
		}
		d.take(i, r)
	}
}

func (d *delivery) finishAll(r Result) {
	for i := range d.msgs {
		if d.open[i] {
			d.take(i, r)
		}
	}
}
