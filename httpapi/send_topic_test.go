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
