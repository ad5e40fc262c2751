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

// DeviceStore is the part of the store that Devices uses. *store.DB
// satisfies it.
type DeviceStore interface {
	PutDevice(d store.Device) error
	Device(id string) (store.Device, error)
	Sender(id string) (store.Sender, error)
	Register(r store.Registration) (store.Registration, error)
	FindRegistration(deviceID, senderID, app string) (store.Registration, error)
	Unregister(ctx context.Context, id string) error
}

// maxAppLen bounds an app category (an Android package name is at most a
// few hundred bytes in practice).
const maxAppLen = 255

// Devices checks devices in, authenticates them, and registers and
// unregisters the apps on them. It is safe for concurrent use.
type Devices struct {
	store DeviceStore
	now   func() time.Time
}

// NewDevices returns a Devices backed by s.
func NewDevices(s DeviceStore) *Devices {
	return &Devices{store: s, now: time.Now}
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
//
// An unknown device or a wrong token gives an error wrapping
// ErrBadCredentials; any other error is internal. Authenticate implements
// xmpp.Authenticator.
func (d *Devices) Authenticate(ctx context.Context, user, password string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("auth: authenticate device: %w", err)
	}
	if user == "" {
		secretMatches(password, dummyHash)
		return "", fmt.Errorf("%w: empty android id", ErrBadCredentials)
	}
	rec, err := d.store.Device(user)
	if errors.Is(err, store.ErrNotFound) {
		secretMatches(password, dummyHash)
		return "", fmt.Errorf("%w: unknown device %q", ErrBadCredentials, user)
	}
	if err != nil {
		return "", fmt.Errorf("auth: authenticate device %q: %w", user, err)
	}
	if !secretMatches(password, rec.SecretHash) {
		return "", fmt.Errorf("%w: wrong security token for device %q", ErrBadCredentials, user)
	}
	return rec.ID, nil
}

// Register registers app on the device for the sender and returns the
// registration id (registration token). Registering the same (device,
// sender, app) again returns the same id while it is live.
//
// Errors: ErrInvalidParameters (empty sender or bad app), ErrUnknownDevice,
// ErrUnknownSender, ErrSenderRevoked; anything else is internal.
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
		reg, err := d.store.Register(rec)
		if errors.Is(err, store.ErrExists) && attempt < idAttempts {
			continue // registration id collided; draw another
		}
		if err != nil {
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
