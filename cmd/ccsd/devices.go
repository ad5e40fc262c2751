package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/ccsd/ccsd/auth"
	"github.com/ccsd/ccsd/internal/limit"
)

// deviceFlags are the serve flags that bound what anonymous device clients
// may create: per-address rates of /checkin and /c2dm/register3, the
// registrations of one device, and the lifetime of unused devices.
type deviceFlags struct {
	checkinBurst     int
	checkinInterval  time.Duration
	registerBurst    int
	registerInterval time.Duration
	maxRegistrations int
	unusedTTL        time.Duration
	sweepInterval    time.Duration
}

func (d *deviceFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&d.checkinBurst, "checkin-burst", 20, "checkins one source address may make at once (0: no limit); past it 429")
	fs.DurationVar(&d.checkinInterval, "checkin-interval", time.Second, "after the burst, one more checkin per address per this interval")
	fs.IntVar(&d.registerBurst, "register-burst", 20, "/c2dm/register3 requests one source address may make at once (0: no limit); past it 429 Error=SERVICE_NOT_AVAILABLE")
	fs.DurationVar(&d.registerInterval, "register-interval", time.Second, "after the burst, one more register3 request per address per this interval")
	fs.IntVar(&d.maxRegistrations, "max-device-registrations", auth.DefaultMaxRegistrations, "live registrations (apps) one device may hold; past it Error=TOO_MANY_REGISTRATIONS")
	fs.DurationVar(&d.unusedTTL, "unused-device-ttl", auth.DefaultUnusedDeviceTTL, "a device that has not both logged in over XMPP and registered an app this long after its checkin is deleted with its registrations (0: never)")
	fs.DurationVar(&d.sweepInterval, "device-sweep-interval", time.Minute, "how often unused devices are looked for")
}

func (d *deviceFlags) check() error {
	for _, r := range []struct {
		name  string
		burst int
		every time.Duration
	}{{"checkin", d.checkinBurst, d.checkinInterval}, {"register", d.registerBurst, d.registerInterval}} {
		if r.burst < 0 {
			return fmt.Errorf("--%s-burst %d: must not be negative", r.name, r.burst)
		}
		if r.burst > 0 && r.every <= 0 {
			return fmt.Errorf("--%s-interval %v: must be positive", r.name, r.every)
		}
	}
	if d.maxRegistrations < 1 {
		return fmt.Errorf("--max-device-registrations %d: must be at least 1", d.maxRegistrations)
	}
	if d.unusedTTL < 0 {
		return fmt.Errorf("--unused-device-ttl %v: must not be negative", d.unusedTTL)
	}
	if d.sweepInterval <= 0 {
		return fmt.Errorf("--device-sweep-interval %v: must be positive", d.sweepInterval)
	}
	return nil
}

// limits returns the auth limits the flags ask for.
func (d *deviceFlags) limits() auth.DeviceLimits {
	return auth.DeviceLimits{MaxRegistrations: d.maxRegistrations, UnusedTTL: d.unusedTTL}
}

// rates returns the per-address limiters of /checkin and /c2dm/register3.
func (d *deviceFlags) rates() (checkin, register *limit.Rate) {
	return limit.NewRate(d.checkinBurst, d.checkinInterval, 0), limit.NewRate(d.registerBurst, d.registerInterval, 0)
}

// startDeviceExpiry runs devices.ExpireUnused at once and then every
// interval, until the returned stop is called; stop waits for a pass under
// way, so the store can be closed after it.
func startDeviceExpiry(devices *auth.Devices, interval time.Duration, log zerolog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			expireDevices(ctx, devices, log)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); <-done }
}

// expireDevices runs one expiry pass and logs what it did.
func expireDevices(ctx context.Context, devices *auth.Devices, log zerolog.Logger) {
	n, err := devices.ExpireUnused(ctx)
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error().Err(err).Msg("expire unused devices")
	}
	if n > 0 {
		log.Info().Int("devices", n).Msg("deleted devices that never logged in or registered an app")
	}
}
