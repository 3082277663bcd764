package broker

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dartup/dartup/clientsdk"
)

// Summarize computes dart_up's alive|dead|error summary of an app from its
// spec, its instances' statuses and the live runner nodes (id → node), at
// now. It is pure. What it says is what runs:
//   - an instance whose node is not live is lost (no pid, uptime, cpu or
//     memory) until it runs elsewhere; lambda workers on such nodes do not
//     count;
//   - an instance no live node can take is pending, with the reason;
//   - a crash-looping daemon is an error from its first quick exit, with the
//     last exit, the restarts and the next try;
//   - a lambda that no live node hosts because it cannot start is an error
//     with the cause.
func Summarize(spec clientsdk.AppSpec, st []clientsdk.InstanceStatus, live map[string]clientsdk.Node, now time.Time) clientsdk.AppSummary {
	if spec.Kind == clientsdk.KindLambda {
		return summarizeLambda(spec, st, live)
	}
	return summarizeDaemon(spec, st, live, now)
}

func summarizeDaemon(spec clientsdk.AppSpec, st []clientsdk.InstanceStatus, live map[string]clientsdk.Node, now time.Time) clientsdk.AppSummary {
	sum := clientsdk.AppSummary{Name: spec.Name, Kind: spec.Kind}
	if !spec.Stopped {
		sum.Desired = spec.Instances
	}
	byIndex := map[int]clientsdk.InstanceStatus{}
	for _, s := range st {
		byIndex[s.Instance] = s
	}
	var errored, loops, pending, lost []string
	for i := 0; i < spec.Instances; i++ {
		s, ok := byIndex[i]
		delete(byIndex, i)
		s = instanceTruth(spec, s, ok, i, live)
		sum.Instances = append(sum.Instances, s)
		switch {
		case s.State == clientsdk.StateRunning:
			sum.Running++
		case s.State == clientsdk.StateErrored && s.SpecRevision == spec.Revision:
			errored = append(errored, fmt.Sprintf("#%d: %s", i, s.LastError))
		case s.State == clientsdk.StatePending:
			pending = append(pending, s.LastError)
		case s.State == clientsdk.StateLost:
			lost = append(lost, s.Node)
		}
		if loop := crashLoop(spec, s, now); loop != "" {
			loops = append(loops, loop)
		}
	}
	for _, s := range byIndex { // instances beyond the count, still stopping
		sum.Instances = append(sum.Instances, s)
	}
	slices.SortFunc(sum.Instances, func(x, y clientsdk.InstanceStatus) int { return x.Instance - y.Instance })
	sum.State, sum.Message = daemonState(spec, sum, errored, loops, pending, lost)
	return sum
}

// instanceTruth returns what instance i really is: its status while its
// node is live; lost (and not ready) when its node is not; pending (with
// the reason) or starting when it has no status.
func instanceTruth(spec clientsdk.AppSpec, s clientsdk.InstanceStatus, ok bool, i int, live map[string]clientsdk.Node) clientsdk.InstanceStatus {
	if ok {
		if _, alive := live[s.Node]; alive || s.State == clientsdk.StateStopped {
			return s
		}
		s.State, s.Ready, s.PID, s.StartedAt, s.CPUPercent, s.MemoryBytes = clientsdk.StateLost, false, 0, time.Time{}, 0, 0
		s.LastError = "node " + s.Node + " stopped sending heartbeats"
		if why := unplaceable(spec, live); why != "" && !spec.Stopped {
			s.LastError += "; it cannot move: " + why
		}
		return s
	}
	s = clientsdk.InstanceStatus{App: spec.Name, Instance: i, State: clientsdk.StateStarting}
	if spec.Stopped {
		s.State = clientsdk.StateStopped
	} else if why := unplaceable(spec, live); why != "" {
		s.State, s.LastError = clientsdk.StatePending, why
	}
	return s
}

// daemonState is the app's one-line summary: stopped, error (errored or
// crash-looping instances), pending, lost, running or starting.
func daemonState(spec clientsdk.AppSpec, sum clientsdk.AppSummary, errored, loops, pending, lost []string) (clientsdk.AppState, string) {
	state := clientsdk.AppDead
	if sum.Running > 0 {
		state = clientsdk.AppAlive
	}
	switch {
	case spec.Stopped:
		return clientsdk.AppDead, stoppedMessage(sum, lost)
	case len(errored) > 0:
		return clientsdk.AppError, strings.Join(errored, "; ")
	case len(loops) > 0:
		return clientsdk.AppError, strings.Join(loops, "; ")
	}
	count := func(n int) string { // "3 " of "3 pending", nothing for a single instance
		if spec.Instances == 1 {
			return ""
		}
		return fmt.Sprintf("%d ", n)
	}
	var parts []string
	if spec.Instances > 1 {
		parts = append(parts, fmt.Sprintf("%d/%d running", sum.Running, spec.Instances))
	}
	parts = append(parts, rolloutParts(spec, sum)...)
	if len(lost) > 0 {
		parts = append(parts, fmt.Sprintf("%slost (node %s stopped sending heartbeats)", count(len(lost)), strings.Join(uniq(lost), ", ")))
	}
	if len(pending) > 0 {
		parts = append(parts, fmt.Sprintf("%spending: %s", count(len(pending)), strings.Join(uniq(pending), "; ")))
	}
	if sum.Running == 0 && len(lost) == 0 && len(pending) == 0 {
		parts = []string{"starting"}
		for _, s := range sum.Instances {
			if s.State == clientsdk.StateExited && s.SpecRevision == spec.Revision {
				parts = []string{"exited"}
			}
		}
	}
	return state, strings.Join(parts, "; ")
}

// stoppedMessage says how far a kill has got: stopped, or still stopping,
// or unconfirmed on nodes that do not answer.
func stoppedMessage(sum clientsdk.AppSummary, lost []string) string {
	running := 0
	for _, s := range sum.Instances {
		if s.PID > 0 || s.State == clientsdk.StateStopping || s.State == clientsdk.StateRunning {
			running++
		}
	}
	switch {
	case running > 0:
		return fmt.Sprintf("stopping: %d instance(s) still running", running)
	case len(lost) > 0:
		return fmt.Sprintf("stopped, except %d instance(s) on node %s, which is not answering: unconfirmed", len(lost), strings.Join(uniq(lost), ", "))
	}
	return "stopped"
}

// rolloutParts says how far a rollout has got (instances at an older
// revision, instances not ready yet), whether it stopped and why, and which
// instances are restarting after an exit (not a crash loop: they ran for
// min_uptime).
func rolloutParts(spec clientsdk.AppSpec, sum clientsdk.AppSummary) []string {
	var parts []string
	older, unready := 0, 0
	failed := ""
	needReady := spec.WithDefaults().ReadyProbe().Kind != clientsdk.ProbeNone
	for _, s := range sum.Instances {
		if s.Instance >= spec.Instances {
			continue
		}
		if s.FailedRevision == spec.Revision && failed == "" {
			failed = fmt.Sprintf("#%d: %s", s.Instance, s.LastError)
		}
		if s.State != clientsdk.StateRunning {
			if s.State == clientsdk.StateBackoff && s.QuickExits == 0 {
				parts = append(parts, fmt.Sprintf("#%d restarting after %s (%d restarts)", s.Instance, exitText(s), s.Restarts))
			}
			continue
		}
		if s.SpecRevision != spec.Revision {
			older++
		} else if needReady && !s.Ready {
			unready++
		}
	}
	if failed != "" {
		return append([]string{failed}, parts...)
	}
	if older > 0 {
		parts = append(parts, fmt.Sprintf("updating: %d/%d on the new revision", spec.Instances-older, spec.Instances))
	}
	if unready > 0 {
		parts = append(parts, fmt.Sprintf("%d not ready yet", unready))
	}
	return parts
}

// exitText says how an instance last ended.
func exitText(s clientsdk.InstanceStatus) string {
	switch {
	case s.LastSignal != "":
		return "being killed by " + s.LastSignal
	case s.LastExitCode != nil:
		return fmt.Sprintf("exit code %d", *s.LastExitCode)
	}
	return "an exit"
}

// crashLoop describes instance s when it is in a crash loop: it exited
// before min_uptime at least once in a row and has not run that long since.
func crashLoop(spec clientsdk.AppSpec, s clientsdk.InstanceStatus, now time.Time) string {
	if s.QuickExits == 0 || s.SpecRevision != spec.Revision {
		return ""
	}
	switch s.State {
	case clientsdk.StateBackoff, clientsdk.StateStarting:
	case clientsdk.StateRunning:
		if now.Sub(s.StartedAt) >= spec.Restart.MinUptime.D() {
			return ""
		}
	default:
		return ""
	}
	exit := "exited"
	switch {
	case s.LastError != "" && s.State != clientsdk.StateRunning:
		exit = s.LastError // stopped by its runner: not ready in time, or unhealthy
	case s.LastSignal != "":
		exit = "killed by " + s.LastSignal
	case s.LastExitCode != nil:
		exit = fmt.Sprintf("exit code %d", *s.LastExitCode)
	}
	next := "restarting now"
	if s.State == clientsdk.StateRunning {
		next = "running again"
	} else if d := s.NextRestartAt.Sub(now); d > 0 {
		next = "next try in " + d.Round(100*time.Millisecond).String()
	}
	return fmt.Sprintf("crash loop: %s, %d restarts, %s", exit, s.Restarts, next)
}

func summarizeLambda(spec clientsdk.AppSpec, st []clientsdk.InstanceStatus, live map[string]clientsdk.Node) clientsdk.AppSummary {
	sum := clientsdk.AppSummary{Name: spec.Name, Kind: spec.Kind}
	var errs []string
	hosted := false
	for _, s := range st {
		if _, alive := live[s.Node]; !alive {
			s.State, s.WarmWorkers = clientsdk.StateLost, 0
			sum.Instances = append(sum.Instances, s)
			continue
		}
		sum.Instances = append(sum.Instances, s)
		sum.WarmWorkers += s.WarmWorkers
		if s.State == clientsdk.StateErrored && s.SpecRevision == spec.Revision {
			errs = append(errs, s.Node+": "+s.LastError)
		} else if s.State != clientsdk.StateErrored {
			hosted = true
		}
	}
	sum.Running = sum.WarmWorkers
	switch {
	case spec.Stopped:
		sum.State, sum.Message = clientsdk.AppDead, "stopped"
	case len(errs) > 0 && !hosted:
		sum.State, sum.Message = clientsdk.AppError, "cannot start: "+strings.Join(errs, "; ")
	case sum.WarmWorkers > 0:
		sum.State, sum.Message = clientsdk.AppAlive, fmt.Sprintf("%d warm", sum.WarmWorkers)
	default:
		sum.State = clientsdk.AppDead
		if why := unplaceable(spec, live); why != "" && !hosted {
			sum.Message = "pending: " + why
		} else if hosted && why != "" {
			// A draining node keeps a lambda until another node can take it.
			sum.Message = "hosted by a draining node only (" + why + ")"
		}
	}
	return sum
}

// unplaceable says why no live node can take an instance of spec: none is
// live, none matches its constraints, every match is draining, or every
// match is at its --max-instances (daemons). "" when one can.
func unplaceable(spec clientsdk.AppSpec, live map[string]clientsdk.Node) string {
	if len(live) == 0 {
		return "no live runner node (start `dartup serve` or `dartup runner`)"
	}
	matching, draining, full := 0, 0, 0
	for _, n := range live {
		if !clientsdk.MatchesConstraints(spec.Constraints, n.Labels) {
			continue
		}
		matching++
		switch {
		case n.Draining:
			draining++
		case spec.Kind == clientsdk.KindDaemon && n.MaxInstances > 0 && n.Instances >= n.MaxInstances:
			full++
		}
	}
	switch {
	case matching == 0:
		return "no live node matches " + constraintString(spec.Constraints)
	case draining == matching:
		return "every eligible node is draining (`dartup nodes undrain NODE`)"
	case draining+full == matching:
		return "every eligible node is at its --max-instances"
	}
	return ""
}

func constraintString(c map[string]string) string {
	var parts []string
	for _, k := range sortedKeys(c) {
		parts = append(parts, k+"="+c[k])
	}
	return strings.Join(parts, ",")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func uniq(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}
