package xmpp_test

import (
	"context"
	"crypto/tls"
	"errors"
	"log"
	"net"
	"os"

	"github.com/rs/zerolog"

	"github.com/ccsd/ccsd/xmpp"
)

// echo is a Stream that sends every payload back as a type-less message,
// the shape of a CCS ack.
type echo struct{ c *xmpp.Conn }

func (e echo) Message(stanzaID string, payload []byte) {
	if err := e.c.Send(payload, ""); err != nil {
		// ErrClosed or ErrQueueFull: the connection is going away.
		return
	}
}

func (echo) Closed() {}

// An app-server listener: direct TLS on port 5235, senders authenticated by
// API key, at most 1000 connections per sender.
func ExampleNewServer() {
	cert, created, err := xmpp.LoadOrCreateCertificate("ccsd-data/cert.pem", "ccsd-data/key.pem",
		[]string{"localhost", "127.0.0.1", "gcm.googleapis.com"})
	if err != nil {
		log.Fatal(err)
	}
	if created {
		log.Print("created a self-signed certificate in ccsd-data/")
	}
	srv := xmpp.NewServer(xmpp.Config{
		Domain:  "gcm.googleapis.com",
		Aliases: []string{"fcm.googleapis.com"},
		TLS:     &tls.Config{Certificates: []tls.Certificate{cert}},
		Auth: xmpp.AuthenticatorFunc(func(ctx context.Context, user, password string) (string, error) {
			if user == "123456789012" && password == "API_KEY" {
				return user, nil
			}
			return "", errors.New("unknown sender")
		}),
		Handler: xmpp.HandlerFunc(func(c *xmpp.Conn) (xmpp.Stream, error) {
			return echo{c}, nil
		}),
		Logger:              zerolog.New(os.Stderr),
		MaxConnsPerIdentity: 1000,
	})
	l, err := net.Listen("tcp", "127.0.0.1:5235")
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		if err := srv.Serve(l); err != nil {
			log.Print(err)
		}
	}()
	// ... on shutdown:
	_ = srv.Close()
}
