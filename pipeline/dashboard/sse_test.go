package dashboard

import (
	"bufio"
	"io"
	"strings"
)

// parseEvents reads a text/event-stream: it calls f
// with each event's name and data until r ends or f returns false.
// Comments and retry lines are skipped.
func parseEvents(r io.Reader, f func(name string, data []byte) bool) error {
	var name string
	var data []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if len(data) > 0 {
				if name == "" {
					name = "message"
				}
				if !f(name, []byte(strings.Join(data, "\n"))) {
					return nil
				}
			}
			name, data = "", nil
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "event:"):
			name = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			data = append(data, strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		}
	}
	return sc.Err()
}
