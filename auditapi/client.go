package auditapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"rebootbot/approval"
)

// Client asks a running bot's Server for audit lookups.
type Client struct {
	info adminInfo
	http *http.Client
}

// Dial reads the admin file of the database at dbPath and returns a Client
// for the endpoint it names. It returns an error wrapping os.ErrNotExist
// when there is none.
func Dial(dbPath string) (*Client, error) {
	file := File(dbPath)
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var info adminInfo
	if err := json.Unmarshal(raw, &info); err != nil || info.Addr == "" || info.Token == "" {
		return nil, fmt.Errorf("%s is not a valid admin file", file)
	}
	host, _, err := net.SplitHostPort(info.Addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("%s names %q, which is not a loopback address", file, info.Addr)
	}
	transport := &http.Transport{
		Proxy:                 nil, // loopback only, whatever the environment says
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		ResponseHeaderTimeout: 5 * time.Minute, // verify reads the whole log first
	}
	return &Client{info: info, http: &http.Client{Transport: transport}}, nil
}

// where describes the running bot for messages.
func (c *Client) where() string {
	if c.info.PID > 0 {
		return fmt.Sprintf("the running bot (pid %d) at %s", c.info.PID, c.info.Addr)
	}
	return "the running bot at " + c.info.Addr
}

func (c *Client) get(ctx context.Context, path string, params url.Values) (*http.Response, error) {
	u := url.URL{Scheme: "http", Host: c.info.Addr, Path: path, RawQuery: params.Encode()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.info.Token)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ask %s: %w", c.where(), err)
	}
	return resp, nil
}

// AuditJSON streams the stored JSON of the events matching q from the bot,
// in q's order.
func (c *Client) AuditJSON(ctx context.Context, q approval.AuditQuery, fn func(raw []byte) error) error {
	params := url.Values{}
	for k, v := range map[string]string{"request": q.RequestID, "instance": q.Instance, "user": q.User} {
		if v != "" {
			params.Set(k, v)
		}
	}
	if !q.Since.IsZero() {
		params.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		params.Set("until", q.Until.UTC().Format(time.RFC3339Nano))
	}
	if q.Limit > 0 {
		params.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Oldest {
		params.Set("oldest", "1")
	}
	resp, err := c.get(ctx, "/audit/events", params)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := statusError(c, resp); err != nil {
		return err
	}
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			if ferr := fn(line[:len(line)-1]); ferr != nil {
				return ferr
			}
		} else if len(line) > 0 && err == io.EOF {
			return fmt.Errorf("%s ended the event stream mid-record", c.where())
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read events from %s: %w", c.where(), err)
		}
	}
	if msg := resp.Trailer.Get(auditErrorTrailer); msg != "" {
		return fmt.Errorf("%s: %s", c.where(), msg)
	}
	return nil
}

// Verify asks the bot to check the audit chain; it returns the number of
// intact events and, for a bad record, an *approval.VerifyError.
func (c *Client) Verify(ctx context.Context) (uint64, error) {
	resp, err := c.get(ctx, "/audit/verify", nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var reply verifyReply
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusInternalServerError {
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&reply); err != nil {
			return 0, fmt.Errorf("read verify answer from %s: %w", c.where(), err)
		}
	} else if err := statusError(c, resp); err != nil {
		return 0, err
	}
	switch {
	case reply.Error != "":
		return reply.Events, fmt.Errorf("%s: %s", c.where(), reply.Error)
	case reply.BadSeq > 0:
		return reply.Events, &approval.VerifyError{Seq: reply.BadSeq, Reason: reply.Reason}
	}
	return reply.Events, nil
}

// statusError turns a refused request into an error with the server's
// (short) explanation.
func statusError(c *Client, resp *http.Response) error {
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	msg := strings.TrimSpace(headerSafe(string(body)))
	if resp.StatusCode == http.StatusUnauthorized {
		return errors.New(c.where() + " refused the admin token; the admin file may be stale")
	}
	return fmt.Errorf("%s answered %s: %s", c.where(), resp.Status, msg)
}
