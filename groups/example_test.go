package groups_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ccsd/ccsd/groups"
	"github.com/ccsd/ccsd/store"
	"github.com/ccsd/ccsd/store/bolt"
)

// Example creates a device group for one user, adds a second device, and
// looks the key up by name, as an app server does through the HTTP API.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "ccsd-groups-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	db, err := bolt.Open(filepath.Join(dir, "ccsd.db"), bolt.Options{})
	if err != nil {
		panic(err)
	}
	defer db.Close()
	// Two devices of one user registered app "com.example" for sender 1234.
	for _, id := range []string{"phone", "tablet"} {
		db.Register(store.Registration{ID: id, DeviceID: id + "-device", SenderID: "1234", App: "com.example"})
	}
	reg := groups.New(db, 0)
	key, err := reg.Create(ctx, "1234", "user-4711", []string{"phone", "unknown-id"})
	fmt.Println(strings.HasPrefix(key, "APA91b"), err)
	_, err = reg.Add(ctx, "1234", key, "user-4711", []string{"tablet"})
	fmt.Println(err)
	g, _ := db.Group(key)
	fmt.Println(g.Members)
	found, _ := reg.Lookup(ctx, "1234", "user-4711")
	fmt.Println(found == key)
	_, err = reg.Create(ctx, "1234", "user-4711", []string{"tablet"})
	fmt.Println(err)
	// Output:
	// true <nil>
	// <nil>
	// [phone tablet]
	// true
	// groups: notification_key_name already exists: "user-4711"
}
