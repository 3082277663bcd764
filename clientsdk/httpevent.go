package clientsdk

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"maps"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// The HTTP gateway turns a request for /NAME[/rest] into the event of lambda
// NAME in the shape its LambdaSpec.HTTPEvent names, and turns a reply that is
// a ProxyResponse back into the HTTP response. The shapes are AWS's (API
// Gateway REST API v1 proxy integration and Application Load Balancer), so
// handlers written for aws-lambda-go's events package or the Dart
// aws_lambda_dart_runtime work unchanged.
//
// Paths: for /NAME of a lambda without function routes, the event's path is
// the part after /NAME ("/rest", or "/"), as behind an API Gateway base-path
// mapping; the full request path is in requestContext.path, the resource is
// "/{proxy+}" and pathParameters.proxy holds "rest". For a function route
// (LambdaSpec.Routes), the path is the request's, the resource the route's
// path as declared ("/users/{id}") and pathParameters its parameters'
// values, percent-decoded ({"id": "42"}).

// APIGatewayProxyRequest is an API Gateway v1 proxy event (HTTPEventAPIGateway).
type APIGatewayProxyRequest struct {
	Resource                        string                   `json:"resource"`
	Path                            string                   `json:"path"`
	HTTPMethod                      string                   `json:"httpMethod"`
	Headers                         map[string]string        `json:"headers"`
	MultiValueHeaders               map[string][]string      `json:"multiValueHeaders"`
	QueryStringParameters           map[string]string        `json:"queryStringParameters"`
	MultiValueQueryStringParameters map[string][]string      `json:"multiValueQueryStringParameters"`
	PathParameters                  map[string]string        `json:"pathParameters"`
	StageVariables                  map[string]string        `json:"stageVariables"`
	RequestContext                  APIGatewayRequestContext `json:"requestContext"`
	Body                            string                   `json:"body"`
	IsBase64Encoded                 bool                     `json:"isBase64Encoded"`
}

// APIGatewayRequestContext is the requestContext of an APIGatewayProxyRequest.
type APIGatewayRequestContext struct {
	AccountID        string                    `json:"accountId"`
	ResourceID       string                    `json:"resourceId"`
	Stage            string                    `json:"stage"`
	RequestID        string                    `json:"requestId"`
	Identity         APIGatewayRequestIdentity `json:"identity"`
	ResourcePath     string                    `json:"resourcePath"`
	HTTPMethod       string                    `json:"httpMethod"`
	APIID            string                    `json:"apiId"`
	Path             string                    `json:"path"`
	Protocol         string                    `json:"protocol"`
	DomainName       string                    `json:"domainName"`
	RequestTime      string                    `json:"requestTime"`
	RequestTimeEpoch int64                     `json:"requestTimeEpoch"`
}

// APIGatewayRequestIdentity is the caller's identity in an API Gateway event.
type APIGatewayRequestIdentity struct {
	SourceIP  string `json:"sourceIp"`
	UserAgent string `json:"userAgent"`
	User      string `json:"user,omitempty"`
}

// ALBTargetGroupRequest is an Application Load Balancer event (HTTPEventALB).
// Header names are lower case, as the ALB sends them.
type ALBTargetGroupRequest struct {
	HTTPMethod                      string                `json:"httpMethod"`
	Path                            string                `json:"path"`
	QueryStringParameters           map[string]string     `json:"queryStringParameters"`
	MultiValueQueryStringParameters map[string][]string   `json:"multiValueQueryStringParameters,omitempty"`
	Headers                         map[string]string     `json:"headers"`
	MultiValueHeaders               map[string][]string   `json:"multiValueHeaders,omitempty"`
	RequestContext                  ALBTargetGroupContext `json:"requestContext"`
	IsBase64Encoded                 bool                  `json:"isBase64Encoded"`
	Body                            string                `json:"body"`
}

// ALBTargetGroupContext is the requestContext of an ALB event.
type ALBTargetGroupContext struct {
	ELB struct {
		TargetGroupArn string `json:"targetGroupArn"`
	} `json:"elb"`
}

// ProxyResponse is the reply that the gateway turns into an HTTP response:
// API Gateway's {statusCode, headers, multiValueHeaders, body,
// isBase64Encoded}, ALB's (which adds statusDescription), and dart_up's
// {statusCode, headers, bodyBase64 | text}.
type ProxyResponse struct {
	StatusCode        int                 `json:"statusCode"`
	StatusDescription string              `json:"statusDescription,omitempty"`
	Headers           map[string]string   `json:"headers,omitempty"`
	MultiValueHeaders map[string][]string `json:"multiValueHeaders,omitempty"`
	Body              string              `json:"body,omitempty"`
	IsBase64Encoded   bool                `json:"isBase64Encoded,omitempty"`
	// BodyBase64 and Text are dart_up's response body fields.
	BodyBase64 string `json:"bodyBase64,omitempty"`
	Text       string `json:"text,omitempty"`
}

// HTTPRequestInfo is what the gateway knows about an HTTP request besides
// the *http.Request: the lambda's part of the path, the route it took and
// the client address.
type HTTPRequestInfo struct {
	// Path is the path after /NAME, starting with "/", or the whole path
	// for a function route.
	Path string
	// Resource is the path of the function route the request took, as
	// declared ("/users/{id}"); "" for /NAME, whose resource is "/{proxy+}".
	Resource string
	// PathParameters are the function route's parameters' values
	// (percent-decoded), by name.
	PathParameters map[string]string
	// SourceIP is the client's address.
	SourceIP string
	// User is the authenticated Basic-auth user, if any. The gateway
	// removes the Authorization header it checked before building the
	// event: a caller's credentials never reach the lambda, only this name
	// (requestContext.identity.user in the API Gateway shape).
	User string
}

func bodyField(body []byte) (string, bool) {
	if utf8.Valid(body) {
		return string(body), false
	}
	return base64.StdEncoding.EncodeToString(body), true
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// NewAPIGatewayProxyRequest builds the API Gateway v1 event of r with body.
// A body that is not UTF-8 is sent base64-encoded (isBase64Encoded).
func NewAPIGatewayProxyRequest(r *http.Request, body []byte, info HTTPRequestInfo) APIGatewayProxyRequest {
	now := time.Now()
	ev := APIGatewayProxyRequest{
		Resource:                        "/{proxy+}",
		Path:                            info.Path,
		HTTPMethod:                      r.Method,
		Headers:                         make(map[string]string, len(r.Header)+1),
		MultiValueHeaders:               make(map[string][]string, len(r.Header)+1),
		QueryStringParameters:           map[string]string{},
		MultiValueQueryStringParameters: map[string][]string{},
		PathParameters:                  map[string]string{"proxy": strings.TrimPrefix(info.Path, "/")},
		StageVariables:                  map[string]string{},
		RequestContext: APIGatewayRequestContext{
			AccountID: "000000000000", ResourceID: "dartup", Stage: "dartup", RequestID: randomID(),
			Identity:     APIGatewayRequestIdentity{SourceIP: info.SourceIP, UserAgent: r.UserAgent(), User: info.User},
			ResourcePath: "/{proxy+}", HTTPMethod: r.Method, APIID: "dartup", Path: r.URL.Path, Protocol: r.Proto,
			DomainName: r.Host, RequestTime: now.UTC().Format("02/Jan/2006:15:04:05 -0700"), RequestTimeEpoch: now.UnixMilli(),
		},
	}
	if info.Resource != "" {
		ev.Resource, ev.RequestContext.ResourcePath = info.Resource, info.Resource
		ev.PathParameters = map[string]string{}
		maps.Copy(ev.PathParameters, info.PathParameters)
	}
	for k, v := range r.Header {
		ev.Headers[k] = v[len(v)-1]
		ev.MultiValueHeaders[k] = v
	}
	if r.Host != "" {
		ev.Headers["Host"] = r.Host
		ev.MultiValueHeaders["Host"] = []string{r.Host}
	}
	for k, v := range r.URL.Query() {
		ev.QueryStringParameters[k] = v[len(v)-1]
		ev.MultiValueQueryStringParameters[k] = v
	}
	ev.Body, ev.IsBase64Encoded = bodyField(body)
	return ev
}

// NewALBTargetGroupRequest builds the ALB event of r with body.
func NewALBTargetGroupRequest(r *http.Request, body []byte, info HTTPRequestInfo) ALBTargetGroupRequest {
	ev := ALBTargetGroupRequest{
		HTTPMethod:            r.Method,
		Path:                  info.Path,
		QueryStringParameters: map[string]string{},
		Headers:               map[string]string{},
	}
	ev.RequestContext.ELB.TargetGroupArn = "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/dartup/0"
	for k, v := range r.Header {
		ev.Headers[strings.ToLower(k)] = v[len(v)-1]
	}
	if r.Host != "" {
		ev.Headers["host"] = r.Host
	}
	for k, v := range r.URL.Query() {
		ev.QueryStringParameters[k] = v[len(v)-1]
	}
	ev.Body, ev.IsBase64Encoded = bodyField(body)
	return ev
}

// HTTPEvent returns the event bytes for r in the shape kind names
// (HTTPEventAPIGateway, HTTPEventALB, or HTTPEventRaw: the body itself).
// r's headers are copied as they are: the caller removes credentials meant
// for itself first (the gateway does, for dartup's Basic auth).
func HTTPEvent(kind string, r *http.Request, body []byte, info HTTPRequestInfo) ([]byte, error) {
	switch kind {
	case HTTPEventRaw:
		return body, nil
	case HTTPEventALB:
		ev := NewALBTargetGroupRequest(r, body, info)
		return ev.appendJSON(make([]byte, 0, eventCap(body))), nil
	default:
		ev := NewAPIGatewayProxyRequest(r, body, info)
		return ev.appendJSON(make([]byte, 0, eventCap(body))), nil
	}
}

// eventCap is a first guess of an event's size: the body in base64 and
// the rest of a usual request.
func eventCap(body []byte) int { return 2048 + len(body)*4/3 }

// ParseProxyResponse returns the ProxyResponse in reply when reply is a JSON
// object with a numeric statusCode between 100 and 999; ok is false for any
// other reply, which the gateway sends as the body with status 200.
func ParseProxyResponse(reply []byte) (resp *ProxyResponse, ok bool) {
	b := strings.TrimSpace(string(reply))
	if !strings.HasPrefix(b, "{") || !strings.Contains(b, `"statusCode"`) {
		return nil, false
	}
	var probe map[string]json.RawMessage
	if json.Unmarshal(reply, &probe) != nil {
		return nil, false
	}
	var code int
	if json.Unmarshal(probe["statusCode"], &code) != nil || code < 100 || code > 999 {
		return nil, false
	}
	var pr ProxyResponse
	// encoding/json matches keys case-insensitively, so another spelling
	// ("STATUSCODE") after the exact key may still change the status: check
	// the one decoded (the gateway's WriteHeader panics outside 100-999).
	if json.Unmarshal(reply, &pr) != nil || pr.StatusCode < 100 || pr.StatusCode > 999 {
		return nil, false
	}
	return &pr, true
}

// BodyBytes returns the response body: Body (base64-decoded when
// IsBase64Encoded), or dart_up's BodyBase64 or Text.
func (p *ProxyResponse) BodyBytes() ([]byte, error) {
	switch {
	case p.IsBase64Encoded:
		return base64.StdEncoding.DecodeString(p.Body)
	case p.Body != "":
		return []byte(p.Body), nil
	case p.BodyBase64 != "":
		return base64.StdEncoding.DecodeString(p.BodyBase64)
	default:
		return []byte(p.Text), nil
	}
}
