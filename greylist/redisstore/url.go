package redisstore

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Target is where a store URL points: one server, or a master found
// through Sentinel.
type Target struct {
	Addrs  []string // HOST:PORT of the server, or of each sentinel
	Master string   // the master's name for Sentinel; "" for one server
	User   string   // the ACL user; "" for the default user
	DB     int      // the database number
	TLS    bool     // rediss://
}

// Default ports when a URL gives none.
const (
	defaultPort         = "6379"
	defaultSentinelPort = "26379"
)

var errURLPassword = errors.New("a password is never taken from the URL (it would show in ps); " +
	"give a password file, or REDISCLI_AUTH in the environment")

// ParseURL reads a store URL:
//
//	redis://[USER@]HOST[:PORT][/DB]
//	rediss://[USER@]HOST[:PORT][/DB]                     (TLS)
//	redis-sentinel://[USER@]HOST[:PORT][,HOST[:PORT]...]/MASTER[/DB]
//
// A password in the URL, a query or a fragment is refused.
func ParseURL(s string) (Target, error) {
	t, err := parseURL(s)
	if err != nil {
		return Target{}, fmt.Errorf("redisstore: %s: %w", redactURL(s), err)
	}
	return t, nil
}

func parseURL(s string) (Target, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return Target{}, errors.New("not a URL: want redis://HOST:PORT, rediss://HOST:PORT or redis-sentinel://HOST:PORT/MASTER")
	}
	var t Target
	switch scheme {
	case "redis":
	case "rediss":
		t.TLS = true
	case "redis-sentinel":
	default:
		return Target{}, fmt.Errorf("scheme %q: want redis, rediss or redis-sentinel", scheme)
	}
	if strings.ContainsAny(rest, "?#") {
		return Target{}, errors.New("no query or fragment is taken; the password, prefix and timeout are options")
	}
	authority, path, _ := strings.Cut(rest, "/")
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		userinfo := authority[:at]
		authority = authority[at+1:]
		if strings.Contains(userinfo, ":") {
			return Target{}, errURLPassword
		}
		u, err := url.PathUnescape(userinfo)
		if err != nil || u == "" {
			return Target{}, fmt.Errorf("user %q is not a user name", userinfo)
		}
		t.User = u
	}
	port := defaultPort
	if scheme == "redis-sentinel" {
		port = defaultSentinelPort
	}
	for _, hp := range strings.Split(authority, ",") {
		a, err := hostPort(hp, port)
		if err != nil {
			return Target{}, err
		}
		t.Addrs = append(t.Addrs, a)
	}
	if len(t.Addrs) > 1 && scheme != "redis-sentinel" {
		return Target{}, errors.New("several hosts are for redis-sentinel:// only")
	}
	parts := strings.Split(path, "/")
	if path == "" {
		parts = nil
	}
	if scheme == "redis-sentinel" {
		if len(parts) == 0 || parts[0] == "" {
			return Target{}, errors.New("no master name: want redis-sentinel://HOST:PORT/MASTER[/DB]")
		}
		m, err := url.PathUnescape(parts[0])
		if err != nil {
			return Target{}, fmt.Errorf("master name %q: %v", parts[0], err)
		}
		t.Master, parts = m, parts[1:]
	}
	switch {
	case len(parts) > 1:
		return Target{}, fmt.Errorf("path %q: want at most a database number", path)
	case len(parts) == 1 && parts[0] != "":
		db, err := strconv.Atoi(parts[0])
		if err != nil || db < 0 || strconv.Itoa(db) != parts[0] {
			return Target{}, fmt.Errorf("database %q is not a number", parts[0])
		}
		t.DB = db
	}
	return t, nil
}

// hostPort checks one HOST[:PORT] ([IPv6]:PORT for IPv6) and adds the
// default port.
func hostPort(hp, port string) (string, error) {
	if hp == "" {
		return "", errors.New("no host")
	}
	host, p := hp, port
	var err error
	switch {
	case strings.HasPrefix(hp, "[") && strings.HasSuffix(hp, "]"):
		host = hp[1 : len(hp)-1]
	case strings.HasPrefix(hp, "["), strings.Count(hp, ":") == 1:
		host, p, err = net.SplitHostPort(hp)
	case strings.Contains(hp, ":"):
		err = errors.New("write an IPv6 address in brackets, [::1]:6379")
	}
	if err != nil {
		return "", fmt.Errorf("host %q: %v", hp, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("host %q: port %q is not 1..65535", hp, p)
	}
	if host == "" || strings.ContainsAny(host, " /@[]") {
		return "", fmt.Errorf("host %q is not a host name or address", hp)
	}
	return net.JoinHostPort(host, p), nil
}

// redactURL hides what could be a password in a URL that is refused, so
// that an error message never repeats it.
func redactURL(s string) string {
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i] + "?..."
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	authority, path, hasPath := strings.Cut(rest, "/")
	if at := strings.LastIndexByte(authority, '@'); at >= 0 {
		if user, _, hasPass := strings.Cut(authority[:at], ":"); hasPass {
			authority = user + ":xxx" + authority[at:]
		}
	}
	out := scheme + "://" + authority
	if hasPath {
		out += "/" + path
	}
	return out
}

// String writes t back as a URL (without a password: none is ever kept in
// one), for log lines and errors.
func (t Target) String() string {
	scheme := "redis"
	switch {
	case t.Master != "":
		scheme = "redis-sentinel"
	case t.TLS:
		scheme = "rediss"
	}
	s := scheme + "://"
	if t.User != "" {
		s += url.PathEscape(t.User) + "@"
	}
	s += strings.Join(t.Addrs, ",")
	if t.Master != "" {
		s += "/" + url.PathEscape(t.Master)
	}
	if t.DB != 0 {
		s += "/" + strconv.Itoa(t.DB)
	}
	return s
}
