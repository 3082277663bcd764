package broker

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/dartup/dartup/clientsdk"
)

// HeaderInvocationType is the HTTP request header that asks, as Lambda's
// Invoke API does, for a synchronous call ("RequestResponse", the default)
// or an async one ("Event": stored, answered 202 at once with the request
// id, run later).
const HeaderInvocationType = "X-Amz-Invocation-Type"

// HeaderAmznRequestID carries the request id of an async HTTP invocation
// in its 202 answer, as Lambda's Invoke API does.
const HeaderAmznRequestID = "X-Amzn-Requestid"

// invocationType reads X-Amz-Invocation-Type: async reports "Event";
// ok is false for a value Lambda does not know.
func invocationType(r *http.Request) (async, ok bool) {
	switch r.Header.Get(HeaderInvocationType) {
	case "", "RequestResponse":
		return false, true
	case "Event":
		return true, true
	}
	return false, false
}

// invokeAsync stores event as an async invocation of lambda name and
// answers 202 with its request id once JetStream has it; the function runs
// later with the same event.
func (g *gateway) invokeAsync(w http.ResponseWriter, r *http.Request, name string, event []byte) {
	if len(event) > clientsdk.MaxAsyncEventBytes {
		writeError(w, http.StatusRequestEntityTooLarge, "RequestTooLarge", "the event for this request is "+strconv.Itoa(len(event))+
			" bytes, over the async payload limit of 6 MiB")
		return
	}
	id := clientsdk.NewRequestID()
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	m := clientsdk.AsyncMsg(name, id, id, event)
	if v := r.Header[hTraceparent]; len(v) == 1 {
		m.Header[clientsdk.HeaderTraceparent] = v // the eventual invocation's parent
	}
	if _, err := g.b.js.PublishMsg(ctx, m); err != nil {
		g.warnRequest(r, "cannot store an async event", "lambda", name, "err", err)
		err = clientsdk.AsyncStoreError(err)
		if e, ok := clientsdk.AsError(err); ok {
			writeError(w, lambdaHTTPStatus(e.Code), e.Type, e.Message)
			return
		}
		writeError(w, http.StatusServiceUnavailable, "Unavailable", "the event was not stored: "+err.Error())
		return
	}
	w.Header().Set(HeaderAmznRequestID, id)
	w.Header().Set(clientsdk.HeaderRequestID, id)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
}
