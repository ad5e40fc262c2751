package httpapi

import (
	"encoding/json"
	"net/http"
	"testing"
)

// TestAdminPatchSender: PATCH /admin/senders/{id} sets group_copies and
// answers the sender as stored; GET and the list show it; a bad body is
// 400 and changes nothing, an unknown sender 404.
func TestAdminPatchSender(t *testing.T) {
	e := newAdminEnv(t)
	if _, _, err := e.senders.Create("777"); err != nil {
		t.Fatal(err)
	}
	get := func() SenderJSON {
		t.Helper()
		resp, body := e.do(t, "GET", "/admin/senders/777", "")
		var s SenderJSON
		if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &s) != nil {
			t.Fatalf("GET: %d %s", resp.StatusCode, body)
		}
		return s
	}
	if get().GroupCopies {
		t.Fatal("group_copies is on for a new sender")
	}
	for _, on := range []bool{true, false, true} {
		body := `{"group_copies": false}`
		if on {
			body = `{"group_copies": true}`
		}
		resp, got := e.do(t, "PATCH", "/admin/senders/777", body)
		var s SenderJSON
		if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(got), &s) != nil || s.SenderID != "777" || s.GroupCopies != on {
			t.Fatalf("PATCH %s: %d %s", body, resp.StatusCode, got)
		}
		if g := get(); g.GroupCopies != on {
			t.Fatalf("after PATCH %s: GET says %+v", body, g)
		}
	}
	for _, bad := range []string{"", "{}", `{"group_copies": "yes"}`, `{"group_copies": true, "other": 1}`, `{"group_copies": true} {}`} {
		e.wantError(t, "bad body "+bad, "PATCH", "/admin/senders/777", bad, http.StatusBadRequest)
	}
	if !get().GroupCopies {
		t.Fatal("a refused PATCH changed the option")
	}
	e.wantError(t, "unknown sender", "PATCH", "/admin/senders/nope", `{"group_copies": true}`, http.StatusNotFound)
	resp, body := e.do(t, "GET", "/admin/senders", "")
	var list []SenderJSON
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &list) != nil || len(list) != 1 || !list[0].GroupCopies {
		t.Fatalf("list: %d %s", resp.StatusCode, body)
	}
}
