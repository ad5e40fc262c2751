package e2e

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestHugeAndSlowHTTPRequests: a 10 MB body is refused with 413 without
// being read to its end, and clients that trickle their headers or bodies
// neither starve other clients nor keep their sockets: the server closes a
// request whose headers are not complete within its header timeout.
func TestHugeAndSlowHTTPRequests(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	c := s.clientFrom("127.0.0.1")
	huge := bytes.Repeat([]byte("x"), 10<<20)
	for _, path := range []string{"/gcm/send", "/checkin", "/gcm/notification"} {
		req, _ := http.NewRequest(http.MethodPost, "https://"+s.Info.HTTPAddr+path, bytes.NewReader(huge))
		req.Header.Set("Authorization", "key="+s.APIKey)
		req.Header.Set("project_id", s.Sender)
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("10 MB to %s: %v", path, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("10 MB to %s: %s, want 413", path, resp.Status)
		}
	}

	// Slow clients: headers that never end, a body that never comes.
	var slow []*tls.Conn
	for i := 0; i < 10; i++ {
		conn, err := tls.Dial("tcp", s.Info.HTTPAddr, s.tls)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		head := "POST /checkin HTTP/1.1\r\nHost: localhost\r\nX-Slow: "
		if i%2 == 1 {
			head = "POST /checkin HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n{"
		}
		if _, err := io.WriteString(conn, head); err != nil {
			t.Fatal(err)
		}
		slow = append(slow, conn)
	}
	if resp := s.postCheckin(s.clientFrom("127.0.0.2")); resp.StatusCode != http.StatusOK {
		t.Fatalf("checkin while slow clients hold sockets: %s", resp.Status)
	}
	// The unfinished headers are cut by the header timeout (10s).
	for i := 0; i < len(slow); i += 2 {
		_ = slow[i].SetReadDeadline(time.Now().Add(20 * time.Second))
		var ne net.Error
		if _, err := io.Copy(io.Discard, slow[i]); errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("slow header %d: socket not closed by the server within 20s", i)
		}
	}
}
