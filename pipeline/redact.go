package pipeline

import (
	"net/url"
	"strings"
)

// Secret is a config value that must never reach a log or an error: a NATS
// password or token. It prints as "[redacted]" (fmt, JSON, YAML) so that a
// config dumped whole, or a struct logged by mistake, leaks nothing; Reveal
// is the one way to the value, for the code that hands it to the client.
type Secret string

// Redacted is what a secret, or a URL's credentials, print as.
const Redacted = "[redacted]"

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return Redacted
}

// GoString covers %#v, which would otherwise print the value.
func (s Secret) GoString() string { return s.String() }

// MarshalText covers JSON, YAML and zerolog's Interface.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText keeps the value (MarshalText would otherwise be mirrored).
func (s *Secret) UnmarshalText(b []byte) error { *s = Secret(b); return nil }

// RedactURL hides the credentials of a NATS URL, or of each URL of a
// comma-separated list: nats://user:pass@host keeps the user, and a bare
// nats://token@host (NATS reads it as a token) hides the whole user part.
// Text that is not a URL is returned unchanged when it holds no "@".
func RedactURL(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		parts[i] = redactOneURL(p)
	}
	return strings.Join(parts, ",")
}

func redactOneURL(s string) string {
	at := strings.LastIndex(s, "@")
	if at < 0 {
		return s
	}
	start := 0
	if i := strings.Index(s, "://"); i >= 0 && i < at {
		start = i + len("://")
	}
	userinfo := s[start:at]
	if u, err := url.Parse(s); err == nil && u.User != nil {
		if _, hasPassword := u.User.Password(); hasPassword {
			return s[:start] + u.User.Username() + ":" + Redacted + s[at:]
		}
	} else if user, _, ok := strings.Cut(userinfo, ":"); ok {
		// Unparseable (a password with a space): still keep only the user.
		return s[:start] + user + ":" + Redacted + s[at:]
	}
	return s[:start] + Redacted + s[at:]
}

// urlSecrets are the credentials held in NATS URLs: what redactError must
// scrub from texts that quote a URL in its own spelling (url.Error does).
func urlSecrets(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		at := strings.LastIndex(p, "@")
		if at < 0 {
			continue
		}
		userinfo := p[:at]
		if i := strings.Index(userinfo, "://"); i >= 0 {
			userinfo = userinfo[i+len("://"):]
		}
		if _, pass, ok := strings.Cut(userinfo, ":"); ok {
			out = append(out, pass)
			if u, err := url.PathUnescape(pass); err == nil && u != pass {
				out = append(out, u)
			}
		} else {
			out = append(out, userinfo)
		}
	}
	return out
}

// redactError returns err with every secret scrubbed from its text. A
// scrubbed error does not unwrap: its cause still holds the secret, and
// anything that unwrapped and printed it would leak it.
func redactError(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := msg
	for _, s := range secrets {
		if len(s) >= 1 {
			clean = strings.ReplaceAll(clean, s, Redacted)
		}
	}
	if clean == msg {
		return err
	}
	return &redactedError{msg: clean}
}

type redactedError struct{ msg string }

func (e *redactedError) Error() string { return e.msg }
