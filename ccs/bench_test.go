package ccs

import "testing"

// BenchmarkDecodeDownstream measures what every downstream message costs
// before routing: decoding one stanza and validating it.
func BenchmarkDecodeDownstream(b *testing.B) {
	payload := []byte(`{"to":"REG-1","message_id":"m-1","collapse_key":"c","time_to_live":60,"data":{"k":"v","n":1}}`)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		st, serr := Decode(payload)
		if serr != nil {
			b.Fatal(serr)
		}
		if _, n := st.Downstream(); n != nil {
			b.Fatal(n)
		}
	}
}
