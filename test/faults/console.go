package faults

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"time"
)

// Console collects the handlers' console output (stack.Options.Console) and reads the
// JSON log lines in it, so a test can count outcomes the handler logged.
type Console struct {
	mu    sync.Mutex
	lines []string
	buf   []byte
}

// Write takes output as the host forwards it, one or more whole lines at a time.
func (c *Console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf = append(c.buf, p...)
	for {
		i := bytes.IndexByte(c.buf, '\n')
		if i < 0 {
			break
		}
		c.lines = append(c.lines, string(c.buf[:i]))
		c.buf = c.buf[i+1:]
	}
	return len(p), nil
}

// Lines returns every complete line so far.
func (c *Console) Lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.lines...)
}

// Entry is one JSON log line.
type Entry map[string]any

// Str returns a member as text ("" when absent).
func (e Entry) Str(key string) string {
	switch v := e[key].(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// Time is the line's time member.
func (e Entry) Time() time.Time {
	t, _ := time.Parse(time.RFC3339Nano, e.Str("time"))
	return t
}

// Entries returns the JSON log lines matching every key=value pair given.
func (c *Console) Entries(match ...string) []Entry {
	var out []Entry
	for _, line := range c.Lines() {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var e Entry
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		ok := true
		for i := 0; i+1 < len(match); i += 2 {
			if e.Str(match[i]) != match[i+1] {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, e)
		}
	}
	return out
}

// Count is len(Entries(match...)).
func (c *Console) Count(match ...string) int { return len(c.Entries(match...)) }
