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
// line (AppendInflightHeld) for each request of the last two batched done
// notices the worker sent and for each it answered since, whose record it
// holds, then, while it runs a request, that request's line
// (AppendInflightRun; dartup heeds it only when it never got the
// request's took notice). The worker writes a line (and a 0 byte after
// it) before and after each request, and rewrites the file from the
// prefix as it sends a batch. If the worker dies, dartup counts the
// records that are not in the last two batches it received (a notice
// published may die in the connection's buffer with the worker) and
// answers the running request's caller 502 instead of leaving it to its
// own timeout. A worker that cannot open the file goes on without it.
const EnvLambdaInflight = "DARTUP_LAMBDA_INFLIGHT"

// InflightPrefix starts an in-flight file.
const InflightPrefix = "dartup-inflight 2\n"

// MaxInflightRecords bounds the records an in-flight file lists: the
// last two batches sent and those held (dartup reads no more).
const MaxInflightRecords = 3 * MaxDoneBatch

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

// ParseInflight reads an in-flight file: the records (at most
// MaxInflightRecords) and the request running, nil for none (only its
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
		if len(held) == MaxInflightRecords {
			return held, nil, fmt.Errorf("more than %d records", MaxInflightRecords)
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
