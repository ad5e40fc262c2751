package main

import (
	"context"
	"errors"
	"testing"

	"github.com/ccsd/ccsd/httpapi"
)

// TestReadiness: starting until the listeners are up, then the store's
// signal, and draining above everything; liveness fails only on draining.
func TestReadiness(t *testing.T) {
	var storeErr error
	r := &readiness{storeErr: func() error { return storeErr }}
	reason := func() string {
		var nr *httpapi.NotReady
		if err := r.ready(context.Background()); errors.As(err, &nr) {
			return nr.Reason
		} else if err != nil {
			t.Fatalf("ready: %v is not a *NotReady", err)
		}
		return ""
	}
	if got := reason(); got != httpapi.ReasonStarting {
		t.Errorf("before the listeners are up: %q", got)
	}
	r.up.Store(true)
	if got := reason(); got != "" {
		t.Errorf("up, store fine: %q", got)
	}
	storeErr = errors.New("store: commit: file too large")
	if got := reason(); got != httpapi.ReasonStore {
		t.Errorf("store failing: %q", got)
	}
	if err := r.live(context.Background()); err != nil {
		t.Errorf("liveness with a failing store: %v", err)
	}
	r.draining.Store(true)
	if got := reason(); got != httpapi.ReasonDraining {
		t.Errorf("draining with a failing store: %q", got)
	}
	if err := r.live(context.Background()); err == nil {
		t.Error("liveness while draining: nil, want an error as before")
	}
}
