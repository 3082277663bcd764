package main

// Windows keeps no IANA time zone database where Go looks for one: the CLI
// carries its own, so that push --schedule-tz is checked there too.
import _ "time/tzdata"
