package main

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/ccsd/ccsd/httpapi"
)

// readiness is what the admin endpoint's /healthz and /readyz report for
// one server run.
type readiness struct {
	up       atomic.Bool // every listener serves (set just before run.json is written)
	draining atomic.Bool // shutdown began
	// storeErr is the store's health signal (store.Backend.LastCommitErr).
	storeErr func() error
}

// live is the /healthz check: liveness, failing only while draining, as
// /healthz always did, so that "ccsd sender" does not use a server that is
// going away.
func (r *readiness) live(context.Context) error {
	if r.draining.Load() {
		return errors.New("draining")
	}
	return nil
}

// ready is the /readyz check. Draining comes first: a stopping server is
// not coming back, whatever its store says.
func (r *readiness) ready(context.Context) error {
	switch {
	case r.draining.Load():
		return &httpapi.NotReady{Reason: httpapi.ReasonDraining}
	case !r.up.Load():
		return &httpapi.NotReady{Reason: httpapi.ReasonStarting}
	}
	if err := r.storeErr(); err != nil {
		return &httpapi.NotReady{Reason: httpapi.ReasonStore, Err: err}
	}
	return nil
}
