package deploy

import (
	"cmp"
	"fmt"
	"maps"

	"gopkg.in/yaml.v3"
)

// slsFile is the subset of serverless.yml that serverless-dart projects
// use; the rest is listed as ignored.
type slsFile struct {
	Service   slsService              `yaml:"service"`
	Provider  slsProvider             `yaml:"provider"`
	Package   slsPackage              `yaml:"package"`
	Functions map[string]*slsFunction `yaml:"functions"`
}

// slsService is `service: NAME` or `service: {name: NAME}`.
type slsService string

func (s *slsService) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		var v struct {
			Name string `yaml:"name"`
		}
		err := n.Decode(&v)
		*s = slsService(v.Name)
		return err
	}
	var v string
	err := n.Decode(&v)
	*s = slsService(v)
	return err
}

type slsProvider struct {
	// Name and Runtime are read so that they are not listed as ignored:
	// dartup runs the bootstrap whatever they say.
	Name        string            `yaml:"name"`
	Runtime     string            `yaml:"runtime"`
	MemorySize  int               `yaml:"memorySize"`
	Timeout     Duration          `yaml:"timeout"`
	Environment map[string]string `yaml:"environment"`
}

type slsPackage struct {
	Artifact string `yaml:"artifact"`
}

type slsFunction struct {
	Handler     string            `yaml:"handler"`
	MemorySize  int               `yaml:"memorySize"`
	Timeout     Duration          `yaml:"timeout"`
	Environment map[string]string `yaml:"environment"`
	Events      []Event           `yaml:"events"`
	Package     slsPackage        `yaml:"package"`
}

// parseServerless reads serverless.yml into a File: each function runs the
// bootstrap (its package.artifact, the file's package.artifact, or
// o.Artifact) with its handler as _HANDLER; provider settings are the
// functions' defaults. It returns what it ignored.
func parseServerless(name string, data []byte, o Options) (*File, *doc, []string) {
	var s slsFile
	d := parseWith(name, data, &s, o.Getenv, true)
	f := &File{Service: string(s.Service), Functions: map[string]*Function{}}
	for fname, fn := range s.Functions {
		if fn == nil {
			fn = &slsFunction{}
		}
		env := maps.Clone(s.Provider.Environment)
		if env == nil && fn.Environment != nil {
			env = map[string]string{}
		}
		maps.Copy(env, fn.Environment)
		out := &Function{Handler: fn.Handler, Memory: cmp.Or(fn.MemorySize, s.Provider.MemorySize),
			Timeout: cmp.Or(fn.Timeout, s.Provider.Timeout)}
		out.Env = env
		out.Artifact = cmp.Or(fn.Package.Artifact, s.Package.Artifact, o.Artifact)
		for i, ev := range fn.Events {
			if ev.HTTP == nil && ev.Schedule == nil {
				d.ignored = append(d.ignored, fmt.Sprintf("functions.%s.events[%d] (only http events apply)", fname, i))
				continue
			}
			out.Events = append(out.Events, ev)
		}
		if out.Artifact == "" {
			d.add("functions."+fname, "no bootstrap to run: give it with deploy --artifact ./bootstrap, or package: {artifact: ./bootstrap} in the file")
		}
		f.Functions[fname] = out
	}
	return f, d, d.ignored
}
