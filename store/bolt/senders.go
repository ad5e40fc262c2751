package bolt

import (
	"context"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/ccsd/ccsd/store"
)

// PutSender creates s. It returns ErrExists if s.ID is taken.
func (db *DB) PutSender(s store.Sender) error {
	if s.ID == "" {
		return fmt.Errorf("store: put sender: empty id")
	}
	val := encodeSender(&s)
	err := db.update(context.Background(), func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketSenders)
		if b.Get([]byte(s.ID)) != nil {
			return clean(store.ErrExists)
		}
		return b.Put([]byte(s.ID), val)
	})
	if err != nil {
		return fmt.Errorf("store: put sender %s: %w", s.ID, err)
	}
	return nil
}

// Sender returns the sender with the given id, or ErrNotFound.
func (db *DB) Sender(id string) (store.Sender, error) {
	var s store.Sender
	err := db.view(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketSenders).Get([]byte(id))
		if v == nil {
			return store.ErrNotFound
		}
		var err error
		s, err = decodeSender(v)
		return err
	})
	if err != nil {
		return store.Sender{}, fmt.Errorf("store: sender %s: %w", id, err)
	}
	return s, nil
}

// Senders returns every sender, revoked ones included, sorted by ID.
func (db *DB) Senders() ([]store.Sender, error) {
	var out []store.Sender
	err := db.view(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketSenders).ForEach(func(k, v []byte) error {
			s, err := decodeSender(v)
			if err != nil {
				return fmt.Errorf("%q: %w", k, err)
			}
			out = append(out, s)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: senders: %w", err)
	}
	return out, nil
}

// SetGroupCopies sets the sender's GroupCopies option and returns the
// sender as written. It returns ErrNotFound for an unknown id.
func (db *DB) SetGroupCopies(id string, on bool) (store.Sender, error) {
	var s store.Sender
	err := db.update(context.Background(), func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketSenders)
		v := b.Get([]byte(id))
		if v == nil {
			return clean(store.ErrNotFound)
		}
		var err error
		if s, err = decodeSender(v); err != nil {
			return clean(err)
		}
		s.GroupCopies = on
		return b.Put([]byte(id), encodeSender(&s))
	})
	if err != nil {
		return store.Sender{}, fmt.Errorf("store: set group copies of sender %s: %w", id, err)
	}
	return s, nil
}

// RevokeSender marks the sender revoked. It returns ErrNotFound for an
// unknown id.
func (db *DB) RevokeSender(id string) error {
	err := db.update(context.Background(), func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketSenders)
		v := b.Get([]byte(id))
		if v == nil {
			return clean(store.ErrNotFound)
		}
		s, err := decodeSender(v)
		if err != nil {
			return clean(err)
		}
		s.Revoked = true
		return b.Put([]byte(id), encodeSender(&s))
	})
	if err != nil {
		return fmt.Errorf("store: revoke sender %s: %w", id, err)
	}
	return nil
}
