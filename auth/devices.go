package auth

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ccsd/ccsd/store"
)

// DeviceStore is the part of the store that Devices uses. Every
// store.Backend satisfies it.
type DeviceStore interface {
	PutDevice(d store.Device) error
	Device(id string) (store.Device, error)
	MarkDeviceLoggedIn(ctx context.Context, id string) error
	Sender(id string) (store.Sender, error)
	RegisterLimited(r store.Registration, max int) (store.Registration, error)
	FindRegistration(deviceID, senderID, app string) (store.Registration, error)
	Unregister(ctx context.Context, id string) error
	SweepDevices(ctx context.Context, createdBefore time.Time) (store.DeviceSweepStats, error)
}

// maxAppLen bounds an app category (an Android package name is at most a
// few hundred bytes in practice).
const maxAppLen = 255

// ErrTooManyRegistrations means the device already holds its maximum of
// registrations (DeviceLimits.MaxRegistrations).
var ErrTooManyRegistrations = errors.New("auth: too many registrations on the device")

// Defaults of DeviceLimits, used by NewDevices.
const (
	// DefaultMaxRegistrations is about the apps of a well-filled phone.
	DefaultMaxRegistrations = 100
	// DefaultUnusedDeviceTTL gives a phone a day to log in and register an
	// app after its checkin.
	DefaultUnusedDeviceTTL = 24 * time.Hour
)

// DeviceLimits bounds what one device identity may hold, so that an
// anonymous client cannot fill the disk with devices and registrations.
type DeviceLimits struct {
	// MaxRegistrations bounds the live registrations of one device; past
	// it Register fails with ErrTooManyRegistrations. 0: no bound.
	MaxRegistrations int
	// UnusedTTL is how old a device must be before ExpireUnused judges it:
	// one that never logged in over XMPP, or has no live registration,
	// is then deleted with its registrations. 0: devices never expire.
	UnusedTTL time.Duration
}

// Devices checks devices in, authenticates them, and registers and
// unregisters the apps on them. It is safe for concurrent use.
type Devices struct {
	store  DeviceStore
	limits DeviceLimits
	now    func() time.Time
}

// NewDevices returns a Devices backed by s with the default limits.
func NewDevices(s DeviceStore) *Devices {
	return NewDevicesWithLimits(s, DeviceLimits{
		MaxRegistrations: DefaultMaxRegistrations,
		UnusedTTL:        DefaultUnusedDeviceTTL,
	})
}

// NewDevicesWithLimits returns a Devices backed by s with the given limits.
func NewDevicesWithLimits(s DeviceStore, l DeviceLimits) *Devices {
	return &Devices{store: s, limits: l, now: time.Now}
}

// Checkin creates a new device identity and returns its android id (a random
// non-zero uint64 in decimal) and its security token (192 random bits,
// base64url). The token is returned only here; the store keeps its SHA-256
// digest.
func (d *Devices) Checkin(ctx context.Context) (androidID, securityToken string, err error) {
	token := randomString(24)
	rec := store.Device{SecretHash: hashSecret(token), Created: d.now()}
	for attempt := 0; attempt < idAttempts; attempt++ {
		if err := ctx.Err(); err != nil {
			return "", "", fmt.Errorf("auth: checkin: %w", err)
		}
		rec.ID = randomUint64()
		err := d.store.PutDevice(rec)
		if errors.Is(err, store.ErrExists) {
			continue // android id collided; draw another
		}
		if err != nil {
			return "", "", fmt.Errorf("auth: checkin: store device %s: %w", rec.ID, err)
		}
		return rec.ID, token, nil
	}
	return "", "", errors.New("auth: checkin: could not draw an unused android id")
}

// Authenticate checks a device's credentials: user is the android id and
// password the security token. It returns the android id as the identity.
// It is the check of the HTTP endpoints; XMPP logins use Login.
//
// An unknown device or a wrong token gives an error wrapping
// ErrBadCredentials; any other error is internal.
func (d *Devices) Authenticate(ctx context.Context, user, password string) (string, error) {
	rec, err := d.authenticate(ctx, user, password)
	if err != nil {
		return "", err
	}
	return rec.ID, nil
}

// Login is Authenticate for a device's XMPP session, and records the
// device's first login: only a device that has logged in is kept past
// DeviceLimits.UnusedTTL. The record is read anyway to check the token, so
// only the first login of a device costs a store write. Login implements
// xmpp.Authenticator.
func (d *Devices) Login(ctx context.Context, user, password string) (string, error) {
	rec, err := d.authenticate(ctx, user, password)
	if err != nil {
		return "", err
	}
	if rec.LoggedIn {
		return rec.ID, nil
	}
	err = d.store.MarkDeviceLoggedIn(ctx, rec.ID)
	if errors.Is(err, store.ErrNotFound) { // expired since it was read
		return "", fmt.Errorf("%w: unknown device %q", ErrBadCredentials, user)
	}
	if err != nil {
		return "", fmt.Errorf("auth: login device %q: %w", user, err)
	}
	return rec.ID, nil
}

// authenticate checks the credentials and returns the device's record.
func (d *Devices) authenticate(ctx context.Context, user, password string) (store.Device, error) {
	if err := ctx.Err(); err != nil {
		return store.Device{}, fmt.Errorf("auth: authenticate device: %w", err)
	}
	if user == "" {
		secretMatches(password, dummyHash)
		return store.Device{}, fmt.Errorf("%w: empty android id", ErrBadCredentials)
	}
	rec, err := d.store.Device(user)
	if errors.Is(err, store.ErrNotFound) {
		secretMatches(password, dummyHash)
		return store.Device{}, fmt.Errorf("%w: unknown device %q", ErrBadCredentials, user)
	}
	if err != nil {
		return store.Device{}, fmt.Errorf("auth: authenticate device %q: %w", user, err)
	}
	if !secretMatches(password, rec.SecretHash) {
		return store.Device{}, fmt.Errorf("%w: wrong security token for device %q", ErrBadCredentials, user)
	}
	return rec, nil
}

// ExpireUnused deletes the devices older than DeviceLimits.UnusedTTL that
// never logged in or have no live registration, with their registrations
// and queued messages, in bounded store calls (each one commit, so other
// writers interleave). It returns how many devices it deleted. With no TTL
// it does nothing.
func (d *Devices) ExpireUnused(ctx context.Context) (int, error) {
	if d.limits.UnusedTTL <= 0 {
		return 0, nil
	}
	cutoff := d.now().Add(-d.limits.UnusedTTL)
	total := 0
	for {
		st, err := d.store.SweepDevices(ctx, cutoff)
		if err != nil {
			return total, fmt.Errorf("auth: expire unused devices: %w", err)
		}
		total += st.Devices
		if !st.More {
			return total, nil
		}
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("auth: expire unused devices: %w", err)
		}
	}
}

// Register registers app on the device for the sender and returns the
// registration id (registration token). Registering the same (device,
// sender, app) again returns the same id while it is live.
//
// Past DeviceLimits.MaxRegistrations live registrations on the device, a
// new (sender, app) is refused; an existing one still gets its id.
//
// Errors: ErrInvalidParameters (empty sender or bad app), ErrUnknownDevice
// (also for a device that expires meanwhile), ErrUnknownSender,
// ErrSenderRevoked, ErrTooManyRegistrations; anything else is internal.
func (d *Devices) Register(ctx context.Context, deviceID, senderID, app string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("auth: register: %w", err)
	}
	if err := checkRegistrationParams(deviceID, senderID, app); err != nil {
		return "", err
	}
	if _, err := d.store.Device(deviceID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return "", fmt.Errorf("%w: %q", ErrUnknownDevice, deviceID)
		}
		return "", fmt.Errorf("auth: register: look up device %q: %w", deviceID, err)
	}
	sender, err := d.store.Sender(senderID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return "", fmt.Errorf("%w: %q", ErrUnknownSender, senderID)
		}
		return "", fmt.Errorf("auth: register: look up sender %q: %w", senderID, err)
	}
	if sender.Revoked {
		return "", fmt.Errorf("%w: %q", ErrSenderRevoked, senderID)
	}
	rec := store.Registration{DeviceID: deviceID, SenderID: senderID, App: app, Created: d.now()}
	for attempt := 0; ; attempt++ {
		rec.ID = newRegistrationID()
		reg, err := d.store.RegisterLimited(rec, d.limits.MaxRegistrations)
		if errors.Is(err, store.ErrExists) && attempt < idAttempts {
			continue // registration id collided; draw another
		}
		switch {
		case errors.Is(err, store.ErrNotFound):
			return "", fmt.Errorf("%w: %q", ErrUnknownDevice, deviceID)
		case errors.Is(err, store.ErrTooManyRegistrations):
			return "", fmt.Errorf("%w: device %q has %d", ErrTooManyRegistrations, deviceID, d.limits.MaxRegistrations)
		case err != nil:
			return "", fmt.Errorf("auth: register app %q of device %q for sender %q: %w", app, deviceID, senderID, err)
		}
		return reg.ID, nil
	}
}

// Unregister removes the live registration of app on the device for the
// sender, with its queued messages. Unregistering what is not registered is
// not an error. The sender may be unknown or revoked.
//
// Errors: ErrInvalidParameters; anything else is internal.
func (d *Devices) Unregister(ctx context.Context, deviceID, senderID, app string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("auth: unregister: %w", err)
	}
	if err := checkRegistrationParams(deviceID, senderID, app); err != nil {
		return err
	}
	reg, err := d.store.FindRegistration(deviceID, senderID, app)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrUnregistered) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("auth: unregister: find app %q of device %q for sender %q: %w", app, deviceID, senderID, err)
	}
	if err := d.store.Unregister(ctx, reg.ID); err != nil && !errors.Is(err, store.ErrUnregistered) && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("auth: unregister %s: %w", reg.ID, err)
	}
	return nil
}

// registrationIDPrefix sits between the two random parts of a registration
// id, as in the tokens GCM issued ("<instance id>:APA91b<...>").
const registrationIDPrefix = ":APA91b"

// newRegistrationID returns a fresh registration id: 128 random bits
// (22 base64url characters), ":APA91b", then 256 more random bits
// (43 characters). Only [A-Za-z0-9_:-] occur, so the id is safe in URLs,
// form values and JSON without escaping.
func newRegistrationID() string {
	return randomString(16) + registrationIDPrefix + randomString(32)
}

// checkRegistrationParams validates the (device, sender, app) triple of a
// register or unregister request.
func checkRegistrationParams(deviceID, senderID, app string) error {
	switch {
	case deviceID == "":
		return fmt.Errorf("%w: empty device id", ErrInvalidParameters)
	case senderID == "":
		return fmt.Errorf("%w: empty sender", ErrInvalidParameters)
	case !validApp(app):
		return fmt.Errorf("%w: bad app %q", ErrInvalidParameters, app)
	}
	return nil
}

// validApp reports whether app can be an app category: 1 to 255 bytes of
// valid UTF-8 without spaces or control characters.
func validApp(app string) bool {
	if app == "" || len(app) > maxAppLen || !utf8.ValidString(app) {
		return false
	}
	for _, r := range app {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return false
		}
	}
	return true
}
