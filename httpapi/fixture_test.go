package httpapi

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ccsd/ccsd/auth"
	"github.com/ccsd/ccsd/ccs"
	"github.com/ccsd/ccsd/fanout"
	"github.com/ccsd/ccsd/store"
	"github.com/ccsd/ccsd/store/bolt"
)

// appFixture is what the app-server endpoint tests start from: a real
// store in a temporary directory with sender 123456789012 and its live
// registration REG-1 (app com.x) on device d1.
type appFixture struct {
	db      *bolt.DB
	senders *auth.Senders
	sender  string // the sender id
	key     string // its API key
	reg     string // REG-1
}

func newAppFixture(tb testing.TB) *appFixture {
	tb.Helper()
	db, err := bolt.Open(filepath.Join(tb.TempDir(), "ccsd.db"), bolt.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	senders := auth.NewSenders(db)
	snd, key, err := senders.Create("123456789012")
	if err != nil {
		tb.Fatal(err)
	}
	fx := &appFixture{db: db, senders: senders, sender: snd.ID, key: key}
	fx.reg = fx.register(tb, "REG-1", "d1")
	return fx
}

// register stores device dev and a live registration id of it for the
// fixture's sender, app com.x.
func (fx *appFixture) register(tb testing.TB, id, dev string) string {
	tb.Helper()
	_ = fx.db.PutDevice(store.Device{ID: dev, SecretHash: []byte("x"), Created: time.Now()})
	reg, err := fx.db.Register(store.Registration{ID: id, DeviceID: dev, SenderID: fx.sender, App: "com.x", Created: time.Now()})
	if err != nil {
		tb.Fatal(err)
	}
	return reg.ID
}

// router is a real fanout router over the fixture's store.
func (fx *appFixture) router(tb testing.TB) *fanout.Router {
	tb.Helper()
	r, err := fanout.New(fanout.Config{Store: fx.db, Logger: zerolog.Nop()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.Close() })
	return r
}

// nopRouter accepts every message: for tests of what comes before routing.
type nopRouter struct{}

func (nopRouter) Send(context.Context, string, *ccs.Downstream) fanout.SendResult {
	return fanout.SendResult{}
}

func (nopRouter) SendTopic(context.Context, string, *ccs.Downstream) (uint64, *ccs.Nack) {
	return 1, nil
}
