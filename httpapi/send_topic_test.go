package httpapi

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestGCMSendToTopic: a legacy send to "/topics/NAME" answers
// {"message_id": N} (a number) and the subscriber gets its copy from the
// topic; a bad topic name is a 400.
func TestGCMSendToTopic(t *testing.T) {
	fx := newAppFixture(t)
	if errs, err := fx.db.Subscribe(context.Background(), fx.sender, "news", []string{fx.reg}, 0); err != nil || errs[0] != nil {
		t.Fatal(errs, err)
	}
	h := NewSendHandler(fx.router(t), fx.senders, nil, zerolog.Nop())
	rec := post(h, fx.key, `{"to":"/topics/news","data":{"k":"v"}}`)
	body := strings.TrimSpace(rec.Body.String())
	if rec.Code != 200 || !strings.HasPrefix(body, `{"message_id":`) || strings.Contains(body, `"message_id":"`) {
		t.Fatalf("send = %d %s, want 200 with a numeric message_id", rec.Code, body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ms, err := fx.db.Pending("d1", 0, 0, time.Now().UnixMilli())
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 1 {
			if !strings.Contains(string(ms[0].Payload), `"from":"/topics/news"`) {
				t.Fatalf("copy %s", ms[0].Payload)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the subscriber's copy never came")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if rec := post(h, fx.key, `{"to":"/topics/bad name"}`); rec.Code != 400 {
		t.Fatalf("bad topic name = %d %s", rec.Code, rec.Body)
	}
}

// TestGCMSendToCondition: a legacy send with a "condition" answers
// {"message_id": N}; a condition with a target, or one that needs no
// topic, is a 400.
func TestGCMSendToCondition(t *testing.T) {
	fx := newAppFixture(t)
	h := NewSendHandler(fx.router(t), fx.senders, nil, zerolog.Nop())
	rec := post(h, fx.key, `{"condition":"'a' in topics || 'b' in topics","data":{"k":"v"}}`)
	if body := strings.TrimSpace(rec.Body.String()); rec.Code != 200 || !strings.HasPrefix(body, `{"message_id":`) {
		t.Fatalf("condition send = %d %s", rec.Code, body)
	}
	for _, body := range []string{
		`{"condition":"'a' in topics","to":"` + fx.reg + `"}`,
		`{"condition":"'a' in topics","registration_ids":["` + fx.reg + `"]}`,
		`{"condition":"!('a' in topics)"}`,
		`{"condition":"'a' in topics &&"}`,
	} {
		if rec := post(h, fx.key, body); rec.Code != 400 {
			t.Errorf("%s = %d %s, want 400", body, rec.Code, rec.Body)
		}
	}
}
