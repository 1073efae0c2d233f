package main

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"rebootbot/approval"
)

// formatter writes events as `audit list` prints them.
type formatter interface {
	add(raw []byte) error // one event's stored bytes
	finish() error
}

// jsonlFormatter writes each event exactly as stored and hashed.
type jsonlFormatter struct{ w *bufio.Writer }

func (f *jsonlFormatter) add(raw []byte) error {
	f.w.Write(raw)
	return f.w.WriteByte('\n')
}

func (f *jsonlFormatter) finish() error { return nil }

// csvHeader names the columns of the csv format.
var csvHeader = []string{"seq", "time", "request_id", "type", "actor", "instances", "details"}

type csvFormatter struct {
	w      *csv.Writer
	header bool
}

func newCSVFormatter(w *bufio.Writer) *csvFormatter { return &csvFormatter{w: csv.NewWriter(w)} }

func (f *csvFormatter) add(raw []byte) error {
	if !f.header {
		f.header = true
		if err := f.w.Write(csvHeader); err != nil {
			return err
		}
	}
	e, err := decodeEvent(raw)
	if err != nil {
		return err
	}
	details, err := json.Marshal(e.Details)
	if err != nil {
		return err
	}
	return f.w.Write([]string{
		strconv.FormatUint(e.Seq, 10),
		e.Time.UTC().Format(time.RFC3339Nano),
		e.RequestID,
		string(e.Type),
		e.Actor,
		strings.Join(e.Instances, " "),
		string(details),
	})
}

func (f *csvFormatter) finish() error {
	if !f.header {
		f.w.Write(csvHeader)
	}
	f.w.Flush()
	return f.w.Error()
}

// tableFormatter writes aligned columns for people. Columns are aligned
// within blocks of tableBlock rows, so a long listing streams.
type tableFormatter struct {
	w         *tabwriter.Writer
	show      int // rows to print; 0: all
	rows      int
	truncated bool // an event past show arrived
}

const tableBlock = 100

func newTableFormatter(w *bufio.Writer, show int) *tableFormatter {
	return &tableFormatter{w: tabwriter.NewWriter(w, 0, 8, 2, ' ', 0), show: show}
}

func (f *tableFormatter) add(raw []byte) error {
	if f.show > 0 && f.rows == f.show {
		f.truncated = true
		return nil
	}
	e, err := decodeEvent(raw)
	if err != nil {
		return err
	}
	if f.rows == 0 {
		head := "SEQ\tTIME (UTC)\tREQUEST\tTYPE\tACTOR\tINSTANCES\tDETAILS\n"
		if _, err := f.w.Write([]byte(head)); err != nil {
			return err
		}
	}
	f.rows++
	_, err = fmt.Fprintf(f.w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n",
		e.Seq,
		e.Time.UTC().Format("2006-01-02 15:04:05"),
		cell(e.RequestID),
		cell(string(e.Type)),
		cell(e.Actor),
		cell(instancesSummary(e.Instances)),
		cell(detailsSummary(e.Details)),
	)
	if err == nil && f.rows%tableBlock == 0 {
		err = f.w.Flush()
	}
	return err
}

func (f *tableFormatter) finish() error {
	if f.rows == 0 {
		_, err := f.w.Write([]byte("No matching audit events.\n"))
		if err != nil {
			return err
		}
	}
	return f.w.Flush()
}

func decodeEvent(raw []byte) (*approval.Event, error) {
	var e approval.Event
	if err := json.Unmarshal(raw, &e); err != nil {
		return nil, fmt.Errorf("decode event: %w", err)
	}
	return &e, nil
}

// instancesSummary shows the first few instances and how many more.
func instancesSummary(ids []string) string {
	const shown = 3
	if len(ids) <= shown {
		return strings.Join(ids, " ")
	}
	return fmt.Sprintf("%s +%d", strings.Join(ids[:shown], " "), len(ids)-shown)
}

// detailsSummary renders the details as key=value pairs; text people typed
// is quoted.
func detailsSummary(d approval.Details) string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	quoted := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+strconv.Quote(v))
		}
	}
	quoted("reason", d.Reason)
	add("stop", string(d.StopType))
	add("region", d.Region)
	add("channel", d.Channel)
	add("approvals", strings.Join(d.Approvals, ","))
	if d.Required > 0 {
		add("required", strconv.Itoa(d.Required))
	}
	add("cloud_request", d.CloudRequestID)
	add("error", d.ErrorCode)
	quoted("message", d.ErrorMessage)
	add("outcome", d.Outcome)
	add("duration", d.Duration)
	quoted("note", d.Note)
	quoted("selector", strings.Join(d.Selector, " "))
	add("fingerprint", d.Fingerprint)
	return strings.Join(parts, " ")
}

// cell makes s safe to print in a terminal table: control characters
// (escape sequences, tabs, newlines) and bidirectional overrides are
// replaced, and an empty cell shows a dash.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return '?'
		}
		return r
	}, s)
}
