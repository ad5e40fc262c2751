package fanout

import (
	"bytes"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// benchConn is a Conn for benchmarks: it finds the message_id of what it
// is sent without decoding the JSON and hands it to onSend.
type benchConn struct {
	id     string
	onSend func(id []byte, payload []byte)
}

func (c *benchConn) ID() string       { return "bench-" + c.id }
func (c *benchConn) Remote() string   { return "127.0.0.1:1" }
func (c *benchConn) Identity() string { return c.id }
func (c *benchConn) Bounce(string, []byte, string) error {
	return nil
}
func (c *benchConn) Close(Reason) {}
func (c *benchConn) Send(payload []byte, _ Kind) error {
	const key = `"message_id":"`
	i := bytes.Index(payload, []byte(key))
	if i < 0 {
		return nil
	}
	rest := payload[i+len(key):]
	c.onSend(rest[:bytes.IndexByte(rest, '"')], payload)
	return nil
}

// benchDownstreamOnline runs the whole downstream path inside the router:
// app-server stream -> store -> device session -> device ack -> the app
// server's ack, with 10 online devices that ack each message as soon as
// they read it and an app server that keeps CCS's 100 messages pending.
// One op is one message acked to the app server.
func benchDownstreamOnline(b *testing.B, cfg Config) {
	const ndev, window = 10, 100
	db, _ := newTestStore(b, ndev)
	cfg.Store, cfg.DownstreamRate, cfg.MaxQueuedPerRegistration, cfg.MaxCollapseKeys = db, -1, -1, -1
	r, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	for i := range ndev {
		var wg sync.WaitGroup
		// acks is never closed: a delivery still running when the
		// benchmark ends (with the fast path off, devices get their
		// copies after the app server's acks) must not send on a closed
		// channel. quit ends the device's reader and drops late sends.
		acks, quit := make(chan string, 2*window), make(chan struct{})
		c := &benchConn{id: "dev" + strconv.Itoa(i), onSend: func(id, _ []byte) {
			select {
			case acks <- string(id):
			case <-quit:
			}
		}}
		d := r.OpenDevice(c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case id := <-acks:
					d.Message("", []byte(`{"message_type":"ack","message_id":"`+id+`"}`))
				case <-quit:
					return
				}
			}
		}()
		b.Cleanup(func() { close(quit); wg.Wait(); d.Closed() })
	}
	sem := make(chan struct{}, window)
	var answered atomic.Int64
	all := make(chan struct{})
	var n int64
	app := &benchConn{id: "123", onSend: func(_, p []byte) {
		if !bytes.Contains(p, []byte(`"message_type":"ack"`)) {
			b.Errorf("answer %s", p)
		}
		<-sem
		if answered.Add(1) == n {
			close(all)
		}
	}}
	a := r.OpenAppServer(app)
	b.Cleanup(a.Closed)
	n = int64(b.N)
	start := db.Stats()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		sem <- struct{}{}
		a.Message("", []byte(`{"to":"reg`+strconv.Itoa(i%ndev)+`","message_id":"m-`+strconv.Itoa(i)+`","data":{"k":"v"}}`))
	}
	<-all
	b.StopTimer()
	end := db.Stats()
	b.ReportMetric(float64(end.Ops-start.Ops)/float64(b.N), "storeops/msg")
	b.ReportMetric(float64(end.Commits-start.Commits)/float64(b.N), "commits/msg")
}

// BenchmarkDownstreamOnline is benchDownstreamOnline with the default
// configuration.
func BenchmarkDownstreamOnline(b *testing.B) { benchDownstreamOnline(b, Config{}) }
