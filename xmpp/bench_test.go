package xmpp

import (
	"bytes"
	"crypto/tls"
	"encoding/xml"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// benchPayload is a typical CCS downstream JSON (~230 bytes, quotes and all).
const benchPayload = `{"to":"fJ3kT9x2QaE:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx","message_id":"m-00000001","collapse_key":"score_update","time_to_live":108,"data":{"score":"4x8","time":"15:16.2342","note":"a < b & c > d"}}`

// echoHandler sends every payload straight back, type-less like an ack.
type echoHandler struct{}

func (echoHandler) Open(c *Conn) (Stream, error) { return echoStream{c}, nil }

type echoStream struct{ c *Conn }

func (s echoStream) Message(_ string, p []byte) { _ = s.c.Send(p, "") }
func (echoStream) Closed()                      {}

func benchServer(b testing.TB) (addr string, roots *tls.Config, stop func()) {
	b.Helper()
	cert := testCert(b)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := NewServer(Config{
		TLS:     &tls.Config{Certificates: []tls.Certificate{cert}},
		Auth:    testAuth{},
		Handler: echoHandler{},
		Logger:  zerolog.Nop(),
	})
	go func() { _ = srv.Serve(l) }()
	cfg := &tls.Config{InsecureSkipVerify: true}
	return l.Addr().String(), cfg, func() { _ = srv.Close() }
}

// benchLogin negotiates a raw session and returns the TLS connection.
func benchLogin(b testing.TB, addr string, cfg *tls.Config) *tls.Conn {
	b.Helper()
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		b.Fatal(err)
	}
	rec := &recorder{r: conn}
	c := &rawClient{t: b, conn: conn, rec: rec}
	c.d = xml.NewDecoder(rec)
	c.login("gcm.googleapis.com", "123")
	return conn
}

// BenchmarkEcho measures messages per second echoed over one connection with
// 32 messages in flight: client write, server read and extraction,
// Stream.Message, Send, batched write, client read. Client and server share
// the machine (and the allocation count).
func BenchmarkEcho(b *testing.B) {
	addr, cfg, stop := benchServer(b)
	defer stop()
	conn := benchLogin(b, addr, cfg)
	defer conn.Close()

	const inFlight = 32
	msg := renderMessage("b", "", []byte(benchPayload))
	window := make(chan struct{}, inFlight)
	done := make(chan error, 1)
	go func() {
		// Count </message> in the byte stream (cheap, so the server's cost
		// dominates); the marker may straddle reads.
		const marker = "</message>"
		buf := make([]byte, 64<<10)
		var carry []byte
		got := 0
		for got < b.N {
			n, err := conn.Read(buf)
			if err != nil {
				done <- err
				return
			}
			chunk := append(carry, buf[:n]...)
			k := bytes.Count(chunk, []byte(marker))
			for i := 0; i < k; i++ {
				<-window
			}
			got += k
			if len(chunk) >= len(marker)-1 {
				carry = append(carry[:0], chunk[len(chunk)-(len(marker)-1):]...)
			} else {
				carry = append(carry[:0], chunk...)
			}
		}
		done <- nil
	}()

	b.ReportAllocs()
	b.SetBytes(int64(len(benchPayload)))
	b.ResetTimer()
	start := time.Now()
	// Write in small bursts: whatever the window allows, in one TLS write.
	var out []byte
	for sent := 0; sent < b.N; {
		select {
		case window <- struct{}{}:
		case err := <-done:
			b.Fatalf("reader stopped: %v", err)
		}
		out = append(out[:0], msg...)
		sent++
		for sent < b.N {
			select {
			case window <- struct{}{}:
				out = append(out, msg...)
				sent++
				continue
			default:
			}
			break
		}
		if _, err := conn.Write(out); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil && err != io.EOF {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkLogin measures full connection setups (TCP, TLS, PLAIN, bind)
// one after another.
func BenchmarkLogin(b *testing.B) {
	addr, cfg, stop := benchServer(b)
	defer stop()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		conn := benchLogin(b, addr, cfg)
		conn.Close()
	}
}

// BenchmarkIdleSessions measures the memory an idle, negotiated session
// costs: heap and goroutine stacks after 200 logins, per session. Client and
// server share the process, so the figure includes the test client's TLS
// connection and decoder; compare runs, not absolutes.
func BenchmarkIdleSessions(b *testing.B) {
	addr, cfg, stop := benchServer(b)
	defer stop()
	const n = 200
	var heap, stack float64
	for i := 0; i < b.N; i++ {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		conns := make([]*tls.Conn, 0, n)
		for j := 0; j < n; j++ {
			conns = append(conns, benchLogin(b, addr, cfg))
		}
		time.Sleep(100 * time.Millisecond) // let the sessions settle
		runtime.GC()
		runtime.ReadMemStats(&after)
		heap += float64(after.HeapInuse-before.HeapInuse) / n
		stack += float64(after.StackInuse-before.StackInuse) / n
		for _, c := range conns {
			c.Close()
		}
	}
	b.ReportMetric(heap/float64(b.N), "heapB/session")
	b.ReportMetric(stack/float64(b.N), "stackB/session")
}
