package auth

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/ccsd/ccsd/store"
)

// GrantError is a refused token request, in OAuth2's terms (RFC 6749
// §5.2): Code is "invalid_request", "invalid_grant", "invalid_scope" or
// "unsupported_grant_type". It wraps ErrBadCredentials when the assertion
// is not a valid credential (a failed login).
type GrantError struct {
	Code, Description string
	bad               bool
}

// Error returns the code and description.
func (e *GrantError) Error() string { return "auth: " + e.Code + ": " + e.Description }

// Unwrap makes a refused credential an ErrBadCredentials.
func (e *GrantError) Unwrap() error {
	if e.bad {
		return ErrBadCredentials
	}
	return nil
}

func invalidGrant(desc string) *GrantError {
	return &GrantError{Code: "invalid_grant", Description: desc, bad: true}
}

// GrantTypeJWTBearer is RFC 7523's grant type.
const GrantTypeJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// AccessToken is a granted token.
type AccessToken struct {
	Token     string
	ExpiresIn time.Duration
	SenderID  string
}

// Grant answers an RFC 7523 JWT-bearer grant: assertion is a JWT signed
// with a service-account key, whose aud is the key's token_uri, whose iss
// is its client_email, whose iat/exp span at most TokenLifetime around
// now, and whose scope grants messaging. The token is random, returned
// only here and stored hashed. A refusal is a *GrantError; any other
// error is internal.
func (a *ServiceAccounts) Grant(ctx context.Context, assertion string) (AccessToken, error) {
	j, k, err := a.verified(assertion)
	if err != nil {
		return AccessToken{}, err
	}
	if !j.Aud.has(k.TokenURI) {
		return AccessToken{}, invalidGrant("Invalid JWT: aud must be this server's token_uri " + k.TokenURI)
	}
	if !j.hasScope() {
		return AccessToken{}, &GrantError{Code: "invalid_scope", Description: "the scope grants no messaging: ask for " + ScopeMessaging + " or " + ScopeCloudPlatform, bad: true}
	}
	tok := randomString(32)
	now := a.now()
	rec := store.AccessToken{Hash: hashSecret(tok), SenderID: k.SenderID, KeyID: k.ID, Expires: now.Add(TokenLifetime).UnixMilli()}
	if _, err := a.store.PutAccessToken(ctx, rec, a.limits.MaxTokens, now.UnixMilli()); err != nil {
		return AccessToken{}, fmt.Errorf("auth: store access token: %w", err)
	}
	return AccessToken{Token: tok, ExpiresIn: TokenLifetime, SenderID: k.SenderID}, nil
}

// verified parses the JWT and checks what every use of one needs: its
// key (by kid) of a live sender, the signature, iss (and sub, if given),
// and iat/exp.
func (a *ServiceAccounts) verified(s string) (*JWT, store.ServiceKey, error) {
	j, err := ParseJWT(s)
	if err != nil {
		return nil, store.ServiceKey{}, invalidGrant("Invalid JWT: not a compact RS256 JWS")
	}
	if j.KeyID == "" {
		return nil, store.ServiceKey{}, invalidGrant("Invalid JWT: no kid in the header")
	}
	k, err := a.store.ServiceKey(j.KeyID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, k, invalidGrant("Invalid JWT Signature: unknown key id")
	}
	if err != nil {
		return nil, k, fmt.Errorf("auth: service key: %w", err)
	}
	pub, err := x509.ParsePKIXPublicKey(k.PublicKey)
	rsaPub, ok := pub.(*rsa.PublicKey)
	if err != nil || !ok {
		return nil, k, fmt.Errorf("auth: stored public key of %s: %w", k.ID, errors.Join(err, errors.New("not an RSA key")))
	}
	if !j.Verify(rsaPub) {
		return nil, k, invalidGrant("Invalid JWT Signature.")
	}
	if j.Iss != k.ClientEmail || (j.Sub != "" && j.Sub != k.ClientEmail) {
		return nil, k, invalidGrant("Invalid JWT: iss must be the service account's client_email")
	}
	if ge := a.checkTimes(&j.Claims); ge != nil {
		return nil, k, ge
	}
	if err := a.liveSender(k.SenderID); err != nil {
		if errors.Is(err, ErrUnknownSender) || errors.Is(err, ErrSenderRevoked) {
			return nil, k, invalidGrant("the service account's sender is revoked")
		}
		return nil, k, err
	}
	return j, k, nil
}

// checkTimes checks iat and exp: exp after iat by at most TokenLifetime,
// iat not in the future and exp not in the past (both within
// MaxClockSkew).
func (a *ServiceAccounts) checkTimes(c *Claims) *GrantError {
	now := a.now().Unix()
	skew := int64(MaxClockSkew / time.Second)
	switch {
	case c.Iat == 0 || c.Exp == 0:
		return invalidGrant("Invalid JWT: iat and exp are required")
	case c.Exp <= c.Iat || c.Exp-c.Iat > int64(TokenLifetime/time.Second):
		return invalidGrant("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values")
	case c.Iat > now+skew:
		return invalidGrant("Invalid JWT: iat is in the future. Check your clock")
	case c.Exp < now-skew:
		return invalidGrant("Invalid JWT: the token has expired (exp is in the past)")
	}
	return nil
}

// AuthenticateBearer checks "Authorization: Bearer TOKEN" and returns
// the sender: a token Grant issued (live, of a live sender, whose key
// still exists), or a self-signed JWT of a service account whose scope
// grants messaging or whose aud is FCM's or this server's origin. A
// refused token wraps ErrBadCredentials; any other error is internal.
func (a *ServiceAccounts) AuthenticateBearer(ctx context.Context, token string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("auth: authenticate bearer token: %w", err)
	}
	if strings.Count(token, ".") == 2 {
		return a.selfSigned(token)
	}
	t, err := a.store.AccessToken(hashSecret(token), a.now().UnixMilli())
	if errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("%w: unknown or expired access token", ErrBadCredentials)
	}
	if err != nil {
		return "", fmt.Errorf("auth: access token: %w", err)
	}
	if err := a.liveSender(t.SenderID); err != nil {
		if errors.Is(err, ErrUnknownSender) || errors.Is(err, ErrSenderRevoked) {
			return "", fmt.Errorf("%w: %w", ErrBadCredentials, err)
		}
		return "", err
	}
	return t.SenderID, nil
}

// FCMAudience is the aud Google's libraries give a self-signed JWT for
// FCM.
const FCMAudience = "https://fcm.googleapis.com/"

// selfSigned checks a JWT presented as the Bearer token itself.
func (a *ServiceAccounts) selfSigned(token string) (string, error) {
	j, k, err := a.verified(token)
	var ge *GrantError
	if errors.As(err, &ge) {
		return "", fmt.Errorf("%w: %s", ErrBadCredentials, ge.Description)
	}
	if err != nil {
		return "", err
	}
	if !j.hasScope() && !j.Aud.has(FCMAudience) && !j.Aud.has(strings.TrimSuffix(FCMAudience, "/")) && !audIsOrigin(j.Aud, k.TokenURI) {
		return "", fmt.Errorf("%w: the JWT names no messaging scope and no FCM audience", ErrBadCredentials)
	}
	return k.SenderID, nil
}

// audIsOrigin reports whether aud names the origin of tokenURI
// (https://HOST:PORT, with or without the trailing slash).
func audIsOrigin(aud audience, tokenURI string) bool {
	u, err := url.Parse(tokenURI)
	if err != nil {
		return false
	}
	origin := u.Scheme + "://" + u.Host
	return aud.has(origin) || aud.has(origin+"/")
}
