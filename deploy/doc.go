// Package deploy reads a project's deploy file (dartup.yaml, or the subset
// of serverless.yml that serverless-dart projects use), turns it into app
// specs, plans the difference to what a dartup server runs (a pure
// function), and applies that plan: artifacts uploaded once, apps pushed,
// apps of the file's service that it no longer declares removed on request.
package deploy
