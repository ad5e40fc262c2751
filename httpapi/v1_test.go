package httpapi

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ccsd/ccsd/auth"
	"github.com/ccsd/ccsd/internal/limit"
	"github.com/ccsd/ccsd/topics"
)

const v1TokenURI = "https://127.0.0.1:8443/token"

// v1Fixture is the app fixture with a service-account key of its sender
// and the public API serving /token, the v1 send and the Instance ID API.
type v1Fixture struct {
	*appFixture
	api  *API
	file auth.ServiceAccountFile
	key  *rsa.PrivateKey
}

func newV1Fixture(t *testing.T, logins LoginLimiter) *v1Fixture {
	t.Helper()
	fx := newAppFixture(t)
	accounts := auth.NewServiceAccounts(fx.db, auth.ServiceAccountLimits{})
	f, err := accounts.Create(context.Background(), fx.sender, v1TokenURI)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode([]byte(f.PrivateKey))
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	api := New(Config{Devices: auth.NewDevices(fx.db), Logger: zerolog.Nop()})
	NewTokenHandler(accounts, logins, zerolog.Nop()).Mount(api)
	NewV1Handler(fx.router(t), accounts, logins, zerolog.Nop()).Mount(api)
	iid := NewIIDHandler(topics.New(fx.db, 0), fx.senders, auth.NewDevices(fx.db), logins, zerolog.Nop())
	iid.AcceptBearer(accounts)
	iid.Mount(api)
	return &v1Fixture{appFixture: fx, api: api, file: f, key: k.(*rsa.PrivateKey)}
}

// jwt signs claims (over the defaults golang.org/x/oauth2/jwt writes)
// with key under kid; a nil value deletes a claim.
func (fx *v1Fixture) jwt(t *testing.T, key *rsa.PrivateKey, kid string, over map[string]any) string {
	t.Helper()
	now := time.Now()
	claims := map[string]any{"iss": fx.file.ClientEmail, "aud": fx.file.TokenURI, "scope": auth.ScopeMessaging,
		"iat": now.Add(-10 * time.Second).Unix(), "exp": now.Add(-10*time.Second + time.Hour).Unix()}
	for k, v := range over {
		if v == nil {
			delete(claims, k)
		} else {
			claims[k] = v
		}
	}
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": kid})
	c, _ := json.Marshal(claims)
	signed := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func (fx *v1Fixture) do(method, path, authz, ctype, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.RemoteAddr = "192.0.2.1:1234"
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	rec := httptest.NewRecorder()
	fx.api.ServeHTTP(rec, req)
	return rec
}

// grant posts a JWT-bearer grant for assertion.
func (fx *v1Fixture) grant(assertion string) *httptest.ResponseRecorder {
	form := url.Values{"grant_type": {auth.GrantTypeJWTBearer}, "assertion": {assertion}}
	return fx.do("POST", "/token", "", "application/x-www-form-urlencoded", form.Encode())
}

// token gets an access token from /token.
func (fx *v1Fixture) token(t *testing.T) string {
	t.Helper()
	rec := fx.grant(fx.jwt(t, fx.key, fx.file.PrivateKeyID, nil))
	var v map[string]any
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &v) != nil {
		t.Fatalf("/token = %d %s", rec.Code, rec.Body)
	}
	if v["token_type"] != "Bearer" || v["expires_in"] != float64(3600) || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("/token answered %v (Cache-Control %q)", v, rec.Header().Get("Cache-Control"))
	}
	return v["access_token"].(string)
}

// TestTokenRefusals: every refused grant is a 400 with the OAuth2 error
// code it deserves, and grants nothing.
func TestTokenRefusals(t *testing.T) {
	fx := newV1Fixture(t, nil)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	kid := fx.file.PrivateKeyID
	cases := []struct {
		name, assertion, code string
	}{
		{"bad signature", fx.jwt(t, other, kid, nil), "invalid_grant"},
		{"unknown kid", fx.jwt(t, fx.key, "0123", nil), "invalid_grant"},
		{"wrong aud", fx.jwt(t, fx.key, kid, map[string]any{"aud": "https://oauth2.googleapis.com/token"}), "invalid_grant"},
		{"expired", fx.jwt(t, fx.key, kid, map[string]any{"iat": time.Now().Add(-3 * time.Hour).Unix(), "exp": time.Now().Add(-2 * time.Hour).Unix()}), "invalid_grant"},
		{"no scope", fx.jwt(t, fx.key, kid, map[string]any{"scope": nil}), "invalid_scope"},
		{"garbage", "not-a-jwt", "invalid_grant"},
	}
	for _, c := range cases {
		rec := fx.grant(c.assertion)
		var e oauthError
		if rec.Code != 400 || json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error != c.code || e.Description == "" {
			t.Errorf("%s: %d %s, want 400 {\"error\":%q,...}", c.name, rec.Code, rec.Body, c.code)
		}
	}
	for _, c := range []struct {
		name, ctype, body, code string
		status                  int
	}{
		{"wrong grant type", "application/x-www-form-urlencoded", "grant_type=client_credentials&assertion=x", "unsupported_grant_type", 400},
		{"no assertion", "application/x-www-form-urlencoded", "grant_type=" + url.QueryEscape(auth.GrantTypeJWTBearer), "invalid_request", 400},
		{"JSON body", "application/json", `{"grant_type":"x"}`, "invalid_request", 400},
		{"too large", "", "assertion=" + strings.Repeat("a", maxTokenBody), "invalid_request", 413},
	} {
		rec := fx.do("POST", "/token", "", c.ctype, c.body)
		var e oauthError
		if rec.Code != c.status || json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, rec.Code, rec.Body, c.status, c.code)
		}
	}
}

// TestTokenThrottle: refused assertions spend the address's failed-login
// budget; past it /token answers 429 with Retry-After, even a good one.
func TestTokenThrottle(t *testing.T) {
	fx := newV1Fixture(t, limit.NewLogins(3, 0))
	bad := fx.jwt(t, fx.key, "nope", nil)
	for i := range 3 {
		if rec := fx.grant(bad); rec.Code != 400 {
			t.Fatalf("refusal %d = %d %s", i, rec.Code, rec.Body)
		}
	}
	rec := fx.grant(fx.jwt(t, fx.key, fx.file.PrivateKeyID, nil))
	if rec.Code != 429 || rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), `"error":"slow_down"`) {
		t.Fatalf("past the budget: %d %s (Retry-After %q)", rec.Code, rec.Body, rec.Header().Get("Retry-After"))
	}
}

// v1Err decodes Google's error shape and returns status and errorCode.
func v1Err(t *testing.T, rec *httptest.ResponseRecorder) (code int, status, errorCode string) {
	t.Helper()
	var b v1ErrorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &b); err != nil {
		t.Fatalf("not Google's error shape: %s", rec.Body)
	}
	if b.Error.Code != rec.Code || b.Error.Message == "" {
		t.Fatalf("error body %s for status %d", rec.Body, rec.Code)
	}
	for _, d := range b.Error.Details {
		if d.Type == fcmErrorType {
			errorCode = d.ErrorCode
		}
	}
	return b.Error.Code, b.Error.Status, errorCode
}

// TestV1Send: with a token from /token, a send to a registration is
// queued for its device and named projects/P/messages/ID; validate_only
// queues nothing; each refusal has its status and FcmError code.
func TestV1Send(t *testing.T) {
	fx := newV1Fixture(t, nil)
	bearer := "Bearer " + fx.token(t)
	path := "/v1/projects/" + fx.sender + "/messages:send"
	send := func(body string) *httptest.ResponseRecorder {
		return fx.do("POST", path, bearer, "application/json", body)
	}
	rec := send(`{"message":{"token":"` + fx.reg + `","data":{"k":"v"},"android":{"priority":"HIGH"}}}`)
	var ok v1Response
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &ok) != nil || !strings.HasPrefix(ok.Name, "projects/"+fx.sender+"/messages/0:") {
		t.Fatalf("send = %d %s", rec.Code, rec.Body)
	}
	ms, _ := fx.db.Pending("d1", 0, 0, time.Now().UnixMilli())
	if len(ms) != 1 || !strings.Contains(string(ms[0].Payload), `"data":{"k":"v"}`) || !strings.Contains(string(ms[0].Payload), `"priority":"high"`) ||
		!strings.HasSuffix(ok.Name, "/"+ms[0].MessageID) {
		t.Fatalf("queued %v for answer %s", ms, ok.Name)
	}
	rec = send(`{"validate_only":true,"message":{"token":"` + fx.reg + `"}}`)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"name":"projects/`+fx.sender+`/messages/fake_message_id"`) {
		t.Fatalf("validate_only = %d %s", rec.Code, rec.Body)
	}
	if ms, _ := fx.db.Pending("d1", 0, 0, time.Now().UnixMilli()); len(ms) != 1 {
		t.Fatalf("validate_only queued a message: %d queued", len(ms))
	}
	rec = send(`{"message":{"topic":"news"}}`)
	if rec.Code != 200 || !strings.HasPrefix(rec.Body.String(), `{"name":"projects/`+fx.sender+`/messages/`) {
		t.Fatalf("topic send = %d %s", rec.Code, rec.Body)
	}

	if rec := send(`{"message":{"token":"nope"}}`); !strings.Contains(rec.Body.String(), `"message":"The registration token is not a valid FCM registration token"`) {
		t.Fatalf("unknown token answered %s: want FCM's message", rec.Body)
	}
	other := fx.register(t, "REG-2", "d2")
	_ = fx.db.Unregister(context.Background(), other)
	for _, c := range []struct {
		name, path, authz, body string
		code                    int
		status, errorCode       string
	}{
		{"unknown token", path, bearer, `{"message":{"token":"nope"}}`, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT"},
		{"unregistered", path, bearer, `{"message":{"token":"REG-2"}}`, 404, "NOT_FOUND", "UNREGISTERED"},
		{"bad body", path, bearer, `{"message":{"token":"x","data":{"k":1}}}`, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT"},
		{"not JSON", path, bearer, `{`, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT"},
		{"too large", path, bearer, `{"message":{"token":"` + strings.Repeat("x", MaxV1Body) + `"}}`, 413, "INVALID_ARGUMENT", "INVALID_ARGUMENT"},
		{"another project", "/v1/projects/999/messages:send", bearer, `{"message":{"token":"x"}}`, 403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH"},
		{"no credentials", path, "", `{"message":{"token":"x"}}`, 401, "UNAUTHENTICATED", ""},
		{"API key", path, "key=" + fx.appFixture.key, `{"message":{"token":"x"}}`, 401, "UNAUTHENTICATED", ""},
		{"unknown token credential", path, "Bearer made-up", `{"message":{"token":"x"}}`, 401, "UNAUTHENTICATED", ""},
	} {
		rec := fx.do("POST", c.path, c.authz, "application/json", c.body)
		code, status, ec := v1Err(t, rec)
		if code != c.code || status != c.status || ec != c.errorCode {
			t.Errorf("%s: %d %s %s, want %d %s %s (%s)", c.name, code, status, ec, c.code, c.status, c.errorCode, rec.Body)
		}
		if code == 401 && rec.Header().Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", c.name)
		}
	}
}

// TestV1SelfSignedJWTAndIIDBearer: a self-signed service-account JWT is
// accepted as the Bearer token itself, and the Instance ID API takes
// Bearer tokens with access_token_auth: true.
func TestV1SelfSignedJWTAndIIDBearer(t *testing.T) {
	fx := newV1Fixture(t, nil)
	self := "Bearer " + fx.jwt(t, fx.key, fx.file.PrivateKeyID, map[string]any{"aud": auth.FCMAudience, "scope": nil})
	rec := fx.do("POST", "/v1/projects/"+fx.sender+"/messages:send", self, "application/json", `{"message":{"token":"`+fx.reg+`"}}`)
	if rec.Code != 200 {
		t.Fatalf("self-signed JWT send = %d %s", rec.Code, rec.Body)
	}
	req := httptest.NewRequest("POST", "/iid/v1:batchAdd", strings.NewReader(`{"to":"/topics/a","registration_tokens":["`+fx.reg+`","nope"]}`))
	req.Header.Set("Authorization", "Bearer "+fx.token(t))
	req.Header.Set("access_token_auth", "true")
	out := httptest.NewRecorder()
	fx.api.ServeHTTP(out, req)
	if out.Code != 200 || strings.TrimSpace(out.Body.String()) != `{"results":[{},{"error":"NOT_FOUND"}]}` {
		t.Fatalf("batchAdd with Bearer = %d %s", out.Code, out.Body)
	}
	if rec := fx.do("GET", "/iid/info/"+fx.reg, "Bearer wrong", "", ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("IID with a wrong Bearer token = %d %s", rec.Code, rec.Body)
	}
}
