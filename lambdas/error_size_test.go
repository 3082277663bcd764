package lambdas_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go"
)

// TestHugeFunctionErrorIsAnswered: a function that posts a 5 MiB error
// message (accepted: the Runtime API takes error bodies up to 6 MiB) still
// answers its caller, with the message cut to MaxErrorMessageBytes; the
// reply carried it twice and was over the payload limit, so the caller got
// nothing until its own timeout.
func TestHugeFunctionErrorIsAnswered(t *testing.T) {
	r := newRig(t)
	apiFile := r.deployPuppet(spec(t, "big", 1, nil))
	replies := make(chan *nats.Msg, 1)
	sub, err := r.client.ChanSubscribe(nats.NewInbox(), replies)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.client.PublishRequest(clientsdk.LambdaSubject("big"), sub.Subject, []byte("x")); err != nil {
		t.Fatal(err)
	}
	base := workerBase(t, apiFile)
	id := getNext(t, base, []byte("x"))
	body := `{"errorMessage":"` + strings.Repeat("m", 5<<20) + `","errorType":"Big"}`
	req, _ := http.NewRequest(http.MethodPost, base+"invocation/"+id+"/error", bytes.NewReader([]byte(body)))
	if code := doChecked(t, req); code != 202 {
		t.Fatalf("POST error: %d", code)
	}
	select {
	case m := <-replies:
		e := clientsdk.ErrorFromMsg(m)
		if e == nil || e.Code != 500 || e.Type != "Big" || !strings.HasPrefix(e.Message, strings.Repeat("m", clientsdk.MaxErrorMessageBytes)) ||
			!strings.Contains(e.Message, "bytes cut") || len(e.Message) > clientsdk.MaxErrorMessageBytes+100 {
			t.Fatalf("the caller got %v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the caller got no answer")
	}
}
