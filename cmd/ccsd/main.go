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

// activeLogger is the logger run set up, for the hard-exit message of main's
// signal handler.
var activeLogger atomic.Pointer[zerolog.Logger]

func main() {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		cancel(fmt.Errorf("received signal %v", sig))
		sig = <-sigs
		log := zerolog.New(os.Stderr).With().Timestamp().Logger()
		if l := activeLogger.Load(); l != nil {
			log = *l
		}
		log.Error().Str("signal", sig.String()).Msg("second signal: exiting at once")
		os.Exit(1)
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}
