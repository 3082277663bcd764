package clientsdk

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// The hand-written event JSON is byte for byte what json.Marshal writes,
// for requests with escapes, HTML characters, invalid UTF-8, U+2028,
// repeated and empty values, in both shapes.
func FuzzEventJSON(f *testing.F) {
	f.Add("POST", "/echo/a<b>&c", "x=1&x=2&y=&z=%E2%80%A8", "X-Test: a\"b\\c\nCookie: a=b\nX-Test: \x01\x7f\xff", "localhost:2374", []byte("hi\u2029there"), "user")
	f.Add("GET", "/bin", "", "", "", []byte{0xff, 0xfe, 0x00}, "")
	f.Fuzz(func(t *testing.T, method, path, rawQuery, headers, host string, body []byte, user string) {
		h := http.Header{}
		for _, line := range strings.Split(headers, "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok {
				h[k] = append(h[k], strings.TrimSpace(v))
			}
		}
		r := &http.Request{Method: method, URL: &url.URL{Path: path, RawQuery: rawQuery}, Header: h, Host: host, Proto: "HTTP/1.1"}
		info := HTTPRequestInfo{Path: path, SourceIP: "127.0.0.1", User: user}
		for _, resource := range []string{"", "/users/{id}"} {
			info.Resource, info.PathParameters = resource, map[string]string{"id": path}
			ev := NewAPIGatewayProxyRequest(r, body, info)
			want, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			if got := ev.appendJSON(nil); !bytes.Equal(got, want) {
				t.Fatalf("apigw event:\n got %s\nwant %s", got, want)
			}
		}
		alb := NewALBTargetGroupRequest(r, body, info)
		for _, multi := range []bool{false, true} {
			if multi {
				alb.MultiValueHeaders, alb.MultiValueQueryStringParameters = h, r.URL.Query()
			}
			want, err := json.Marshal(alb)
			if err != nil {
				t.Fatal(err)
			}
			if got := alb.appendJSON(nil); !bytes.Equal(got, want) {
				t.Fatalf("alb event:\n got %s\nwant %s", got, want)
			}
		}
	})
}
