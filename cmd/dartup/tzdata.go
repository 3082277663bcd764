package main

// The binary carries Go's IANA time zone database, used where the system has
// none (Windows; minimal containers): push --schedule-tz is checked by the
// CLI and the server, and the embedded nats-server fires cron schedules in
// their zone, whatever the machine holds.
import _ "time/tzdata"
