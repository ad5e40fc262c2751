package xmpp

import (
	"io"
	"strings"
	"testing"
	"time"
)

// TestFailedLoginLogsOneClearLine: a wrong password is logged as one line
// naming the user, not also as an error chain with an empty reason.
func TestFailedLoginLogsOneClearLine(t *testing.T) {
	env := startServer(t, newTestHandler(false), nil)
	c := env.raw()
	if _, cond := tryLogin(c, "bad"); cond != "not-authorized" {
		t.Fatalf("wrong password answered %q", cond)
	}
	// The server logs before it closes: once the stream is at its end,
	// every line about this login is written.
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.Copy(io.Discard, c.conn)
	logs := env.logs.String()
	if strings.Count(logs, "login failed") != 1 || !strings.Contains(logs, `"user":"123"`) ||
		strings.Contains(logs, `\nauthentication error`) || strings.Contains(logs, `"reason":""`) {
		t.Fatalf("failed login logged as:\n%s", logs)
	}
}
