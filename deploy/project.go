package deploy

import (
	"cmp"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/dartup/dartup/clientsdk"
)

// Project is a loaded deploy file: its service and the apps it declares.
type Project struct {
	// File is the deploy file's path as given; Dir its folder (absolute).
	File, Dir string
	// Service names the project (see File.Service); ServiceGiven says the
	// file names it (else it is the folder's name).
	Service      string
	ServiceGiven bool
	// Entries are the declared apps, by name.
	Entries []Entry
	// Ignored lists what the file holds that dartup does not apply (keys
	// of serverless.yml with no meaning here), for the user to read.
	Ignored []string
}

// Entry is one declared app: its spec (without artifact) and where its
// artifact comes from.
type Entry struct {
	Spec   clientsdk.AppSpec
	Source Source
	// At is where the artifact is declared, for problems found later.
	At Problem
}

// Source is where an app's artifact comes from.
type Source struct {
	// Path is the file or folder (absolute); "" for runtime command.
	Path string `json:"path,omitempty"`
	// Entry is the program inside a folder.
	Entry string `json:"entry,omitempty"`
	// Dart is set for a .dart file, built with the local Dart SDK.
	Dart bool `json:"dart,omitempty"`
}

// Options are the inputs of Load besides the file.
type Options struct {
	// Getenv looks up ${env:VAR}; default os.LookupEnv.
	Getenv func(string) (string, bool)
	// Artifact is the file that serverless.yml's functions run when the
	// file names none (deploy --artifact).
	Artifact string
}

// Load reads the deploy file at path — dartup.yaml, or serverless.yml
// (by its name) — and returns the project. Every problem found is
// returned at once in a *FileError, each with its line; nothing on a
// server is touched.
func Load(path string, o Options) (*Project, error) {
	if o.Getenv == nil {
		o.Getenv = os.LookupEnv
	}
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	p := &Project{File: path, Dir: filepath.Dir(abs)}
	name := filepath.Base(path)
	var f *File
	var d *doc
	if strings.HasPrefix(strings.ToLower(name), "serverless.") {
		f, d, p.Ignored = parseServerless(name, data, o)
	} else {
		f = &File{}
		d = parse(name, data, f, o.Getenv)
	}
	if err := d.err(); err != nil {
		return nil, err
	}
	p.Service, p.ServiceGiven = cmp.Or(f.Service, clientsdk.TokenFrom(filepath.Base(p.Dir), "app")), f.Service != ""
	if clientsdk.ValidateName(p.Service) != nil {
		d.add("service", "%q is not a name: letters, digits, '-' and '_', starting with a letter or digit", f.Service)
	}
	p.Entries = d.entries(f, p.Dir, p.Service)
	if err := d.err(); err != nil {
		return nil, err
	}
	return p, nil
}

// entries builds the apps' specs, checking names, artifacts, routes and
// bounds.
func (d *doc) entries(f *File, dir, service string) []Entry {
	var out []Entry
	switch n := len(f.Apps) + len(f.Functions); {
	case n == 0:
		d.add("", "the file declares no apps and no functions")
		return nil
	case n > MaxApps:
		d.add("", "the file declares %d apps and functions; one file holds at most %d (split the project)", n, MaxApps)
		return nil
	}
	for name, a := range f.Apps {
		if a == nil {
			a = &App{}
		}
		out = append(out, d.entry("apps."+name, name, service, dir, a.Common, a.spec))
	}
	for name, fn := range f.Functions {
		if fn == nil {
			fn = &Function{}
		}
		if _, dup := f.Apps[name]; dup {
			d.add("functions."+name, "%s is also declared under apps: app names are unique", name)
		}
		out = append(out, d.entry("functions."+name, name, service, dir, fn.Common, func(s *clientsdk.AppSpec, field string) {
			fn.spec(d, s, field)
		}))
	}
	slices.SortFunc(out, func(a, b Entry) int { return cmp.Compare(a.Spec.Name, b.Spec.Name) })
	d.routeClashes(out)
	return out
}

// entry builds one app's spec: the common settings, then the kind's own
// (fill), then checks its bounds.
func (d *doc) entry(field, name, service, dir string, c Common, fill func(*clientsdk.AppSpec, string)) Entry {
	if err := clientsdk.ValidateName(name); err != nil {
		d.add(field, "%q is not an app name: letters, digits, '-' and '_' (starting with a letter or digit), up to %d", name, clientsdk.MaxNameLength)
	}
	s := clientsdk.AppSpec{Name: name, Service: service, Runtime: clientsdk.Runtime(c.Runtime), Command: c.Command,
		Interpreter: c.Interpreter, Cwd: c.Cwd, Args: c.Args, Env: c.Env, Constraints: c.Constraints, History: c.History}
	if s.Interpreter != "" && !filepath.IsAbs(s.Interpreter) && strings.Contains(s.Interpreter, "/") {
		s.Interpreter = filepath.Join(dir, s.Interpreter)
	}
	src := d.source(field, dir, c, &s)
	fill(&s, field)
	withDefaults := s.WithDefaults()
	if err := withDefaults.ValidateBounds(); err != nil {
		d.boundsProblem(field, err)
	}
	at := Problem{File: d.name, Line: d.line(field + ".artifact"), Field: field + ".artifact"}
	return Entry{Spec: s, Source: src, At: at}
}

// source checks where the artifact comes from.
func (d *doc) source(field, dir string, c Common, s *clientsdk.AppSpec) Source {
	switch {
	case len(c.Command) > 0 && c.Artifact != "":
		d.add(field+".command", "give artifact or command, not both")
	case len(c.Command) > 0:
		if s.Runtime != "" && s.Runtime != clientsdk.RuntimeCommand {
			d.add(field+".runtime", "a command line runs with runtime command, not %s", s.Runtime)
		}
		s.Runtime = clientsdk.RuntimeCommand
		return Source{}
	case c.Artifact == "":
		d.add(field, "give artifact: (a file, a folder with entry:, or a .dart file) or command: [program, args…]")
		return Source{}
	}
	if s.Runtime == clientsdk.RuntimeCommand {
		d.add(field+".runtime", "runtime command runs command:, not an artifact")
	}
	path := c.Artifact
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, filepath.FromSlash(path))
	}
	st, err := os.Stat(path)
	switch {
	case err != nil:
		d.add(field+".artifact", "%s does not exist (paths are relative to %s)", c.Artifact, dir)
	case !st.IsDir() && !st.Mode().IsRegular():
		d.add(field+".artifact", "%s is not a regular file (%s)", c.Artifact, st.Mode().Type())
	case st.IsDir() && c.Entry == "":
		d.add(field+".artifact", "%s is a folder: give the program in it with entry: (e.g. entry: bin/server)", c.Artifact)
	case st.IsDir():
		if e, err := os.Stat(filepath.Join(path, filepath.FromSlash(c.Entry))); err != nil || !e.Mode().IsRegular() {
			d.add(field+".entry", "%s is not a file in %s", c.Entry, c.Artifact)
		}
		s.Bundle = &clientsdk.Bundle{Entry: c.Entry}
	case c.Entry != "":
		d.add(field+".entry", "entry: goes with a folder artifact, and %s is a file", c.Artifact)
	}
	return Source{Path: path, Entry: c.Entry, Dart: strings.HasSuffix(path, ".dart") && (err != nil || !st.IsDir())}
}

var flagRE = regexp.MustCompile(` \(--[a-z-]+\)| \(the command line after --\)`)
var specFieldRE = regexp.MustCompile(`^app [^:]+: ([a-z_.]+)`)

// specToFile maps a spec field as validation names it to the file's key.
var specToFile = map[string]string{
	"lambda.memory_mb": "memory", "restart.restart_delay": "restart.delay", "lambda.routes": "events",
	"restart.no_auto_restart": "restart.auto", "bundle.entry": "entry", "artifact.file_name": "artifact",
}

// boundsProblem reports a spec validation error at the field it names.
func (d *doc) boundsProblem(field string, err error) {
	msg := err.Error()
	if e, ok := clientsdk.AsError(err); ok {
		msg = e.Message
	}
	key := ""
	if m := specFieldRE.FindStringSubmatch(msg); m != nil {
		key = m[1]
	}
	msg = flagRE.ReplaceAllString(specFieldRE.ReplaceAllString(msg, "$1"), "")
	if k, ok := specToFile[key]; ok {
		key = k
	}
	key = strings.TrimPrefix(key, "lambda.")
	d.problems = append(d.problems, Problem{File: d.name, Line: d.line(join(field, key)), Field: field, Msg: msg})
}

// routeClashes refuses two apps of the file that would own the same route
// (clientsdk.ClashOf; the server refuses clashes with other apps at push,
// and deploy checks them first with RouteConflicts).
func (d *doc) routeClashes(entries []Entry) {
	for i, a := range entries {
		for _, b := range entries[i+1:] {
			if c, ok := clientsdk.ClashOf(b.Spec, a.Spec); ok {
				d.add(routesField(b.Spec), "route %s clashes with %s's (%s): %s", c.Want, a.Spec.Name, c.Held, c.Hint)
			}
		}
	}
}

// routesField is the field that declares an app's routes.
func routesField(s clientsdk.AppSpec) string {
	if s.Kind == clientsdk.KindLambda {
		if s.Lambda != nil && len(s.Lambda.Routes) > 0 {
			return "functions." + s.Name + ".events"
		}
		return "functions." + s.Name
	}
	return "apps." + s.Name + ".http"
}

// RouteConflicts returns, for each app the plan creates or updates, why its
// routes clash with those of an app the file does not declare, as the
// server's table (clientsdk.Client.Routes) holds them: the pushes would be
// refused with 409, after the steps before them were applied.
func RouteConflicts(plan Plan, table []clientsdk.RouteInfo) []string {
	declared := map[string]bool{}
	for _, s := range plan.Steps {
		declared[s.App] = true
	}
	owners := clientsdk.RouteOwners(table)
	names := slices.Sorted(maps.Keys(owners))
	var out []string
	for _, s := range plan.Steps {
		if s.Spec == nil {
			continue
		}
		for _, name := range names {
			if declared[name] {
				continue
			}
			if c, ok := clientsdk.ClashOf(*s.Spec, owners[name]); ok {
				out = append(out, fmt.Sprintf("%s: route %s is taken by %s %s (%s): %s, or remove %s first",
					s.App, c.Want, owners[name].Kind, name, c.Held, c.Hint, name))
			}
		}
	}
	return out
}

// scheduleOf reads a schedule event: dartup's own syntax (@every, 6-field
// cron with seconds, @daily…) or AWS's rate(N unit) and cron(6 fields with
// a year) as serverless.yml writes them.
func scheduleOf(e ScheduleEvent) (clientsdk.Schedule, string) {
	expr := e.Cron
	if expr == "" {
		expr = e.Rate
	}
	cron, msg := awsSchedule(expr)
	s := clientsdk.Schedule{Cron: cron, TimeZone: e.TimeZone}
	if msg == "" {
		msg = s.Check()
	}
	if msg != "" {
		return s, fmt.Sprintf("%q: %s", expr, msg)
	}
	return s, ""
}

var awsWeekdayRE = regexp.MustCompile(`(^|[,-])([1-7])`)

// awsSchedule turns rate(5 minutes) into @every 5m and cron(0 12 ? * 2-6 *)
// (minutes hours day month weekday year, weekdays 1-7 from Sunday) into
// 0 0 12 * * 1-5 (seconds first, weekdays 0-6, no year); anything else is
// returned as it is. It says why when an AWS expression cannot be made one.
func awsSchedule(expr string) (string, string) {
	if inner, ok := strings.CutPrefix(expr, "rate("); ok && strings.HasSuffix(inner, ")") {
		f := strings.Fields(strings.TrimSuffix(inner, ")"))
		units := map[string]string{"minute": "m", "minutes": "m", "hour": "h", "hours": "h", "day": "h", "days": "h"}
		if len(f) == 2 && units[f[1]] != "" {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 0 {
				if strings.HasPrefix(f[1], "day") {
					n *= 24
				}
				return fmt.Sprintf("@every %d%s", n, units[f[1]]), ""
			}
		}
		return expr, "rate(N minutes|hours|days) with a whole number N"
	}
	inner, ok := strings.CutPrefix(expr, "cron(")
	if !ok || !strings.HasSuffix(inner, ")") {
		return expr, ""
	}
	f := strings.Fields(strings.TrimSuffix(inner, ")"))
	switch {
	case len(f) != 6:
		return expr, "AWS cron() takes 6 fields: minutes hours day-of-month month day-of-week year"
	case f[5] != "*":
		return expr, "a year other than * cannot be scheduled here (the schedule would fire every year)"
	}
	for i := range f[:5] {
		if f[i] == "?" {
			f[i] = "*"
		}
	}
	f[4] = awsWeekdayRE.ReplaceAllStringFunc(f[4], func(m string) string {
		return m[:len(m)-1] + string(m[len(m)-1]-1) // AWS 1 (Sunday) is 0
	})
	return "0 " + strings.Join(f[:5], " "), ""
}

// spec fills a daemon's settings.
func (a *App) spec(s *clientsdk.AppSpec, _ string) {
	s.Kind = clientsdk.KindDaemon
	s.Instances, s.Port, s.HTTPStripPrefix = a.Instances, a.Port, a.HTTPStripPrefix
	s.Ready, s.ReadyTimeout, s.Health = a.Ready, clientsdk.Duration(a.ReadyTimeout), a.Health
	s.HealthInterval, s.HealthFailures, s.Parallel = clientsdk.Duration(a.HealthInterval), a.HealthFailures, a.Parallel
	r := a.Restart
	s.Restart = clientsdk.RestartPolicy{NoAutoRestart: r.Auto != nil && !*r.Auto, MaxRestarts: r.MaxRestarts,
		MinUptime: clientsdk.Duration(r.MinUptime), RestartDelay: clientsdk.Duration(r.Delay),
		KillTimeout: clientsdk.Duration(r.KillTimeout), StopExitCodes: r.StopExitCodes}
	for _, h := range a.HTTP {
		route, err := clientsdk.ParseRoute(h)
		if err != nil {
			s.HTTP = append(s.HTTP, clientsdk.HTTPRoute{Prefix: h}) // validation names it
			continue
		}
		s.HTTP = append(s.HTTP, route)
	}
}

// spec fills a lambda's settings and routes.
func (fn *Function) spec(d *doc, s *clientsdk.AppSpec, field string) {
	s.Kind = clientsdk.KindLambda
	l := &clientsdk.LambdaSpec{Protocol: fn.Protocol, Handler: fn.Handler, MaxWorkers: fn.MaxWorkers, Queue: fn.Queue,
		Timeout: clientsdk.Duration(fn.Timeout), MemoryMB: fn.Memory, HTTPEvent: fn.HTTPEvent}
	if fn.KeepWarm != nil {
		kw := clientsdk.Duration(*fn.KeepWarm)
		l.KeepWarm = &kw
	}
	if a := fn.Async; a != nil {
		l.Async = &clientsdk.AsyncSpec{Retries: a.Retries, MaxEventAge: clientsdk.Duration(a.MaxEventAge),
			OnSuccess: a.OnSuccess, OnFailure: a.OnFailure}
		for _, b := range a.RetryBackoff {
			l.Async.RetryBackoff = append(l.Async.RetryBackoff, clientsdk.Duration(b))
		}
	}
	for i, ev := range fn.Events {
		at := fmt.Sprintf("%s.events[%d]", field, i)
		switch {
		case ev.HTTP != nil && ev.Schedule != nil:
			d.add(at, "an event is either http or schedule, not both")
			continue
		case ev.Schedule != nil:
			sched, err := scheduleOf(*ev.Schedule)
			if err != "" {
				d.add(at+".schedule", "%s", err)
				continue
			}
			l.Schedules = append(l.Schedules, sched)
			continue
		case ev.HTTP == nil:
			d.add(at, "an event is - http: {path: /hello, method: GET} or - schedule: \"@every 5m\"")
			continue
		}
		path := ev.HTTP.Path
		if !strings.HasPrefix(path, "/") {
			path = "/" + path // serverless writes "hello" for /hello
		}
		r, err := clientsdk.ParseFunctionRoute(ev.HTTP.Method, path)
		if err != nil {
			d.add(at+".http", "%v", err)
			continue
		}
		l.Routes = append(l.Routes, r)
	}
	s.Lambda = l
}
