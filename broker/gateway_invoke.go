package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go"
)

// maxHTTPEventBody bounds the HTTP request body sent to a lambda: with the
// event's JSON and base64 overhead, the event stays under MaxPayload.
const maxHTTPEventBody = 6 << 20

// invokeSlack is added to twice the lambda's timeout (waiting in the queue,
// then running) for the gateway's own wait, to cover a cold start.
const invokeSlack = 10 * time.Second

// invokeWait is the gateway's wait for a lambda with the given timeout:
// twice the timeout plus invokeSlack, with the timeout first brought into
// range, so that it never overflows into a negative wait.
func invokeWait(timeout time.Duration) time.Duration {
	return 2*min(max(timeout, clientsdk.MinLambdaTimeout), clientsdk.MaxLambdaTimeout) + invokeSlack
}

// invokeName answers ANY /NAME[/rest] for lambda NAME, which has no
// function routes: the event's path is /rest.
func (g *gateway) invokeName(w http.ResponseWriter, r *http.Request) {
	name, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if name == "" {
		writeError(w, http.StatusNotFound, "NotFound", "no route "+r.URL.Path+"; try /healthz or /NAME for a lambda (`dartup routes` lists the routes)")
		return
	}
	g.invoke(w, r, name, clientsdk.HTTPRequestInfo{Path: "/" + rest})
}

// invoke invokes lambda name through "lambda.NAME" with the request as the
// event its http_event names (info says which path, and for a function
// route its resource and parameters), and writes the reply (a proxy
// response, or any other bytes as a 200 body).
func (g *gateway) invoke(w http.ResponseWriter, r *http.Request, name string, info clientsdk.HTTPRequestInfo) {
	spec, e := g.b.router.lookup(r.Context(), name, false)
	if e != nil {
		writeError(w, lambdaHTTPStatus(e.Code), e.Type, e.Message)
		return
	}
	async, ok := invocationType(r)
	if !ok {
		writeError(w, http.StatusBadRequest, "InvalidParameterValueException", HeaderInvocationType+" must be RequestResponse or Event")
		return
	}
	if info.Resource == "" && len(spec.Lambda.Routes) > 0 {
		// /NAME of a lambda that has function routes: those are its only
		// routes (the table may not have them yet, a moment after a push).
		writeError(w, http.StatusNotFound, "NotFound", "no route "+r.URL.Path+"; lambda "+name+" takes only its function routes (`dartup routes` lists them)")
		return
	}
	noteLambda(r, name, info)
	if info.Resource == "" {
		noteLambdaName(r, name)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxHTTPEventBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "RequestTooLarge", "the request body is over the lambda payload limit of 6 MiB")
			return
		}
		writeError(w, http.StatusBadRequest, "BadRequest", "cannot read the request body: "+err.Error())
		return
	}
	info.SourceIP, info.User = g.clientIP(r).String(), authUser(r)
	if spec.Lambda.HTTPEvent != clientsdk.HTTPEventRaw {
		setAmznTraceID(r.Header)
	}
	event, err := clientsdk.HTTPEvent(spec.Lambda.HTTPEvent, r, body, info)
	if err != nil {
		g.warnRequest(r, "cannot build a lambda event", "lambda", name, "err", err)
		writeError(w, http.StatusInternalServerError, "EventError", "cannot build the event: "+err.Error())
		return
	}
	if max := g.b.nc.MaxPayload(); int64(len(event)) > max {
		writeError(w, http.StatusRequestEntityTooLarge, "RequestTooLarge", "the event for this request is "+strconv.Itoa(len(event))+
			" bytes, over the server's message limit of "+strconv.FormatInt(max, 10)+" (binary bodies grow by a third in base64)")
		return
	}
	if async {
		g.invokeAsync(w, r, name, event)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), invokeWait(spec.Lambda.Timeout.D()))
	defer cancel()
	msg, err := clientsdk.RequestLambda(ctx, g.b.nc, name, &nats.Msg{Subject: clientsdk.LambdaSubject(name), Header: natsTrace(r), Data: event}, g.b.router.why)
	var unhosted *clientsdk.Error
	switch {
	case errors.As(err, &unhosted): // no responders, and why
		if unhosted.Code >= http.StatusInternalServerError {
			g.warnRequest(r, "no runner hosts the lambda", "lambda", name, "code", unhosted.Code, "type", unhosted.Type)
		}
		writeError(w, lambdaHTTPStatus(unhosted.Code), unhosted.Type, unhosted.Message)
		return
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
		if r.Context().Err() == nil {
			g.warnRequest(r, "the lambda did not answer in time", "lambda", name, "waited", invokeWait(spec.Lambda.Timeout.D()))
		}
		writeError(w, http.StatusGatewayTimeout, "Timeout", "lambda "+name+" did not answer in time")
		return
	case err != nil:
		if r.Context().Err() == nil {
			g.warnRequest(r, "cannot invoke the lambda", "lambda", name, "err", err)
		}
		writeError(w, http.StatusBadGateway, "InvokeError", "cannot invoke lambda "+name+": "+err.Error())
		return
	}
	if e := clientsdk.ErrorFromMsg(msg); e != nil {
		if e.Code >= http.StatusBadGateway {
			g.warnRequest(r, "lambda invocation failed", "lambda", name, "code", e.Code, "type", e.Type)
		}
		writeError(w, lambdaHTTPStatus(e.Code), e.Type, e.Message)
		return
	}
	g.writeReply(w, r, name, msg.Data)
}

// writeReply writes a lambda's reply: a proxy response becomes that
// response; anything else is the body of a 200.
func (g *gateway) writeReply(w http.ResponseWriter, r *http.Request, name string, reply []byte) {
	pr, ok := clientsdk.ParseProxyResponse(reply)
	if !ok {
		w.Header().Set("Content-Type", http.DetectContentType(reply))
		if json := strings.TrimSpace(string(reply)); strings.HasPrefix(json, "{") || strings.HasPrefix(json, "[") {
			w.Header().Set("Content-Type", "application/json")
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(reply)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(reply)
		return
	}
	if pr.StatusCode < 200 || pr.StatusCode > 599 {
		// 1xx would leave the client waiting for a final answer that never
		// comes (101 for a connection the gateway does not upgrade).
		g.warnRequest(r, "the lambda answered an invalid statusCode", "lambda", name, "status_code", pr.StatusCode)
		writeError(w, http.StatusBadGateway, "InvalidResponse", fmt.Sprintf("lambda %s answered statusCode %d; a lambda's answer needs a final status, 200 to 599", name, pr.StatusCode))
		return
	}
	body, err := pr.BodyBytes()
	if err != nil {
		g.warnRequest(r, "the lambda answered a body that is not valid base64", "lambda", name)
		writeError(w, http.StatusBadGateway, "InvalidResponse", "lambda "+name+" answered a body that is not valid base64: "+err.Error())
		return
	}
	h := w.Header()
	for k, v := range pr.Headers {
		h.Set(k, v)
	}
	for k, vs := range pr.MultiValueHeaders {
		h.Del(k)
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	if h.Get("Content-Type") == "" && len(body) > 0 {
		h.Set("Content-Type", http.DetectContentType(body))
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(pr.StatusCode)
	_, _ = w.Write(body)
}
