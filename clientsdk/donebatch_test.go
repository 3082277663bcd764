package clientsdk_test

import (
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
)

func TestDoneBatchRoundTrip(t *testing.T) {
	tp := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	recs := []clientsdk.DoneRecord{
		{RequestID: "a1", Status: 200, Reply: "_INBOX.x.y", TraceParent: tp, Requeued: "tok", Ran: 120 * time.Microsecond, Ago: 30 * time.Microsecond},
		{RequestID: "b-2", Status: 500, ErrorType: "My Error\nType", Ran: time.Millisecond},
		{RequestID: "c_3", Status: 413, ErrorType: "RequestEntityTooLargeException", Reply: "has space", Requeued: "-"},
	}
	var b []byte
	for _, r := range recs {
		b = clientsdk.AppendDoneRecord(b, r)
	}
	if !clientsdk.IsDoneBatch(b) {
		t.Fatalf("%q is not a batch", b)
	}
	got, err := clientsdk.ParseDoneBatch(b)
	if err != nil || len(got) != 3 {
		t.Fatalf("%q: %d records, %v", b, len(got), err)
	}
	want := recs
	want[1].ErrorType = "My Error Type" // CleanErrorType
	want[2].Reply, want[2].Requeued = "", ""
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("record %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestParseDoneBatchRefuses(t *testing.T) {
	p := clientsdk.DoneBatchPrefix
	for _, c := range []struct{ name, body, why string }{
		{"no prefix", "a 200 1 1 - - - \n", "not a batched"},
		{"no end of line", p + "a 200 1 1 - - - ", "no end of line"},
		{"few fields", p + "a 200 1 1 - -\n", "not 8 fields"},
		{"bad id", p + "a*b 200 1 1 - - - \n", "request id"},
		{"bad status", p + "a 204 1 1 - - - \n", "status"},
		{"negative time", p + "a 200 -1 1 - - - \n", "time"},
		{"time past a day", p + "a 200 1 86400000001 - - - \n", "time"},
		{"too many", p + strings.Repeat("a 200 1 1 - - - \n", clientsdk.MaxDoneBatch+1), "more than"},
	} {
		_, err := clientsdk.ParseDoneBatch([]byte(c.body))
		if err == nil || !strings.Contains(err.Error(), c.why) {
			t.Errorf("%s: %v, want %q", c.name, err, c.why)
		}
	}
	// Records before a bad one are read.
	recs, err := clientsdk.ParseDoneBatch([]byte(p + "a 200 1 1 - - - \nb 200 x 1 - - - \n"))
	if len(recs) != 1 || recs[0].RequestID != "a" || err == nil {
		t.Fatalf("%+v, %v", recs, err)
	}
}

// FuzzDoneBatch: any body parses without panicking, to at most
// MaxDoneBatch records with valid ids and statuses, and what it reads
// writes back to the same records.
func FuzzDoneBatch(f *testing.F) {
	f.Add([]byte(clientsdk.DoneBatchPrefix + "a 200 1 1 _INBOX.a.b - - \n"))
	f.Add([]byte(clientsdk.DoneBatchPrefix + "a 500 1 1 - - t My Type\nb 413 0 0 - - - x\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		recs, _ := clientsdk.ParseDoneBatch(body)
		if len(recs) > clientsdk.MaxDoneBatch {
			t.Fatalf("%d records", len(recs))
		}
		var b []byte
		for _, r := range recs {
			if !clientsdk.ValidRequestID(r.RequestID) || (r.Status != 200 && r.Status != 413 && r.Status != 500) {
				t.Fatalf("record %+v", r)
			}
			b = clientsdk.AppendDoneRecord(b, r)
		}
		if len(recs) == 0 {
			return
		}
		again, err := clientsdk.ParseDoneBatch(b)
		if err != nil || len(again) != len(recs) {
			t.Fatalf("%q read back: %d, %v", b, len(again), err)
		}
		for i := range recs {
			r := recs[i]
			r.ErrorType = clientsdk.CleanErrorType(r.ErrorType)
			if again[i] != r {
				t.Fatalf("record %d: %+v, then %+v", i, recs[i], again[i])
			}
		}
	})
}
