package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// BenchmarkSendMulticast1000 measures one legacy /gcm/send request to 1000
// registration_ids, through the real router and store. The ids are unknown
// (each answered InvalidRegistration), so the figure is the per-request
// decoding, validation and routing, not the commits.
func BenchmarkSendMulticast1000(b *testing.B) {
	fx := newAppFixture(b)
	h := NewSendHandler(fx.router(b), fx.senders, nil, zerolog.Nop())
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = strconv.Quote("UNKNOWN-" + strconv.Itoa(i))
	}
	body := `{"registration_ids":[` + strings.Join(ids, ",") + `],"collapse_key":"c","time_to_live":60,"data":{"k":"v","n":1}}`
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := httptest.NewRequest("POST", "/gcm/send", strings.NewReader(body))
		req.Header.Set("Authorization", "key="+fx.key)
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"failure":1000`) {
			b.Fatalf("answer %d %s", w.Code, w.Body.String()[:min(200, w.Body.Len())])
		}
	}
}
