package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/dartup/dartup/internal/testutil"
)

// `dartup routes` prints the gateway's route table in match order, as a
// table and with --json.
func TestRoutesCommand(t *testing.T) {
	p := startServeLocal(t, testutil.TempDir(t), "--no-runner")
	env := []string{"DARTUP_URL=" + p.ready.NATSURL}
	if r := runCLI(t, "", env, "routes"); r.code != 0 || !strings.Contains(r.stdout, "No HTTP routes") {
		t.Fatalf("dartup routes on an empty server: %+v", r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := clientsdk.Connect(ctx, clientsdk.WithURL(p.ready.NATSURL))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cmd := []string{"/bin/true"}
	for _, s := range []clientsdk.AppSpec{
		{Name: "users", Kind: clientsdk.KindLambda, Runtime: clientsdk.RuntimeCommand, Command: cmd,
			Lambda: &clientsdk.LambdaSpec{Routes: []clientsdk.FunctionRoute{{Method: "GET", Path: "/users/{id}"}, {Method: "POST", Path: "/users"}}}},
		{Name: "legacy", Kind: clientsdk.KindLambda, Runtime: clientsdk.RuntimeCommand, Command: cmd},
		{Name: "web", Kind: clientsdk.KindDaemon, Runtime: clientsdk.RuntimeCommand, Command: cmd,
			HTTP: []clientsdk.HTTPRoute{{Prefix: "/"}, {Host: "api.example.com", Prefix: "/"}}},
	} {
		if _, err := c.Push(ctx, s, "", nil); err != nil {
			t.Fatalf("push %s: %v", s.Name, err)
		}
	}
	r := runCLI(t, "", env, "routes", "--json")
	var got []clientsdk.RouteInfo
	if err := json.Unmarshal([]byte(r.stdout), &got); r.code != 0 || err != nil {
		t.Fatalf("dartup routes --json: %v %+v", err, r)
	}
	var lines []string
	for _, ri := range got {
		lines = append(lines, ri.Host+" "+ri.Method+" "+ri.Path+" "+string(ri.Kind)+" "+ri.App)
	}
	want := " GET /users/{id} lambda users| POST /users lambda users|api.example.com * / daemon web| * /legacy lambda legacy| * / daemon web"
	if strings.Join(lines, "|") != want {
		t.Errorf("dartup routes --json:\n got %q\nwant %q", strings.Join(lines, "|"), want)
	}
	r = runCLI(t, "", env, "routes")
	t.Logf("dartup routes:\n%s", r.stdout)
	rows := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(rows) != 6 || strings.Join(strings.Fields(rows[0]), " ") != "HOST METHOD PATH KIND APP READY" ||
		strings.Join(strings.Fields(rows[1]), " ") != "* GET /users/{id} lambda users -" ||
		strings.Join(strings.Fields(rows[5]), " ") != "* * / daemon web 0" {
		t.Errorf("dartup routes:\n%s", r.stdout)
	}
}
