package main

import (
	"context"
	"log/slog"

	"github.com/rs/zerolog"
)

// slogFor returns a log/slog logger writing to log, so that the device
// package (which imports nothing but the standard library) logs like the
// rest of ccsd.
func slogFor(log zerolog.Logger) *slog.Logger {
	return slog.New(zerologHandler{log: log})
}

// zerologHandler is a slog.Handler over a zerolog.Logger.
type zerologHandler struct {
	log   zerolog.Logger
	attrs []slog.Attr
}

// Enabled follows the zerolog logger's level.
func (h zerologHandler) Enabled(_ context.Context, l slog.Level) bool {
	return h.log.GetLevel() <= zlevel(l)
}

// Handle writes the record as one zerolog event, errors as errors.
func (h zerologHandler) Handle(_ context.Context, r slog.Record) error {
	e := h.log.WithLevel(zlevel(r.Level))
	add := func(a slog.Attr) bool {
		switch v := a.Value.Resolve().Any().(type) {
		case error:
			e = e.AnErr(a.Key, v)
		default:
			e = e.Interface(a.Key, v)
		}
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	e.Msg(r.Message)
	return nil
}

// WithAttrs returns a handler adding attrs to every record.
func (h zerologHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	h.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return h
}

// WithGroup is not used by the device package; groups are flattened.
func (h zerologHandler) WithGroup(string) slog.Handler { return h }

func zlevel(l slog.Level) zerolog.Level {
	switch {
	case l >= slog.LevelError:
		return zerolog.ErrorLevel
	case l >= slog.LevelWarn:
		return zerolog.WarnLevel
	case l >= slog.LevelInfo:
		return zerolog.InfoLevel
	}
	return zerolog.DebugLevel
}
