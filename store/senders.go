package store

import (
	"context"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// Sender is an app server identity: a sender id (the GCM project number) and
// the hash of its API key.
type Sender struct {
	ID      string
	KeyHash []byte
	Created time.Time
	Revoked bool
}

// PutSender creates s. It returns ErrExists if s.ID is taken.
func (db *DB) PutSender(s Sender) error {
	if s.ID == "" {
		return fmt.Errorf("store: put sender: empty id")
	}
	val := encodeSender(&s)
	err := db.update(context.Background(), func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketSenders)
		if b.Get([]byte(s.ID)) != nil {
			return clean(ErrExists)
		}
		return b.Put([]byte(s.ID), val)
	})
	if err != nil {
		return fmt.Errorf("store: put sender %s: %w", s.ID, err)
	}
	return nil
}

// Sender returns the sender with the given id, or ErrNotFound.
func (db *DB) Sender(id string) (Sender, error) {
	var s Sender
	err := db.view(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketSenders).Get([]byte(id))
		if v == nil {
			return ErrNotFound
		}
		var err error
		s, err = decodeSender(v)
		return err
	})
	if err != nil {
		return Sender{}, fmt.Errorf("store: sender %s: %w", id, err)
	}
	return s, nil
}

// Senders returns every sender, revoked ones included, sorted by ID.
func (db *DB) Senders() ([]Sender, error) {
	var out []Sender
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

// RevokeSender marks the sender revoked. It returns ErrNotFound for an
// unknown id.
func (db *DB) RevokeSender(id string) error {
	err := db.update(context.Background(), func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketSenders)
		v := b.Get([]byte(id))
		if v == nil {
			return clean(ErrNotFound)
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
