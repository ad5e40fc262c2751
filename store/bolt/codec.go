package bolt

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/ccsd/ccsd/store"
)

// errCorrupt reports a stored value that does not decode. It never reaches a
// caller unwrapped: every decode error is wrapped with the key it came from.
var errCorrupt = errors.New("store: corrupt record")

// recordVersion is the first byte of every encoded value, so a later schema
// can change a layout without guessing.
const recordVersion = 1

// enc appends fields to a byte slice. Strings and byte slices are written as
// a uvarint length followed by the bytes; integers as fixed 8-byte big-endian
// or uvarints, as each layout says.
type enc struct{ b []byte }

func newEnc(size int) *enc {
	e := &enc{b: make([]byte, 0, size+1)}
	e.b = append(e.b, recordVersion)
	return e
}

func (e *enc) str(s string) {
	e.b = binary.AppendUvarint(e.b, uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *enc) bytes(p []byte) {
	e.b = binary.AppendUvarint(e.b, uint64(len(p)))
	e.b = append(e.b, p...)
}

func (e *enc) i64(v int64) { e.b = binary.BigEndian.AppendUint64(e.b, uint64(v)) }

func (e *enc) boolean(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

// time is stored as unix seconds (8 bytes) and nanoseconds (uvarint); the zero
// time.Time round-trips to a time whose IsZero is true.
func (e *enc) time(t time.Time) {
	e.i64(t.Unix())
	e.b = binary.AppendUvarint(e.b, uint64(t.Nanosecond()))
}

// dec reads fields written by enc. The first failed read sets err and every
// later read returns a zero value, so a decoder checks err once at the end.
type dec struct {
	b   []byte
	err error
}

func newDec(b []byte) *dec {
	d := &dec{b: b}
	if len(b) == 0 || b[0] != recordVersion {
		d.err = errCorrupt
		return d
	}
	d.b = b[1:]
	return d
}

func (d *dec) raw() []byte {
	if d.err != nil {
		return nil
	}
	n, k := binary.Uvarint(d.b)
	if k <= 0 || uint64(len(d.b)-k) < n {
		d.err = errCorrupt
		return nil
	}
	p := d.b[k : k+int(n)]
	d.b = d.b[k+int(n):]
	return p
}

func (d *dec) str() string { return string(d.raw()) }

// bytes returns a copy: bbolt memory is only valid inside its transaction.
func (d *dec) bytes() []byte {
	p := d.raw()
	if p == nil {
		return nil
	}
	return append([]byte(nil), p...)
}

func (d *dec) i64() int64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.err = errCorrupt
		return 0
	}
	v := int64(binary.BigEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

func (d *dec) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, k := binary.Uvarint(d.b)
	if k <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[k:]
	return v
}

func (d *dec) boolean() bool {
	if d.err != nil {
		return false
	}
	if len(d.b) < 1 || d.b[0] > 1 {
		d.err = errCorrupt
		return false
	}
	v := d.b[0] == 1
	d.b = d.b[1:]
	return v
}

func (d *dec) time() time.Time {
	s := d.i64()
	ns := d.uvarint()
	if d.err != nil {
		return time.Time{}
	}
	if ns >= 1e9 {
		d.err = errCorrupt
		return time.Time{}
	}
	if s == zeroUnix && ns == 0 {
		return time.Time{}
	}
	return time.Unix(s, int64(ns))
}

// zeroUnix is time.Time{}.Unix(): the zero time is decoded back to time.Time{}
// exactly, so callers can test IsZero or compare with ==.
var zeroUnix = time.Time{}.Unix()

// --- record layouts -------------------------------------------------------

// Sender: ver | ID | KeyHash | Created | Revoked | GroupCopies.
// GroupCopies was added after the first release of schema 1, at the end so
// that older builds still read new records (they ignore trailing bytes); a
// record that ends after Revoked is such an old one and reads false.
func encodeSender(s *store.Sender) []byte {
	e := newEnc(len(s.ID) + len(s.KeyHash) + 25)
	e.str(s.ID)
	e.bytes(s.KeyHash)
	e.time(s.Created)
	e.boolean(s.Revoked)
	e.boolean(s.GroupCopies)
	return e.b
}

func decodeSender(b []byte) (store.Sender, error) {
	d := newDec(b)
	s := store.Sender{ID: d.str(), KeyHash: d.bytes(), Created: d.time(), Revoked: d.boolean()}
	if d.err == nil && len(d.b) > 0 {
		s.GroupCopies = d.boolean()
	}
	return s, d.err
}

// Device: ver | ID | SecretHash | Created | LoggedIn. LoggedIn was added
// after the first release of schema 1, at the end so that older builds
// still read new records (they ignore trailing bytes); a record that ends
// after Created is such an old one and reads as logged in.
func encodeDevice(v *store.Device) []byte {
	e := newEnc(len(v.ID) + len(v.SecretHash) + 25)
	e.str(v.ID)
	e.bytes(v.SecretHash)
	e.time(v.Created)
	e.boolean(v.LoggedIn)
	return e.b
}

func decodeDevice(b []byte) (store.Device, error) {
	d := newDec(b)
	v := store.Device{ID: d.str(), SecretHash: d.bytes(), Created: d.time()}
	if d.err == nil && len(d.b) == 0 {
		v.LoggedIn = true // a record from before the field: see above
		return v, nil
	}
	v.LoggedIn = d.boolean()
	return v, d.err
}

// regRecord is a Registration as stored: the registration plus its tombstone.
type regRecord struct {
	store.Registration
	Unregistered bool
}

// Registration: ver | ID | DeviceID | SenderID | App | Created | Unregistered
func encodeReg(r *regRecord) []byte {
	e := newEnc(len(r.ID) + len(r.DeviceID) + len(r.SenderID) + len(r.App) + 24)
	e.str(r.ID)
	e.str(r.DeviceID)
	e.str(r.SenderID)
	e.str(r.App)
	e.time(r.Created)
	e.boolean(r.Unregistered)
	return e.b
}

func decodeReg(b []byte) (regRecord, error) {
	d := newDec(b)
	var r regRecord
	r.ID = d.str()
	r.DeviceID = d.str()
	r.SenderID = d.str()
	r.App = d.str()
	r.Created = d.time()
	r.Unregistered = d.boolean()
	return r, d.err
}

// Upstream: ver | MessageID | Expires | Payload. SenderID and Seq are the
// bucket and the key.
func encodeUpstream(u *store.Upstream) []byte {
	e := newEnc(len(u.MessageID) + len(u.Payload) + 16)
	e.str(u.MessageID)
	e.i64(u.Expires)
	e.bytes(u.Payload)
	return e.b
}

func decodeUpstream(senderID string, seq uint64, b []byte) (store.Upstream, error) {
	d := newDec(b)
	u := store.Upstream{Seq: seq, SenderID: senderID}
	u.MessageID = d.str()
	u.Expires = d.i64()
	u.Payload = d.bytes()
	return u, d.err
}

// --- keys -------------------------------------------------------------------

// seqKey is a queue key: the sequence number, 8 bytes big-endian, so keys
// sort in arrival order.
func seqKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq)
}

// appendPart appends one length-prefixed component of a composite key, so
// ("ab","c") and ("a","bc") never collide whatever bytes the ids hold.
func appendPart(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// compositeKey joins length-prefixed components.
func compositeKey(parts ...string) []byte {
	n := 0
	for _, p := range parts {
		n += len(p) + 2
	}
	b := make([]byte, 0, n)
	for _, p := range parts {
		b = appendPart(b, p)
	}
	return b
}

// splitParts is the inverse of appendPart for n components followed by an
// optional tail (returned as rest).
func splitParts(b []byte, n int) (parts []string, rest []byte, ok bool) {
	parts = make([]string, 0, n)
	for range n {
		l, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < l {
			return nil, nil, false
		}
		parts = append(parts, string(b[k:k+int(l)]))
		b = b[k+int(l):]
	}
	return parts, b, true
}

// Expiry index kinds: the byte after the 8-byte expiry time.
const (
	kindMessage  byte = 'm' // then part(deviceID) | seq(8)
	kindUpstream byte = 'u' // then part(senderID) | seq(8)
	kindDedup    byte = 'd' // then part(senderID) | part(messageID)
)

// expiryKey is expires(8, big-endian) | kind | ids, so a cursor from the
// start of the index visits entries in expiry order.
func expiryKey(expires int64, kind byte, id string, seq uint64, id2 string) []byte {
	b := make([]byte, 0, 8+1+len(id)+len(id2)+12)
	b = binary.BigEndian.AppendUint64(b, uint64(expires))
	b = append(b, kind)
	b = appendPart(b, id)
	switch kind {
	case kindDedup:
		b = appendPart(b, id2)
	default:
		b = binary.BigEndian.AppendUint64(b, seq)
	}
	return b
}
