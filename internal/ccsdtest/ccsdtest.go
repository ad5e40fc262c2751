// Package ccsdtest runs the real ccsd binary for tests: it builds it once,
// starts "ccsd serve" on random 127.0.0.1 ports and a data directory, and
// stops, kills or restarts it. The end-to-end tests and the load tool's
// tests share it, so there is one way to start a server in a test.
package ccsdtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Build compiles cmd/ccsd to dir/ccsd, with the race detector when race is
// true, and returns the binary's path.
func Build(dir string, race bool) (string, error) {
	bin := filepath.Join(dir, "ccsd")
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, "github.com/ccsd/ccsd/cmd/ccsd")...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building ccsd: %w\n%s", err, out.Bytes())
	}
	return bin, nil
}

// RunInfo is DATA/run.json, written by ccsd serve once it listens.
type RunInfo struct {
	PID        int    `json:"pid"`
	XMPPAddr   string `json:"xmpp_addr"`
	DeviceAddr string `json:"device_addr"`
	HTTPAddr   string `json:"http_addr"`
	AdminAddr  string `json:"admin_addr"`
}

// Proc is one ccsd serve process on a data directory.
type Proc struct {
	Bin, Data string
	Args      []string // extra serve flags, kept across restarts
	Info      RunInfo
	// Sender and APIKey are the default sender ccsd printed on the first
	// start of the data directory.
	Sender, APIKey string

	cmd    *exec.Cmd
	exited chan error
	log    *lockedBuffer
}

// Start runs ccsd serve on data with every listener on a random loopback
// port, plus extra flags, and returns once it listens.
func Start(bin, data string, extra ...string) (*Proc, error) {
	p := &Proc{Bin: bin, Data: data, Args: extra, log: new(lockedBuffer)}
	return p, p.start()
}

func (p *Proc) start() error {
	_, err := os.Stat(filepath.Join(p.Data, "ccsd.db"))
	fresh := errors.Is(err, os.ErrNotExist)
	_ = os.Remove(filepath.Join(p.Data, "run.json"))
	args := append([]string{"serve", "--data", p.Data,
		"--xmpp-addr", "127.0.0.1:0", "--device-addr", "127.0.0.1:0",
		"--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--log-format", "json", "--log-level", "debug"}, p.Args...)
	cmd := exec.Command(p.Bin, args...)
	cmd.Stderr = p.log
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	p.cmd, p.exited = cmd, make(chan error, 1)
	lines := make(chan string, 1)
	go func() {
		r := bufio.NewReader(out)
		if line, err := r.ReadString('\n'); err == nil {
			lines <- line
		}
		_, _ = r.WriteTo(p.log)
	}()
	go func() { p.exited <- cmd.Wait() }()

	if fresh {
		// The first start of a data directory creates a default sender and
		// prints it as one JSON line on stdout.
		select {
		case line := <-lines:
			var cred struct {
				SenderID string `json:"sender_id"`
				APIKey   string `json:"api_key"`
			}
			if err := json.Unmarshal([]byte(line), &cred); err != nil || cred.SenderID == "" || cred.APIKey == "" {
				p.Kill()
				return fmt.Errorf("default sender line %q: %v", line, err)
			}
			p.Sender, p.APIKey = cred.SenderID, cred.APIKey
		case err := <-p.exited:
			p.cmd = nil
			return fmt.Errorf("ccsd exited at its first start: %v\n%s", err, p.Logs())
		case <-time.After(30 * time.Second):
			p.Kill()
			return fmt.Errorf("ccsd printed no default sender\n%s", p.Logs())
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(p.Data, "run.json"))
		if err == nil && json.Unmarshal(b, &p.Info) == nil && p.Info.PID == cmd.Process.Pid {
			return nil
		}
		select {
		case err := <-p.exited:
			p.cmd = nil
			return fmt.Errorf("ccsd exited before listening: %v\n%s", err, p.Logs())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.Kill()
			return fmt.Errorf("ccsd did not write run.json\n%s", p.Logs())
		}
	}
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error {
	if p.cmd == nil {
		return errors.New("ccsdtest: not running")
	}
	return p.cmd.Process.Signal(sig)
}

// Stop sends sig and waits up to 30 s for the process to exit, killing it
// then. It returns the process's exit error.
func (p *Proc) Stop(sig os.Signal) error {
	if p.cmd == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(sig)
	return p.Wait()
}

// Wait waits up to 30 s for the process to exit on its own, killing it
// then.
func (p *Proc) Wait() error {
	if p.cmd == nil {
		return nil
	}
	select {
	case err := <-p.exited:
		p.cmd = nil
		return err
	case <-time.After(30 * time.Second):
		p.Kill()
		return errors.New("ccsdtest: ccsd did not exit in 30 s; killed")
	}
}

// Kill ends the process with SIGKILL, as a crash would.
func (p *Proc) Kill() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	p.cmd = nil
}

// Restart starts the process again on the same data directory and flags.
func (p *Proc) Restart() error {
	if p.cmd != nil {
		return errors.New("ccsdtest: still running")
	}
	return p.start()
}

// Logs returns everything the process wrote to stderr (and stdout after
// the first line).
func (p *Proc) Logs() string { return p.log.String() }

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
