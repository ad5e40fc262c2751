package bolt

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ccsd/ccsd/store"
)

// TestRegistrationsBatch: the batch lookup answers each id as Registration
// would: live, unregistered (with its record), or unknown.
func TestRegistrationsBatch(t *testing.T) {
	db, _ := openTest(t, Options{})
	for _, id := range []string{"a", "b"} {
		if _, err := db.Register(store.Registration{ID: id, DeviceID: "dev-" + id, SenderID: "s", App: "app", Created: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Unregister(context.Background(), "b"); err != nil {
		t.Fatal(err)
	}
	regs, errs, err := db.Registrations([]string{"a", "b", "nope"})
	if err != nil {
		t.Fatal(err)
	}
	if errs[0] != nil || regs[0].DeviceID != "dev-a" {
		t.Errorf("live: %+v %v", regs[0], errs[0])
	}
	if !errors.Is(errs[1], store.ErrUnregistered) || regs[1].DeviceID != "dev-b" {
		t.Errorf("unregistered: %+v %v", regs[1], errs[1])
	}
	if !errors.Is(errs[2], store.ErrNotFound) {
		t.Errorf("unknown: %v", errs[2])
	}
}
