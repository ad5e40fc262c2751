package main

import (
	"encoding/json"
	"net/http"
	"testing"
)

// TestRunDeletesItsSender: a run leaves no sender behind, revoked or not:
// the admin endpoint lists the same senders before and after.
func TestRunDeletesItsSender(t *testing.T) {
	s := server(t)
	list := func() []string {
		t.Helper()
		resp, err := http.Get("http://" + s.Info.AdminAddr + "/admin/senders")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v []struct {
			ID string `json:"sender_id"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
			t.Fatal(err)
		}
		ids := make([]string, 0, len(v))
		for _, x := range v {
			ids = append(ids, x.ID)
		}
		return ids
	}
	before := list()
	code, r, stderr := runBench(t, "--data", s.Data, "--devices", "3", "--conns", "1", "--messages", "50", "--duration", "15s")
	checkClean(t, code, r, stderr, 50, 1)
	if after := list(); len(after) != len(before) {
		t.Fatalf("senders before the run %v, after %v: the run's sender was left behind", before, after)
	}
}
