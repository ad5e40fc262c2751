package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/rs/zerolog"

	"github.com/ccsd/ccsd/httpapi"
)

// writeEnv prints a created sender as shell export lines, so that
//
//	eval "$(ccsd sender create --env)"
//
// sets SENDER and KEY in the shell that runs it, and a failure (no
// output, exit 1) leaves them unset instead of set to an error text.
func writeEnv(stdout io.Writer, out any, log zerolog.Logger) int {
	c, ok := out.(httpapi.CreateSenderResponse)
	if !ok {
		log.Error().Msg("--env is for sender create only")
		return exitUsage
	}
	if _, err := fmt.Fprintf(stdout, "export SENDER=%s\nexport KEY=%s\n", shellQuote(c.SenderID), shellQuote(c.APIKey)); err != nil {
		log.Error().Err(err).Msg("write result")
		return exitFail
	}
	return exitOK
}

// shellQuote quotes s for a POSIX shell: in single quotes, with each
// single quote inside closed, escaped with a backslash and reopened.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
