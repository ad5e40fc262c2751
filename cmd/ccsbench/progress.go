package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// live is the one-line progress display: on a terminal it rewrites one
// line of stderr (carriage return, erase to end of line) once a second;
// anywhere else it shows nothing, so logs and test output stay clean. Log
// lines go through it so that they never land in the middle of the
// progress line.
type live struct {
	w        io.Writer
	on       bool
	interval time.Duration // between two updates: a second
	mu       sync.Mutex
	shown    bool // a progress line is on the screen
}

// newLive returns the display for w: active only when w is a terminal.
func newLive(w io.Writer) *live { return &live{w: w, on: isTerminal(w), interval: time.Second} }

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// show replaces the progress line with line.
func (l *live) show(line string) {
	if !l.on {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "\r\x1b[K%s", line)
	l.shown = true
}

// logf writes a log line, erasing the progress line first; the next tick
// draws it again.
func (l *live) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.shown {
		fmt.Fprint(l.w, "\r\x1b[K")
		l.shown = false
	}
	fmt.Fprintf(l.w, format, args...)
}

// clear erases the progress line.
func (l *live) clear() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.shown {
		fmt.Fprint(l.w, "\r\x1b[K")
		l.shown = false
	}
}

// every shows line() every interval until the returned stop is called,
// which erases it. Off a terminal it starts nothing.
func (l *live) every(line func() string) (stop func()) {
	if !l.on {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(l.interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				l.show(line())
			case <-done:
				return
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
		l.clear()
	}
}

// progressLine returns the progress line of a message scenario: counts so
// far and the rates of the last second.
func (b *bench) progressLine() func() string {
	var lastAns, lastDel int64
	last := time.Now()
	return func() string {
		now := time.Now()
		ans, del := b.answered.Load(), b.unique.Load()
		dt := now.Sub(last).Seconds()
		line := fmt.Sprintf("%5.1fs  answered %d/%d (%.0f/s)  delivered %d (%.0f/s)  nacked %d",
			now.Sub(b.start).Seconds(), ans, b.n, float64(ans-lastAns)/dt, del, float64(del-lastDel)/dt, b.nacked.Load())
		lastAns, lastDel, last = ans, del, now
		return line
	}
}
