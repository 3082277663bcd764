package broker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// The control API's dead-letter verbs (docs/api.md, docs/events.md).

// dlqStream returns the dead letters stream, or 503 before the dispatcher
// has started.
func (a *api) dlqStream() (jetstream.Stream, error) {
	if a.b.async == nil {
		return nil, clientsdk.Errorf(503, "Unavailable", "the server is starting; try again")
	}
	return a.b.async.dlq, nil
}

// dlqList answers dartup.api.dlq-list: the newest dead letters (of one
// lambda, or all), oldest first, read by headers only.
func (a *api) dlqList(ctx context.Context, req micro.Request) (any, error) {
	var r clientsdk.DLQListRequest
	if err := clientsdk.DecodeRequest(req.Data(), &r); err != nil {
		return nil, err
	}
	filter := clientsdk.DLQPrefix + ".*"
	if r.Name != "" {
		if err := clientsdk.ValidateName(r.Name); err != nil {
			return nil, err
		}
		filter = clientsdk.DLQSubject(r.Name)
	}
	limit := r.Limit
	if limit <= 0 || limit > clientsdk.MaxDLQList {
		limit = clientsdk.MaxDLQList
	}
	s, err := a.dlqStream()
	if err != nil {
		return nil, err
	}
	res := clientsdk.DLQListResponse{DeadLetters: []clientsdk.DeadLetter{}}
	err = readDeadLetters(ctx, s, filter, func(dl clientsdk.DeadLetter) {
		res.Total++
		res.DeadLetters = append(res.DeadLetters, dl)
		if len(res.DeadLetters) > limit {
			res.DeadLetters = res.DeadLetters[1:]
		}
	})
	return res, err
}

// readDeadLetters calls fn with every dead letter on filter, oldest first,
// without their events.
func readDeadLetters(ctx context.Context, s jetstream.Stream, filter string, fn func(clientsdk.DeadLetter)) error {
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return err
	}
	var want uint64
	for _, n := range info.State.Subjects {
		want += n
	}
	if want == 0 {
		return nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter},
		HeadersOnly: true, InactiveThreshold: 5 * time.Second})
	if err != nil {
		return err
	}
	for seen := uint64(0); seen < want; {
		batch, err := c.Fetch(500, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return err
		}
		got := 0
		for m := range batch.Messages() {
			got++
			seen++
			meta, err := m.Metadata()
			if err != nil {
				continue
			}
			size, _ := strconv.Atoi(m.Headers().Get(nats.MsgSize))
			fn(deadLetterOf(m.Subject(), meta.Sequence.Stream, meta.Timestamp, m.Headers(), size))
		}
		if got == 0 || ctx.Err() != nil {
			break // the rest expired or was deleted meanwhile
		}
	}
	return ctx.Err()
}

// deadLetterOf reads a dead letter's headers.
func deadLetterOf(subject string, seq uint64, stored time.Time, h nats.Header, size int) clientsdk.DeadLetter {
	dl := clientsdk.DeadLetter{ID: seq, App: strings.TrimPrefix(subject, clientsdk.DLQPrefix+"."), Time: stored.UTC(), Size: size,
		RequestID: h.Get(clientsdk.HeaderRequestID), Error: h.Get(clientsdk.HeaderError), ErrorType: h.Get(clientsdk.HeaderErrorType)}
	dl.Attempts, _ = strconv.Atoi(h.Get(clientsdk.HeaderAttempts))
	dl.ErrorCode, _ = strconv.Atoi(h.Get(clientsdk.HeaderErrorCode))
	for k, t := range map[string]*time.Time{clientsdk.HeaderEnqueued: &dl.Enqueued,
		clientsdk.HeaderFirstAttempt: &dl.FirstAttempt, clientsdk.HeaderLastAttempt: &dl.LastAttempt} {
		*t, _ = time.Parse(time.RFC3339Nano, h.Get(k))
	}
	return dl
}

// getDeadLetter reads dead letter id; *Error 404 when there is none.
func getDeadLetter(ctx context.Context, s jetstream.Stream, id uint64) (*jetstream.RawStreamMsg, error) {
	m, err := s.GetMsg(ctx, id)
	if errors.Is(err, jetstream.ErrMsgNotFound) || (err == nil && !strings.HasPrefix(m.Subject, clientsdk.DLQPrefix+".")) {
		return nil, clientsdk.Errorf(404, "NotFound", "no dead letter %d; `dartup dlq ls` lists them", id)
	}
	return m, err
}

// dlqShow answers dartup.api.dlq-show: one dead letter with its headers
// and event.
func (a *api) dlqShow(ctx context.Context, req micro.Request) (any, error) {
	var r clientsdk.DLQShowRequest
	if err := clientsdk.DecodeRequest(req.Data(), &r); err != nil {
		return nil, err
	}
	s, err := a.dlqStream()
	if err != nil {
		return nil, err
	}
	m, err := getDeadLetter(ctx, s, r.ID)
	if err != nil {
		return nil, err
	}
	dl := deadLetterOf(m.Subject, m.Sequence, m.Time, m.Header, len(m.Data))
	dl.Headers, dl.Event = map[string][]string(m.Header), clientsdk.RawJSON(m.Data)
	return dl, nil
}

// dlqRedrive answers dartup.api.dlq-redrive: the dead letters given (all
// of the lambda's without any) are stored again as async invocations with
// their request ids, then deleted from the dead letters.
func (a *api) dlqRedrive(ctx context.Context, req micro.Request) (any, error) {
	var r clientsdk.DLQRedriveRequest
	if err := clientsdk.DecodeRequest(req.Data(), &r); err != nil {
		return nil, err
	}
	if err := clientsdk.ValidateName(r.Name); err != nil {
		return nil, err
	}
	if _, e := a.b.router.lookup(ctx, r.Name, false); e != nil {
		return nil, e
	}
	s, err := a.dlqStream()
	if err != nil {
		return nil, err
	}
	ids, all := r.IDs, len(r.IDs) == 0
	if all {
		err := readDeadLetters(ctx, s, clientsdk.DLQSubject(r.Name), func(dl clientsdk.DeadLetter) { ids = append(ids, dl.ID) })
		if err != nil {
			return nil, err
		}
	}
	res := clientsdk.DLQRedriveResponse{Redriven: []clientsdk.DeadLetter{}}
	for _, id := range ids {
		dl, err := a.redriveOne(ctx, s, r.Name, id)
		if all && errors.Is(err, clientsdk.ErrNotFound) {
			continue // gone meanwhile (expired, or redriven by another request)
		}
		if err != nil {
			if e, ok := clientsdk.AsError(err); ok && len(res.Redriven) > 0 {
				return nil, clientsdk.Errorf(e.Code, e.Type, "%s (%d dead letters were redriven before)", e.Message, len(res.Redriven))
			}
			return nil, err
		}
		res.Redriven = append(res.Redriven, dl)
	}
	return res, nil
}

// redriveOne stores dead letter id of lambda name as an async invocation
// again, keeping its request id, under a message id of its own (the first
// store's id would be taken for a duplicate within JetStream's window),
// and deletes it.
func (a *api) redriveOne(ctx context.Context, s jetstream.Stream, name string, id uint64) (clientsdk.DeadLetter, error) {
	m, err := getDeadLetter(ctx, s, id)
	if err != nil {
		return clientsdk.DeadLetter{}, err
	}
	dl := deadLetterOf(m.Subject, m.Sequence, m.Time, m.Header, len(m.Data))
	if dl.App != name {
		return dl, clientsdk.Errorf(400, "OtherLambda", "dead letter %d is an event of %s, not of %s; redrive it with `dartup dlq redrive %s %d`", id, dl.App, name, dl.App, id)
	}
	reqID := dl.RequestID
	if !clientsdk.ValidRequestID(reqID) {
		reqID = clientsdk.NewRequestID()
	}
	if _, err := a.b.js.PublishMsg(ctx, clientsdk.AsyncMsg(name, reqID, fmt.Sprintf("%s.redrive.%d", reqID, id), m.Data)); err != nil {
		return dl, clientsdk.AsyncStoreError(err)
	}
	if err := s.DeleteMsg(ctx, id); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return dl, fmt.Errorf("dead letter %d was stored again but not deleted: %w", id, err)
	}
	return dl, nil
}

// dlqPurge answers dartup.api.dlq-purge: every dead letter of a lambda (or
// of a name that is no lambda) is deleted.
func (a *api) dlqPurge(ctx context.Context, req micro.Request) (any, error) {
	name, err := decodeName(req)
	if err != nil {
		return nil, err
	}
	s, err := a.dlqStream()
	if err != nil {
		return nil, err
	}
	n, err := subjectCount(ctx, s, clientsdk.DLQSubject(name))
	if err != nil {
		return nil, err
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSubject(clientsdk.DLQSubject(name))); err != nil {
		return nil, err
	}
	return clientsdk.DLQPurgeResponse{Purged: n}, nil
}
