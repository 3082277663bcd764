package clientsdk

import (
	"strings"
	"testing"
	"time"
)

func TestParseInflight(t *testing.T) {
	id, id2, id3 := NewRequestID(), NewRequestID(), NewRequestID()
	tp := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	held := func(b []byte, id string) []byte {
		return AppendInflightHeld(b, DoneRecord{RequestID: id, Status: 200, Reply: "_INBOX.r." + id[:4], Ran: 42 * time.Microsecond})
	}
	file := func(lines ...[]byte) []byte {
		b := []byte(InflightPrefix)
		for _, l := range lines {
			b = append(b, l...)
		}
		return b
	}
	run := AppendInflightRun(nil, id3, "_INBOX.x.y", tp, "tok1")
	for _, c := range []struct {
		name     string
		b        []byte
		held     []string // request ids
		run      string   // request id, "" for none
		readable bool
	}{
		{"held and running", file(held(nil, id), held(nil, id2), run), []string{id, id2}, id3, true},
		{"running only", file(run), nil, id3, true},
		{"held only", file(held(nil, id)), []string{id}, "", true},
		{"emptied", file([]byte{0}, held(nil, id), run), nil, "", true},
		{"a held line over the running one, stale tail after its end", file(held(nil, id), []byte{0}, run[len(run)/2:]), []string{id}, "", true},
		{"nothing after the running line is read", file(run, held(nil, id)), nil, id3, true},
		{"a line that cannot be read stops it", file(held(nil, id), []byte("garbage\n"), held(nil, id2)), []string{id}, "", false},
		{"cut short", file(held(nil, id))[:len(InflightPrefix)+10], nil, "", false},
		{"not an in-flight file", []byte("1\n" + id + "\n_INBOX.a\n\n"), nil, "", false},
		{"empty", nil, nil, "", false},
	} {
		h, r, err := ParseInflight(c.b)
		var got []string
		for _, x := range h {
			got = append(got, x.RequestID)
		}
		gotRun := ""
		if r != nil {
			gotRun = r.RequestID
		}
		if strings.Join(got, ",") != strings.Join(c.held, ",") || gotRun != c.run || (err == nil) != c.readable {
			t.Errorf("%s: held %v, running %q, err %v; want %v, %q, readable %v", c.name, got, gotRun, err, c.held, c.run, c.readable)
		}
	}
}

func TestInflightRunLine(t *testing.T) {
	id := NewRequestID()
	tp := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	_, r, err := ParseInflight(append([]byte(InflightPrefix), AppendInflightRun(nil, id, "_INBOX.a", tp, "tok")...))
	if err != nil || r == nil || r.RequestID != id || r.Reply != "_INBOX.a" || r.TraceParent != tp || r.Requeued != "tok" {
		t.Fatalf("round trip: %+v, %v", r, err)
	}
	_, r, err = ParseInflight(append([]byte(InflightPrefix), AppendInflightRun(nil, id, "", "", "")...))
	if err != nil || r == nil || r.Reply != "" || r.TraceParent != "" || r.Requeued != "" {
		t.Fatalf("no reply, trace nor token: %+v, %v", r, err)
	}
	for _, bad := range [][4]string{{id, "_INBOX.a b", "", ""}, {id, "_INBOX.a\nrun x", "", ""}, {"an id", "", "", ""}} {
		if b := AppendInflightRun(nil, bad[0], bad[1], bad[2], bad[3]); len(b) != 0 && bad[0] == id {
			t.Errorf("a line made of %q", bad)
		}
	}
	many := []byte(InflightPrefix)
	for range MaxInflightRecords + 1 {
		many = AppendInflightHeld(many, DoneRecord{RequestID: id, Status: 200})
	}
	if h, _, err := ParseInflight(many); len(h) != MaxInflightRecords || err == nil {
		t.Fatalf("%d records, err %v; want %d and an error", len(h), err, MaxInflightRecords)
	}
}

// FuzzParseInflight: whatever a worker writes, dartup reads at most
// MaxInflightRecords records with valid ids, and what it reads is written back
// the same way and read again unchanged.
func FuzzParseInflight(f *testing.F) {
	f.Add([]byte(InflightPrefix + "a 200 1 0 _INBOX.a.b - - \nrun b _INBOX.c - tok\n\x00junk"))
	f.Add([]byte(InflightPrefix + "a 500 1 0 - - t My Type\nrun b - - -\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		held, run, _ := ParseInflight(b)
		if len(held) > MaxInflightRecords {
			t.Fatalf("%d records", len(held))
		}
		out := []byte(InflightPrefix)
		for _, r := range held {
			if !ValidRequestID(r.RequestID) {
				t.Fatalf("record %+v", r)
			}
			out = AppendInflightHeld(out, r)
		}
		if run != nil {
			if !ValidRequestID(run.RequestID) {
				t.Fatalf("running %+v", run)
			}
			out = AppendInflightRun(out, run.RequestID, run.Reply, run.TraceParent, run.Requeued)
		}
		held2, run2, err := ParseInflight(out)
		if err != nil || len(held2) != len(held) || (run == nil) != (run2 == nil) || run != nil && *run != *run2 {
			t.Fatalf("%q read back: %d records, %+v, %v", out, len(held2), run2, err)
		}
	})
}
