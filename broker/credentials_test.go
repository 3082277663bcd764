package broker_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/broker"
	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	"github.com/nats-io/nats.go"
)

const eventPkg = "./internal/testutil/workers/lambdaevent"

// seen is what the lambdaevent worker answers: what it was given.
type seen struct {
	Event         json.RawMessage `json:"event"`
	ClientContext json.RawMessage `json:"client_context"`
	Identity      json.RawMessage `json:"identity"`
}

// leaks returns what in b gives away the caller's credentials.
func leaks(b []byte, user, pw string) []string {
	var out []string
	for _, secret := range []string{pw, base64.StdEncoding.EncodeToString([]byte(user + ":" + pw)), `"authorization"`} {
		if bytes.Contains(bytes.ToLower(b), bytes.ToLower([]byte(secret))) {
			out = append(out, secret)
		}
	}
	return out
}

// TestLambdaNeverSeesCredentials: a caller's Basic credentials, once the
// gateway has checked them, reach no lambda, in any event shape (API
// Gateway headers and multiValueHeaders, ALB, raw), nor the NATS request
// the gateway sends; the user name stays in requestContext.identity.user.
// A NATS caller's credentials are not in what a lambda sees either. Other
// Authorization schemes (an app's own Bearer tokens) are passed on.
func TestLambdaNeverSeesCredentials(t *testing.T) {
	for _, require := range []bool{false, true} {
		name := "loopback exemption"
		if require {
			name = "require password"
		}
		t.Run(name, func(t *testing.T) {
			r := credentialsRig(t, require)
			r.host("echo", eventPkg, nil)
			r.host("alb", eventPkg, func(l *clientsdk.LambdaSpec) { l.HTTPEvent = clientsdk.HTTPEventALB })
			r.host("raw", eventPkg, func(l *clientsdk.LambdaSpec) { l.HTTPEvent = clientsdk.HTTPEventRaw })
			sniff, err := r.nc.SubscribeSync("lambda.>") // a copy of each request the gateway sends
			if err != nil {
				t.Fatal(err)
			}
			for _, fn := range []string{"echo", "alb", "raw"} {
				got := callAs(t, r, fn, "alice", alicePW)
				m, err := sniff.NextMsg(10 * time.Second)
				if err != nil {
					t.Fatal(err)
				}
				if l := leaks(m.Data, "alice", alicePW); len(l) > 0 || m.Header.Get("Authorization") != "" {
					t.Errorf("%s: the NATS request of the gateway carries %v, headers %v", fn, l, m.Header)
				}
				checkEvent(t, fn, got)
			}
			checkNATSCaller(t, r, sniff)
			checkOddAuthorization(t, r, require)
		})
	}
}

// credentialsRig is a lambda rig with user alice; with require, the broker
// requires passwords and the rig logs in as admin.
func credentialsRig(t *testing.T, require bool) *lambdaRig {
	t.Helper()
	if !require {
		b := testutil.StartBroker(t)
		addUser(t, b, "alice", alicePW)
		return newLambdaRigOn(t, b)
	}
	dir := t.TempDir()
	file := hashLine(t, "admin", "admin-pw") + "\n" + hashLine(t, "alice", alicePW) + "\n"
	if err := os.WriteFile(filepath.Join(dir, broker.PasswordFileName), []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	b := testutil.StartBroker(t, func(c *broker.Config) { c.DataDir, c.RequirePassword = dir, true })
	return newLambdaRigOn(t, b, nats.UserInfo("admin", "admin-pw"))
}

// callAs POSTs {"x":1} to /fn/p?q=1 as user and returns what the lambda saw.
func callAs(t *testing.T, r *lambdaRig, fn, user, pw string) seen {
	t.Helper()
	req, _ := http.NewRequest("POST", r.b.HTTPURL()+"/"+fn+"/p?q=1", strings.NewReader(`{"x":1}`))
	req.SetBasicAuth(user, pw)
	req.Header.Set("X-Test", "abc")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("POST /%s as %s: %d %s", fn, user, resp.StatusCode, body.String())
	}
	if l := leaks(body.Bytes(), user, pw); len(l) > 0 {
		t.Errorf("lambda %s saw the caller's credentials (%v):\n%s", fn, l, body.String())
	}
	var s seen
	if err := json.Unmarshal(body.Bytes(), &s); err != nil {
		t.Fatalf("%v: %s", err, body.String())
	}
	return s
}

// checkEvent checks that the event still has what it should: the other
// headers, and the user name where the shape has a place for it.
func checkEvent(t *testing.T, fn string, s seen) {
	t.Helper()
	switch fn {
	case "echo":
		var ev clientsdk.APIGatewayProxyRequest
		if err := json.Unmarshal(s.Event, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Headers["X-Test"] != "abc" || len(ev.MultiValueHeaders["X-Test"]) != 1 || ev.RequestContext.Identity.User != "alice" {
			t.Errorf("API Gateway event: headers %v, multiValueHeaders %v, identity %+v", ev.Headers, ev.MultiValueHeaders, ev.RequestContext.Identity)
		}
	case "alb":
		var ev clientsdk.ALBTargetGroupRequest
		if err := json.Unmarshal(s.Event, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Headers["x-test"] != "abc" {
			t.Errorf("ALB event headers %v", ev.Headers)
		}
	case "raw":
		if string(s.Event) != `{"x":1}` {
			t.Errorf("raw event %s", s.Event)
		}
	}
}

// checkNATSCaller: a NATS client logged in with a password invokes a lambda
// with headers of its own; neither its credentials nor anything else of its
// connection reach the lambda.
func checkNATSCaller(t *testing.T, r *lambdaRig, sniff *nats.Subscription) {
	t.Helper()
	nc := testutil.Connect(t, r.b.NATSURL(), nats.UserInfo("alice", alicePW))
	m := nats.NewMsg(clientsdk.LambdaSubject("raw"))
	m.Data = []byte(`{"y":2}`)
	m.Header.Set("X-Foo", "bar")
	reply, err := nc.RequestMsg(m, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if l := leaks(reply.Data, "alice", alicePW); len(l) > 0 {
		t.Errorf("a lambda invoked over NATS saw %v:\n%s", l, reply.Data)
	}
	got, err := sniff.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range got.Header {
		if k != "X-Foo" || len(leaks([]byte(strings.Join(v, ",")), "alice", alicePW)) > 0 {
			t.Errorf("the lambda request carries header %s: %v", k, v)
		}
	}
}

// checkOddAuthorization: an app's own Authorization scheme is passed on
// where the gateway needs no Basic auth; two Authorization headers are
// refused; wrong Basic credentials are refused even where none are needed.
func checkOddAuthorization(t *testing.T, r *lambdaRig, require bool) {
	t.Helper()
	if !require {
		resp, body := r.do("POST", "/echo", []byte(`{}`), map[string]string{"Authorization": "Bearer app-token-1"})
		var s seen
		_ = json.Unmarshal(body, &s)
		var ev clientsdk.APIGatewayProxyRequest
		_ = json.Unmarshal(s.Event, &ev)
		if resp.StatusCode != 200 || ev.Headers["Authorization"] != "Bearer app-token-1" {
			t.Errorf("a Bearer token for the app: %d, the lambda saw headers %v", resp.StatusCode, ev.Headers)
		}
		if resp, body := r.do("POST", "/echo", nil, map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:"+wrongPW))}); resp.StatusCode != 401 {
			t.Errorf("wrong Basic credentials on loopback: %d %s, want 401", resp.StatusCode, body)
		}
	}
	req, _ := http.NewRequest("POST", r.b.HTTPURL()+"/echo", strings.NewReader(`{}`))
	req.SetBasicAuth("alice", alicePW)
	req.Header.Add("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("mallory:x")))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("two Authorization headers: %d, want 400", resp.StatusCode)
	}
}
