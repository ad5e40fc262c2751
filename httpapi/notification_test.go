package httpapi_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/ccsd/ccsd/auth"
	"github.com/ccsd/ccsd/groups"
	"github.com/ccsd/ccsd/httpapi"
	"github.com/ccsd/ccsd/store"
	"github.com/ccsd/ccsd/store/bolt"
)

// These tests moved here with the handler from package groups; they assert
// what they asserted there.

var ctx = context.Background()

// openStore opens a real store in a temporary directory.
func openStore(t testing.TB) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "ccsd.db"), bolt.Options{})
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// register makes a live registration of app for sender on a new device and
// returns its random id.
func register(t testing.TB, db *bolt.DB, sender, app string) string {
	t.Helper()
	r, err := db.Register(store.Registration{ID: "reg-" + rand.Text(), DeviceID: "dev-" + rand.Text(), SenderID: sender, App: app})
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	return r.ID
}

func registerN(t testing.TB, db *bolt.DB, sender, app string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = register(t, db, sender, app)
	}
	return ids
}

// members returns the stored members of key (nil if the group is gone).
func members(t testing.TB, db *bolt.DB, key string) []string {
	t.Helper()
	g, err := db.Group(key)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatalf("Group(%s): %v", key, err)
	}
	return g.Members
}

// newNotificationHandler is the device-group handler over db, as ccsd
// builds it.
func newNotificationHandler(db *bolt.DB, senders *auth.Senders, maxMembers int, logins httpapi.LoginLimiter) *httpapi.NotificationHandler {
	return httpapi.NewNotificationHandler(groups.New(db, maxMembers), senders, logins, zerolog.Nop())
}

// apiServer is the group API over real TLS, with real senders.
type apiServer struct {
	*httptest.Server
	db      *bolt.DB
	senders *auth.Senders
}

// sender is an app server's credentials.
type sender struct{ id, key string }

func newAPIServer(t *testing.T, maxMembers int) *apiServer {
	t.Helper()
	db := openStore(t)
	senders := auth.NewSenders(db)
	h := newNotificationHandler(db, senders, maxMembers, nil)
	mux := http.NewServeMux()
	for _, p := range httpapi.NotificationPaths {
		mux.Handle(p, h)
	}
	ts := httptest.NewTLSServer(mux)
	t.Cleanup(ts.Close)
	// Keep a connection per concurrent client, so concurrent requests are
	// not serialized by TLS handshakes.
	ts.Client().Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	return &apiServer{Server: ts, db: db, senders: senders}
}

func (s *apiServer) newSender(t *testing.T) sender {
	t.Helper()
	snd, key, err := s.senders.Create("")
	if err != nil {
		t.Fatal(err)
	}
	return sender{snd.ID, key}
}

// answer is a decoded JSON answer: exactly one of Key and Error is set.
type answer struct {
	Status int
	Key    string `json:"notification_key"`
	Error  string `json:"error"`
	Header http.Header
}

// do sends one request as snd and decodes the answer, checking that it is a
// JSON object with exactly one field.
func (s *apiServer) do(t *testing.T, snd sender, method, path, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if snd.key != "" {
		req.Header.Set("Authorization", "key="+snd.key)
	}
	if snd.id != "" {
		req.Header.Set("project_id", snd.id)
	}
	return s.send(t, req)
}

func (s *apiServer) send(t *testing.T, req *http.Request) answer {
	t.Helper()
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s %s: Content-Type %q", req.Method, req.URL.Path, ct)
	}
	var fields map[string]string
	if err := json.Unmarshal(raw, &fields); err != nil || len(fields) != 1 {
		t.Fatalf("%s %s: answer %d %q is not a one-field JSON object of strings (%v)", req.Method, req.URL.Path, resp.StatusCode, raw, err)
	}
	a := answer{Status: resp.StatusCode, Header: resp.Header}
	json.Unmarshal(raw, &a)
	if (a.Status == http.StatusOK) != (a.Key != "") || (a.Key == "") != (a.Error != "") {
		t.Fatalf("%s %s: status %d with answer %q", req.Method, req.URL.Path, a.Status, raw)
	}
	return a
}

func op(operation, key, name string, ids ...string) string {
	m := map[string]any{"operation": operation, "registration_ids": ids}
	if key != "" {
		m["notification_key"] = key
	}
	if name != "" {
		m["notification_key_name"] = name
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func getPath(name string) string {
	return "/gcm/notification?notification_key_name=" + url.QueryEscape(name)
}

// mustKey checks a 200 answer and returns its key.
func mustKey(t *testing.T, a answer) string {
	t.Helper()
	if a.Status != http.StatusOK {
		t.Fatalf("status %d, error %q", a.Status, a.Error)
	}
	return a.Key
}

// wantError checks an error answer's status and that its text contains
// each of texts.
func wantError(t *testing.T, desc string, a answer, status int, texts ...string) {
	t.Helper()
	if a.Status != status {
		t.Errorf("%s: status %d (%q), want %d", desc, a.Status, a.Error, status)
		return
	}
	for _, s := range texts {
		if !strings.Contains(a.Error, s) {
			t.Errorf("%s: error %q does not contain %q", desc, a.Error, s)
		}
	}
}

func TestNotificationCreateAddRemoveGet(t *testing.T) {
	s := newAPIServer(t, 0)
	snd := s.newSender(t)
	r := registerN(t, s.db, snd.id, "com.example", 4)

	key := mustKey(t, s.do(t, snd, "POST", "/gcm/notification", op("create", "", "user-4711", r[0], r[1])))
	if got := members(t, s.db, key); !slices.Equal(got, r[:2]) {
		t.Fatalf("after create: %v", got)
	}
	for _, p := range httpapi.NotificationPaths {
		if got := mustKey(t, s.do(t, snd, "GET", p+"?notification_key_name=user-4711", "")); got != key {
			t.Errorf("GET %s = %q, want %q", p, got, key)
		}
	}
	// add on the FCM path, with the name; remove on the GCM path, without.
	if got := mustKey(t, s.do(t, snd, "POST", "/fcm/notification", op("add", key, "user-4711", r[2], r[3]))); got != key {
		t.Errorf("add answered %q", got)
	}
	if got := members(t, s.db, key); !slices.Equal(got, r) {
		t.Fatalf("after add: %v", got)
	}
	if got := mustKey(t, s.do(t, snd, "POST", "/gcm/notification", op("remove", key, "", r[0], r[2]))); got != key {
		t.Errorf("remove answered %q", got)
	}
	if got := members(t, s.db, key); !slices.Equal(got, []string{r[1], r[3]}) {
		t.Fatalf("after remove: %v", got)
	}
}

func TestNotificationMemberLimit(t *testing.T) {
	s := newAPIServer(t, 0) // default: 10
	snd := s.newSender(t)
	r := registerN(t, s.db, snd.id, "com.example", 11)

	a := s.do(t, snd, "POST", "/gcm/notification", op("create", "", "big", r...))
	wantError(t, "create with 11", a, http.StatusBadRequest, "too many registration ids")
	if a := s.do(t, snd, "GET", getPath("big"), ""); a.Status != http.StatusNotFound {
		t.Errorf("refused create left a group: %+v", a)
	}

	key := mustKey(t, s.do(t, snd, "POST", "/gcm/notification", op("create", "", "user", r[:10]...)))
	a = s.do(t, snd, "POST", "/gcm/notification", op("add", key, "", r[10]))
	wantError(t, "11th member", a, http.StatusBadRequest, "too many registration ids")
	if got := members(t, s.db, key); !slices.Equal(got, r[:10]) {
		t.Errorf("refused add changed the group: %v", got)
	}
	// Making room lets it in.
	mustKey(t, s.do(t, snd, "POST", "/gcm/notification", op("remove", key, "", r[0])))
	mustKey(t, s.do(t, snd, "POST", "/gcm/notification", op("add", key, "", r[10])))
	if got := members(t, s.db, key); !slices.Equal(got, r[1:]) {
		t.Errorf("members = %v", got)
	}
}

func TestNotificationNameUnique(t *testing.T) {
	s := newAPIServer(t, 0)
	snd, other := s.newSender(t), s.newSender(t)
	r := registerN(t, s.db, snd.id, "com.example", 2)
	key := mustKey(t, s.do(t, snd, "POST", "/gcm/notification", op("create", "", "user-1", r[0])))

	a := s.do(t, snd, "POST", "/gcm/notification", op("create", "", "user-1", r[1]))
	if a.Status != http.StatusBadRequest || a.Error != "notification_key_name already exists" {
		t.Errorf("second create: %+v", a)
	}
	if got := members(t, s.db, key); !slices.Equal(got, r[:1]) {
		t.Errorf("first group changed: %v", got)
	}
	// Names are per sender.
	key2 := mustKey(t, s.do(t, other, "POST", "/gcm/notification", op("create", "", "user-1", register(t, s.db, other.id, "com.example"))))
	if key2 == key {
		t.Error("two senders' groups share a key")
	}
}

func TestNotificationNameMismatch(t *testing.T) {
	s := newAPIServer(t, 0)
	snd := s.newSender(t)
	r := registerN(t, s.db, snd.id, "com.example", 3)
	key := mustKey(t, s.do(t, snd, "POST", "/gcm/notification", op("create", "", "user-1", r[0], r[1])))
	mustKey(t, s.do(t, snd, "POST", "/gcm/notification", op("create", "", "user-2", r[2])))

	for _, operation := range []string{"add", "remove"} {
		a := s.do(t, snd, "POST", "/gcm/notification", op(operation, key, "user-2", r[2]))
		wantError(t, operation+" with another group's name", a, http.StatusBadRequest, "does not match")
	}
	if got := members(t, s.db, key); !slices.Equal(got, r[:2]) {
		t.Errorf("mismatched requests changed the group: %v", got)
	}
	mustKey(t, s.do(t, snd, "POST", "/gcm/notification", op("remove", key, "user-1", r[0])))
}

func TestNotificationRemoveLastDeletes(t *testing.T) {
	s := newAPIServer(t, 0)
	snd := s.newSender(t)
	r := registerN(t, s.db, snd.id, "com.example", 2)
	key := mustKey(t, s.do(t, snd, "POST", "/gcm/notification", op("create", "", "user-1", r...)))

	if got := mustKey(t, s.do(t, snd, "POST", "/gcm/notification", op("remove", key, "user-1", r...))); got != key {
		t.Errorf("remove answered %q", got)
	}
	wantError(t, "GET after delete", s.do(t, snd, "GET", getPath("user-1"), ""), http.StatusNotFound, "notification_key not found")
	wantError(t, "add after delete", s.do(t, snd, "POST", "/gcm/notification", op("add", key, "", r[0])), http.StatusNotFound)
	wantError(t, "remove after delete", s.do(t, snd, "POST", "/gcm/notification", op("remove", key, "", r[0])), http.StatusNotFound)

	key2 := mustKey(t, s.do(t, snd, "POST", "/gcm/notification", op("create", "", "user-1", r[1])))
	if key2 == key {
		t.Error("a deleted group's key was handed out again")
	}
	if got := mustKey(t, s.do(t, snd, "GET", getPath("user-1"), "")); got != key2 {
		t.Errorf("GET = %q, want the new key %q", got, key2)
	}
}

func TestNotificationOtherSenderInvisible(t *testing.T) {
	s := newAPIServer(t, 0)
	owner, stranger := s.newSender(t), s.newSender(t)
	r := registerN(t, s.db, owner.id, "com.example", 2)
	key := mustKey(t, s.do(t, owner, "POST", "/gcm/notification", op("create", "", "user-1", r[0])))
	theirs := register(t, s.db, stranger.id, "com.example")

	missing := s.do(t, stranger, "GET", getPath("no-such-name"), "")
	if missing.Status != http.StatusNotFound || missing.Error != "notification_key not found" {
		t.Fatalf("missing name: %+v", missing)
	}
	for desc, a := range map[string]answer{
		"GET another sender's name":          s.do(t, stranger, "GET", getPath("user-1"), ""),
		"add to another sender's key":        s.do(t, stranger, "POST", "/gcm/notification", op("add", key, "", theirs)),
		"add another's key with its name":    s.do(t, stranger, "POST", "/gcm/notification", op("add", key, "user-1", theirs)),
		"remove from another sender's key":   s.do(t, stranger, "POST", "/gcm/notification", op("remove", key, "", r[0])),
		"add to a key that does not exist":   s.do(t, stranger, "POST", "/gcm/notification", op("add", "APA91bnope", "", theirs)),
		"remove from a key that isn't there": s.do(t, stranger, "POST", "/gcm/notification", op("remove", "APA91bnope", "", theirs)),
	} {
		if a.Status != missing.Status || a.Error != missing.Error {
			t.Errorf("%s: %d %q, want the missing answer %d %q", desc, a.Status, a.Error, missing.Status, missing.Error)
		}
	}
	if got := members(t, s.db, key); !slices.Equal(got, r[:1]) {
		t.Errorf("the stranger changed the group: %v", got)
	}
	// The owner cannot add the stranger's registration, and the answer does
	// not say whose it is: the same as an unknown id.
	a := s.do(t, owner, "POST", "/gcm/notification", op("add", key, "", theirs))
	wantError(t, "add another sender's registration", a, http.StatusBadRequest, theirs, "unknown")
	// A create with only the stranger's registration has no valid id.
	a = s.do(t, owner, "POST", "/gcm/notification", op("create", "", "user-2", theirs))
	if a.Status != http.StatusBadRequest || a.Error != "no valid registration ids" {
		t.Errorf("create with another sender's registration: %+v", a)
	}
}

func TestNotificationUnregisteredMemberStays(t *testing.T) {
	s := newAPIServer(t, 0)
	snd := s.newSender(t)
	r := registerN(t, s.db, snd.id, "com.example", 3)
	key := mustKey(t, s.do(t, snd, "POST", "/gcm/notification", op("create", "", "user-1", r[0], r[1])))
	if err := s.db.Unregister(ctx, r[1]); err != nil {
		t.Fatal(err)
	}
	if got := members(t, s.db, key); !slices.Equal(got, r[:2]) {
		t.Errorf("members after unregister = %v", got)
	}
	if got := mustKey(t, s.do(t, snd, "GET", getPath("user-1"), "")); got != key {
		t.Errorf("GET = %q", got)
	}
	// Still a member when the group changes around it.
	mustKey(t, s.do(t, snd, "POST", "/gcm/notification", op("add", key, "", r[2])))
	if got := members(t, s.db, key); !slices.Equal(got, r) {
		t.Errorf("members after add = %v", got)
	}
	// An unregistered id cannot join.
	if err := s.db.Unregister(ctx, r[2]); err != nil {
		t.Fatal(err)
	}
	mustKey(t, s.do(t, snd, "POST", "/gcm/notification", op("remove", key, "", r[2])))
	a := s.do(t, snd, "POST", "/gcm/notification", op("add", key, "", r[2]))
	wantError(t, "add an unregistered id", a, http.StatusBadRequest, r[2], "unregistered")
	// The app server removes the stale member itself.
	mustKey(t, s.do(t, snd, "POST", "/gcm/notification", op("remove", key, "", r[1])))
	if got := members(t, s.db, key); !slices.Equal(got, r[:1]) {
		t.Errorf("members = %v", got)
	}
}

func TestNotificationCreateDropsInvalid(t *testing.T) {
	s := newAPIServer(t, 0)
	snd, other := s.newSender(t), s.newSender(t)
	r := registerN(t, s.db, snd.id, "com.example", 2)
	gone := register(t, s.db, snd.id, "com.example")
	s.db.Unregister(ctx, gone)
	theirs := register(t, s.db, other.id, "com.example")

	key := mustKey(t, s.do(t, snd, "POST", "/gcm/notification", op("create", "", "user-1", "unknown", r[0], theirs, gone, r[0], r[1])))
	if got := members(t, s.db, key); !slices.Equal(got, r) {
		t.Errorf("members = %v, want only the valid ids %v", got, r)
	}
	a := s.do(t, snd, "POST", "/gcm/notification", op("create", "", "user-2", "unknown", theirs, gone))
	if a.Status != http.StatusBadRequest || a.Error != "no valid registration ids" {
		t.Errorf("create with no valid id: %+v", a)
	}
	app2 := register(t, s.db, snd.id, "com.other")
	a = s.do(t, snd, "POST", "/gcm/notification", op("create", "", "user-2", r[0], app2))
	wantError(t, "mixed apps", a, http.StatusBadRequest, "different apps", "com.other")
	a = s.do(t, snd, "POST", "/gcm/notification", op("add", key, "", app2))
	wantError(t, "add of another app", a, http.StatusBadRequest, app2, "com.other", "com.example")
}

func TestNotificationErrors(t *testing.T) {
	s := newAPIServer(t, 0)
	snd, other := s.newSender(t), s.newSender(t)
	r := register(t, s.db, snd.id, "com.example")
	key := mustKey(t, s.do(t, snd, "POST", "/gcm/notification", op("create", "", "user-1", r)))
	const path = "/gcm/notification"

	for _, tc := range []struct {
		desc         string
		as           sender
		method, body string
		status       int
		texts        []string
	}{
		{"bad JSON", snd, "POST", `{"operation":`, 400, []string{"bad JSON"}},
		{"not an object", snd, "POST", `["create"]`, 400, []string{"JSON object"}},
		{"ids not an array", snd, "POST", `{"operation":"add","notification_key":"` + key + `","registration_ids":"` + r + `"}`, 400, []string{"registration_ids must be an array of strings"}},
		{"id not a string", snd, "POST", `{"operation":"add","notification_key":"` + key + `","registration_ids":[1]}`, 400, []string{"registration_ids must be an array of strings"}},
		{"trailing data", snd, "POST", op("remove", key, "", "x") + `{}`, 400, []string{"bad JSON"}},
		{"empty body", snd, "POST", ``, 400, []string{"bad JSON"}},
		{"missing operation", snd, "POST", `{"notification_key_name":"n","registration_ids":["` + r + `"]}`, 400, []string{"operation is required"}},
		{"unknown operation", snd, "POST", op("delete", key, "", r), 400, []string{`unknown operation "delete"`}},
		{"create without name", snd, "POST", op("create", "", "", r), 400, []string{"notification_key_name is required"}},
		{"create without ids", snd, "POST", `{"operation":"create","notification_key_name":"n"}`, 400, []string{"registration_ids"}},
		{"create with empty ids", snd, "POST", op("create", "", "n"), 400, []string{"registration_ids"}},
		{"add without key", snd, "POST", op("add", "", "user-1", r), 400, []string{"notification_key is required"}},
		{"remove without ids", snd, "POST", op("remove", key, ""), 400, []string{"registration_ids"}},
		{"GET without name", snd, "GET", ``, 400, []string{"notification_key_name is required"}},
		{"PUT", snd, "PUT", op("create", "", "n", r), 405, []string{"method not allowed"}},
		{"DELETE", snd, "DELETE", ``, 405, []string{"method not allowed"}},
		{"no credentials", sender{}, "POST", op("create", "", "n", r), 401, []string{"Authorization"}},
		{"no project_id", sender{key: snd.key}, "POST", op("create", "", "n", r), 401, []string{"project_id"}},
		{"no API key", sender{id: snd.id}, "GET", ``, 401, []string{"Authorization"}},
		{"wrong API key", sender{snd.id, snd.key + "x"}, "POST", op("create", "", "n", r), 401, []string{"not valid"}},
		{"another sender's project_id", sender{other.id, snd.key}, "POST", op("create", "", "n", r), 401, []string{"not valid"}},
		{"unknown project_id", sender{"999", snd.key}, "GET", ``, 401, []string{"not valid"}},
	} {
		a := s.do(t, tc.as, tc.method, path, tc.body)
		wantError(t, tc.desc, a, tc.status, tc.texts...)
		if tc.status == 405 && a.Header.Get("Allow") != "GET, POST" {
			t.Errorf("%s: Allow %q", tc.desc, a.Header.Get("Allow"))
		}
	}

	// A body over 64 KiB.
	big := op("create", "", "n", strings.Repeat("x", httpapi.DefaultMaxBodyBytes))
	wantError(t, "big body", s.do(t, snd, "POST", path, big), 413, "too large")
	// Exactly 64 KiB is read in full (and refused only for its content).
	exact := `{"operation":"create","notification_key_name":"n","registration_ids":["` + r + `"]}`
	exact += strings.Repeat(" ", httpapi.DefaultMaxBodyBytes-len(exact))
	if a := s.do(t, snd, "POST", path, exact); a.Status != http.StatusOK {
		t.Errorf("64 KiB body: %+v", a)
	}
	// Other authorization schemes are refused.
	req, _ := http.NewRequest("GET", s.URL+getPath("user-1"), nil)
	req.Header.Set("Authorization", "Bearer "+snd.key)
	req.Header.Set("project_id", snd.id)
	wantError(t, "Bearer", s.send(t, req), 401, "Authorization")

	// Nothing above changed the group.
	if got := members(t, s.db, key); !slices.Equal(got, []string{r}) {
		t.Errorf("members = %v", got)
	}
}

// Header names are case-insensitive, and so is the "key=" scheme.
func TestNotificationHeaderCase(t *testing.T) {
	s := newAPIServer(t, 0)
	snd := s.newSender(t)
	key := mustKey(t, s.do(t, snd, "POST", "/gcm/notification", op("create", "", "user-1", register(t, s.db, snd.id, "a"))))
	for _, name := range []string{"project_id", "PROJECT_ID", "Project_Id"} {
		req, _ := http.NewRequest("GET", s.URL+getPath("user-1"), nil)
		req.Header[name] = []string{snd.id} // sent as written, not canonicalized
		req.Header["authorization"] = []string{"Key=" + snd.key}
		if got := mustKey(t, s.send(t, req)); got != key {
			t.Errorf("%s: %q", name, got)
		}
	}
}

// The handler mounted by itself answers only its two paths.
func TestNotificationUnknownPath(t *testing.T) {
	db := openStore(t)
	senders := auth.NewSenders(db)
	snd, apiKey, _ := senders.Create("")
	ts := httptest.NewTLSServer(newNotificationHandler(db, senders, 0, nil))
	defer ts.Close()
	s := &apiServer{Server: ts, db: db, senders: senders}
	a := s.do(t, sender{snd.ID, apiKey}, "GET", "/gcm/notification/x?notification_key_name=n", "")
	if a.Status != http.StatusNotFound || a.Error != "not found" {
		t.Errorf("unknown path: %+v", a)
	}
	wantError(t, "known path", s.do(t, sender{snd.ID, apiKey}, "GET", getPath("n"), ""), 404, "notification_key not found")
}

// A store shutting down gives 503, not a client error.
func TestNotificationStoreClosed(t *testing.T) {
	s := newAPIServer(t, 0)
	snd := s.newSender(t)
	s.db.Close()
	wantError(t, "closed store", s.do(t, snd, "GET", getPath("user-1"), ""), http.StatusServiceUnavailable)
}

// TestNotificationConcurrentAdds: 20 app-server requests each add one registration
// to the same key at once; none is lost.
func TestNotificationConcurrentAdds(t *testing.T) {
	const n = 20
	s := newAPIServer(t, n)
	snd := s.newSender(t)
	r := registerN(t, s.db, snd.id, "com.example", n)
	key := mustKey(t, s.do(t, snd, "POST", "/gcm/notification", op("create", "", "user-1", r[0])))

	// Warm up n connections, so the adds below arrive together.
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { mustKey(t, s.do(t, snd, "GET", getPath("user-1"), "")) })
	}
	wg.Wait()

	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			a := s.do(t, snd, "POST", "/gcm/notification", op("add", key, "user-1", r[i]))
			if a.Status != http.StatusOK || a.Key != key {
				t.Errorf("add %d: %+v", i, a)
			}
		})
	}
	close(start)
	wg.Wait()
	got := members(t, s.db, key)
	if len(got) != n {
		t.Errorf("%d members, want %d", len(got), n)
	}
	for i, id := range r {
		if !slices.Contains(got, id) {
			t.Errorf("registration %d lost", i)
		}
	}
	// And the group is now full.
	wantError(t, "21st", s.do(t, snd, "POST", "/gcm/notification", op("add", key, "", register(t, s.db, snd.id, "com.example"))), 400, "too many")
}

// TestNotificationIDBounds: a notification_key, registration id or name past its
// bound, or a repeated field, is refused 400 before any store access, on
// every operation; ids at the bound are ordinary (unknown here) ids.
func TestNotificationIDBounds(t *testing.T) {
	s := newAPIServer(t, 0)
	snd := s.newSender(t)
	r := register(t, s.db, snd.id, "com.example")
	key := mustKey(t, s.do(t, snd, "POST", "/gcm/notification", op("create", "", "user-1", r)))
	long, longName := strings.Repeat("k", groups.MaxIDLen+1), strings.Repeat("n", groups.MaxNameLen+1)
	const path = "/gcm/notification"
	for _, tc := range []struct{ desc, method, path, body, text string }{
		{"create, long registration id", "POST", path, op("create", "", "user-2", r, long), "registration_ids[1] is longer than 512 bytes"},
		{"create, long name", "POST", path, op("create", "", longName, r), "notification_key_name is longer than 1024 bytes"},
		{"add, long key", "POST", path, op("add", long, "", r), "notification_key is longer than 512 bytes"},
		{"add, long registration id", "POST", path, op("add", key, "", long), "registration_ids[0] is longer"},
		{"add, long name", "POST", path, op("add", key, longName, r), "notification_key_name is longer"},
		{"remove, long key", "POST", path, op("remove", long, "", r), "notification_key is longer"},
		{"remove, long registration id", "POST", path, op("remove", key, "", r, long), "registration_ids[1] is longer"},
		{"GET, long name", "GET", getPath(longName), "", "notification_key_name is longer"},
		{"repeated operation", "POST", path, `{"operation":"create","notification_key_name":"user-3","registration_ids":["` + r + `"],"operation":"remove"}`, `the field "operation" is repeated`},
		{"repeated operation, other case", "POST", path, `{"operation":"create","notification_key_name":"user-3","registration_ids":["` + r + `"],"Operation":"remove"}`, `the field "Operation" is repeated`},
		{"repeated ids", "POST", path, `{"operation":"add","notification_key":"` + key + `","registration_ids":["` + r + `"],"registration_ids":[]}`, `the field "registration_ids" is repeated`},
	} {
		wantError(t, tc.desc, s.do(t, snd, tc.method, tc.path, tc.body), 400, tc.text)
	}
	at := strings.Repeat("k", groups.MaxIDLen)
	wantError(t, "add, key at the bound", s.do(t, snd, "POST", path, op("add", at, "", r)), 404, "not found")
	if got := members(t, s.db, key); !slices.Equal(got, []string{r}) {
		t.Errorf("members = %v", got)
	}
}
