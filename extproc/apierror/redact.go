package apierror

import (
	"net/netip"
	"strings"
	"unicode"
)

// Redacted replaces whatever Redact removes.
const Redacted = "[redacted]"

// secretPrefixes start identifiers of the operator's upstream accounts and credentials: OpenAI
// organisations, projects and keys, Anthropic and other sk- keys, Google API keys and OAuth
// tokens, AWS access keys, Groq and xAI keys, and the gateway's own keys.
var secretPrefixes = []string{"org-", "org_", "proj_", "sk-", "sk_", "tg_", "AIza", "ya29.", "AKIA", "gsk_", "xai-", "acct_"}

// minSecretTail is how much must follow a secret prefix for a word to count as an identifier:
// enough to spare words such as "org-wide", short of any real identifier's length.
const minSecretTail = 6

// hostSuffixes are the last labels that make a dotted word a host name rather than a JSON path
// ("messages.0.content") or a file name: the common generic and country top-level domains and the
// suffixes internal networks use.
var hostSuffixes = map[string]bool{
	"com": true, "net": true, "org": true, "io": true, "ai": true, "dev": true, "app": true, "cloud": true,
	"co": true, "us": true, "eu": true, "uk": true, "de": true, "fr": true, "nl": true, "ie": true, "ch": true,
	"se": true, "jp": true, "cn": true, "ca": true, "au": true, "in": true, "me": true, "info": true, "biz": true,
	"gov": true, "edu": true, "xyz": true, "tech": true, "site": true, "online": true, "run": true, "azure": true,
	"internal": true, "local": true, "localdomain": true, "lan": true, "corp": true, "intra": true, "intranet": true,
	"private": true, "svc": true, "cluster": true, "home": true, "test": true, "example": true, "invalid": true,
	"localhost": true, "arpa": true, "consul": true, "kube": true, "k8s": true, "mesh": true,
	"ru": true, "br": true, "es": true, "it": true, "pl": true, "kr": true, "sg": true, "tw": true, "hk": true,
	"at": true, "be": true, "dk": true, "fi": true, "no": true, "nz": true, "za": true, "mx": true, "ar": true,
}

// Redact removes from a provider's message what would tell a client about the operator's upstream
// account and network: URLs, e-mail addresses, host names, IPv4 and IPv6 addresses (with or
// without a port), and identifiers or keys that start like an organisation, project or API key
// (org-…, proj_…, sk-…, AIza…, tg_…). Each is replaced by Redacted; the rest of the text, which
// tells the client what was wrong with its request, is kept.
//
// It works on words — runs of characters between spaces, quotes, brackets and similar
// delimiters — so an address is caught however it is quoted, and a JSON path such as
// messages[0].content is left alone.
func Redact(msg string) string {
	var b strings.Builder
	start := -1
	flush := func(end int) {
		if start < 0 {
			return
		}
		b.WriteString(redactWord(msg[start:end]))
		start = -1
	}
	for i, r := range msg {
		if isDelimiter(r) {
			flush(i)
			b.WriteRune(r)
			continue
		}
		if start < 0 {
			start = i
		}
	}
	flush(len(msg))
	return strings.TrimSpace(b.String())
}

func isDelimiter(r rune) bool {
	switch r {
	case '"', '\'', '`', '(', ')', '<', '>', '[', ']', '{', '}', ',', ';', '=', '|', '\\':
		return true
	}
	// Every kind of white space ends a word, as TrimSpace would: a word that only trimming
	// exposes (an address followed by a vertical tab) must be redacted the first time.
	return unicode.IsSpace(r)
}

// redactWord returns w, or w with its core (w without leading and trailing punctuation)
// replaced when the core is something Redact removes.
func redactWord(w string) string {
	core := strings.TrimLeft(strings.TrimRight(w, ".!?*"), ".*")
	// A trailing colon usually ends a phrase ("dial host:"); it may also end an IPv6 address
	// ("fe80::"), so the word is tried without it first, then with it.
	if short := strings.TrimRight(core, ":"); sensitive(short) {
		core = short
	} else if !sensitive(core) {
		return w
	}
	i := strings.Index(w, core)
	return w[:i] + Redacted + w[i+len(core):]
}

func sensitive(w string) bool {
	if w == "" {
		return false
	}
	if strings.Contains(w, "://") || strings.HasPrefix(strings.ToLower(w), "www.") {
		return true
	}
	for _, p := range secretPrefixes {
		if len(w) >= len(p)+minSecretTail && strings.HasPrefix(w, p) {
			return true
		}
	}
	if isUUID(w) || strings.Contains(w, "projects/") {
		// Anthropic names organisations by UUID, Google Cloud names projects/<number>.
		return true
	}
	if at := strings.LastIndexByte(w, '@'); at > 0 && strings.Contains(w[at:], ".") {
		return true // an e-mail address
	}
	// A path or prefix length after an address or host name: only what precedes it matters.
	host, _, _ := strings.Cut(w, "/")
	if isIP(host) {
		return true
	}
	if at := strings.LastIndexByte(host, '@'); at >= 0 {
		host = host[at+1:]
	}
	if h, port, ok := strings.Cut(host, ":"); ok && isDigits(port) && len(port) >= 2 && len(port) <= 5 && isLabels(h) {
		return true // host:port, even a single-label host (postgres:5432, redis-master:6379)
	}
	if isHostName(host) {
		return true
	}
	// An address glued to a word by colons or slashes ("tcp:10.0.0.7:5432", "via/db.internal").
	for _, part := range strings.FieldsFunc(w, func(r rune) bool { return r == ':' || r == '/' || r == '@' }) {
		if part != w && (isIP(part) || isHostName(part)) {
			return true
		}
	}
	return false
}

// isLabels reports whether w is one or more dot-separated labels of letters, digits and hyphens,
// the first starting with a letter.
func isLabels(w string) bool {
	if w == "" || !(w[0] >= 'a' && w[0] <= 'z' || w[0] >= 'A' && w[0] <= 'Z') {
		return false
	}
	for i := 0; i < len(w); i++ {
		c := w[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// isIP reports whether w is an IPv4 or IPv6 address, optionally with a port or a zone.
func isIP(w string) bool {
	if !strings.ContainsAny(w, "0123456789abcdefABCDEF") {
		return false // "::" is an address too, but says nothing
	}
	if _, err := netip.ParseAddr(w); err == nil {
		return true
	}
	if _, err := netip.ParseAddrPort(w); err == nil {
		return true
	}
	// An IPv6 address whose brackets were delimiters leaves a word such as "::1" or
	// ":8080" behind; the first is caught above, the second is harmless.
	return false
}

// isHostName reports whether w looks like a DNS name: at least two dot-separated labels of
// letters, digits and hyphens, the last one a known suffix; or localhost.
func isHostName(w string) bool {
	w = strings.TrimSuffix(strings.ToLower(w), ".")
	if w == "localhost" {
		return true
	}
	labels := strings.Split(w, ".")
	if len(labels) < 2 || !hostSuffixes[labels[len(labels)-1]] {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isUUID reports whether w is a UUID in its 8-4-4-4-12 hexadecimal form.
func isUUID(w string) bool {
	if len(w) != 36 {
		return false
	}
	for i := 0; i < len(w); i++ {
		switch c := w[i]; {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'):
			return false
		}
	}
	return true
}
