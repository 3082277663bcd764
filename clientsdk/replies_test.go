package clientsdk_test

import (
	"testing"

	"github.com/dartup/dartup/clientsdk"
)

func TestIsReplySubject(t *testing.T) {
	for _, c := range []struct {
		subject string
		extra   []string
		want    bool
	}{
		{"_INBOX.abc", nil, true},
		{"_INBOX.abc.1", nil, true},
		{"_INBOX_APP.chat.xyz.2", nil, true},
		{"_MY.abc", []string{"_MY"}, true},
		{"_MY.abc", nil, false},
		{"_INBOX", nil, false},
		{"_INBOX.", nil, false},
		{"_INBOX..a", nil, false},
		{"_INBOX.*", nil, false},
		{"_INBOX.>", nil, false},
		{"_INBOX.a*b", nil, false},
		{"_INBOX.a b", nil, false},
		{"_INBOX.a\tb", nil, false},
		{"_INBOX.a\x00", nil, false},
		{"_INBOXX.abc", nil, false},
		{"_INBOX_chat.abc", nil, false},
		{"dartup.api.kill", nil, false},
		{"$JS.API.STREAM.DELETE.KV_DARTUP_APPS", nil, false},
		{"$KV.DARTUP_SECRETS.worker-hmac", nil, false},
		{"lambda.x", nil, false},
		{"", nil, false},
	} {
		if got := clientsdk.IsReplySubject(c.subject, c.extra...); got != c.want {
			t.Errorf("IsReplySubject(%q, %q) = %v, want %v", c.subject, c.extra, got, c.want)
		}
	}
}

func TestValidateReplyPrefix(t *testing.T) {
	for p, ok := range map[string]bool{"_MY": true, "replies-1": true, "": false, "$JS": false, "dartup": false,
		"lambda": false, "a.b": false, "a*": false, "a>": false, "a b": false} {
		if err := clientsdk.ValidateReplyPrefix(p); (err == nil) != ok {
			t.Errorf("ValidateReplyPrefix(%q) = %v, want ok=%v", p, err, ok)
		}
	}
}

func TestWorkerInboxesAreReplySubjects(t *testing.T) {
	if p := clientsdk.WorkerInboxPrefix("chat"); !clientsdk.IsReplySubject(p + ".nuid.1") {
		t.Fatalf("a worker's inbox %s.… is not a reply subject", p)
	}
}
