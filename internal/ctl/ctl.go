// Package ctl is the control socket between a running facteur and its
// command-line tools: one JSON request and one JSON response per
// connection, over a unix socket in data_dir that only its owner may use.
package ctl

import (
	"encoding/json"
	"errors"
	"fmt"
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
			c.SetDeadline(time.Now().Add(30 * time.Second))
			var req Request
			if err := json.NewDecoder(c).Decode(&req); err != nil {
				return
			}
			resp := handle(q, req)
			log.Info("control request", "cmd", req.Cmd, "id", req.ID, "error", resp.Error)
			json.NewEncoder(c).Encode(resp)
		}()
	}
}

func handle(q Queue, req Request) Response {
	switch req.Cmd {
	case "list":
		envs := q.List()
		return Response{Envelopes: envs, Count: len(envs)}
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
	c.SetDeadline(time.Now().Add(60 * time.Second))
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
