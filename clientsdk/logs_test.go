package clientsdk_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go/jetstream"
)

// logs --lines N returns the last N lines of the app (oldest first), also
// when another app's lines fill the stream in between and after.
func TestLogsLastLines(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := clientsdk.Connect(ctx, clientsdk.WithURL(exampleURL))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	js, err := jetstream.New(c.Conn())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3000 {
		subj := "dartup.logs.busytail.0.out"
		line := fmt.Sprintf("busy %d", i)
		if i%500 == 0 {
			subj, line = "dartup.logs.quiettail.0.out", fmt.Sprintf("quiet %d", i/500)
		}
		if _, err := js.Publish(ctx, subj, []byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c2 := range []struct {
		app   string
		lines int
		want  []string
	}{
		{"quiettail", 3, []string{"quiet 3", "quiet 4", "quiet 5"}},
		{"quiettail", 10, []string{"quiet 0", "quiet 1", "quiet 2", "quiet 3", "quiet 4", "quiet 5"}},
		{"busytail", 2, []string{"busy 2998", "busy 2999"}},
	} {
		var got []string
		if err := c.Logs(ctx, c2.app, clientsdk.LogsOptions{Instance: -1, Lines: c2.lines}, func(l clientsdk.LogLine) { got = append(got, l.Line) }); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(c2.want) {
			t.Errorf("logs %s --lines %d: %q, want %q", c2.app, c2.lines, got, c2.want)
		}
	}
}
