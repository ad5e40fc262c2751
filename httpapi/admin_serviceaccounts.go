package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/ccsd/ccsd/auth"
)

// ServiceAccountService makes and lists the senders' service-account
// keys; *auth.ServiceAccounts implements it.
type ServiceAccountService interface {
	Create(ctx context.Context, senderID, tokenURI string) (auth.ServiceAccountFile, error)
	Keys(senderID string) ([]auth.ServiceKeyInfo, error)
	DeleteKey(ctx context.Context, senderID, keyID string) error
}

// ServiceAccountAdmin serves the service-account endpoints of the admin
// listener:
//
//	POST   /admin/senders/{id}/serviceaccounts        {"token_uri": "optional"} -> 201 the JSON key file
//	GET    /admin/senders/{id}/serviceaccounts        -> 200 [{"private_key_id", "client_email", "token_uri", "created"}]
//	DELETE /admin/senders/{id}/serviceaccounts/{kid}  -> 200 {} (the key and its tokens stop working)
//
// The key file is the only copy of the private key: the answer is not
// cached (Cache-Control: no-store).
type ServiceAccountAdmin struct {
	svc      ServiceAccountService
	tokenURI string // the default token_uri: https://HOST:PORT/token of the HTTPS listener
	admin    *Admin
}

// NewServiceAccountAdmin returns the handler; tokenURI is the token_uri
// written when a request names none.
func NewServiceAccountAdmin(svc ServiceAccountService, tokenURI string) *ServiceAccountAdmin {
	return &ServiceAccountAdmin{svc: svc, tokenURI: tokenURI}
}

// Mount registers the endpoints on the admin handler.
func (s *ServiceAccountAdmin) Mount(a *Admin) {
	s.admin = a
	a.handleFunc("POST /admin/senders/{id}/serviceaccounts", s.create)
	a.handleFunc("GET /admin/senders/{id}/serviceaccounts", s.list)
	a.handleFunc("DELETE /admin/senders/{id}/serviceaccounts/{kid}", s.delete)
}

// CreateServiceAccountRequest is the body of POST
// /admin/senders/{id}/serviceaccounts.
type CreateServiceAccountRequest struct {
	// TokenURI overrides the token_uri written into the file (the
	// server's public name when it is reached by another one than its
	// listen address).
	TokenURI string `json:"token_uri,omitempty"`
}

// ServiceKeyJSON is a listed key.
type ServiceKeyJSON struct {
	PrivateKeyID string    `json:"private_key_id"`
	ClientEmail  string    `json:"client_email"`
	TokenURI     string    `json:"token_uri"`
	Created      time.Time `json:"created"`
}

func (s *ServiceAccountAdmin) create(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r, DefaultMaxBodyBytes)
	if !ok {
		return
	}
	var req CreateServiceAccountRequest
	if len(bytes.TrimSpace(body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil || dec.More() {
			writeError(w, http.StatusBadRequest, `body must be empty or {"token_uri": "https://HOST:PORT/token"}`)
			return
		}
	}
	uri := req.TokenURI
	if uri == "" {
		uri = s.tokenURI
	}
	id := r.PathValue("id")
	f, err := s.svc.Create(r.Context(), id, uri)
	if err != nil {
		s.writeErr(w, err, "create service account")
		return
	}
	s.admin.log.Info().Str("sender_id", id).Str("private_key_id", f.PrivateKeyID).Str("token_uri", uri).Msg("service-account key created")
	noStore(w)
	writeJSON(w, http.StatusCreated, f)
}

func (s *ServiceAccountAdmin) list(w http.ResponseWriter, r *http.Request) {
	keys, err := s.svc.Keys(r.PathValue("id"))
	if err != nil {
		s.writeErr(w, err, "list service accounts")
		return
	}
	out := make([]ServiceKeyJSON, 0, len(keys))
	for _, k := range keys {
		out = append(out, ServiceKeyJSON{PrivateKeyID: k.ID, ClientEmail: k.ClientEmail, TokenURI: k.TokenURI, Created: k.Created.UTC()})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *ServiceAccountAdmin) delete(w http.ResponseWriter, r *http.Request) {
	id, kid := r.PathValue("id"), r.PathValue("kid")
	if err := s.svc.DeleteKey(r.Context(), id, kid); err != nil {
		s.writeErr(w, err, "delete service account key")
		return
	}
	s.admin.log.Info().Str("sender_id", id).Str("private_key_id", kid).Msg("service-account key deleted")
	writeJSON(w, http.StatusOK, struct{}{})
}

// writeErr maps the auth errors to statuses.
func (s *ServiceAccountAdmin) writeErr(w http.ResponseWriter, err error, what string) {
	switch {
	case errors.Is(err, auth.ErrUnknownSender), errors.Is(err, auth.ErrUnknownKey):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, auth.ErrSenderRevoked):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, auth.ErrTooManyKeys):
		writeError(w, http.StatusConflict, err.Error()+": delete one first")
	case errors.Is(err, auth.ErrInvalidTokenURI):
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		s.admin.internal(w, err, what)
	}
}
