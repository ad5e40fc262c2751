package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/ccsd/ccsd/auth"
)

// SenderOptions is the body of PATCH /admin/senders/{id}: the options to
// change; an absent one keeps its value.
type SenderOptions struct {
	// GroupCopies: the sender's app servers get a copy of each message a
	// device sends to its group, as an upstream message "to" the
	// notification_key.
	GroupCopies *bool `json:"group_copies,omitempty"`
}

// patchSender sets a sender's options and answers the sender as stored.
func (a *Admin) patchSender(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	body, ok := readBody(w, r, DefaultMaxBodyBytes)
	if !ok {
		return
	}
	var opts SenderOptions
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&opts); err != nil || dec.More() || opts.GroupCopies == nil {
		writeError(w, http.StatusBadRequest, `body must be {"group_copies": true|false}`)
		return
	}
	s, err := a.senders.SetGroupCopies(id, *opts.GroupCopies)
	switch {
	case errors.Is(err, auth.ErrUnknownSender):
		writeError(w, http.StatusNotFound, "unknown sender "+id)
		return
	case err != nil:
		a.internal(w, err, "set sender options")
		return
	}
	a.log.Info().Str("sender_id", id).Bool("group_copies", s.GroupCopies).Msg("sender options changed")
	writeJSON(w, http.StatusOK, senderJSON(s))
}
