package clientsdk

import "context"

// RouteInfo is one entry of the HTTP gateway's route table, as the routes
// verb (`dartup routes`) lists it.
type RouteInfo struct {
	// Host is the Host header the route is for; "" for any host.
	Host string `json:"host,omitempty"`
	// Method is a function route's method (GET, POST, …, ANY), or "*" for
	// a prefix route (a daemon's --http route, a lambda's /NAME), which
	// takes every method.
	Method string `json:"method"`
	// Path is a function route's path as declared ("/users/{id}"), or a
	// prefix route's prefix.
	Path string `json:"path"`
	// Prefix is true for a prefix route: it takes Path and the paths under it.
	Prefix bool `json:"prefix,omitempty"`
	// Kind is the kind of the app the route goes to.
	Kind Kind `json:"kind"`
	// App is the app the route goes to.
	App string `json:"app"`
	// Ready is, for a daemon, how many of its instances are ready to take
	// requests (running, ready and with an address).
	Ready *int `json:"ready,omitempty"`
}

// RoutesResponse is the answer of the routes verb.
type RoutesResponse struct {
	// Routes are in the order the gateway tries them: function routes,
	// most specific first, then prefix routes, a route for a host before
	// routes for any host, then the longest prefix.
	Routes []RouteInfo `json:"routes"`
}

// Routes returns the HTTP gateway's route table in the order the gateway
// tries it (see RoutesResponse), as the apps stored now make it. Errors: as
// List.
func (c *Client) Routes(ctx context.Context) ([]RouteInfo, error) {
	var r RoutesResponse
	if err := c.call(ctx, VerbRoutes, nil, &r); err != nil {
		return nil, err
	}
	if r.Routes == nil {
		r.Routes = []RouteInfo{}
	}
	return r.Routes, nil
}
