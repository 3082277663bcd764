package broker_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/nats-io/nats.go"
)

var badNames = []string{"", "a.b", "*", ">", "a b", "-lead", "_lead", "tab\tname", "a/b", "ä", strings.Repeat("n", 300)}

// rawRequest sends body to subject and returns the service error the reply
// carries (nil for a success), checking that the headers and the JSON body
// agree.
func rawRequest(t *testing.T, nc *nats.Conn, subject string, body []byte) *clientsdk.Error {
	t.Helper()
	msg, err := nc.Request(subject, body, 10*time.Second)
	if err != nil {
		t.Fatalf("request %s %q: %v (want an answer, never a timeout or no responders)", subject, body, err)
	}
	codeHdr := msg.Header.Get(clientsdk.HeaderServiceErrorCode)
	e := clientsdk.ErrorFromMsg(msg)
	if e == nil {
		return nil
	}
	if codeHdr != strconv.Itoa(e.Code) {
		t.Errorf("%s %q: header code %q, body code %d", subject, body, codeHdr, e.Code)
	}
	if msg.Header.Get(clientsdk.HeaderServiceError) == "" {
		t.Errorf("%s %q: no %s header", subject, body, clientsdk.HeaderServiceError)
	}
	var j map[string]any
	if err := json.Unmarshal(msg.Data, &j); err != nil || j["errorMessage"] == "" || j["code"] == nil {
		t.Errorf("%s %q: error body is not JSON with code and errorMessage: %s", subject, body, msg.Data)
	}
	return e
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	b := testutil.StartBroker(t)
	nc := testutil.Connect(t, b.NATSURL())
	nameVerbs := []string{clientsdk.VerbDescribe, clientsdk.VerbKill, clientsdk.VerbStart, clientsdk.VerbRemove, clientsdk.VerbHistory, clientsdk.VerbRollback}

	type tc struct {
		name    string
		subject string
		body    string
		code    int
	}
	var cases []tc
	for _, v := range []string{"frobnicate", "LIST", "list.extra", "push.x.y", "$SRV"} {
		cases = append(cases, tc{"unknown verb " + v, clientsdk.APIPrefix + "." + v, `{}`, 404})
	}
	for _, v := range append(nameVerbs, clientsdk.VerbPush) {
		subj := clientsdk.APISubject(v)
		for _, body := range []string{``, `{`, `{not json`, `[1,2]`, `"name"`, `{"name": 5}`, `{"name":"ok","bogus":1}`, `{"name":"ok"} trailing`, `{"name":"ok"}{"name":"ok"}`} {
			cases = append(cases, tc{v + " body " + body, subj, body, 400})
		}
		for _, n := range badNames {
			body, _ := json.Marshal(map[string]string{"name": n})
			cases = append(cases, tc{v + " name " + n, subj, string(body), 400})
		}
	}
	for _, v := range nameVerbs {
		cases = append(cases, tc{v + " unknown app", clientsdk.APISubject(v), `{"name":"nosuchapp"}`, 404})
	}
	cases = append(cases,
		tc{"rollback negative version", clientsdk.APISubject(clientsdk.VerbRollback), `{"name":"ok","to":-1}`, 400},
		tc{"rollback version past uint64", clientsdk.APISubject(clientsdk.VerbRollback), `{"name":"ok","to":18446744073709551616}`, 400},
		tc{"rollback by too long", clientsdk.APISubject(clientsdk.VerbRollback), `{"name":"ok","by":"` + strings.Repeat("u", 300) + `"}`, 400},
		tc{"push bad kind", clientsdk.APISubject(clientsdk.VerbPush), `{"name":"ok","kind":"cron","runtime":"command","command":["true"]}`, 400},
		tc{"push bad runtime", clientsdk.APISubject(clientsdk.VerbPush), `{"name":"ok","kind":"daemon","runtime":"python"}`, 400},
		tc{"push missing artifact", clientsdk.APISubject(clientsdk.VerbPush),
			`{"name":"ok","kind":"daemon","runtime":"exe","artifact":{"object":"ok/` + strings.Repeat("a", 64) + `","sha256":"` + strings.Repeat("a", 64) + `","size":10}}`, 400},
	)

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := rawRequest(t, nc, c.subject, []byte(c.body))
			if e == nil {
				t.Fatalf("%s %q succeeded; want %d", c.subject, c.body, c.code)
			}
			if e.Code != c.code {
				t.Errorf("%s %q: %v; want code %d", c.subject, c.body, e, c.code)
			}
		})
	}

	// The server still works, and bad input did not write anything.
	c, err := clientsdk.Connect(context.Background(), clientsdk.WithConn(nc))
	if err != nil {
		t.Fatal(err)
	}
	apps, err := c.List(context.Background())
	if err != nil || len(apps) != 0 {
		t.Errorf("List after bad input = %v, %v; want no apps", apps, err)
	}
	if _, err := c.Info(context.Background()); err != nil {
		t.Errorf("Info after bad input: %v", err)
	}
}

// TestBadInputClientSDK checks the typed errors the Go client returns, from
// its own validation and from the server.
func TestBadInputClientSDK(t *testing.T) {
	t.Parallel()
	b := testutil.StartBroker(t)
	ctx := context.Background()
	c, err := clientsdk.Connect(ctx, clientsdk.WithURL(b.NATSURL()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	calls := map[string]func(string) error{
		"Describe": func(n string) error { _, err := c.Describe(ctx, n); return err },
		"Kill":     func(n string) error { _, err := c.Kill(ctx, n); return err },
		"Start":    func(n string) error { _, err := c.Start(ctx, n); return err },
		"Remove":   func(n string) error { return c.Remove(ctx, n) },
	}
	for verb, call := range calls {
		for _, n := range badNames {
			err := call(n)
			var e *clientsdk.Error
			if !errors.As(err, &e) || e.Code != 400 || !errors.Is(err, clientsdk.ErrBadRequest) {
				t.Errorf("%s(%q) = %v; want *clientsdk.Error 400", verb, n, err)
			}
		}
		err := call("nosuchapp")
		if e, ok := clientsdk.AsError(err); !ok || e.Code != 404 || !errors.Is(err, clientsdk.ErrNotFound) || !strings.Contains(e.Message, "nosuchapp") {
			t.Errorf("%s(nosuchapp) = %v; want *clientsdk.Error 404 naming the app", verb, err)
		}
	}
	if _, err := c.Info(ctx); err != nil {
		t.Errorf("Info after bad input: %v", err)
	}
}

// TestBadInputFlood sends many bad requests at once; every one gets an
// answer and the server stays up.
func TestBadInputFlood(t *testing.T) {
	t.Parallel()
	b := testutil.StartBroker(t)
	nc := testutil.Connect(t, b.NATSURL())
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Go(func() {
			subj := clientsdk.APISubject(clientsdk.VerbDescribe)
			if i%2 == 0 {
				subj = clientsdk.APIPrefix + ".nope" + strconv.Itoa(i)
			}
			msg, err := nc.Request(subj, []byte(`{bad`), 20*time.Second)
			if err != nil {
				errs <- err
				return
			}
			if e := clientsdk.ErrorFromMsg(msg); e == nil || e.Code/100 != 4 {
				errs <- errors.New("not a 4xx: " + string(msg.Data))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if !b.Ready() {
		t.Fatal("server not ready after a flood of bad requests")
	}
}
