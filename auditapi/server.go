// Package auditapi lets `bot audit` read the audit log while the bot holds
// the database file: the bot serves lookups on a loopback port announced
// in a file beside the database, and the CLI asks there.
package auditapi

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"rebootbot/approval"
	"rebootbot/internal/background"
)

// File returns where a running bot announces its admin endpoint for the
// database at dbPath.
func File(dbPath string) string { return dbPath + ".admin" }

// Log is the audit log the endpoint serves.
type Log interface {
	// Path is the database file's path; the endpoint is announced beside it.
	Path() string
	// AuditJSON calls fn with the stored JSON of each event matching q.
	AuditJSON(ctx context.Context, q approval.AuditQuery, fn func(raw []byte) error) error
	// Verify checks the hash chain and returns the number of intact events.
	Verify(ctx context.Context) (uint64, error)
}

// adminInfo is the content of the admin file.
type adminInfo struct {
	Addr  string `json:"addr"`
	Token string `json:"token"`
	PID   int    `json:"pid"`
}

// Server serves audit lookups of a Log on a loopback port, so that `bot
// audit` works while the bot holds the database file. It announces itself
// in File(log.Path()) (mode 0600) with a random bearer token that every
// request must carry.
//
//	GET /audit/events?request=&instance=&user=&since=&until=&limit=&oldest=1
//	    the matching events, one canonical JSON record a line; an error
//	    after the first line arrives in the Audit-Error trailer
//	GET /audit/verify
//	    {"events": n} or {"events": n, "bad_seq": s, "reason": "…"}
type Server struct {
	log     Log
	lookups *background.Group // requests being answered

	mu     sync.Mutex
	srv    *http.Server
	addr   string
	token  string
	file   string
	stop   func() bool
	closed bool
}

// NewServer returns a Server for log; Start makes it serve.
func NewServer(log Log) *Server { return &Server{log: log, lookups: background.New()} }

// Start listens on 127.0.0.1 on a free port, writes the admin file and
// serves in the background until Close is called or ctx ends.
func (a *Server) Start(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.closed:
		return errors.New("audit endpoint: closed")
	case a.srv != nil:
		return errors.New("audit endpoint: already started")
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return fmt.Errorf("audit endpoint: token: %w", err)
	}
	token := hex.EncodeToString(raw[:])
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("audit endpoint: listen: %w", err)
	}
	file := File(a.log.Path())
	info := adminInfo{Addr: ln.Addr().String(), Token: token, PID: os.Getpid()}
	if err := writeFileAtomic(file, info); err != nil {
		ln.Close()
		return fmt.Errorf("audit endpoint: %w", err)
	}
	a.token, a.addr, a.file = token, info.Addr, file
	a.srv = &http.Server{
		Handler:           a.handler(),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go a.srv.Serve(ln)
	a.stop = context.AfterFunc(ctx, func() { a.Close() })
	return nil
}

// Addr returns the address the Server listens on, once started.
func (a *Server) Addr() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.addr
}

// closeGrace is how long Close lets running lookups finish before it
// cancels them and cuts their connections.
const closeGrace = 5 * time.Second

// Close refuses new lookups, lets running ones finish for a short grace,
// then cancels them, stops serving and removes the admin file. Call it
// before closing the database.
func (a *Server) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	srv, file, stop := a.srv, a.file, a.stop
	a.mu.Unlock()
	if srv == nil {
		a.lookups.Close(context.Background())
		return nil
	}
	stop()
	ctx, done := context.WithTimeout(context.Background(), closeGrace)
	defer done()
	// A cancelled lookup blocked writing to a client that does not read
	// ends only when its connection is cut.
	cut := context.AfterFunc(ctx, func() { srv.Close() })
	a.lookups.Close(ctx)
	var err error
	if cut() {
		err = srv.Close()
	}
	if rerr := os.Remove(file); rerr != nil && !errors.Is(rerr, os.ErrNotExist) && err == nil {
		err = rerr
	}
	return err
}

func (a *Server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /audit/events", a.events)
	mux.HandleFunc("GET /audit/verify", a.verify)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="rebootbot-admin"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		err := a.lookups.Run(r.Context(), func(ctx context.Context) { mux.ServeHTTP(w, r.WithContext(ctx)) })
		if err != nil {
			http.Error(w, "the bot is stopping", http.StatusServiceUnavailable)
		}
	})
}

// authorized reports whether r carries the bearer token, compared in
// constant time.
func (a *Server) authorized(r *http.Request) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), []byte(a.token)) == 1
}

// auditErrorTrailer carries an error that happened after the stream began.
const auditErrorTrailer = "Audit-Error"

func (a *Server) events(w http.ResponseWriter, r *http.Request) {
	q, err := parseAuditParams(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Trailer", auditErrorTrailer)
	bw := bufio.NewWriterSize(w, 64<<10)
	err = a.log.AuditJSON(r.Context(), q, func(raw []byte) error {
		bw.Write(raw)
		return bw.WriteByte('\n')
	})
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		w.Header().Set(auditErrorTrailer, headerSafe(err.Error()))
	}
}

// verifyReply is the body of /audit/verify.
type verifyReply struct {
	Events uint64 `json:"events"`
	BadSeq uint64 `json:"bad_seq,omitempty"`
	Reason string `json:"reason,omitempty"`
	Error  string `json:"error,omitempty"`
}

func (a *Server) verify(w http.ResponseWriter, r *http.Request) {
	n, err := a.log.Verify(r.Context())
	reply := verifyReply{Events: n}
	status := http.StatusOK
	var ve *approval.VerifyError
	switch {
	case errors.As(err, &ve):
		reply.BadSeq, reply.Reason = ve.Seq, ve.Reason
	case err != nil:
		reply.Error, status = err.Error(), http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(reply)
}

// parseAuditParams reads an AuditQuery from the query string of
// /audit/events. Times are RFC 3339; the client turns the CLI's durations
// into times before asking.
func parseAuditParams(v map[string][]string) (approval.AuditQuery, error) {
	get := func(k string) string {
		if vs := v[k]; len(vs) > 0 {
			return vs[0]
		}
		return ""
	}
	q := approval.AuditQuery{
		RequestID: get("request"),
		Instance:  get("instance"),
		User:      get("user"),
	}
	var err error
	if s := get("since"); s != "" {
		if q.Since, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return q, fmt.Errorf("since %q is not an RFC 3339 time", s)
		}
	}
	if s := get("until"); s != "" {
		if q.Until, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return q, fmt.Errorf("until %q is not an RFC 3339 time", s)
		}
	}
	if s := get("limit"); s != "" {
		if q.Limit, err = strconv.Atoi(s); err != nil || q.Limit < 0 {
			return q, fmt.Errorf("limit %q is not a number of events", s)
		}
	}
	switch get("oldest") {
	case "", "0", "false":
	case "1", "true":
		q.Oldest = true
	default:
		return q, errors.New("oldest must be 1 or 0")
	}
	return q, nil
}

// headerSafe makes s fit in one header line.
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// writeFileAtomic writes v as JSON to path with mode 0600 through a
// temporary file in the same directory, so a reader sees the old file or
// the whole new one.
func writeFileAtomic(path string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(raw)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
