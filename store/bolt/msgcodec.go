package bolt

import (
	"encoding/binary"

	"github.com/ccsd/ccsd/store"
)

// A queued Message is the bulk of the file, so its value has its own,
// compact layout (version 2), read with one string and one byte-slice
// allocation:
//
//	2 | uvarint len × 4 (RegID, SenderID, MessageID, CollapseKey) |
//	    the four ids, back to back | varint Expires | flags |
//	    uvarint len(tail) | payload tail
//
// DeviceID and Seq are the bucket and the key. flags bit 0 is Receipt,
// bit 3 High, bit 4 DelayWhileIdle;
// bits 1-2 the payload's form: formVerbatim (the tail is the payload) or
// formDeviceCopy (the payload is deviceCopyPrefix of the record's own ids
// followed by the tail: the device copy's JSON starts with its message_id,
// "to" and "from", which the record already holds). The form is chosen by
// comparing bytes, so any payload round-trips exactly.
//
// Version 1 (records written before): 1 | part(RegID) | part(SenderID) |
// part(MessageID) | part(CollapseKey) | be64 Expires | bool Receipt |
// part(Payload). Both are read; only version 2 is written.
const (
	messageV1 byte = 1
	messageV2 byte = 2

	flagReceipt    byte = 1
	flagHigh       byte = 1 << 3 // priority high (lanes.go)
	flagIdle       byte = 1 << 4 // delay_while_idle
	formMask       byte = 3 << 1
	formVerbatim   byte = 0 << 1
	formDeviceCopy byte = 1 << 1
)

// The literal pieces of a device copy's JSON before its category value
// (ccs.DeviceCopyJSON): {"message_id":"M","to":"R","from":"S","category":"
const (
	dcMessageID = `{"message_id":"`
	dcTo        = `","to":"`
	dcFrom      = `","from":"`
	dcCategory  = `","category":"`
	dcLiterals  = len(dcMessageID) + len(dcTo) + len(dcFrom) + len(dcCategory)
)

// cutDeviceCopy returns the payload of m after its device-copy prefix, if
// it has exactly that prefix. It compares in place, allocating nothing.
func cutDeviceCopy(m *store.Message) ([]byte, bool) {
	p := m.Payload
	if len(p) < dcLiterals+len(m.MessageID)+len(m.RegID)+len(m.SenderID) {
		return nil, false
	}
	i, ok := 0, true
	for _, piece := range [...]string{dcMessageID, m.MessageID, dcTo, m.RegID, dcFrom, m.SenderID, dcCategory} {
		ok = ok && string(p[i:i+len(piece)]) == piece
		i += len(piece)
	}
	return p[i:], ok
}

// encodeMessage encodes m in the version 2 layout, in one allocation.
func encodeMessage(m *store.Message) []byte {
	tail, form := m.Payload, formVerbatim
	if t, ok := cutDeviceCopy(m); ok {
		tail, form = t, formDeviceCopy
	}
	ids := len(m.RegID) + len(m.SenderID) + len(m.MessageID) + len(m.CollapseKey)
	b := make([]byte, 0, 1+4*binary.MaxVarintLen32+ids+binary.MaxVarintLen64+1+binary.MaxVarintLen32+len(tail))
	b = append(b, messageV2)
	for _, s := range [...]string{m.RegID, m.SenderID, m.MessageID, m.CollapseKey} {
		b = binary.AppendUvarint(b, uint64(len(s)))
	}
	b = append(b, m.RegID...)
	b = append(b, m.SenderID...)
	b = append(b, m.MessageID...)
	b = append(b, m.CollapseKey...)
	b = binary.AppendVarint(b, m.Expires)
	flags := form
	if m.Receipt {
		flags |= flagReceipt
	}
	if m.High {
		flags |= flagHigh
	}
	if m.DelayWhileIdle {
		flags |= flagIdle
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(len(tail)))
	return append(b, tail...)
}

// msgView is an encoded Message parsed in place: every slice aliases the
// value (valid only inside its transaction), nothing is copied.
type msgView struct {
	regID, senderID, messageID, collapseKey []byte
	// ids is the four ids back to back (version 2 only, nil for version 1),
	// so decode turns them into strings with one allocation.
	ids     []byte
	v1      bool // a version 1 record
	expires int64
	receipt bool
	flags   byte // version 2's flags (lane bits)
	form    byte
	tail    []byte
}

// viewMessage parses an encoded Message of either version.
func viewMessage(b []byte) (msgView, bool) {
	if len(b) > 0 && b[0] == messageV2 {
		return viewV2(b[1:])
	}
	v := msgView{v1: true}
	d := newDec(b) // version 1: newDec checks the version byte
	v.regID, v.senderID, v.messageID, v.collapseKey = d.raw(), d.raw(), d.raw(), d.raw()
	v.expires = d.i64()
	v.receipt = d.boolean()
	v.tail = d.raw()
	return v, d.err == nil
}

func viewV2(b []byte) (msgView, bool) {
	var v msgView
	var lens [4]uint64
	total := uint64(0)
	for i := range lens {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)) {
			return v, false
		}
		lens[i], total, b = n, total+n, b[k:]
	}
	if total > uint64(len(b)) {
		return v, false
	}
	v.ids, b = b[:total], b[total:]
	rest := v.ids
	for i, dst := range [...]*[]byte{&v.regID, &v.senderID, &v.messageID, &v.collapseKey} {
		*dst, rest = rest[:lens[i]:lens[i]], rest[lens[i]:]
	}
	exp, k := binary.Varint(b)
	if k <= 0 || len(b) < k+1 {
		return v, false
	}
	v.expires, b = exp, b[k:]
	flags := b[0]
	n, k := binary.Uvarint(b[1:])
	if k <= 0 || n > uint64(len(b)-1-k) {
		return v, false
	}
	// Bytes after the tail are ignored: a later layout may add fields there.
	v.receipt, v.flags, v.form, v.tail = flags&flagReceipt != 0, flags, flags&formMask, b[1+k:1+k+int(n)]
	return v, flags&^(flagReceipt|formMask|flagHigh|flagIdle) == 0 && v.form <= formDeviceCopy
}

// decodeMessage decodes an encoded Message of either version. A version 2
// record costs two allocations: one string holding the four ids (the
// fields are substrings of it) and the payload.
func decodeMessage(deviceID string, seq uint64, b []byte) (store.Message, error) {
	v, ok := viewMessage(b)
	if !ok {
		return store.Message{}, errCorrupt
	}
	return v.message(deviceID, seq), nil
}

// message builds the store.Message v describes.
func (v *msgView) message(deviceID string, seq uint64) store.Message {
	m := store.Message{Seq: seq, DeviceID: deviceID, Expires: v.expires, Receipt: v.receipt,
		High: v.flags&flagHigh != 0, DelayWhileIdle: v.flags&flagIdle != 0}
	if v.ids != nil {
		s := string(v.ids)
		a, b, c := len(v.regID), len(v.regID)+len(v.senderID), len(v.regID)+len(v.senderID)+len(v.messageID)
		m.RegID, m.SenderID, m.MessageID, m.CollapseKey = s[:a], s[a:b], s[b:c], s[c:]
	} else {
		m.RegID, m.SenderID, m.MessageID, m.CollapseKey = string(v.regID), string(v.senderID), string(v.messageID), string(v.collapseKey)
	}
	m.Payload = v.payload()
	return m
}

// payload returns a copy of the message's payload, its device-copy prefix
// put back.
func (v *msgView) payload() []byte {
	if v.form != formDeviceCopy {
		if v.tail == nil {
			return nil
		}
		return append([]byte(nil), v.tail...)
	}
	p := make([]byte, 0, dcLiterals+len(v.messageID)+len(v.regID)+len(v.senderID)+len(v.tail))
	p = append(p, dcMessageID...)
	p = append(p, v.messageID...)
	p = append(p, dcTo...)
	p = append(p, v.regID...)
	p = append(p, dcFrom...)
	p = append(p, v.senderID...)
	p = append(p, dcCategory...)
	return append(p, v.tail...)
}

// messageRegID reads only the RegID of an encoded Message, without copying
// the payload. The returned slice aliases b.
func messageRegID(b []byte) ([]byte, error) {
	v, ok := viewMessage(b)
	if !ok {
		return nil, errCorrupt
	}
	return v.regID, nil
}

// messageKeys reads only the RegID and CollapseKey of an encoded Message,
// without copying anything: both slices alias b.
func messageKeys(b []byte) (regID, collapseKey []byte, err error) {
	v, ok := viewMessage(b)
	if !ok {
		return nil, nil, errCorrupt
	}
	return v.regID, v.collapseKey, nil
}
