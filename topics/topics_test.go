package topics

import (
	"context"
	"errors"
	"testing"

	"github.com/ccsd/ccsd/store"
	"github.com/ccsd/ccsd/store/memstore"
)

// TestRules: the registry's answers over a store: both topic forms, the
// batch bound, a device touching only its own live tokens, and Info only
// for the sender's own tokens.
func TestRules(t *testing.T) {
	ctx := context.Background()
	db := memstore.New(store.Options{})
	for _, r := range []store.Registration{
		{ID: "r1", DeviceID: "d1", SenderID: "s1", App: "com.a"},
		{ID: "r2", DeviceID: "d2", SenderID: "s1", App: "com.a"},
		{ID: "gone", DeviceID: "d1", SenderID: "s1", App: "com.b"},
	} {
		if _, err := db.Register(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Unregister(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	reg := New(db, 0)
	if errs, err := reg.Add(ctx, "s1", "/topics/a", []string{"r1"}); err != nil || errs[0] != nil {
		t.Fatalf("Add /topics/a: %v %v", errs, err)
	}
	if errs, err := reg.Add(ctx, "s1", "a", []string{"r2", "gone"}); err != nil || errs[0] != nil || !errors.Is(errs[1], ErrNotFound) {
		t.Fatalf("Add a: %v %v", errs, err)
	}
	if _, err := reg.Add(ctx, "s1", "/topics/", []string{"r1"}); !errors.Is(err, ErrInvalidTopic) {
		t.Fatalf("empty name: %v", err)
	}
	if _, err := reg.Add(ctx, "s1", "a", make([]string, MaxBatch+1)); !errors.Is(err, ErrTooManyTokens) {
		t.Fatalf("1001 tokens: %v", err)
	}
	if err := reg.DeviceSet(ctx, "d1", "r2", "b", true); !errors.Is(err, ErrNotFound) {
		t.Fatalf("device d1 on d2's token: %v", err)
	}
	if err := reg.DeviceSet(ctx, "d1", "gone", "b", true); !errors.Is(err, ErrNotFound) {
		t.Fatalf("device on its unregistered token: %v", err)
	}
	if err := reg.DeviceSet(ctx, "d1", "r1", "b", true); err != nil {
		t.Fatalf("device on its own token: %v", err)
	}
	info, err := reg.Info("s1", "r1", true)
	if err != nil || info.App != "com.a" || info.Sender != "s1" || len(info.Topics) != 2 || info.Topics[0].Topic != "a" || info.Topics[1].Topic != "b" {
		t.Fatalf("Info = %+v, %v", info, err)
	}
	if info, _ := reg.Info("s1", "r1", false); info.Topics != nil {
		t.Fatalf("Info without details lists %+v", info.Topics)
	}
	if _, err := reg.Info("s2", "r1", true); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Info by another sender: %v", err)
	}
}
