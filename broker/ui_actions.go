package broker

import (
	"context"
	"crypto/subtle"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/dartup/dartup/clientsdk"
)

// uiActionTimeout bounds one dashboard action.
const uiActionTimeout = 15 * time.Second

// uiMaxActionBody bounds the body of an action (scale's {"instances": N}).
const uiMaxActionBody = 1024

// uiScaleBody is the body of POST /ui/api/apps/NAME/scale.
type uiScaleBody struct {
	Instances int `json:"instances"`
}

// action is POST /ui/api/apps/{name}/{action}, action restart, kill, start
// or scale: the same control API verbs as `dartup restart|kill|start|scale`
// (the broker's own connection). It has passed the gateway's
// authentication and the cross-origin check; it needs the page's token in
// uiTokenHeader too.
func (u *ui) action(w http.ResponseWriter, r *http.Request) {
	if subtle.ConstantTimeCompare([]byte(r.Header.Get(uiTokenHeader)), []byte(u.token)) != 1 {
		writeError(w, http.StatusForbidden, "BadToken", "this action lacks the dashboard's token (header "+uiTokenHeader+"); reload the dashboard page, which gets a new one when the server restarts")
		return
	}
	name, act := r.PathValue("name"), r.PathValue("action")
	if err := clientsdk.ValidateName(name); err != nil {
		writeAPIError(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), uiActionTimeout)
	defer cancel()
	var res any
	var err error
	switch act {
	case "restart":
		res, err = u.client.Restart(ctx, name, 0)
	case "kill":
		res, err = u.client.Kill(ctx, name)
	case "start":
		res, err = u.client.Start(ctx, name)
	case "scale":
		var n int
		if n, err = readScale(w, r); err == nil {
			res, err = u.client.Scale(ctx, name, n)
		}
	default:
		writeError(w, http.StatusNotFound, "NotFound", "no dashboard action "+clipText(act, 64)+"; there are restart, kill, start and scale")
		return
	}
	u.logger.Info("dashboard action", "action", act, "app", name, "user", authUser(r), "remote", r.RemoteAddr, "ok", err == nil)
	if err != nil {
		writeAPIError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"action": act, "app": name, "result": res})
}

// readScale reads the number of instances from a scale action's body.
func readScale(w http.ResponseWriter, r *http.Request) (int, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, uiMaxActionBody))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return 0, clientsdk.Errorf(413, clientsdk.TypeTooLarge, "the body of a scale action is over %d bytes; send {\"instances\": N}", uiMaxActionBody)
	}
	if err != nil {
		return 0, err
	}
	var body uiScaleBody
	if err := clientsdk.DecodeRequest(b, &body); err != nil {
		return 0, err
	}
	return body.Instances, nil
}

// writeAPIError answers err: an *clientsdk.Error with its code, anything
// else (the control API unreachable) with 502.
func writeAPIError(w http.ResponseWriter, err error) {
	if e, ok := clientsdk.AsError(err); ok && e.Code >= 400 && e.Code <= 599 {
		writeError(w, e.Code, e.Type, e.Message)
		return
	}
	writeError(w, http.StatusBadGateway, "Unavailable", err.Error())
}
