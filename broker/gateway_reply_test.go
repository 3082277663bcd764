package broker_test

import (
	"testing"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/lambdas"
)

// TestGatewayOddProxyResponses: replies that FuzzParseProxyResponse found
// odd, sent by a real lambda (/bin/cat over stdio echoes the raw event
// back) through the HTTP gateway. Each gets a well-formed HTTP answer: a
// status the gateway cannot write makes the reply a plain 200 body, never a
// panicking handler and a dropped connection.
func TestGatewayOddProxyResponses(t *testing.T) {
	r := newLambdaRig(t)
	s := r.put("cat", clientsdk.KindLambda, func(l *clientsdk.LambdaSpec) {
		l.Protocol, l.HTTPEvent = clientsdk.ProtocolStdio, clientsdk.HTTPEventRaw
	})
	if err := r.m.Deploy(s, lambdas.Command{Path: "/bin/cat"}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		reply  string
		status int
		body   string
	}{
		{`{"statusCode":201,"body":"made"}`, 201, "made"},
		// encoding/json matches keys case-insensitively: the second key
		// sets the status to 5 after the exact one passed the check.
		{`{"statusCode":200,"STATUSCODE":5}`, 200, `{"statusCode":200,"STATUSCODE":5}`},
		{`{"statusCode":200,"StatusCode":1000,"body":"x"}`, 200, `{"statusCode":200,"StatusCode":1000,"body":"x"}`},
	}
	for _, c := range cases {
		resp, body := r.do("POST", "/cat", []byte(c.reply), nil)
		if resp.StatusCode != c.status || string(body) != c.body {
			t.Errorf("lambda reply %s: HTTP %d %q; want %d %q", c.reply, resp.StatusCode, body, c.status, c.body)
		}
	}
}
