package device

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// State is what a device keeps between processes: its identity from
// checkin and the registrations it made. The Client saves it in
// Config.StateFile as JSON, mode 0600 (the security token is a password).
type State struct {
	AndroidID     string         `json:"android_id"`
	SecurityToken string         `json:"security_token"`
	Registrations []Registration `json:"registrations,omitempty"`
}

// Registration is one app of the device registered for one sender.
type Registration struct {
	Sender string `json:"sender"`
	App    string `json:"app"`
	Token  string `json:"token"` // the registration id app servers send to
}

// checkedIn reports whether the state holds an identity.
func (s State) checkedIn() bool { return s.AndroidID != "" && s.SecurityToken != "" }

// find returns the index of the registration of (sender, app), or -1.
func (s *State) find(sender, app string) int {
	for i, r := range s.Registrations {
		if r.Sender == sender && r.App == app {
			return i
		}
	}
	return -1
}

// clone returns a copy sharing nothing with s.
func (s State) clone() State {
	s.Registrations = append([]Registration(nil), s.Registrations...)
	return s
}

// loadState reads path; a missing file is an empty state.
func loadState(path string) (State, error) {
	var s State
	if path == "" {
		return s, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("device: read state: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("device: state file %s: %w", path, err)
	}
	return s, nil
}

// saveState writes s to path atomically: a temporary file of mode 0600 in
// the same directory, synced, then renamed over path. A crash leaves the
// old file or the new one, never half of one.
func saveState(path string, s State) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("device: encode state: %w", err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".*") // CreateTemp makes it 0600
	if err != nil {
		return fmt.Errorf("device: save state: %w", err)
	}
	_, werr := tmp.Write(append(b, '\n'))
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("device: save state %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("device: save state: %w", err)
	}
	return nil
}
