package e2e

import (
	"crypto/tls"
	"net"
	"testing"
	"time"
)

// TestCertificateCoversGoogleHosts: an app server that reaches ccsd under
// the host name it was written for (fcm-xmpp.googleapis.com mapped to ccsd,
// say in /etc/hosts) passes its hostname check against the certificate
// ccsd made, on the XMPP and the HTTPS ports alike.
func TestCertificateCoversGoogleHosts(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	for _, addr := range []string{s.Info.XMPPAddr, s.Info.HTTPAddr} {
		for _, name := range []string{"fcm-xmpp.googleapis.com", "gcm-xmpp.googleapis.com", "gcm-http.googleapis.com", "android.googleapis.com", "fcm.googleapis.com", "gcm.googleapis.com"} {
			cfg := s.tls.Clone()
			cfg.ServerName = name
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
			if err != nil {
				t.Errorf("TLS to %s as %s: %v", addr, name, err)
				continue
			}
			c.Close()
		}
	}
}
