package clientsdk

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// EnvLambdaInflight, in direct mode, names a file of the worker's: what
// dartup must know of it if it dies unannounced (docs/protocol.md §7.6).
// Up to its first 0 byte, it holds InflightPrefix, then a done record
// line (AppendInflightHeld) for each request the worker answered whose
// record it holds for a batched done notice, then, while it runs a
// request, that request's line (AppendInflightRun; dartup heeds it only
// when it never got the request's took notice). The worker rewrites the
// tail with one write before and after each request, and empties it (a 0
// byte after the prefix) before it sends the records held or a took
// request's done notice. If the worker dies, dartup counts the
// records held (answered requests) and answers the running request's
// caller 502 instead of leaving it to its own timeout. A worker that
// cannot open the file goes on without it.
const EnvLambdaInflight = "DARTUP_LAMBDA_INFLIGHT"

// InflightPrefix starts an in-flight file.
const InflightPrefix = "dartup-inflight 2\n"

// MaxInflightFile bounds an in-flight file (dartup reads no more; a
// worker sends the records it holds before they would pass it).
const MaxInflightFile = 96 << 10

// inflightRun starts the line of the request running.
const inflightRun = "run "

// AppendInflightHeld appends the line of r, a record held, to b.
func AppendInflightHeld(b []byte, r DoneRecord) []byte { return appendDoneLine(b, r) }

// AppendInflightRun appends the line of the request running to b: its
// request id, the caller's reply subject and trace, and dartup's requeue
// token ("-" for none). b is returned unchanged when the id or a field
// could not be read back (a space or a newline in it).
func AppendInflightRun(b []byte, id, reply, traceparent, requeued string) []byte {
	for _, f := range []string{id, reply, traceparent, requeued} {
		if strings.ContainsAny(f, " \n\x00") {
			return b
		}
	}
	b = append(b, inflightRun...)
	b = append(b, id...)
	for _, f := range []string{reply, traceparent, requeued} {
		b = append(b, ' ')
		b = append(b, doneField(f)...)
	}
	return append(b, '\n')
}

// ParseInflight reads an in-flight file: the records held (at most
// MaxDoneBatch) and the request running, nil for none (only its
// RequestID, Reply, TraceParent and Requeued are set). It stops at the
// first line it cannot read, with why, keeping what it read before.
func ParseInflight(b []byte) (held []DoneRecord, running *DoneRecord, err error) {
	if len(b) > MaxInflightFile {
		b = b[:MaxInflightFile]
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	rest, ok := bytes.CutPrefix(b, []byte(InflightPrefix))
	if !ok {
		return nil, nil, errors.New("not a dartup in-flight file")
	}
	for len(rest) > 0 {
		line, next, found := bytes.Cut(rest, []byte{'\n'})
		if !found {
			return held, nil, fmt.Errorf("line %d has no end", len(held)+1)
		}
		if run, ok := strings.CutPrefix(string(line), inflightRun); ok {
			r, err := parseInflightRun(run)
			if err != nil {
				return held, nil, err
			}
			return held, &r, nil // the last line
		}
		if len(held) == MaxDoneBatch {
			return held, nil, fmt.Errorf("more than %d records", MaxDoneBatch)
		}
		r, err := parseDoneRecord(string(line))
		if err != nil {
			return held, nil, fmt.Errorf("record %d: %w", len(held)+1, err)
		}
		held = append(held, r)
		rest = next
	}
	return held, nil, nil
}

// parseInflightRun reads the fields of a running request's line.
func parseInflightRun(s string) (DoneRecord, error) {
	f := strings.Split(s, " ")
	if len(f) != 4 || !ValidRequestID(f[0]) {
		return DoneRecord{}, errors.New("a running request's line that cannot be read")
	}
	r := DoneRecord{RequestID: f[0]}
	for i, p := range []*string{&r.Reply, &r.TraceParent, &r.Requeued} {
		if f[1+i] != "-" {
			*p = f[1+i]
		}
	}
	return r, nil
}
