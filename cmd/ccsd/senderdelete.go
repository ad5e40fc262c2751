package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/rs/zerolog"

	"github.com/ccsd/ccsd/auth"
	"github.com/ccsd/ccsd/store"
)

// senderDeleted is the answer of "ccsd sender delete" and of
// DELETE /admin/senders/{id}: what went with the sender.
type senderDeleted struct {
	SenderID      string `json:"sender_id"`
	Deleted       bool   `json:"deleted"`
	Registrations int    `json:"registrations"` // unregistered by --force
	Messages      int    `json:"messages"`      // their queued device messages
	Upstream      int    `json:"upstream"`      // upstream messages and receipts not acked
	Groups        int    `json:"groups"`
}

// deleteSender deletes the sender on the store and wraps the store's
// refusals in the errors the command reports.
func deleteSender(ctx context.Context, db store.SenderDeleter, id string, force bool) (senderDeleted, error) {
	n, err := db.DeleteSender(ctx, id, force)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return senderDeleted{}, fmt.Errorf("%w: %q", auth.ErrUnknownSender, id)
	case errors.Is(err, store.ErrHasRegistrations):
		return senderDeleted{}, fmt.Errorf("%w (--force unregisters them, dropping their queued messages)", err)
	case err != nil:
		return senderDeleted{}, err
	}
	return senderDeleted{SenderID: id, Deleted: true, Registrations: n.Registrations, Messages: n.Messages, Upstream: n.Upstream, Groups: n.Groups}, nil
}

// senderDeleteHandler serves DELETE /admin/senders/{id}[?force=true] on
// the admin mux (which keeps its loopback and origin checks); closed ends
// the sender's app-server connections, as for a revoked sender.
func senderDeleteHandler(db store.SenderDeleter, closed func(id string) int, log zerolog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		out, err := deleteSender(r.Context(), db, id, r.URL.Query().Get("force") == "true")
		status := http.StatusOK
		switch {
		case errors.Is(err, auth.ErrUnknownSender):
			status = http.StatusNotFound
		case errors.Is(err, store.ErrHasRegistrations):
			status = http.StatusConflict
		case err != nil:
			status = http.StatusInternalServerError
			log.Error().Err(err).Str("sender_id", id).Msg("delete sender")
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		if err != nil {
			_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		n := closed(id)
		log.Info().Str("sender_id", id).Int("registrations", out.Registrations).Int("connections", n).Msg("deleted a sender")
		_ = json.NewEncoder(w).Encode(out)
	})
}

func (l localSenders) delete(ctx context.Context, id string, force bool) (senderDeleted, error) {
	return deleteSender(ctx, l.db, id, force)
}

func (c *adminClient) delete(ctx context.Context, id string, force bool) (senderDeleted, error) {
	var out senderDeleted
	path := "/admin/senders/" + url.PathEscape(id)
	if force {
		path += "?force=true"
	}
	err := c.call(ctx, "DELETE", path, nil, &out)
	if errors.Is(err, auth.ErrSenderExists) { // call's reading of a 409
		if multi, ok := err.(interface{ Unwrap() []error }); ok && len(multi.Unwrap()) == 2 {
			err = multi.Unwrap()[1]
		}
		return out, fmt.Errorf("%w: %w", store.ErrHasRegistrations, err)
	}
	return out, err
}
