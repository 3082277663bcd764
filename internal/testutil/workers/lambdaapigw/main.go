// Command lambdaapigw is a test bootstrap built with aws-lambda-go whose
// handler takes an API Gateway v1 proxy request and answers status 201 with
// a JSON body echoing what it received (method, path, resource, path
// parameters, query, headers, body) and its _HANDLER, so that tests check
// the HTTP gateway's event mapping end to end and which function (one
// bootstrap may serve several, told apart by their handler) answered.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
)

// Echo is the JSON body of the response.
type Echo struct {
	Method   string              `json:"method"`
	Path     string              `json:"path"`
	Resource string              `json:"resource"`
	Params   map[string]string   `json:"path_parameters"`
	Handler  string              `json:"handler"`
	Query    map[string]string   `json:"query"`
	MultiQ   map[string][]string `json:"multi_query"`
	Headers  map[string]string   `json:"headers"`
	Body     string              `json:"body"`
	Base64   bool                `json:"is_base64"`
	SourceIP string              `json:"source_ip"`
}

func handle(_ context.Context, req events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error) {
	body := req.Body
	if req.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(body)
		if err != nil {
			return events.APIGatewayProxyResponse{}, err
		}
		body = string(b)
	}
	e := Echo{Method: req.HTTPMethod, Path: req.Path, Resource: req.Resource, Params: req.PathParameters,
		Handler: os.Getenv("_HANDLER"), Query: req.QueryStringParameters,
		MultiQ: req.MultiValueQueryStringParameters, Headers: req.Headers, Body: body, Base64: req.IsBase64Encoded,
		SourceIP: req.RequestContext.Identity.SourceIP}
	b, _ := json.Marshal(e)
	return events.APIGatewayProxyResponse{
		StatusCode:        201,
		Headers:           map[string]string{"Content-Type": "application/json", "X-Echo": "yes"},
		MultiValueHeaders: map[string][]string{"Set-Cookie": {"a=1", "b=2"}},
		Body:              string(b),
	}, nil
}

func main() { lambda.Start(handle) }
