package broker

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/dartup/dartup/clientsdk"
)

// The web dashboard at /ui (docs/ui.md): a page embedded in the binary
// (broker/ui/, plain HTML, CSS and JavaScript, nothing fetched from
// elsewhere), two Server-Sent Event streams (snapshots of apps, instances,
// nodes and lambdas once a second with the lifecycle events; the log tail of
// one app) and POST actions (restart, kill, start, scale). Everything goes
// through the control API on the broker's own connection, as the CLI's
// calls do, and behind the gateway's authentication.

//go:embed ui/index.html ui/app.js ui/app.css
var uiFiles embed.FS

// uiPage is the dashboard's page, with a place for the token.
var uiPage = template.Must(template.ParseFS(uiFiles, "ui/index.html"))

// uiTokenHeader carries the page's token on every action (see ui.token).
const uiTokenHeader = "X-Dartup-Token"

// ui is the dashboard of one gateway.
type ui struct {
	g      *gateway
	client *clientsdk.Client
	logger *slog.Logger
	static fs.FS
	// token is made at each start and given to the page; every action must
	// send it back (uiTokenHeader): a page of another site cannot read it.
	token string
	// csrf refuses actions that browsers mark as cross-origin.
	csrf *http.CrossOriginProtection
	hub  *uiHub
	// ctx ends when the gateway shuts down, and with it every stream.
	ctx    context.Context
	cancel context.CancelFunc
}

// startUI adds the dashboard's handlers to the gateway's mux; its streams
// end when the gateway's server shuts down.
func (g *gateway) startUI() {
	// WithConn cannot fail with a connection.
	client, _ := clientsdk.Connect(context.Background(), clientsdk.WithConn(g.b.nc))
	tok := make([]byte, 32)
	_, _ = rand.Read(tok)
	static, _ := fs.Sub(uiFiles, "ui")
	u := &ui{g: g, client: client, logger: g.logger.With("component", "ui"), static: static,
		token: hex.EncodeToString(tok), csrf: http.NewCrossOriginProtection()}
	u.ctx, u.cancel = context.WithCancel(context.Background())
	u.hub = newUIHub(u)
	u.csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusForbidden, "CrossOrigin", "a dashboard action must come from the dashboard's own page (this request is cross-origin)")
	}))
	g.srv.RegisterOnShutdown(u.cancel)
	m := g.mux
	m.HandleFunc("GET /ui", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ui/", http.StatusMovedPermanently) })
	m.Handle("GET /ui/{$}", u.guard(http.HandlerFunc(u.index)))
	m.Handle("GET /ui/static/{file}", u.guard(http.HandlerFunc(u.file)))
	m.Handle("GET /ui/api/stream", u.guard(http.HandlerFunc(u.hub.serve)))
	m.Handle("GET /ui/api/logs", u.guard(http.HandlerFunc(u.logs)))
	m.Handle("POST /ui/api/apps/{name}/{action}", u.guard(u.csrf.Handler(http.HandlerFunc(u.action))))
	m.Handle("/ui/api/apps/{name}/{action}", u.guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "dashboard actions take POST only")
	})))
	m.Handle("/ui/", u.guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "NotFound", "no dashboard page "+r.URL.Path+"; the dashboard is at /ui/")
	})))
}

// uiCSP lets the page load its own files and talk to its own server only.
const uiCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// guard sets the dashboard's security headers and refuses a request that
// came in without credentials under a host name that is not loopback's
// (see uiHostAllowed).
func (u *ui) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", uiCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
		if !uiHostAllowed(r.Host, authUser(r) != "") {
			writeError(w, http.StatusForbidden, "Forbidden", "without a password the dashboard answers only at a loopback address (http://127.0.0.1:PORT/ui/ or http://localhost:PORT/ui/); log in with a user of `dartup password` to use another host name")
			return
		}
		if strings.HasPrefix(r.URL.Path, "/ui/api/") && !sameOriginFetch(r.Header.Get("Sec-Fetch-Site")) {
			writeError(w, http.StatusForbidden, "CrossOrigin", "the dashboard's API answers its own page only (this request is cross-origin)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// uiHostAllowed decides whether the dashboard answers a request for host
// (the Host header): always to a logged-in user; otherwise (the loopback
// exemption) only under a loopback host — localhost or a loopback address —
// so that a web page whose name an attacker points at 127.0.0.1 (DNS
// rebinding) cannot read the dashboard, its token, or act.
func uiHostAllowed(host string, authenticated bool) bool {
	if authenticated {
		return true
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// sameOriginFetch reports whether a browser's Sec-Fetch-Site value allows
// a request to the dashboard's API: sent by the page itself, typed in by
// the user, or not from a browser (no value). Another port of the same
// host ("same-site", an app's page) is another origin.
func sameOriginFetch(site string) bool {
	return site == "" || site == "same-origin" || site == "none"
}

// index serves the page with this server's token.
func (u *ui) index(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := uiPage.Execute(w, map[string]string{"Token": u.token}); err != nil {
		u.logger.Warn("cannot write the dashboard page", "err", err)
	}
}

// file serves the page's script and style sheet.
func (u *ui) file(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if name != "app.js" && name != "app.css" {
		writeError(w, http.StatusNotFound, "NotFound", "no dashboard file "+name)
		return
	}
	http.ServeFileFS(w, r, u.static, name)
}
