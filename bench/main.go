// Command bench measures dartup side by side with its baselines in one run on
// one machine, and writes the table into docs/benchmarks.md (between the
// markers <!-- bench:begin --> and <!-- bench:end -->), docs/benchmarks.json,
// the plot docs/benchmarks-invoke.svg, and bench/out/results.json.
//
//	go run ./bench                    # everything, under 5 minutes on 2 cores
//	go run ./bench -quick             # fewer samples, about a minute (CI smoke)
//	go run ./bench -only serve,push   # some figures (bench/out only)
//	go run ./bench --rie ~/aws-lambda-rie   # also the AWS Runtime Interface Emulator
//
// Every figure runs real processes: `dartup serve` built from this tree as a
// child on free loopback ports with a temporary data dir, the real client SDK,
// Go workers built from bench/workers, PM2 installed from npm into a temporary
// folder, and the Dart AOT runtime from the npm package sass-embedded-linux-x64.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"
)

// figureIDs are the figures in the order they run.
var figureIDs = []string{"serve", "pubsub", "push", "daemons", "gateway", "warm", "cold", "concurrency", "async", "metrics"}

type config struct {
	quick     bool
	only      []string
	rie       string
	outDir    string
	docsDir   string
	writeDocs bool
	keepTemp  bool
	dartup    string
	head      bool
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == relayChildArg {
		if err := runRelayChild(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	var cfg config
	var only string
	flag.BoolVar(&cfg.quick, "quick", false, "fewer samples (about a minute): a smoke run, not numbers to publish")
	flag.StringVar(&only, "only", "", "comma-separated figures to run: "+strings.Join(figureIDs, ","))
	flag.StringVar(&cfg.rie, "rie", "", "path of the AWS Lambda Runtime Interface Emulator binary (aws-lambda-rie); never downloaded")
	flag.StringVar(&cfg.outDir, "out", "", "folder for results.json and logs (default bench/out)")
	flag.StringVar(&cfg.docsDir, "docs", "", "folder for benchmarks.md/.json/-invoke.svg (default docs/, written only by a full run unless given)")
	flag.BoolVar(&cfg.keepTemp, "keep", false, "keep the temporary folder (data dirs, PM2_HOME) for inspection")
	flag.StringVar(&cfg.dartup, "dartup", "", "measure this dartup binary instead of building ./cmd/dartup")
	flag.BoolVar(&cfg.head, "head", false, "build dartup from the last commit (git archive HEAD), not from the work tree")
	flag.Parse()
	if only != "" {
		for _, id := range strings.Split(only, ",") {
			id = strings.TrimSpace(id)
			if !slices.Contains(figureIDs, id) {
				fmt.Fprintf(os.Stderr, "bench: unknown figure %q; choose from %s\n", id, strings.Join(figureIDs, ","))
				os.Exit(2)
			}
			cfg.only = append(cfg.only, id)
		}
	}
	cfg.writeDocs = cfg.docsDir != "" || (!cfg.quick && len(cfg.only) == 0)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, cfg, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	fmt.Print(renderMarkdown(res, "benchmarks-invoke.svg"))
}

// harness holds what the figures share.
type harness struct {
	cfg    config
	root   string
	tmp    string
	logDir string
	bins   struct{ dartup, daemon, bootstrap, native, responder, natsserver, httpd string }
	res    *Results
	logf   func(format string, args ...any)
}

// run builds the binaries, runs the selected figures and writes the outputs.
func run(ctx context.Context, cfg config, progress *os.File) (*Results, error) {
	started := time.Now()
	root, err := findRepoRoot()
	if err != nil {
		return nil, err
	}
	if cfg.outDir == "" {
		cfg.outDir = filepath.Join(root, "bench", "out")
	}
	if cfg.docsDir == "" {
		cfg.docsDir = filepath.Join(root, "docs")
	}
	h := &harness{cfg: cfg, root: root}
	h.logf = func(format string, args ...any) {
		fmt.Fprintf(progress, "[%6.1fs] %s\n", time.Since(started).Seconds(), fmt.Sprintf(format, args...))
	}
	h.logDir = filepath.Join(cfg.outDir, "logs")
	if err := os.MkdirAll(h.logDir, 0o755); err != nil {
		return nil, err
	}
	if h.tmp, err = os.MkdirTemp("", "dartup-bench-"); err != nil {
		return nil, err
	}
	// Apps may run as users of their own (dartup as root): they must reach
	// their work dirs under this folder.
	if err := os.Chmod(h.tmp, 0o711); err != nil {
		return nil, err
	}
	if cfg.keepTemp {
		h.logf("temporary folder: %s", h.tmp)
	} else {
		defer os.RemoveAll(h.tmp)
	}
	mode := "full"
	if cfg.quick {
		mode = "quick"
	}
	h.res = &Results{Generated: started.UTC(), Mode: mode, Only: cfg.only, Machine: readMachine()}

	h.logf("building dartup and the workers")
	bin := filepath.Join(h.tmp, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return nil, err
	}
	builds := []struct {
		dst     *string
		name    string
		pkg     string
		ldflags string
	}{
		{&h.bins.dartup, "dartup", "./cmd/dartup", ""},
		{&h.bins.daemon, "daemon", "./bench/workers/daemon", "-s -w"},
		{&h.bins.bootstrap, "bootstrap", "./bench/workers/bootstrap", "-s -w"},
		{&h.bins.native, "native", "./bench/workers/native", "-s -w"},
		{&h.bins.responder, "responder", "./bench/workers/responder", "-s -w"},
		{&h.bins.natsserver, "natsserver", "./bench/workers/natsserver", "-s -w"},
		{&h.bins.httpd, "httpd", "./bench/workers/httpd", "-s -w"},
	}
	for _, b := range builds {
		if b.name == "dartup" && cfg.dartup != "" {
			if h.bins.dartup, err = filepath.Abs(cfg.dartup); err != nil {
				return nil, err
			}
			continue
		}
		if b.name == "dartup" && cfg.head {
			src := filepath.Join(h.tmp, "head")
			if err := os.MkdirAll(src, 0o755); err != nil {
				return nil, err
			}
			arch := exec.CommandContext(ctx, "sh", "-c", `git -C "$1" archive HEAD | tar -x -C "$2"`, "sh", root, src)
			if out, err := arch.CombinedOutput(); err != nil {
				return nil, fmt.Errorf("git archive HEAD: %v: %s", err, out)
			}
			if h.bins.dartup, err = buildGo(ctx, src, bin, b.name, b.pkg, b.ldflags); err != nil {
				return nil, err
			}
			continue
		}
		if *b.dst, err = buildGo(ctx, root, bin, b.name, b.pkg, b.ldflags); err != nil {
			return nil, err
		}
	}
	h.res.Versions = readVersions(ctx, root, h.bins.dartup)
	switch {
	case cfg.dartup != "":
		h.res.Versions.DartupCommit = "binary given with -dartup (work tree at " + h.res.Versions.DartupCommit + ")"
	case cfg.head:
		h.res.Versions.DartupCommit = strings.TrimSuffix(h.res.Versions.DartupCommit, dirtyNote) + " (built from git archive HEAD)"
	}

	figs := map[string]func(context.Context) []*Figure{
		"serve":       h.figServe,
		"pubsub":      h.figPubSub,
		"push":        h.figPush,
		"daemons":     h.figDaemons,
		"gateway":     h.figGateway,
		"warm":        h.figWarm,
		"cold":        h.figCold,
		"concurrency": h.figConcurrency,
		"async":       h.figAsync,
		"metrics":     h.figMetrics,
	}
	for _, id := range figureIDs {
		if len(cfg.only) > 0 && !slices.Contains(cfg.only, id) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		t := time.Now()
		h.logf("figure %s", id)
		for _, f := range figs[id](ctx) {
			f.finish()
			h.res.Figures = append(h.res.Figures, f)
			h.logf("  %s: %s", f.Title, f.Verdict)
		}
		h.logf("figure %s took %.1fs", id, time.Since(t).Seconds())
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sort.SliceStable(h.res.Figures, func(i, j int) bool { return h.res.Figures[i].Num < h.res.Figures[j].Num })
	h.res.Machine.LoadAvgEnd = loadAvg()
	h.res.ElapsedSeconds = time.Since(started).Seconds()
	if err := h.write(); err != nil {
		return nil, err
	}
	return h.res, nil
}

// write stores results.json (always) and, when asked, the docs.
func (h *harness) write() error {
	var errs []error
	errs = append(errs, writeJSON(filepath.Join(h.cfg.outDir, "results.json"), h.res))
	if h.cfg.writeDocs {
		if err := os.MkdirAll(h.cfg.docsDir, 0o755); err != nil {
			return err
		}
		errs = append(errs,
			writeJSON(filepath.Join(h.cfg.docsDir, "benchmarks.json"), h.res),
			os.WriteFile(filepath.Join(h.cfg.docsDir, "benchmarks-invoke.svg"), []byte(renderSVG(h.res)), 0o644),
			updateDoc(filepath.Join(h.cfg.docsDir, "benchmarks.md"), renderMarkdown(h.res, "benchmarks-invoke.svg")))
		h.logf("wrote %s/benchmarks.{md,json} and benchmarks-invoke.svg", h.cfg.docsDir)
	}
	h.logf("wrote %s", filepath.Join(h.cfg.outDir, "results.json"))
	return errors.Join(errs...)
}

// n picks the sample count for the mode.
func (h *harness) n(full, quick int) int {
	if h.cfg.quick {
		return quick
	}
	return full
}
