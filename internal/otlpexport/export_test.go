package otlpexport

import "time"

// NewExporterFromEnv is newExporter for the tests of package
// otlpexport_test: settings from getenv, the first retry wait given.
func NewExporterFromEnv(endpoint string, getenv func(string) string, firstWait time.Duration) (*Exporter, error) {
	s, err := readSettings(getenv)
	if err != nil {
		return nil, err
	}
	e := newExporter(endpoint, "test", s)
	e.backoff = firstWait
	return e, nil
}
