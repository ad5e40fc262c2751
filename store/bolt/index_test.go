package bolt

import (
	"encoding/binary"
	"testing"

	"go.etcd.io/bbolt"
)

// assertIndexes checks that the expiry, collapse and regcollapse indexes describe
// exactly the records that exist: no dangling entry, no missing one; and
// that every expiring version 2 message has its device's bound (qexpiry.go)
// at or before its expiry, each bound listed once in the qexpiry index.
func assertIndexes(t *testing.T, db *DB) {
	t.Helper()
	err := db.view(func(tx *bbolt.Tx) error {
		want := map[string]bool{}
		collapseWant := map[string]string{}
		regCollapseWant := map[string]string{}
		tx.Bucket(bucketQueues).ForEach(func(dev, _ []byte) error {
			q := tx.Bucket(bucketQueues).Bucket(dev)
			return q.ForEach(func(k, v []byte) error {
				m, err := decodeMessage(string(dev), seqOf(k), v)
				if err != nil {
					t.Errorf("decode %s/%x: %v", dev, k, err)
					return nil
				}
				if mv, _ := viewMessage(v); m.Expires > 0 && mv.v1 {
					want[string(expiryKey(m.Expires, kindMessage, m.DeviceID, m.Seq, ""))] = true
				} else if m.Expires > 0 {
					if qb, ok := readBound(tx, m.DeviceID); !ok || qb.bound > m.Expires {
						t.Errorf("message %s/%d expires at %d: device bound %+v (%v)", dev, m.Seq, m.Expires, qb, ok)
					}
				}
				if m.CollapseKey != "" {
					ck := string(compositeKey(m.RegID, m.CollapseKey))
					if _, dup := collapseWant[ck]; dup {
						t.Errorf("two queued messages share collapse key %q", ck)
					}
					collapseWant[ck] = string(append(appendPart(nil, m.DeviceID), k...))
					if m.CollapseKey != deletedMessagesKey {
						regCollapseWant[string(collapsibleKey(m.RegID, m.Seq))] = m.DeviceID
					}
				}
				return nil
			})
		})
		tx.Bucket(bucketUpstream).ForEach(func(s, _ []byte) error {
			return tx.Bucket(bucketUpstream).Bucket(s).ForEach(func(k, v []byte) error {
				u, _ := decodeUpstream(string(s), seqOf(k), v)
				if u.Expires > 0 {
					want[string(expiryKey(u.Expires, kindUpstream, u.SenderID, u.Seq, ""))] = true
				}
				return nil
			})
		})
		tx.Bucket(bucketDedup).ForEach(func(k, v []byte) error {
			parts, _, _ := splitParts(k, 2)
			want[string(expiryKey(int64(seqOf(v)), kindDedup, parts[0], 0, parts[1]))] = true
			return nil
		})
		got := map[string]bool{}
		tx.Bucket(bucketExpiry).ForEach(func(k, _ []byte) error {
			got[string(k)] = true
			if !want[string(k)] {
				t.Errorf("dangling expiry entry %x", k)
			}
			return nil
		})
		for k := range want {
			if !got[k] {
				t.Errorf("missing expiry entry %x", k)
			}
		}
		bounds := 0
		tx.Bucket(bucketQExpiryDev).ForEach(func(dev, _ []byte) error {
			bounds++
			qb, _ := readBound(tx, string(dev))
			if tx.Bucket(bucketQExpiry).Get(qexpiryKey(qb.bound, string(dev))) == nil {
				t.Errorf("device %s bound %+v not in the qexpiry index", dev, qb)
			}
			return nil
		})
		if n := tx.Bucket(bucketQExpiry).Stats().KeyN; n != bounds {
			t.Errorf("qexpiry index has %d entries for %d device bounds", n, bounds)
		}
		n := 0
		tx.Bucket(bucketCollapse).ForEach(func(k, v []byte) error {
			n++
			if collapseWant[string(k)] != string(v) {
				t.Errorf("collapse entry %x -> %x, want %x", k, v, collapseWant[string(k)])
			}
			return nil
		})
		if n != len(collapseWant) {
			t.Errorf("collapse index has %d entries, want %d", n, len(collapseWant))
		}
		n = 0
		tx.Bucket(bucketRegCollapse).ForEach(func(k, v []byte) error {
			n++
			if dev, ok := regCollapseWant[string(k)]; !ok || dev != string(v) {
				t.Errorf("regcollapse entry %x -> %q, want %q (listed %v)", k, v, dev, ok)
			}
			return nil
		})
		if n != len(regCollapseWant) {
			t.Errorf("regcollapse index has %d entries, want %d", n, len(regCollapseWant))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

type txT = *bbolt.Tx

func be64(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }
