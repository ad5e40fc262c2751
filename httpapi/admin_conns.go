package httpapi

import (
	"errors"
	"net/http"
	"time"

	"github.com/ccsd/ccsd/fanout"
)

// The live connections of this node, for the operator, and draining on
// demand (spec §7):
//
//	GET  /admin/connections[?kind=app|device] -> 200 [ConnectionJSON, ...], oldest first
//	POST /admin/drain                   -> 202 {"drained": N}: every app-server connection open now
//	POST /admin/connections/{id}/drain  -> 202 {"drained": 1}; 404 unknown id; 409 a device session
//
// A drained connection is sent CONNECTION_DRAINING, and closed once what
// it carried is answered (bounded by --drain-grace); the 202 does not wait
// for that. New connections are accepted as usual.

// ConnectionService is what the connection endpoints need; *fanout.Router
// implements it.
type ConnectionService interface {
	Sessions() []fanout.SessionInfo
	DrainAppServers() int
	DrainConn(id string) error
}

// ConnectionJSON is one live connection as GET /admin/connections shows it.
type ConnectionJSON struct {
	ID       string    `json:"id"`        // e.g. "app-12", "dev-40": the side and the conn field of its log lines
	Kind     string    `json:"kind"`      // "app" or "device"
	Identity string    `json:"identity"`  // sender id or device id
	Remote   string    `json:"remote"`    // peer address
	Since    time.Time `json:"since"`     // RFC 3339, UTC
	Pending  int       `json:"pending"`   // sent by the peer, not answered yet
	InFlight int       `json:"in_flight"` // sent to the peer, not acked yet
	Draining bool      `json:"draining"`  // sent CONNECTION_DRAINING
}

// DrainResponse is the answer of the drain endpoints: how many connections
// started draining (one already draining is not counted again).
type DrainResponse struct {
	Drained int `json:"drained"`
}

// mountConnections adds the connection endpoints when cfg has a service.
func (a *Admin) mountConnections(conns ConnectionService) {
	if conns == nil {
		return
	}
	a.conns = conns
	a.handleFunc("GET /admin/connections", a.listConnections)
	a.handleFunc("POST /admin/drain", a.drainAll)
	a.handleFunc("POST /admin/connections/{id}/drain", a.drainOne)
}

func (a *Admin) listConnections(w http.ResponseWriter, r *http.Request) {
	kind := r.URL.Query().Get("kind")
	if kind != "" && kind != fanout.KindApp && kind != fanout.KindDevice {
		writeError(w, http.StatusBadRequest, `kind must be "app" or "device"`)
		return
	}
	list := a.conns.Sessions()
	out := make([]ConnectionJSON, 0, len(list))
	for _, s := range list {
		if kind != "" && s.Kind != kind {
			continue
		}
		out = append(out, ConnectionJSON{
			ID: s.ID, Kind: s.Kind, Identity: s.Identity, Remote: s.Remote, Since: s.Since.UTC(),
			Pending: s.Pending, InFlight: s.InFlight, Draining: s.Draining,
		})
	}
	noStore(w)
	writeJSON(w, http.StatusOK, out)
}

func (a *Admin) drainAll(w http.ResponseWriter, _ *http.Request) {
	n := a.conns.DrainAppServers()
	a.log.Info().Int("connections", n).Msg("admin: draining every app-server connection")
	writeJSON(w, http.StatusAccepted, DrainResponse{Drained: n})
}

func (a *Admin) drainOne(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	err := a.conns.DrainConn(id)
	switch {
	case errors.Is(err, fanout.ErrUnknownConn):
		writeError(w, http.StatusNotFound, "no live connection "+id)
	case errors.Is(err, fanout.ErrNotAppServer):
		writeError(w, http.StatusConflict, "connection "+id+" is a device session: only app-server connections drain")
	case err != nil:
		a.internal(w, err, "drain connection")
	default:
		writeJSON(w, http.StatusAccepted, DrainResponse{Drained: 1})
	}
}
