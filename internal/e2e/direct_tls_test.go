package e2e

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
	natsgo "github.com/nats-io/nats.go"
)

// Direct mode under `serve --require-password --tls-self-signed`: the
// worker connects over TLS with its token and takes its requests itself;
// the leaf-node fallback (plain, loopback) still queues a burst beyond the
// warm worker, and every request is answered.
func TestDirectLambdasWithPasswordAndTLS(t *testing.T) {
	dir := testutil.TempDir(t)
	addUser(t, dir, "alice", tlsPW)
	s := startServe(t, dir, "--require-password", "--tls-self-signed")
	s.env = []string{"DARTUP_USER=alice", "DARTUP_PASSWORD=" + tlsPW, "DARTUP_TLS_CA=" + s.tlsCA}
	bin := testutil.BuildGo(t, "./internal/testutil/workers/lambdanative")
	s.dartup("push", "--lambda", "--name", "fast", "--protocol", "nats", "--max-workers", "3", "--queue", "100", bin)
	nc := testutil.Connect(t, s.natsURL, natsgo.RootCAs(s.tlsCA), natsgo.UserInfo("alice", tlsPW))
	req := func(data string) (string, error) {
		m, err := nc.Request(clientsdk.LambdaSubject("fast"), []byte(data), 20*time.Second)
		if err != nil {
			return "", err
		}
		if e := clientsdk.ErrorFromMsg(m); e != nil {
			return "", e
		}
		return string(m.Data), nil
	}
	if out, err := req(`{"env":"` + clientsdk.EnvLambdaDirect + `"}`); err != nil || out != clientsdk.LambdaQueueGroup {
		t.Fatalf("%s = %q, %v", clientsdk.EnvLambdaDirect, out, err)
	}
	var wg sync.WaitGroup
	for i := range 60 {
		wg.Go(func() {
			data := strconv.Itoa(i)
			if i%3 == 0 {
				data = `{"sleep_ms":50,"name":"` + data + `"}`
			}
			out, err := req(data)
			if err != nil || out != "Hello, "+strconv.Itoa(i)+"!" {
				t.Errorf("request %d: %q %v", i, out, err)
			}
		})
	}
	wg.Wait()
}
