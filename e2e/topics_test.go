package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// call sends one HTTPS request to ccsd's public API and returns the status
// and the body.
func (s *server) call(method, path, authz, body string) (int, string) {
	s.t.Helper()
	req, _ := http.NewRequest(method, "https://"+s.Info.HTTPAddr+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("access_token_auth", "true")
	req.Header.Set("Authorization", authz)
	resp, err := s.http.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// batchAdd subscribes the sender's tokens to topic and checks each was.
func (s *server) batchAdd(topic string, tokens ...string) {
	s.t.Helper()
	b, _ := json.Marshal(map[string]any{"to": "/topics/" + topic, "registration_tokens": tokens})
	code, body := s.call("POST", "/iid/v1:batchAdd", "key="+s.APIKey, string(b))
	want := `{"results":[{}` + strings.Repeat(`,{}`, len(tokens)-1) + `]}`
	if code != 200 || body != want {
		s.t.Fatalf("batchAdd: %d %s, want %s", code, body, want)
	}
}

// sendTopicHTTP sends to a topic over /gcm/send and checks the numeric id.
func (s *server) sendTopicHTTP(topic, data string) {
	s.t.Helper()
	code, body := s.call("POST", "/gcm/send", "key="+s.APIKey, `{"to":"/topics/`+topic+`","data":`+data+`}`)
	var v map[string]any
	if code != 200 || json.Unmarshal([]byte(body), &v) != nil {
		s.t.Fatalf("send to topic: %d %s", code, body)
	}
	if _, ok := v["message_id"].(float64); !ok {
		s.t.Fatalf("send to topic answered %s: want a numeric message_id", body)
	}
}

// expectTopicCopy reads the device's next message, a copy from the topic,
// and acks it.
func expectTopicCopy(t *testing.T, dev receiver, topic string) msg {
	t.Helper()
	m := dev.expect(wait)
	if m.str("from") != "/topics/"+topic {
		t.Fatalf("device got %s, want a copy from /topics/%s", m.raw, topic)
	}
	dev.ack(m.str("message_id"))
	return m
}

// TestTopicSendXMPPAndHTTP: tokens subscribed through batchAdd (and one
// device subscribing itself with AidLogin) receive what is sent to the
// topic over XMPP (acked with "from" = the topic) and over /gcm/send
// ({"message_id": N}); a device subscribed to another topic receives
// nothing of it: the first message it gets is a marker sent after both.
func TestTopicSendXMPPAndHTTP(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	c1, c2, c3 := newInbox(t), newInbox(t), newInbox(t)
	d1, d2, d3 := s.checkinWith(c1), s.checkinWith(c2), s.checkinWith(c3)
	r1, r2 := s.register(d1, s.Sender, "com.example"), s.register(d2, s.Sender, "com.example")
	r3 := s.register(d3, s.Sender, "com.example")
	s.batchAdd("x", r1)
	// d2 subscribes itself, as an app's subscribeToTopic does; d3 another topic.
	if code, body := s.call("POST", "/iid/v1/"+r2+"/rel/topics/x", "AidLogin "+d2.ID+":"+d2.Token, ""); code != 200 {
		t.Fatalf("device self-subscribe: %d %s", code, body)
	}
	if code, body := s.call("POST", "/iid/v1/"+r1+"/rel/topics/y", "AidLogin "+d2.ID+":"+d2.Token, ""); code != 404 {
		t.Fatalf("a device subscribing another device's token: %d %s, want 404", code, body)
	}
	s.batchAdd("y", r3)
	for _, d := range []device{d1, d2, d3} {
		s.runDevice(d)
	}
	app := s.appServer()
	app.send(`{"to":"/topics/x","message_id":"tx-1","data":{"via":"xmpp"}}`)
	if a := app.expect(wait); a.str("message_type") != "ack" || a.str("from") != "/topics/x" || a.str("message_id") != "tx-1" {
		t.Fatalf("topic send answered %s, want an ack from /topics/x", a.raw)
	}
	s.sendTopicHTTP("x", `{"via":"http"}`)
	for _, c := range []*inbox{c1, c2} {
		got := map[string]bool{}
		for range 2 {
			m := expectTopicCopy(t, c, "x")
			via, _ := m.json["data"].(map[string]any)["via"].(string)
			got[via] = true
		}
		if !got["xmpp"] || !got["http"] {
			t.Fatalf("a subscriber got %v, want the XMPP and the HTTP send", got)
		}
	}
	app.send(`{"to":"` + r3 + `","message_id":"marker","data":{"k":"v"}}`)
	if a := app.expect(wait); a.str("message_type") != "ack" {
		t.Fatalf("marker: %s", a.raw)
	}
	if m := c3.expect(wait); m.str("message_id") != "marker" {
		t.Fatalf("the device subscribed to another topic got %s before the marker", m.raw)
	}
}

// TestTopicSubscriptionsSurviveKill: subscriptions written before a
// SIGKILL are there after the restart (/iid/info lists them), and a send
// to the topic then reaches the subscriber.
func TestTopicSubscriptionsSurviveKill(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	dev := newInbox(t)
	d := s.checkinWith(dev)
	reg := s.register(d, s.Sender, "com.example")
	s.batchAdd("kept", reg)
	s.Kill()
	s.restart()
	code, body := s.call("GET", "/iid/info/"+reg+"?details=true", "key="+s.APIKey, "")
	if code != 200 || !strings.Contains(body, `"rel":{"topics":{"kept":{"addDate":"`) || !strings.Contains(body, `"authorizedEntity":"`+s.Sender+`"`) {
		t.Fatalf("info after restart: %d %s", code, body)
	}
	s.runDevice(d)
	s.sendTopicHTTP("kept", `{"k":"after-restart"}`)
	expectTopicCopy(t, dev, "kept")
}

// TestTopicRateExceeded: past --topic-rate messages a minute to one topic,
// XMPP nacks TOPICS_MESSAGE_RATE_EXCEEDED and /gcm/send answers
// {"error":"TopicsMessageRateExceeded"}; another topic still goes.
func TestTopicRateExceeded(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--topic-rate", "1")
	s.sendTopicHTTP("busy", `{"k":"1"}`)
	code, body := s.call("POST", "/gcm/send", "key="+s.APIKey, `{"to":"/topics/busy","data":{"k":"2"}}`)
	if code != 200 || body != `{"error":"TopicsMessageRateExceeded"}` {
		t.Fatalf("second send in the minute: %d %s", code, body)
	}
	app := s.appServer()
	app.send(`{"to":"/topics/busy","message_id":"r-1"}`)
	if a := app.expect(wait); a.str("message_type") != "nack" || a.str("error") != "TOPICS_MESSAGE_RATE_EXCEEDED" || a.str("from") != "/topics/busy" {
		t.Fatalf("XMPP past the topic rate: %s", a.raw)
	}
	app.send(`{"to":"/topics/calm","message_id":"r-2"}`)
	if a := app.expect(wait); a.str("message_type") != "ack" {
		t.Fatalf("another topic: %s", a.raw)
	}
}

// TestConditionSend: a condition sent over XMPP and one over /gcm/send
// reach exactly the devices whose subscriptions satisfy them; the others'
// first message is a marker sent after both.
func TestConditionSend(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	_, r1, c1 := s.onlineDeviceClient(s.Sender, "com.example")
	_, r2, c2 := s.onlineDeviceClient(s.Sender, "com.example")
	_, r3, c3 := s.onlineDeviceClient(s.Sender, "com.example")
	s.batchAdd("a", r1, r2)
	s.batchAdd("b", r1, r3)
	app := s.appServer()
	app.send(`{"condition":"'a' in topics && 'b' in topics","message_id":"both","data":{"k":"v"}}`)
	if a := app.expect(wait); a.str("message_type") != "ack" || a.str("message_id") != "both" {
		t.Fatalf("condition over XMPP: %s", a.raw)
	}
	code, body := s.call("POST", "/gcm/send", "key="+s.APIKey, `{"condition":"'A' in topics && !('b' IN topics)","data":{"k":"v"}}`)
	if code != 200 || !strings.HasPrefix(body, `{"message_id":`) {
		t.Fatalf("condition over HTTP: %d %s", code, body)
	}
	// 'A' is another topic than 'a': topic names are case-sensitive; so
	// the HTTP condition reaches nobody. Send the one that does.
	code, body = s.call("POST", "/gcm/send", "key="+s.APIKey, `{"condition":"'a' in topics && !('b' IN topics)","message_id":"x","data":{"k":"v"}}`)
	if code != 200 {
		t.Fatalf("condition over HTTP: %d %s", code, body)
	}
	if m := c1.expect(wait); m.str("message_id") != "both" {
		t.Fatalf("d1 (a and b) got %s", m.raw)
	}
	m := c2.expect(wait)
	if m.str("from") != s.Sender {
		t.Fatalf("d2 (a only) got %s", m.raw)
	}
	c2.ack(m.str("message_id"))
	for i, c := range []*inbox{c1, c3} {
		reg := []string{r1, r3}[i]
		app.send(`{"to":"` + reg + `","message_id":"marker-` + reg + `","data":{"k":"v"}}`)
		if a := app.expect(wait); a.str("message_type") != "ack" {
			t.Fatalf("marker: %s", a.raw)
		}
		if m := c.expect(wait); m.str("message_id") != "marker-"+reg {
			t.Fatalf("device %d got %s before its marker", i, m.raw)
		}
	}
}
