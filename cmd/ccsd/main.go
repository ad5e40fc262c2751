package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/rs/zerolog"
)

// activeLogger is the logger run set up, for the hard-exit message of the
// signal handler.
var activeLogger atomic.Pointer[zerolog.Logger]

func main() {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go watchSignals(sigs, cancel, os.Exit)
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// watchSignals cancels the program's context on the first signal, which
// starts a graceful shutdown, and calls exit(1) on the second: an operator
// who presses Ctrl-C twice does not wait for the drain.
func watchSignals(sigs <-chan os.Signal, cancel context.CancelCauseFunc, exit func(code int)) {
	sig := <-sigs
	cancel(fmt.Errorf("received signal %v", sig))
	sig = <-sigs
	log := zerolog.New(os.Stderr).With().Timestamp().Logger()
	if l := activeLogger.Load(); l != nil {
		log = *l
	}
	log.Error().Str("signal", sig.String()).Msg("second signal: exiting at once")
	exit(exitFail)
}
