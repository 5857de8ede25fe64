package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
)

// errSomeInvalid marks an import that skipped invalid lines.
var errSomeInvalid = errors.New("some lines were invalid")

// importResult is the API's answer to an import.
type importResult struct {
	Imported int `json:"imported"`
	Already  int `json:"already"`
	Invalid  []struct {
		Line  int    `json:"line"`
		JID   string `json:"jid"`
		Error string `json:"error"`
	} `json:"invalid"`
	InvalidCount int `json:"invalid_count"`
}

// importFollowers streams a file of JIDs to the API, reporting progress on
// stderr, and prints the summary.
func (c *ctl) importFollowers(ctx context.Context, user, file string) error {
	in, size, err := c.openInput(file)
	if err != nil {
		return err
	}
	defer in.Close()
	prog := newProgress(c.stderr, size, c.progressEvery)
	body := &countingReader{r: in, n: &prog.sent}
	stop := prog.start()
	resp, err := c.api.send(ctx, "POST", "/v1/users/"+pathEscape(user)+"/followers/import", body, size, "text/plain; charset=utf-8", nil)
	stop()
	if err != nil {
		return err
	}
	var res importResult
	if err := decodeAnswer(resp, &res); err != nil {
		return err
	}
	for _, inv := range res.Invalid {
		fmt.Fprintf(c.stderr, "line %d: %q: %s\n", inv.Line, inv.JID, inv.Error)
	}
	if res.InvalidCount > len(res.Invalid) {
		fmt.Fprintf(c.stderr, "... and %d more invalid lines\n", res.InvalidCount-len(res.Invalid))
	}
	fmt.Fprintf(c.stderr, "imported %d, already following %d, invalid %d\n", res.Imported, res.Already, res.InvalidCount)
	summary, _ := json.Marshal(map[string]int{"imported": res.Imported, "already": res.Already, "invalid": res.InvalidCount})
	if _, err := fmt.Fprintln(c.stdout, string(summary)); err != nil {
		return err
	}
	if res.InvalidCount > 0 {
		return errSomeInvalid
	}
	return nil
}

// exportFollowers prints every follower, one JID per line, following the
// API's cursor. A JID may rarely appear twice if the set grows meanwhile.
func (c *ctl) exportFollowers(ctx context.Context, user string) error {
	w := bufio.NewWriter(c.stdout)
	defer w.Flush()
	cursor := ""
	for {
		q := url.Values{"limit": {"1000"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var page struct {
			Followers []string `json:"followers"`
			Next      string   `json:"next"`
		}
		if err := c.api.do(ctx, "GET", "/v1/users/"+pathEscape(user)+"/followers?"+q.Encode(), nil, "", &page); err != nil {
			return err
		}
		for _, j := range page.Followers {
			if _, err := fmt.Fprintln(w, j); err != nil {
				return err
			}
		}
		if page.Next == "" {
			return w.Flush()
		}
		cursor = page.Next
	}
}
