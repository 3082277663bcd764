package broker

import (
	"net/http"
	"strings"
)

// invoke answers ANY /NAME[/rest]. Until lambdas are hosted, every name is unknown.
func (g *gateway) invoke(w http.ResponseWriter, r *http.Request) {
	name, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if name == "" {
		writeError(w, http.StatusNotFound, "NotFound", "no route "+r.URL.Path+"; try /healthz or /NAME for a lambda")
		return
	}
	writeError(w, http.StatusNotFound, "NotFound", "no lambda named "+name)
}
