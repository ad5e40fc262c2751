package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// runInfoFile is the name, in the data directory, of the file a running
// server describes itself in.
const runInfoFile = "run.json"

// runInfo is DATA/run.json: written once every listener is up, with the
// addresses actually bound (so ":0" in tests resolves to real ports), and
// removed on a clean exit.
type runInfo struct {
	PID        int    `json:"pid"`
	XMPPAddr   string `json:"xmpp_addr"`
	DeviceAddr string `json:"device_addr"`
	HTTPAddr   string `json:"http_addr"`
	AdminAddr  string `json:"admin_addr"`
	// Instance is a random id of this server run, also reported by the
	// admin /healthz, so a client can tell a stale run.json from a live one.
	Instance string `json:"instance"`
}

// writeRunInfo writes info to dir/run.json atomically (temporary file, then
// rename), so a reader never sees half a file.
func writeRunInfo(dir string, info runInfo) error {
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", runInfoFile, err)
	}
	tmp, err := os.CreateTemp(dir, runInfoFile+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", runInfoFile, err)
	}
	_, werr := tmp.Write(append(b, '\n'))
	cerr := tmp.Close()
	if werr != nil || cerr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", tmp.Name(), firstErr(werr, cerr))
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, runInfoFile)); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", runInfoFile, err)
	}
	return nil
}

// readRunInfo reads dir/run.json.
func readRunInfo(dir string) (runInfo, error) {
	var info runInfo
	b, err := os.ReadFile(filepath.Join(dir, runInfoFile))
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return info, fmt.Errorf("parse %s: %w", filepath.Join(dir, runInfoFile), err)
	}
	return info, nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
