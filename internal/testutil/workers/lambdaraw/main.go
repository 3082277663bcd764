// Command lambdaraw is a test bootstrap that speaks the AWS Lambda Runtime
// API with plain net/http, to check the server's answers: the first
// invocation returns the headers it got and the status of a response posted
// for an unknown request id; after answering it posts the response and an
// error again. The second invocation returns those statuses. An event with
// "fail" is answered with POST …/error and the error-type header.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
)

var base = "http://" + os.Getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime/invocation/"

func post(path, body string, hdr map[string]string) int {
	req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func main() {
	prev := map[string]string{}
	for {
		resp, err := http.Get(base + "next")
		if err != nil || resp.StatusCode != 200 {
			fmt.Fprintln(os.Stderr, "next:", err, resp)
			os.Exit(1)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
		if strings.Contains(string(body), `"fail"`) {
			post(id+"/error", `{"errorMessage":"raw failure"}`, map[string]string{"Lambda-Runtime-Function-Error-Type": "RawFailure"})
			continue
		}
		out := prev
		if len(prev) == 0 {
			out = map[string]string{
				"bogus_response": strconv.Itoa(post("00000000-0000-0000-0000-000000000000/response", "x", nil)),
				"content_length": strconv.FormatInt(resp.ContentLength, 10),
				"body":           string(body),
				"deadline":       resp.Header.Get("Lambda-Runtime-Deadline-Ms"),
				"deadline_dart":  resp.Header.Get("lambda-runtime-aws-deadline-ms"),
				"arn":            resp.Header.Get("Lambda-Runtime-Invoked-Function-Arn"),
				"arn_dart":       resp.Header.Get("lambda-runtime-invoked-functions-arn"),
				"trace":          resp.Header.Get("Lambda-Runtime-Trace-Id"),
			}
		}
		b, _ := json.Marshal(out)
		status := post(id+"/response", string(b), nil)
		prev = map[string]string{
			"response_status": strconv.Itoa(status),
			"again_response":  strconv.Itoa(post(id+"/response", "again", nil)),
			"again_error":     strconv.Itoa(post(id+"/error", `{"errorMessage":"late"}`, nil)),
		}
	}
}
