package clientsdk_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
	"github.com/dartup/dartup/clientsdk"
)

// FuzzHTTPEvent builds the event of an arbitrary HTTP request (method, path,
// query, headers as "Name: value" lines, host, body) in every shape. It must
// never panic or fail; apigw and alb events are valid JSON that aws-lambda-go's
// own event types decode, and give back the body, method, path, query and
// headers where JSON can carry them (valid UTF-8); raw is the body. Seeds:
// testdata/fuzz/FuzzHTTPEvent.
func FuzzHTTPEvent(f *testing.F) {
	f.Add("POST", "/echo/some/path", "x=1&x=2&y=z", "X-Test: abc\nCookie: a=b", "localhost:2374", []byte("hi there"))
	f.Add("GET", "/bin", "", "", "", []byte{0xff, 0xfe, 0x00})
	f.Fuzz(func(t *testing.T, method, path, rawQuery, headers, host string, body []byte) {
		h := http.Header{}
		for _, line := range strings.Split(headers, "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok {
				h[k] = append(h[k], strings.TrimSpace(v))
			}
		}
		r := &http.Request{Method: method, URL: &url.URL{Path: path, RawQuery: rawQuery}, Header: h, Host: host, Proto: "HTTP/1.1"}
		_, rest, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
		info := clientsdk.HTTPRequestInfo{Path: "/" + rest, SourceIP: "127.0.0.1", User: "u"}

		raw, err := clientsdk.HTTPEvent(clientsdk.HTTPEventRaw, r, body, info)
		if err != nil || !bytes.Equal(raw, body) {
			t.Fatalf("raw event = %q, %v; want the body", raw, err)
		}
		apigw, err := clientsdk.HTTPEvent(clientsdk.HTTPEventAPIGateway, r, body, info)
		if err != nil || !json.Valid(apigw) {
			t.Fatalf("apigw event is not JSON (%v): %q", err, apigw)
		}
		var ev events.APIGatewayProxyRequest
		if err := json.Unmarshal(apigw, &ev); err != nil {
			t.Fatalf("aws-lambda-go cannot decode the apigw event: %v", err)
		}
		checkBody(t, ev.Body, ev.IsBase64Encoded, body)
		want := func(what, got, v string) {
			if utf8.ValidString(v) && got != v {
				t.Fatalf("apigw %s = %q, want %q", what, got, v)
			}
		}
		want("httpMethod", ev.HTTPMethod, method)
		want("path", ev.Path, info.Path)
		want("requestContext.path", ev.RequestContext.Path, path)
		for k, vs := range r.URL.Query() {
			if utf8.ValidString(k) && utf8.ValidString(strings.Join(vs, "")) && !reflect.DeepEqual(ev.MultiValueQueryStringParameters[k], vs) {
				t.Fatalf("apigw query %q = %q, want %q", k, ev.MultiValueQueryStringParameters[k], vs)
			}
		}
		for k, vs := range h {
			if k != "Host" && utf8.ValidString(k) && utf8.ValidString(strings.Join(vs, "")) && !reflect.DeepEqual(ev.MultiValueHeaders[k], vs) {
				t.Fatalf("apigw header %q = %q, want %q", k, ev.MultiValueHeaders[k], vs)
			}
		}
		alb, err := clientsdk.HTTPEvent(clientsdk.HTTPEventALB, r, body, info)
		if err != nil || !json.Valid(alb) {
			t.Fatalf("alb event is not JSON (%v): %q", err, alb)
		}
		var aev events.ALBTargetGroupRequest
		if err := json.Unmarshal(alb, &aev); err != nil {
			t.Fatalf("aws-lambda-go cannot decode the alb event: %v", err)
		}
		checkBody(t, aev.Body, aev.IsBase64Encoded, body)
		want("alb httpMethod", aev.HTTPMethod, method)
	})
}

// checkBody fails unless an event's body field gives back body.
func checkBody(t *testing.T, field string, isBase64 bool, body []byte) {
	t.Helper()
	if isBase64 {
		got, err := base64.StdEncoding.DecodeString(field)
		if err != nil || !bytes.Equal(got, body) || utf8.Valid(body) {
			t.Fatalf("base64 body %q (%v) does not give back %q, or was not needed", field, err, body)
		}
		return
	}
	if field != string(body) {
		t.Fatalf("body %q, want %q", field, body)
	}
}

// FuzzParseProxyResponse parses arbitrary lambda replies as the gateway
// does. It must never panic; a reply taken as a proxy response is a JSON
// object with a status code the gateway can write (100-999), its body
// decodes without panicking, and it survives a round trip through JSON.
// Seeds: testdata/fuzz/FuzzParseProxyResponse.
func FuzzParseProxyResponse(f *testing.F) {
	f.Add([]byte(`{"statusCode":201,"headers":{"X-Echo":"yes"},"multiValueHeaders":{"Set-Cookie":["a=1","b=2"]},"body":"aGk=","isBase64Encoded":true}`))
	f.Add([]byte(`{"statusCode":200,"bodyBase64":"aGk=","text":"x"}`))
	f.Add([]byte(`Hello, world!`))
	f.Fuzz(func(t *testing.T, reply []byte) {
		pr, ok := clientsdk.ParseProxyResponse(reply)
		if !ok {
			if pr != nil {
				t.Fatal("not a proxy response, but a non-nil one returned")
			}
			return
		}
		if pr.StatusCode < 100 || pr.StatusCode > 999 || !json.Valid(reply) || !bytes.HasPrefix(bytes.TrimSpace(reply), []byte("{")) {
			t.Fatalf("took %q as a proxy response with status %d", reply, pr.StatusCode)
		}
		body, err := pr.BodyBytes()
		if err == nil && !pr.IsBase64Encoded && pr.Body != "" && string(body) != pr.Body {
			t.Fatalf("BodyBytes = %q, want Body %q", body, pr.Body)
		}
		b, err := json.Marshal(pr)
		if err != nil || !json.Valid(b) {
			t.Fatalf("re-encoding: %v", err)
		}
		pr2, ok := clientsdk.ParseProxyResponse(b)
		if !ok {
			t.Fatalf("the re-encoded response %s is not a proxy response", b)
		}
		if b2, _ := json.Marshal(pr2); !bytes.Equal(b, b2) {
			t.Fatalf("round trip changed the response:\n%s\n%s", b, b2)
		}
	})
}
