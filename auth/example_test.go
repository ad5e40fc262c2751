package auth_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ccsd/ccsd/auth"
	"github.com/ccsd/ccsd/store/bolt"
)

// A sender is created with a random 12-digit id and an API key, a device
// checks in, and the device registers an app for the sender.
func Example() {
	dir, _ := os.MkdirTemp("", "ccsd-example")
	defer os.RemoveAll(dir)
	db, err := bolt.Open(filepath.Join(dir, "ccsd.db"), bolt.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	ctx := context.Background()

	senders, devices := auth.NewSenders(db), auth.NewDevices(db)
	sender, apiKey, _ := senders.Create("")
	_, err = senders.Authenticate(ctx, sender.ID, apiKey) // an app server's SASL PLAIN login
	fmt.Println("app server login:", err)

	androidID, token, _ := devices.Checkin(ctx)
	_, err = devices.Authenticate(ctx, androidID, token) // a device's SASL PLAIN login
	fmt.Println("device login:", err)

	regID, _ := devices.Register(ctx, androidID, sender.ID, "com.example.chat")
	again, _ := devices.Register(ctx, androidID, sender.ID, "com.example.chat")
	fmt.Println("same token on re-register:", regID == again)
	// Output:
	// app server login: <nil>
	// device login: <nil>
	// same token on re-register: true
}
