package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ccsd/ccsd/auth"
	"github.com/ccsd/ccsd/store"
	"github.com/ccsd/ccsd/topics"
)

// iidEnv is the Instance ID API over a real TLS listener and a real store:
// the fixture's sender with REG-1 (device d1), a device that checked in
// with its own registration, and another sender's registration.
type iidEnv struct {
	fx              *appFixture
	ts              *httptest.Server
	devUser, devPwd string
	devReg, other   string
}

func newIIDEnv(t *testing.T) *iidEnv {
	fx := newAppFixture(t)
	devices := auth.NewDevices(fx.db)
	api := New(Config{Devices: devices, Logger: zerolog.Nop()})
	NewIIDHandler(topics.New(fx.db, 3), fx.senders, devices, nil, zerolog.Nop()).Mount(api)
	ts := httptest.NewTLSServer(api)
	t.Cleanup(ts.Close)
	e := &iidEnv{fx: fx, ts: ts}
	var err error
	if e.devUser, e.devPwd, err = devices.Checkin(context.Background()); err != nil {
		t.Fatal(err)
	}
	if e.devReg, err = devices.Register(context.Background(), e.devUser, fx.sender, "com.x"); err != nil {
		t.Fatal(err)
	}
	r, err := fx.db.Register(store.Registration{ID: "OTHER-1", DeviceID: "d9", SenderID: "999", App: "com.x"})
	if err != nil {
		t.Fatal(err)
	}
	e.other = r.ID
	return e
}

// call sends one request and returns the status and the decoded body.
func (e *iidEnv) call(t *testing.T, method, path, authz, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, e.ts.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("access_token_auth", "true")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := e.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var v map[string]any
	_ = json.Unmarshal(raw, &v)
	return resp.StatusCode, v
}

func (e *iidEnv) key() string { return "key=" + e.fx.key }

func jsonOf(v any) string { b, _ := json.Marshal(v); return string(b) }

// TestIIDBatch: batchAdd answers one result per token, in order: {} for a
// token of the sender, NOT_FOUND for an unknown one and for another
// sender's; the subscriptions are stored, and batchRemove undoes them.
func TestIIDBatch(t *testing.T) {
	e := newIIDEnv(t)
	body := `{"to":"/topics/news","registration_tokens":["REG-1","nope","` + e.other + `","` + e.devReg + `"]}`
	code, v := e.call(t, "POST", "/iid/v1:batchAdd", e.key(), body)
	want := `{"results":[{},{"error":"NOT_FOUND"},{"error":"NOT_FOUND"},{}]}`
	if code != 200 || jsonOf(v) != want {
		t.Fatalf("batchAdd = %d %s, want 200 %s", code, jsonOf(v), want)
	}
	subs, _ := e.fx.db.Subscribers(e.fx.sender, "news", "", 0)
	if len(subs) != 2 {
		t.Fatalf("stored subscribers %+v", subs)
	}
	if s, _ := e.fx.db.Subscribers("999", "news", "", 0); len(s) != 0 {
		t.Fatalf("another sender's token was subscribed: %+v", s)
	}
	code, v = e.call(t, "POST", "/iid/v1:batchRemove", e.key(), `{"to":"news","registration_tokens":["REG-1"]}`)
	if code != 200 || jsonOf(v) != `{"results":[{}]}` {
		t.Fatalf("batchRemove = %d %s", code, jsonOf(v))
	}
	if subs, _ := e.fx.db.Subscribers(e.fx.sender, "news", "", 0); len(subs) != 1 || subs[0].ID != e.devReg {
		t.Fatalf("after batchRemove %+v", subs)
	}
}

// TestIIDRefusals: bad topic names, too many tokens, bad credentials and
// Bearer tokens (not served yet) are refused in the API's terms.
func TestIIDRefusals(t *testing.T) {
	e := newIIDEnv(t)
	tokens := make([]string, topics.MaxBatch+1)
	for i := range tokens {
		tokens[i] = fmt.Sprintf("t%d", i)
	}
	cases := []struct {
		name, method, path, authz, body string
		code                            int
		err                             string
	}{
		{"bad topic", "POST", "/iid/v1:batchAdd", e.key(), `{"to":"/topics/a b","registration_tokens":["REG-1"]}`, 400, "INVALID_ARGUMENT"},
		{"long topic", "POST", "/iid/v1:batchAdd", e.key(), `{"to":"/topics/` + strings.Repeat("x", 901) + `","registration_tokens":["REG-1"]}`, 400, "INVALID_ARGUMENT"},
		{"no tokens", "POST", "/iid/v1:batchAdd", e.key(), `{"to":"/topics/a","registration_tokens":[]}`, 400, "INVALID_ARGUMENT"},
		{"1001 tokens", "POST", "/iid/v1:batchAdd", e.key(), jsonOf(map[string]any{"to": "/topics/a", "registration_tokens": tokens}), 400, "INVALID_ARGUMENT"},
		{"not JSON", "POST", "/iid/v1:batchRemove", e.key(), `{`, 400, "INVALID_ARGUMENT"},
		{"bad topic in path", "POST", "/iid/v1/REG-1/rel/topics/a:b", e.key(), "", 400, "INVALID_ARGUMENT"},
		{"wrong key", "POST", "/iid/v1:batchAdd", "key=AIzanope", `{"to":"/topics/a","registration_tokens":["REG-1"]}`, 401, ""},
		{"bearer", "POST", "/iid/v1:batchAdd", "Bearer ya29.x", `{"to":"/topics/a","registration_tokens":["REG-1"]}`, 401, ""},
		{"device on batch", "POST", "/iid/v1:batchAdd", "AidLogin " + e.devUser + ":" + e.devPwd, `{"to":"/topics/a","registration_tokens":["REG-1"]}`, 401, ""},
		{"unknown token", "POST", "/iid/v1/nope/rel/topics/a", e.key(), "", 404, "NOT_FOUND"},
		{"other sender's token", "POST", "/iid/v1/" + e.other + "/rel/topics/a", e.key(), "", 404, "NOT_FOUND"},
	}
	for _, c := range cases {
		code, v := e.call(t, c.method, c.path, c.authz, c.body)
		if code != c.code || (c.err != "" && v["error"] != c.err) {
			t.Errorf("%s: %d %s, want %d %s", c.name, code, jsonOf(v), c.code, c.err)
		}
	}
	if subs, _ := e.fx.db.Subscriptions("REG-1"); len(subs) != 0 {
		t.Fatalf("a refused request subscribed: %+v", subs)
	}
}

// TestIIDOneAndInfo: the single-token endpoints and /iid/info with its
// topics and add dates; the per-registration bound answers TOO_MANY_TOPICS.
func TestIIDOneAndInfo(t *testing.T) {
	e := newIIDEnv(t)
	for _, tp := range []string{"a", "b", "c"} {
		if code, v := e.call(t, "POST", "/iid/v1/REG-1/rel/topics/"+tp, e.key(), ""); code != 200 || jsonOf(v) != `{}` {
			t.Fatalf("subscribe %s = %d %s", tp, code, jsonOf(v))
		}
	}
	if code, v := e.call(t, "POST", "/iid/v1/REG-1/rel/topics/d", e.key(), ""); code != 400 || v["error"] != "TOO_MANY_TOPICS" {
		t.Fatalf("fourth topic at bound 3 = %d %s", code, jsonOf(v))
	}
	if code, _ := e.call(t, "DELETE", "/iid/v1/REG-1/rel/topics/b", e.key(), ""); code != 200 {
		t.Fatalf("unsubscribe b = %d", code)
	}
	code, v := e.call(t, "GET", "/iid/info/REG-1?details=true", e.key(), "")
	day := time.Now().UTC().Format("2006-01-02")
	want := `{"application":"com.x","authorizedEntity":"` + e.fx.sender + `","platform":"ANDROID","rel":{"topics":{"a":{"addDate":"` + day + `"},"c":{"addDate":"` + day + `"}}}}`
	if code != 200 || jsonOf(v) != want {
		t.Fatalf("info = %d %s\nwant %s", code, jsonOf(v), want)
	}
	code, v = e.call(t, "GET", "/iid/info/REG-1", e.key(), "")
	if code != 200 || v["rel"] != nil || v["application"] != "com.x" {
		t.Fatalf("info without details = %d %s", code, jsonOf(v))
	}
	if code, v := e.call(t, "GET", "/iid/info/"+e.other+"?details=true", e.key(), ""); code != 404 || v["error"] != "NOT_FOUND" {
		t.Fatalf("info of another sender's token = %d %s", code, jsonOf(v))
	}
}

// TestIIDDevice: a device subscribes and unsubscribes its own token with
// its AidLogin credentials, and may not touch another device's token.
func TestIIDDevice(t *testing.T) {
	e := newIIDEnv(t)
	aid := "AidLogin " + e.devUser + ":" + e.devPwd
	if code, v := e.call(t, "POST", "/iid/v1/"+e.devReg+"/rel/topics/news", aid, ""); code != 200 {
		t.Fatalf("device subscribe = %d %s", code, jsonOf(v))
	}
	if subs, _ := e.fx.db.Subscriptions(e.devReg); len(subs) != 1 || subs[0].Topic != "news" {
		t.Fatalf("stored %+v", subs)
	}
	if code, v := e.call(t, "POST", "/iid/v1/REG-1/rel/topics/news", aid, ""); code != 404 || v["error"] != "NOT_FOUND" {
		t.Fatalf("device subscribing another device's token = %d %s", code, jsonOf(v))
	}
	if code, _ := e.call(t, "POST", "/iid/v1/"+e.devReg+"/rel/topics/x", "AidLogin "+e.devUser+":wrong", ""); code != 401 {
		t.Fatalf("wrong device token = %d", code)
	}
	if code, _ := e.call(t, "DELETE", "/iid/v1/"+e.devReg+"/rel/topics/news", aid, ""); code != 200 {
		t.Fatalf("device unsubscribe = %d", code)
	}
	if subs, _ := e.fx.db.Subscriptions(e.devReg); len(subs) != 0 || len(mustSubs(t, e, "REG-1")) != 0 {
		t.Fatalf("after unsubscribe %+v", subs)
	}
}

func mustSubs(t *testing.T, e *iidEnv, reg string) []store.Subscription {
	s, err := e.fx.db.Subscriptions(reg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
