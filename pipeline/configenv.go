package pipeline

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
)

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// expandEnv replaces each ${NAME} of a config file with the environment
// variable NAME, so that secrets stay out of the file (password:
// "${NATS_PASSWORD}"). Comments are left alone; $${ is a literal ${.
// Inside a quoted YAML string the value is escaped for that quoting, so any
// value reads back exactly; unquoted, it is pasted as it is, and a value
// with a line break is refused rather than allowed to add keys. An unset
// variable, or a malformed reference, is a problem (with its line), never a
// silent empty string. No problem quotes a value.
func expandEnv(data []byte, lookup func(string) (string, bool)) ([]byte, []string) {
	if !bytes.Contains(data, []byte("${")) {
		return data, nil
	}
	var out strings.Builder
	var problems []string
	for n, line := range strings.SplitAfter(string(data), "\n") {
		var quote byte // ' or " while inside a quoted scalar of this line
		for i := 0; i < len(line); i++ {
			c := line[i]
			switch {
			case quote == 0 && c == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
				out.WriteString(line[i:])
				i = len(line)
				continue
			case quote == 0 && (c == '"' || c == '\''):
				quote = c
			case quote == '"' && c == '\\' && i+1 < len(line):
				out.WriteString(line[i : i+2])
				i++
				continue
			case quote == c:
				quote = 0
			case strings.HasPrefix(line[i:], "$${"):
				out.WriteString("${")
				i += 2
				continue
			case strings.HasPrefix(line[i:], "${"):
				end := strings.IndexByte(line[i:], '}')
				if end < 0 {
					problems = append(problems, fmt.Sprintf("line %d: ${ without its closing } (write $${ for a literal ${)", n+1))
					out.WriteString(line[i:])
					i = len(line)
					continue
				}
				name := line[i+2 : i+end]
				i += end
				if !envNameRE.MatchString(name) {
					problems = append(problems, fmt.Sprintf("line %d: ${%s} is not an environment variable reference (letters, digits and _; write $${ for a literal ${)", n+1, name))
					continue
				}
				v, ok := lookup(name)
				if !ok {
					problems = append(problems, fmt.Sprintf("line %d: environment variable %s is not set (export it, or remove ${%s} from the config)", n+1, name, name))
					continue
				}
				switch quote {
				case '"':
					r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "\t", `\t`)
					v = r.Replace(v)
				case '\'':
					if strings.ContainsAny(v, "\r\n") {
						problems = append(problems, fmt.Sprintf("line %d: environment variable %s holds a line break: use it inside double quotes", n+1, name))
						continue
					}
					v = strings.ReplaceAll(v, "'", "''")
				default:
					if strings.ContainsAny(v, "\r\n") {
						problems = append(problems, fmt.Sprintf("line %d: environment variable %s holds a line break: put ${%s} in double quotes", n+1, name, name))
						continue
					}
				}
				out.WriteString(v)
				continue
			}
			out.WriteByte(c)
		}
	}
	return []byte(out.String()), problems
}
