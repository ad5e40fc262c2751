package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/messaging"
	"golang.org/x/oauth2"
	"google.golang.org/api/option"
	htransport "google.golang.org/api/transport/http"
)

// serviceAccountFile runs "ccsd serviceaccount create --sender ID --out
// FILE" against the running server, as an operator does, and returns the
// file, checking its mode and its token_uri.
func (s *server) serviceAccountFile(sender string) string {
	s.t.Helper()
	file := filepath.Join(s.t.TempDir(), "service-account.json")
	out, err := exec.Command(s.Bin, "serviceaccount", "create", "--sender", sender, "--out", file, "--data", s.Data).CombinedOutput()
	if err != nil {
		s.t.Fatalf("serviceaccount create: %v\n%s", err, out)
	}
	st, err := os.Stat(file)
	if err != nil || st.Mode().Perm() != 0o600 {
		s.t.Fatalf("key file: %v, mode %v; want 0600", err, st.Mode())
	}
	var f struct {
		Type, ProjectID, TokenURI, PrivateKey string
	}
	b, _ := os.ReadFile(file)
	var raw map[string]string
	_ = json.Unmarshal(b, &raw)
	f.Type, f.ProjectID, f.TokenURI, f.PrivateKey = raw["type"], raw["project_id"], raw["token_uri"], raw["private_key"]
	if f.Type != "service_account" || f.ProjectID != sender || f.TokenURI != "https://"+s.Info.HTTPAddr+"/token" ||
		!strings.HasPrefix(f.PrivateKey, "-----BEGIN PRIVATE KEY-----") {
		s.t.Fatalf("key file %s", b)
	}
	return file
}

// rewriteHost sends every request to ccsd: the SDK hard-codes the Instance
// ID host (iid.googleapis.com), which only the transport can redirect.
type rewriteHost struct {
	base http.RoundTripper
	addr string
}

func (r rewriteHost) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.URL.Scheme, req.URL.Host, req.Host = "https", r.addr, ""
	return r.base.RoundTrip(req)
}

// fcmClient builds firebase-admin's messaging client as an app server
// moving to ccsd does: the credentials file ccsd wrote, the endpoint
// override, and an authorized transport (transport/http.NewTransport, since
// WithHTTPClient makes the SDK skip the credentials) over a base transport
// that trusts ccsd's certificate and rewrites the Instance ID host.
func (s *server) fcmClient(ctx context.Context, credFile string) *messaging.Client {
	s.t.Helper()
	base := rewriteHost{&http.Transport{TLSClientConfig: s.tls.Clone(), ForceAttemptHTTP2: true}, s.Info.HTTPAddr}
	// The token request (to the file's token_uri) goes through the
	// context's client, which must trust ccsd's certificate too.
	ctx = context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Transport: base})
	authed, err := htransport.NewTransport(ctx, base, option.WithCredentialsFile(credFile),
		option.WithScopes("https://www.googleapis.com/auth/cloud-platform"))
	if err != nil {
		s.t.Fatalf("authorized transport: %v", err)
	}
	app, err := firebase.NewApp(ctx, nil, option.WithCredentialsFile(credFile),
		option.WithHTTPClient(&http.Client{Transport: authed, Timeout: wait}),
		option.WithEndpoint("https://"+s.Info.HTTPAddr+"/v1"))
	if err != nil {
		s.t.Fatalf("firebase.NewApp: %v", err)
	}
	c, err := app.Messaging(ctx)
	if err != nil {
		s.t.Fatalf("app.Messaging: %v", err)
	}
	return c
}

// expectData reads the device's next message (the device client acks it)
// and checks its data key k.
func expectData(t *testing.T, dev *inbox, k, v string) msg {
	t.Helper()
	m := dev.expect(wait) // acked by the device client
	if got, _ := m.json["data"].(map[string]any)[k].(string); got != v {
		t.Fatalf("device got %s, want data %s=%s", m.raw, k, v)
	}
	return m
}

// TestFCMv1FirebaseAdmin drives ccsd with firebase-admin-go exactly as an
// app server written for FCM: Send (with notification and android
// options), SendEach, SendEachForMulticast, SubscribeToTopic,
// UnsubscribeFromTopic, a condition, validate_only, and the error
// predicates, while the devices receive what was sent.
func TestFCMv1FirebaseAdmin(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--downstream-rate", "30")
	ctx := context.Background()
	fcm := s.fcmClient(ctx, s.serviceAccountFile(s.Sender))
	_, r1, c1 := s.onlineDeviceClient(s.Sender, "com.example")
	_, r2, c2 := s.onlineDeviceClient(s.Sender, "com.example")

	ttl := 90 * time.Minute
	name, err := fcm.Send(ctx, &messaging.Message{
		Token:        r1,
		Data:         map[string]string{"k": "send"},
		Notification: &messaging.Notification{Title: "Hello", Body: "from v1"},
		Android: &messaging.AndroidConfig{CollapseKey: "ck", Priority: "high", TTL: &ttl,
			RestrictedPackageName: "com.example", Notification: &messaging.AndroidNotification{Icon: "ic", Title: "Android title"}},
		FCMOptions: &messaging.FCMOptions{AnalyticsLabel: "label"},
	})
	if err != nil || !strings.HasPrefix(name, "projects/"+s.Sender+"/messages/0:") {
		t.Fatalf("Send = %q, %v", name, err)
	}
	m := expectData(t, c1, "k", "send")
	note, _ := m.json["notification"].(map[string]any)
	if m.str("collapse_key") != "ck" || m.str("priority") != "high" || m.json["time_to_live"] != float64(5400) ||
		note["title"] != "Android title" || note["body"] != "from v1" || note["icon"] != "ic" || m.str("from") != s.Sender {
		t.Fatalf("device got %s: want the v1 fields (android.notification over notification)", m.raw)
	}

	br, err := fcm.SendEach(ctx, []*messaging.Message{
		{Token: r1, Data: map[string]string{"k": "each-1"}},
		{Token: r2, Data: map[string]string{"k": "each-2"}},
		{Token: "no-such-token", Data: map[string]string{"k": "x"}},
	})
	if err != nil || br.SuccessCount != 2 || br.FailureCount != 1 || !messaging.IsInvalidArgument(br.Responses[2].Error) {
		t.Fatalf("SendEach = %+v, %v; want 2 sent and an INVALID_ARGUMENT for the unknown token", br, err)
	}
	expectData(t, c1, "k", "each-1")
	expectData(t, c2, "k", "each-2")

	br, err = fcm.SendEachForMulticast(ctx, &messaging.MulticastMessage{Tokens: []string{r1, r2}, Data: map[string]string{"k": "multi"}})
	if err != nil || br.SuccessCount != 2 {
		t.Fatalf("SendEachForMulticast = %+v, %v", br, err)
	}
	expectData(t, c1, "k", "multi")
	expectData(t, c2, "k", "multi")

	testTopicsThroughSDK(t, ctx, fcm, [2]string{r1, r2}, [2]*inbox{c1, c2})
	testErrorsThroughSDK(t, s, ctx, fcm, r1, c1)
}

// testTopicsThroughSDK: SubscribeToTopic and UnsubscribeFromTopic through
// the Instance ID API, sends to the topic and to a condition.
func testTopicsThroughSDK(t *testing.T, ctx context.Context, fcm *messaging.Client, regs [2]string, devs [2]*inbox) {
	tr, err := fcm.SubscribeToTopic(ctx, []string{regs[0], regs[1], "unknown-token"}, "news")
	if err != nil || tr.SuccessCount != 2 || tr.FailureCount != 1 || tr.Errors[0].Index != 2 {
		t.Fatalf("SubscribeToTopic = %+v, %v", tr, err)
	}
	name, err := fcm.Send(ctx, &messaging.Message{Topic: "news", Data: map[string]string{"k": "topic-1"}})
	if err != nil || !strings.HasPrefix(name, "projects/") {
		t.Fatalf("Send to topic = %q, %v", name, err)
	}
	for _, d := range devs {
		if m := expectData(t, d, "k", "topic-1"); m.str("from") != "/topics/news" {
			t.Fatalf("topic copy from %q", m.str("from"))
		}
	}
	if tr, err := fcm.UnsubscribeFromTopic(ctx, []string{regs[1]}, "news"); err != nil || tr.SuccessCount != 1 {
		t.Fatalf("UnsubscribeFromTopic = %+v, %v", tr, err)
	}
	if _, err := fcm.Send(ctx, &messaging.Message{Condition: "'news' in topics", Data: map[string]string{"k": "cond"}}); err != nil {
		t.Fatalf("Send to condition: %v", err)
	}
	expectData(t, devs[0], "k", "cond")
	// The unsubscribed device gets the next message to its token first.
	if _, err := fcm.Send(ctx, &messaging.Message{Token: regs[1], Data: map[string]string{"k": "after"}}); err != nil {
		t.Fatal(err)
	}
	expectData(t, devs[1], "k", "after")
}

// testErrorsThroughSDK: validate_only delivers nothing, and each failure
// matches its firebase-admin predicate.
func testErrorsThroughSDK(t *testing.T, s *server, ctx context.Context, fcm *messaging.Client, r1 string, c1 *inbox) {
	name, err := fcm.SendDryRun(ctx, &messaging.Message{Token: r1, Data: map[string]string{"k": "dry"}})
	if err != nil || name != "projects/"+s.Sender+"/messages/fake_message_id" {
		t.Fatalf("SendDryRun = %q, %v", name, err)
	}
	if _, err := fcm.Send(ctx, &messaging.Message{Token: r1, Data: map[string]string{"k": "after-dry"}}); err != nil {
		t.Fatal(err)
	}
	expectData(t, c1, "k", "after-dry") // the dry run came first, had it been delivered

	d3 := s.checkin()
	gone := s.register(d3, s.Sender, "com.example")
	s.unregister(d3, s.Sender, "com.example")
	if _, err := fcm.Send(ctx, &messaging.Message{Token: gone}); !messaging.IsUnregistered(err) {
		t.Fatalf("send to an unregistered token: %v, want IsUnregistered", err)
	}
	other, _ := s.newSender()
	theirs := s.register(s.checkin(), other, "com.example")
	if _, err := fcm.Send(ctx, &messaging.Message{Token: theirs}); !messaging.IsSenderIDMismatch(err) {
		t.Fatalf("send to another sender's token: %v, want IsSenderIDMismatch", err)
	}
	if _, err := fcm.Send(ctx, &messaging.Message{Token: r1, Data: map[string]string{"from": "x"}}); !messaging.IsInvalidArgument(err) {
		t.Fatalf("reserved data key: %v, want IsInvalidArgument", err)
	}
	busy := s.register(s.checkin(), s.Sender, "com.example")
	msgs := make([]*messaging.Message, 31) // --downstream-rate 30
	for i := range msgs {
		msgs[i] = &messaging.Message{Token: busy}
	}
	br, err := fcm.SendEach(ctx, msgs)
	if err != nil || br.SuccessCount != 30 || br.FailureCount != 1 {
		t.Fatalf("31 sends to one token at a rate of 30: %+v, %v", br, err)
	}
	for _, r := range br.Responses {
		if r.Error != nil && !messaging.IsQuotaExceeded(r.Error) {
			t.Fatalf("past the rate: %v, want IsQuotaExceeded", r.Error)
		}
	}
}
