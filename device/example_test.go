package device_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/ccsd/ccsd/device"
)

// A device registers an app, receives one message and answers upstream.
// exampleData is the data directory of a running ccsd ("make run" uses
// ./ccsd-data); exampleSender is its default sender.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	cfg, err := device.FromDataDir(exampleData) // addresses and certificate
	if err != nil {
		log.Fatal(err)
	}
	dir, _ := os.MkdirTemp("", "device-example-")
	defer os.RemoveAll(dir)
	cfg.StateFile = filepath.Join(dir, "device.json") // the same file: the same device
	got := make(chan *device.Message, 1)
	cfg.Handler = device.HandlerFunc(func(ctx context.Context, m *device.Message) error {
		got <- m
		return nil // nil acks the message; an error has ccsd offer it again later
	})
	d, err := device.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	token, err := d.Register(ctx, exampleSender, "com.example.chat")
	if err != nil {
		log.Fatal(err)
	}
	go d.Run(ctx) // connects, reconnects, delivers to the handler

	appServerSends(token, `{"hello":"world"}`) // what an app server does
	m := <-got
	fmt.Println(m.From == exampleSender, m.Category, m.Data["hello"])

	_, err = d.Send(ctx, device.Upstream{Sender: exampleSender, Category: "com.example.chat",
		Data: map[string]any{"reply": "hi"}})
	fmt.Println("upstream acked:", err == nil)
	// Output:
	// true com.example.chat world
	// upstream acked: true
}

// appServerSends plays the app server: a /gcm/send with the sender's key.
func appServerSends(token, data string) {
	cfg, err := device.FromDataDir(exampleData)
	if err != nil {
		log.Fatal(err)
	}
	addrs, err := cfg.Locate()
	if err != nil {
		log.Fatal(err)
	}
	c := httpClient(cfg)
	req := newPost("https://"+addrs.HTTP+"/gcm/send", `{"to":"`+token+`","data":`+data+`}`)
	req.Header.Set("Authorization", "key="+exampleKey)
	resp, err := c.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		log.Fatal(resp.Status)
	}
}
