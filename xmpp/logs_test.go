package xmpp

import (
	"strings"
	"testing"
)

// TestFailedLoginLogsOneClearLine: a wrong password is logged as one line
// that says so, not as an error chain with an empty reason.
func TestFailedLoginLogsOneClearLine(t *testing.T) {
	env := startServer(t, newTestHandler(false), nil)
	if _, cond := tryLogin(env.raw(), "bad"); cond != "not-authorized" {
		t.Fatalf("wrong password answered %q", cond)
	}
	waitFor(t, "the failed login logged", func() bool { return strings.Contains(env.logs.String(), "login failed") })
	logs := env.logs.String()
	if !strings.Contains(logs, `"reason":"not-authorized","message":"xmpp: login failed: wrong credentials"`) ||
		strings.Contains(logs, `\nauthentication error`) || strings.Contains(logs, `"reason":""`) {
		t.Fatalf("failed login logged as:\n%s", logs)
	}
}
