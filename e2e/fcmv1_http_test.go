package e2e

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// keyFile is the part of a service-account file a plain-HTTP client uses.
type keyFile struct {
	ProjectID    string `json:"project_id"`
	PrivateKeyID string `json:"private_key_id"`
	PrivateKey   string `json:"private_key"`
	ClientEmail  string `json:"client_email"`
	TokenURI     string `json:"token_uri"`
}

// assertion signs the JWT a client sends to /token (RFC 7523), as the
// README's openssl lines do.
func (k keyFile) assertion(t *testing.T, claims map[string]any) string {
	t.Helper()
	block, _ := pem.Decode([]byte(k.PrivateKey))
	priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": k.PrivateKeyID})
	c, _ := json.Marshal(claims)
	signed := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, priv.(*rsa.PrivateKey), crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// httpVersions are clients that speak HTTP/2 and HTTP/1.1 only, trusting
// ccsd's certificate: the SDKs use either.
func (s *server) httpVersions() map[int]*http.Client {
	h2 := &http.Transport{TLSClientConfig: s.tls.Clone(), ForceAttemptHTTP2: true}
	h1 := &http.Transport{TLSClientConfig: s.tls.Clone(), TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}
	return map[int]*http.Client{2: {Transport: h2, Timeout: wait}, 1: {Transport: h1, Timeout: wait}}
}

// do sends one request with c and checks the protocol version it got.
func do(t *testing.T, c *http.Client, proto int, req *http.Request) (int, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.ProtoMajor != proto {
		t.Fatalf("%s %s over HTTP/%d, want HTTP/%d", req.Method, req.URL.Path, resp.ProtoMajor, proto)
	}
	return resp.StatusCode, string(b)
}

// TestFCMv1PlainHTTP is the README's plain-HTTP route, over HTTP/2 and
// HTTP/1.1: the key printed by "ccsd serviceaccount create", a JWT signed
// with it exchanged at /token for an access token, messages:send with
// that token (the device receives it) and with a self-signed JWT as the
// Bearer token; the admin endpoint writes a token_uri it is given.
func TestFCMv1PlainHTTP(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	out, err := exec.Command(s.Bin, "serviceaccount", "create", "--sender", s.Sender, "--data", s.Data).Output()
	if err != nil {
		t.Fatalf("serviceaccount create: %v", err)
	}
	var k keyFile
	if err := json.Unmarshal(out, &k); err != nil || k.TokenURI != "https://"+s.Info.HTTPAddr+"/token" {
		t.Fatalf("printed key %s: %v", out, err)
	}
	_, reg, dev := s.onlineDeviceClient(s.Sender, "com.example")
	for proto, c := range s.httpVersions() {
		now := time.Now()
		form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {k.assertion(t, map[string]any{
			"iss": k.ClientEmail, "aud": k.TokenURI, "scope": "https://www.googleapis.com/auth/firebase.messaging",
			"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})}}
		req, _ := http.NewRequest("POST", k.TokenURI, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		code, body := do(t, c, proto, req)
		var tok struct {
			AccessToken string `json:"access_token"`
			ExpiresIn   int    `json:"expires_in"`
			TokenType   string `json:"token_type"`
		}
		if code != 200 || json.Unmarshal([]byte(body), &tok) != nil || tok.AccessToken == "" || tok.ExpiresIn != 3600 || tok.TokenType != "Bearer" {
			t.Fatalf("HTTP/%d /token = %d %s", proto, code, body)
		}
		selfSigned := k.assertion(t, map[string]any{"iss": k.ClientEmail, "sub": k.ClientEmail, "aud": "https://fcm.googleapis.com/",
			"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
		for i, bearer := range []string{tok.AccessToken, selfSigned} {
			v := map[string]string{"proto": strconv.Itoa(proto), "via": []string{"token", "jwt"}[i]}
			b, _ := json.Marshal(map[string]any{"message": map[string]any{"token": reg, "data": v}})
			req, _ := http.NewRequest("POST", "https://"+s.Info.HTTPAddr+"/v1/projects/"+k.ProjectID+"/messages:send", strings.NewReader(string(b)))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+bearer)
			if code, body := do(t, c, proto, req); code != 200 || !strings.Contains(body, `"name":"projects/`+s.Sender+`/messages/`) {
				t.Fatalf("HTTP/%d send with the %s = %d %s", proto, v["via"], code, body)
			}
			expectData(t, dev, "via", v["via"])
		}
	}

	b, _ := json.Marshal(map[string]string{"token_uri": "https://push.example.org/token"})
	resp, err := http.Post("http://"+s.Info.AdminAddr+"/admin/senders/"+s.Sender+"/serviceaccounts", "application/json", strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var k2 keyFile
	if resp.StatusCode != 201 || json.NewDecoder(resp.Body).Decode(&k2) != nil || k2.TokenURI != "https://push.example.org/token" ||
		k2.PrivateKeyID == k.PrivateKeyID || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("admin create = %s %+v", resp.Status, k2)
	}
}
