package bolt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"go.etcd.io/bbolt"

	"github.com/ccsd/ccsd/store"
)

// encodeMessageV1 is the version 1 layout, as builds before schema 2 wrote
// it: 1 | part(RegID) | part(SenderID) | part(MessageID) |
// part(CollapseKey) | be64 Expires | bool Receipt | part(Payload).
func encodeMessageV1(m *store.Message) []byte {
	e := newEnc(64 + len(m.Payload))
	e.str(m.RegID)
	e.str(m.SenderID)
	e.str(m.MessageID)
	e.str(m.CollapseKey)
	e.i64(m.Expires)
	e.boolean(m.Receipt)
	e.bytes(m.Payload)
	return e.b
}

// deviceCopy is a payload shaped like ccs.DeviceCopyJSON's.
func deviceCopy(m *store.Message, rest string) []byte {
	return []byte(`{"message_id":"` + m.MessageID + `","to":"` + m.RegID + `","from":"` + m.SenderID + `","category":"` + rest)
}

func TestMessageCodecRoundTrip(t *testing.T) {
	base := store.Message{Seq: 3, DeviceID: "d", RegID: "reg:APA91b", SenderID: "4805", MessageID: "m1", Expires: 1796162154825, Payload: []byte(`{}`)}
	cases := map[string]func(m *store.Message){
		"verbatim":           func(m *store.Message) {},
		"device copy":        func(m *store.Message) { m.Payload = deviceCopy(m, `app","data":{"k":"v"},"sent":1}`) },
		"device copy, empty": func(m *store.Message) { m.Payload = deviceCopy(m, ``) },
		"escaped id": func(m *store.Message) {
			m.MessageID = `a"b`
			m.Payload = []byte(`{"message_id":"a\"b","to":"reg:APA91b"}`)
		},
		"prefix of another id": func(m *store.Message) { m.Payload = deviceCopy(m, "x"); m.RegID = "reg" },
		"nil payload":          func(m *store.Message) { m.Payload = nil },
		"never expires":        func(m *store.Message) { m.Expires = -5; m.Receipt = true; m.CollapseKey = deletedMessagesKey },
		"binary ids":           func(m *store.Message) { m.RegID, m.SenderID = "\x00\xff", ""; m.Payload = deviceCopy(m, "\xff") },
	}
	for name, edit := range cases {
		m := base
		edit(&m)
		for _, b := range [][]byte{encodeMessage(&m), encodeMessageV1(&m)} {
			got, err := decodeMessage("d", 3, b)
			if err != nil || !reflect.DeepEqual(got, m) {
				t.Errorf("%s (version %d): got %+v, %v; want %+v", name, b[0], got, err, m)
			}
			reg, ck, err := messageKeys(b)
			if err != nil || string(reg) != m.RegID || string(ck) != m.CollapseKey {
				t.Errorf("%s (version %d): keys %q %q, %v", name, b[0], reg, ck, err)
			}
		}
	}
	// The device copy's prefix is not stored twice.
	m := base
	m.Payload = deviceCopy(&m, `app"}`)
	if n, full := len(encodeMessage(&m)), len(encodeMessageV1(&m)); n > full-len(m.Payload)+len(`app"}`)+8 {
		t.Errorf("device copy encoded in %d bytes (version 1: %d)", n, full)
	}
}

func TestMessageCodecCorrupt(t *testing.T) {
	m := store.Message{RegID: "r", SenderID: "s", MessageID: "m", CollapseKey: "c", Expires: 9, Payload: []byte("p")}
	b := encodeMessage(&m)
	for i := range b {
		if _, err := decodeMessage("d", 1, b[:i]); !errors.Is(err, errCorrupt) {
			t.Errorf("truncated at %d: %v", i, err)
		}
	}
	bad := bytes.Clone(b)
	bad[len(bad)-3] = 0x80 // a flag bit no layout defines
	if _, err := decodeMessage("d", 1, bad); !errors.Is(err, errCorrupt) {
		t.Errorf("unknown flag: %v", err)
	}
	if _, err := decodeMessage("d", 1, []byte{3, 0, 0, 0, 0, 0, 0, 0}); !errors.Is(err, errCorrupt) {
		t.Errorf("unknown version: %v", err)
	}
}

func FuzzMessageCodec(f *testing.F) {
	f.Add("r", "s", "m", "", int64(5), true, []byte(`{"message_id":"m","to":"r","from":"s","category":"x`))
	f.Add("", "", "", "c", int64(-1), false, []byte(nil))
	f.Fuzz(func(t *testing.T, reg, sender, id, ck string, exp int64, receipt bool, payload []byte) {
		if len(payload) == 0 {
			payload = nil
		}
		m := store.Message{Seq: 1, DeviceID: "d", RegID: reg, SenderID: sender, MessageID: id, CollapseKey: ck, Expires: exp, Receipt: receipt, Payload: payload}
		got, err := decodeMessage("d", 1, encodeMessage(&m))
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Fatalf("got %+v, %v; want %+v", got, err, m)
		}
		decodeMessage("d", 1, payload) // arbitrary bytes: an error, never a panic
	})
}

// TestLegacyMessageRecords: queued messages written by a schema 1 build
// (version 1 values) in a file marked schema 1 are read, acked, bounded,
// unregistered and swept as before, with their index entries, and the
// file is marked with the current schema at Open.
func TestLegacyMessageRecords(t *testing.T) {
	db, path := openTest(t, Options{})
	db.PutDevice(store.Device{ID: "d1"})
	db.Register(store.Registration{ID: "r1", DeviceID: "d1", SenderID: "s1", App: "a"})
	var want []store.Message
	for i := range 6 {
		m := msg("d1", "r1", fmt.Sprint("m", i))
		m.Expires = int64(1000 + i)
		if i%2 == 1 {
			m.CollapseKey = fmt.Sprint("k", i)
		}
		m.Payload = deviceCopy(&m, `a"}`)
		e := &store.Enqueue{Messages: []store.Message{m}}
		if err := db.Enqueue(ctx, e); err != nil {
			t.Fatal(err)
		}
		want = append(want, e.Messages[0])
	}
	// Rewrite every value in the version 1 layout with its expiry entry,
	// drop the device bounds (a schema 1 file has none), schema 1.
	err := db.update(ctx, func(tx *bbolt.Tx) error {
		q := tx.Bucket(bucketQueues).Bucket([]byte("d1"))
		for i := range want {
			if err := q.Put(seqKey(want[i].Seq), encodeMessageV1(&want[i])); err != nil {
				return err
			}
			if err := tx.Bucket(bucketExpiry).Put(expiryKey(want[i].Expires, kindMessage, "d1", want[i].Seq, ""), nil); err != nil {
				return err
			}
		}
		for _, b := range [][]byte{bucketQExpiry, bucketQExpiryDev} {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keyVersion, []byte{0, 0, 0, 1})
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = Open(path, Options{})
	if err != nil {
		t.Fatalf("Open a schema 1 file: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	db.view(func(tx *bbolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyVersion); binary.BigEndian.Uint32(v) != SchemaVersion {
			t.Errorf("schema version after Open = %x", v)
		}
		return nil
	})
	for i := range want {
		want[i].MaxQueued, want[i].MaxCollapseKeys = 0, 0
	}
	got, err := db.Pending("d1", 0, 0, 0)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Pending = %+v, %v\nwant %+v", got, err, want)
	}
	if m, err := db.Ack(ctx, "d1", want[0].Seq, nil); err != nil || !reflect.DeepEqual(m, want[0]) {
		t.Fatalf("Ack = %+v, %v", m, err)
	}
	// A new message collapses the legacy one holding its key.
	m := msg("d1", "r1", "new")
	m.CollapseKey = "k1"
	if err := db.Enqueue(ctx, &store.Enqueue{Messages: []store.Message{m}}); err != nil {
		t.Fatal(err)
	}
	assertIndexes(t, db)
	if st, err := db.Sweep(ctx, 1004); err != nil || st.Messages != 2 {
		t.Fatalf("Sweep = %+v, %v; want m2 and m3 (m0 acked, m1 collapsed)", st, err)
	}
	assertIndexes(t, db)
	if err := db.Unregister(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	if n, _ := db.QueueLen("d1"); n != 0 {
		t.Fatalf("QueueLen after Unregister = %d", n)
	}
	assertIndexes(t, db)
}
