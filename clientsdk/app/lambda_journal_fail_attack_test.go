//go:build linux

package app

import (
	"os"
	"syscall"
	"testing"

	"github.com/dartup/dartup/clientsdk"
)

// A journal whose write fails part-way (a full disk, a file size limit:
// here RLIMIT_FSIZE, which cuts the write short) closes, and the worker
// goes on without it — sending the records it holds in notices. The file
// must then name nothing: records it listed would be counted a second
// time when the worker exits, and a running request's line left there
// would get an answered caller's request 502 and an error counted.
func TestJournalThatCannotBeWrittenNamesNothing(t *testing.T) {
	path := emptyInflightFile(t)
	j := openJournal()
	if j == nil {
		t.Fatal("no journal")
	}
	defer func() {
		if j.f != nil {
			_ = j.f.Close()
		}
	}()
	rec := func(i int) clientsdk.DoneRecord {
		return clientsdk.DoneRecord{RequestID: clientsdk.NewRequestID(), Status: 200, Reply: "_INBOX.caller." + string(rune('a'+i))}
	}
	for i := range 2 {
		j.run(clientsdk.AppendInflightRun(nil, clientsdk.NewRequestID(), "_INBOX.caller.x", "", ""))
		if !j.hold(rec(i)) {
			t.Fatal("a record refused under the bound")
		}
	}
	line := clientsdk.AppendInflightRun(nil, clientsdk.NewRequestID(), "_INBOX.caller.y", "", "")
	// The next write can grow the file by a few bytes only.
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = uint64(j.off) + 10
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Skip("cannot limit the file size:", err)
	}
	j.run(line)
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	if j.f != nil {
		t.Fatal("the journal still writes after a write cut short")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if held, run, _ := clientsdk.ParseInflight(b); len(held) != 0 || run != nil {
		t.Fatalf("after a failed write the file names %d records held and running %v (%q): they would count again", len(held), run, b)
	}
}
