package clientsdk

import (
	"strings"
	"testing"
)

func TestInflightRecord(t *testing.T) {
	id := NewRequestID()
	tp := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	for _, c := range []struct {
		name   string
		b      []byte
		ok     bool
		reply  string
		tracep string
	}{
		{"whole", InflightRecord(id, "_INBOX.x.y", tp), true, "_INBOX.x.y", tp},
		{"no reply nor trace", InflightRecord(id, "", ""), true, "", ""},
		{"stale tail after a shorter record", append(InflightRecord(id, "_INBOX.a", ""), "ZZZZ\nmore\n"...), true, "_INBOX.a", ""},
		{"cleared", append([]byte{0}, InflightRecord(id, "_INBOX.a", "")[1:]...), false, "", ""},
		{"empty", nil, false, "", ""},
		{"bad id", []byte("1\nnot an id\n_INBOX.a\n\n"), false, "", ""},
		{"cut short", InflightRecord(id, "_INBOX.a", tp)[:10], false, "", ""},
	} {
		gotID, reply, tracep, ok := ParseInflightRecord(c.b)
		if ok != c.ok || ok && (gotID != id || reply != c.reply || tracep != c.tracep) {
			t.Errorf("%s: %q %q %q %v", c.name, gotID, reply, tracep, ok)
		}
	}
	if InflightRecord(id, "_INBOX."+strings.Repeat("a", MaxInflightRecord), "") != nil {
		t.Error("a record over the bound was made")
	}
	if InflightRecord(id, "_INBOX.a\n1", "") != nil {
		t.Error("a record with a newline in a field was made")
	}
}
