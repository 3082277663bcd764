package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

// Machine describes the computer the run happened on.
type Machine struct {
	CPU         string  `json:"cpu"`
	Cores       int     `json:"cores"`
	MemoryBytes uint64  `json:"memory_bytes"`
	Kernel      string  `json:"kernel"`
	OSArch      string  `json:"os_arch"`
	LoadAvg     string  `json:"load_avg_at_start"`
	LoadAvgEnd  string  `json:"load_avg_at_end,omitempty"`
	MemoryGiB   float64 `json:"memory_gib"`
}

// Versions lists what was measured and with what.
type Versions struct {
	Go           string `json:"go"`
	Dartup       string `json:"dartup"`
	DartupCommit string `json:"dartup_commit"`
	NATSServer   string `json:"nats_server"`
	NATSGo       string `json:"nats_go"`
	AWSLambdaGo  string `json:"aws_lambda_go"`
	PM2          string `json:"pm2,omitempty"`
	Node         string `json:"node,omitempty"`
	Dart         string `json:"dart,omitempty"`
	Sass         string `json:"sass,omitempty"`
	RIE          string `json:"rie,omitempty"`
}

func readMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), OSArch: runtime.GOOS + "/" + runtime.GOARCH, LoadAvg: loadAvg()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseUint(f[1], 10, 64)
				m.MemoryBytes = kb * 1024
				m.MemoryGiB = float64(m.MemoryBytes) / (1 << 30)
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// findRepoRoot walks up from the working directory to the dartup module root.
func findRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/dartup/dartup\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run the harness inside the dartup repository (go run ./bench)")
		}
		dir = parent
	}
}

// buildGo builds the main package pkg of the repo into dir/name.
func buildGo(ctx context.Context, root, dir, name, pkg string, ldflags string) (string, error) {
	out := filepath.Join(dir, name)
	args := []string{"build", "-o", out} // no -trimpath: share the build cache with the tests' builds
	if ldflags != "" {
		args = append(args, "-ldflags="+ldflags)
	}
	cmd := exec.CommandContext(ctx, "go", append(args, pkg)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return out, nil
}

// output runs a command and returns its trimmed combined output.
func output(ctx context.Context, dir string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	b, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(b)), err
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// moduleVersion returns the version of module path that the harness was
// built with, falling back to go.mod.
func moduleVersion(root, path string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == path {
				if d.Replace != nil {
					return d.Replace.Version
				}
				return d.Version
			}
		}
	}
	b, _ := os.ReadFile(filepath.Join(root, "go.mod"))
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == path {
			return f[1]
		}
	}
	return "unknown"
}

// dirtyNote marks a commit whose work tree had uncommitted changes.
const dirtyNote = " (work tree has uncommitted changes)"

func readVersions(ctx context.Context, root, dartupBin string) Versions {
	v := Versions{
		NATSServer:  moduleVersion(root, "github.com/nats-io/nats-server/v2"),
		NATSGo:      moduleVersion(root, "github.com/nats-io/nats.go"),
		AWSLambdaGo: moduleVersion(root, "github.com/aws/aws-lambda-go"),
	}
	v.Go, _ = output(ctx, root, "go", "env", "GOVERSION")
	if s, err := output(ctx, root, dartupBin, "version"); err == nil {
		v.Dartup = firstLine(s)
	}
	if s, err := output(ctx, root, "git", "rev-parse", "HEAD"); err == nil {
		v.DartupCommit = s
		if st, err := output(ctx, root, "git", "status", "--porcelain", "--untracked-files=no"); err == nil && st != "" {
			v.DartupCommit += dirtyNote
		}
	}
	if s, err := output(ctx, root, "node", "--version"); err == nil {
		v.Node = s
	}
	return v
}

// npmPackageVersion reads the version from a package.json.
func npmPackageVersion(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var p struct {
		Version string `json:"version"`
	}
	_ = json.Unmarshal(b, &p)
	return p.Version
}
