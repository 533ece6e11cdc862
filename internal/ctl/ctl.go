// Package ctl is the control socket between a running facteur and its
// command-line tools: one JSON request and one JSON response per
// connection, over a unix socket in data_dir that only its owner may use.
package ctl

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"facteur/internal/queue"
)

// SocketName is the socket's file name in data_dir.
const SocketName = "facteur.sock"

// Request is what a tool asks.
type Request struct {
	Cmd string `json:"cmd"` // "list", "flush", "remove"
	ID  string `json:"id,omitempty"`
}

// Response is what the server answers.
type Response struct {
	Error     string           `json:"error,omitempty"`
	Envelopes []queue.Envelope `json:"envelopes,omitempty"`
	Count     int              `json:"count"`
}

// Queue is what the socket exposes; *queue.Queue is one.
type Queue interface {
	List() []queue.Envelope
	Flush() int
	Remove(id string) error
}

// ErrNotRunning means no server answers on the socket.
var ErrNotRunning = errors.New("facteur is not running")

// Listen creates the socket in dir, replacing a stale one left by a crash,
// and serves q on it until the listener is closed.
func Listen(dir string, q Queue, log *slog.Logger) (net.Listener, error) {
	path := filepath.Join(dir, SocketName)
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s: another facteur is running on this data_dir", path)
	}
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	go serve(l, q, log)
	return l, nil
}

func serve(l net.Listener, q Queue, log *slog.Logger) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			conn := stepDeadline{c, 30 * time.Second}
			var req Request
			if err := json.NewDecoder(conn).Decode(&req); err != nil {
				return
			}
			if req.Cmd == "list" {
				envs := q.List()
				log.Info("control request", "cmd", req.Cmd, "messages", len(envs))
				writeList(conn, envs)
				return
			}
			resp := handle(q, req)
			log.Info("control request", "cmd", req.Cmd, "id", req.ID, "error", resp.Error)
			json.NewEncoder(conn).Encode(resp)
		}()
	}
}

// writeList writes the answer to "list", a Response, one envelope at a
// time: encoded whole, the answer for 100,000 messages was a 46 MB buffer
// grown (and cleared) step by step before the first byte went out.
func writeList(w io.Writer, envs []queue.Envelope) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.WriteString(`{"envelopes":[`)
	enc := json.NewEncoder(bw)
	for i := range envs {
		if i > 0 {
			bw.WriteByte(',')
		}
		if err := enc.Encode(&envs[i]); err != nil {
			return err
		}
	}
	fmt.Fprintf(bw, "],\"count\":%d}\n", len(envs))
	return bw.Flush()
}

// stepDeadline gives each read and write on a connection its own deadline,
// so that a long answer, the listing of a deep queue, is bounded per step
// rather than in all.
type stepDeadline struct {
	net.Conn
	d time.Duration
}

func (c stepDeadline) Read(p []byte) (int, error) {
	c.SetDeadline(time.Now().Add(c.d))
	return c.Conn.Read(p)
}

func (c stepDeadline) Write(p []byte) (int, error) {
	c.SetDeadline(time.Now().Add(c.d))
	return c.Conn.Write(p)
}

func handle(q Queue, req Request) Response {
	switch req.Cmd {
	case "flush":
		return Response{Count: q.Flush()}
	case "remove":
		if err := q.Remove(req.ID); err != nil {
			return Response{Error: err.Error()}
		}
		return Response{Count: 1}
	}
	return Response{Error: fmt.Sprintf("unknown command %q", req.Cmd)}
}

// Call sends one request to the server whose data_dir is dir.
func Call(dir string, req Request) (*Response, error) {
	c, err := net.DialTimeout("unix", filepath.Join(dir, SocketName), 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("%w (%v)", ErrNotRunning, err)
	}
	defer c.Close()
	c = stepDeadline{c, 60 * time.Second}
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if resp.Error != "" {
		return &resp, errors.New(resp.Error)
	}
	return &resp, nil
}
