package runner

import (
	"encoding/json"
	"time"

	"github.com/dartup/dartup/clientsdk"
	"github.com/nats-io/nats.go"
)

// gatewayAckWindow is how long a drain waits for the gateways to say how
// many requests they have in flight to an address: every server's gateway
// answers at once, so this bounds the wait for the slowest of them.
const gatewayAckWindow = 100 * time.Millisecond

// drainGateways takes addr out of every gateway's routes and waits, up to
// limit, until the requests the gateways sent to it have finished, so that
// the worker behind it is signalled only once it has nothing left to answer.
// Gateways that do not answer in gatewayAckWindow are not waited for.
func (r *Runner) drainGateways(addr string, pid int, limit time.Duration) {
	inbox := r.nc.NewRespInbox()
	replies := make(chan *nats.Msg, 64)
	sub, err := r.nc.ChanSubscribe(inbox, replies)
	if err != nil {
		return
	}
	defer func() { _ = sub.Unsubscribe() }()
	req, _ := json.Marshal(clientsdk.GatewayDrainRequest{Address: addr, PID: pid, Wait: clientsdk.Duration(limit)})
	if err := r.nc.PublishRequest(clientsdk.GatewayDrainSubject, inbox, req); err != nil {
		return
	}
	start := time.Now()
	waiting := map[string]bool{}
	ack := time.NewTimer(gatewayAckWindow)
	defer ack.Stop()
	end := time.NewTimer(limit)
	defer end.Stop()
	acked := false
	for {
		select {
		case m := <-replies:
			var rep clientsdk.GatewayDrainReply
			if json.Unmarshal(m.Data, &rep) != nil {
				continue
			}
			waiting[rep.Gateway] = !rep.Done
		case <-ack.C:
			acked = true
		case <-end.C:
			r.logger.Warn("gateways still had requests in flight to a worker when its drain time ran out", "address", addr, "waited", limit)
			return
		}
		if acked && !anyTrue(waiting) {
			if len(waiting) > 0 && time.Since(start) > gatewayAckWindow+50*time.Millisecond {
				r.logger.Debug("gateways drained", "address", addr, "took", time.Since(start).Round(time.Millisecond))
			}
			return
		}
	}
}

func anyTrue(m map[string]bool) bool {
	for _, v := range m {
		if v {
			return true
		}
	}
	return false
}
