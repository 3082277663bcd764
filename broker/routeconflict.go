package broker

import (
	"github.com/dartup/dartup/clientsdk"
)

// routeConflict returns why spec's routes clash with another app's (a
// *clientsdk.Error 409 RouteTaken naming the app that holds the route and
// what to do), or nil. See clientsdk.ClashOf for the rules.
func routeConflict(spec clientsdk.AppSpec, apps map[string]clientsdk.AppSpec) error {
	for _, name := range sortedApps(apps) {
		if name == spec.Name {
			continue
		}
		other := apps[name]
		if c, ok := clientsdk.ClashOf(spec, other); ok {
			held := ""
			if c.Held != c.Want {
				held = " (" + c.Held + ")"
			}
			return clientsdk.Errorf(409, "RouteTaken", "route %s is taken by %s %s%s; %s, or remove %s first",
				c.Want, other.Kind, name, held, c.Hint, name)
		}
	}
	return nil
}
