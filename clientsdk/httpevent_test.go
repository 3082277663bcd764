package clientsdk_test

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dartup/dartup/clientsdk"
)

func TestParseProxyResponse(t *testing.T) {
	for _, c := range []struct {
		reply string
		ok    bool
		code  int
		body  string
	}{
		{`{"statusCode":201,"headers":{"A":"b"},"body":"hi"}`, true, 201, "hi"},
		{`{"statusCode":200,"body":"aGk=","isBase64Encoded":true}`, true, 200, "hi"},
		{`{"statusCode":404,"statusDescription":"404 Not Found","body":""}`, true, 404, ""},
		{`{"statusCode":200,"bodyBase64":"aGk="}`, true, 200, "hi"}, // dart_up
		{`{"statusCode":200,"text":"hi"}`, true, 200, "hi"},         // dart_up
		{`{"statusCode":"200","body":"x"}`, false, 0, ""},
		{`{"statusCode":42}`, false, 0, ""},
		{`{"name":"statusCode"}`, false, 0, ""},
		{`"statusCode"`, false, 0, ""},
		{`Hello, world!`, false, 0, ""},
		{`[{"statusCode":200}]`, false, 0, ""},
	} {
		pr, ok := clientsdk.ParseProxyResponse([]byte(c.reply))
		if ok != c.ok {
			t.Errorf("%s: ok = %v", c.reply, ok)
			continue
		}
		if !ok {
			continue
		}
		b, err := pr.BodyBytes()
		if err != nil || pr.StatusCode != c.code || string(b) != c.body {
			t.Errorf("%s: %d %q %v", c.reply, pr.StatusCode, b, err)
		}
	}
}

func TestHTTPEventShapes(t *testing.T) {
	r := httptest.NewRequest("POST", "http://example.com/fn/a/b?x=1&x=2", strings.NewReader(""))
	r.Header.Set("X-Thing", "v")
	info := clientsdk.HTTPRequestInfo{Path: "/a/b", SourceIP: "10.0.0.1"}
	b, err := clientsdk.HTTPEvent(clientsdk.HTTPEventAPIGateway, r, []byte("body"), info)
	if err != nil {
		t.Fatal(err)
	}
	var gw clientsdk.APIGatewayProxyRequest
	if err := json.Unmarshal(b, &gw); err != nil {
		t.Fatal(err)
	}
	if gw.HTTPMethod != "POST" || gw.Path != "/a/b" || gw.RequestContext.Path != "/fn/a/b" || gw.QueryStringParameters["x"] != "2" ||
		len(gw.MultiValueQueryStringParameters["x"]) != 2 || gw.Headers["X-Thing"] != "v" || gw.Body != "body" || gw.IsBase64Encoded ||
		gw.PathParameters["proxy"] != "a/b" || gw.RequestContext.Identity.SourceIP != "10.0.0.1" || gw.Headers["Host"] != "example.com" {
		t.Fatalf("API Gateway event: %s", b)
	}
	b, _ = clientsdk.HTTPEvent(clientsdk.HTTPEventALB, r, []byte{0xff}, info)
	var alb clientsdk.ALBTargetGroupRequest
	if err := json.Unmarshal(b, &alb); err != nil {
		t.Fatal(err)
	}
	if alb.Headers["x-thing"] != "v" || !alb.IsBase64Encoded || alb.Body != "/w==" || alb.Path != "/a/b" {
		t.Fatalf("ALB event: %s", b)
	}
	if b, _ := clientsdk.HTTPEvent(clientsdk.HTTPEventRaw, r, []byte("raw"), info); string(b) != "raw" {
		t.Fatalf("raw event: %q", b)
	}
}

// A request that took a function route has the route's path as resource
// and its parameters as pathParameters; /NAME keeps "/{proxy+}".
func TestHTTPEventFunctionRoute(t *testing.T) {
	r := httptest.NewRequest("GET", "http://example.com/users/a%2Fb", nil)
	for _, c := range []struct {
		info     clientsdk.HTTPRequestInfo
		resource string
		params   string
	}{
		{clientsdk.HTTPRequestInfo{Path: "/users/a/b", Resource: "/users/{id}", PathParameters: map[string]string{"id": "a/b"}},
			"/users/{id}", `{"id":"a/b"}`},
		{clientsdk.HTTPRequestInfo{Path: "/users/a/b", Resource: "/users/{proxy+}", PathParameters: map[string]string{}}, "/users/{proxy+}", `{}`},
		{clientsdk.HTTPRequestInfo{Path: "/a/b"}, "/{proxy+}", `{"proxy":"a/b"}`},
	} {
		b, err := clientsdk.HTTPEvent(clientsdk.HTTPEventAPIGateway, r, nil, c.info)
		if err != nil {
			t.Fatal(err)
		}
		var ev struct {
			Resource       string          `json:"resource"`
			Path           string          `json:"path"`
			PathParameters json.RawMessage `json:"pathParameters"`
			RequestContext struct {
				ResourcePath string `json:"resourcePath"`
				Path         string `json:"path"`
			} `json:"requestContext"`
		}
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Resource != c.resource || ev.RequestContext.ResourcePath != c.resource || string(ev.PathParameters) != c.params ||
			ev.Path != c.info.Path || ev.RequestContext.Path != "/users/a/b" {
			t.Errorf("%+v: %s", c.info, b)
		}
	}
}
