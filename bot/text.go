package bot

import (
	"strings"
	"unicode/utf8"
)

// Unescape turns text as Slack sends it (with should_escape on) back into
// what the user typed: the entities &amp; &lt; &gt; become & < >, and Slack's
// markup for mentions, channels, special mentions and links becomes its
// readable form (<@U1|ana> → @ana, <!here> → @here, <http://x|x> → x).
func Unescape(s string) string {
	if !strings.ContainsAny(s, "<&") {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		i := strings.IndexByte(s, '<')
		if i < 0 {
			b.WriteString(decodeEntities(s))
			break
		}
		b.WriteString(decodeEntities(s[:i]))
		j := strings.IndexByte(s[i:], '>')
		if j < 0 {
			b.WriteString(decodeEntities(s[i:]))
			break
		}
		b.WriteString(readableMarkup(s[i+1 : i+j]))
		s = s[i+j+1:]
	}
	return b.String()
}

// decodeEntities decodes the three entities Slack uses; the order matters so
// that "&amp;lt;" becomes "&lt;", as typed.
func decodeEntities(s string) string {
	if !strings.Contains(s, "&") {
		return s
	}
	return entityDecoder.Replace(s)
}

var entityDecoder = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&")

// readableMarkup renders the inside of one <…> markup as the user saw it.
func readableMarkup(m string) string {
	target, label, hasLabel := strings.Cut(m, "|")
	label = decodeEntities(label)
	switch {
	case strings.HasPrefix(target, "@"):
		if hasLabel && label != "" {
			return "@" + strings.TrimPrefix(label, "@")
		}
		return target
	case strings.HasPrefix(target, "#"):
		if hasLabel && label != "" {
			return "#" + strings.TrimPrefix(label, "#")
		}
		return target
	case strings.HasPrefix(target, "!"):
		name := target[1:]
		if k := strings.IndexByte(name, '^'); k >= 0 {
			kind := name[:k]
			if hasLabel && label != "" {
				if kind == "subteam" {
					return "@" + strings.TrimPrefix(label, "@")
				}
				return label
			}
			if kind == "subteam" {
				return "@" + name[k+1:]
			}
			return name[k+1:]
		}
		if hasLabel && label != "" {
			return "@" + strings.TrimPrefix(label, "@")
		}
		return "@" + name
	default:
		if hasLabel && label != "" {
			return label
		}
		return decodeEntities(target)
	}
}

// escapeText makes user text safe for mrkdwn and plain_text: & < > are
// encoded so that nothing in it can become a mention, a link or a broadcast,
// and backticks are replaced by a look-alike so that a stray ``` cannot
// open a code block that swallows the rest of the layout.
func escapeText(s string) string {
	return textEscaper.Replace(s)
}

var textEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "`", "ˋ")

// oneLine folds user text onto a single line and removes control
// characters, for places where a line break would break the layout.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			return ' '
		case r < 0x20 || r == 0x7f:
			return -1
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// quote renders user text as an escaped mrkdwn block quote, one quoted line
// per line typed. Empty lines are kept so the text reads as typed.
func quote(s string) string {
	lines := strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	for i, l := range lines {
		lines[i] = ">" + escapeText(strings.TrimRight(l, " \t\r"))
	}
	return strings.Join(lines, "\n")
}

// truncate shortens s to at most n runes, ending it with "…" when cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 1 {
		return "…"
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
