package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
)

// jids runs "jids add|list|rm": the Jabber addresses linked to an account,
// which may post by IM once verified.
func (c *ctl) jids(ctx context.Context, verb string, args []string) error {
	fs := flag.NewFlagSet("jids", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	token := fs.String("token", c.api.token, "")
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return fmt.Errorf("%w: jids %s: %v", errUsage, verb, err)
	}
	c.api.token = *token
	switch {
	case verb == "add" && len(rest) == 2:
		body, _ := json.Marshal(map[string]string{"jid": rest[1]})
		return c.printJSON(ctx, "POST", "/v1/users/"+pathEscape(rest[0])+"/jids", body)
	case verb == "list" && len(rest) == 1:
		return c.listJIDs(ctx, rest[0])
	case verb == "rm" && len(rest) == 2:
		return c.api.do(ctx, "DELETE", "/v1/users/"+pathEscape(rest[0])+"/jids/"+pathEscape(rest[1]), nil, "", nil)
	}
	return fmt.Errorf("%w: jids add NAME JID | jids list NAME | jids rm NAME JID", errUsage)
}

// listJIDs prints the linked JIDs, one a line: the JID, "verified" or
// "code", and when it was verified or when its code expires, tab-separated.
func (c *ctl) listJIDs(ctx context.Context, user string) error {
	var list struct {
		JIDs []struct {
			JID        string `json:"jid"`
			Verified   bool   `json:"verified"`
			VerifiedAt string `json:"verified_at"`
			ExpiresAt  string `json:"expires_at"`
		} `json:"jids"`
	}
	if err := c.api.do(ctx, "GET", "/v1/users/"+pathEscape(user)+"/jids", nil, "", &list); err != nil {
		return err
	}
	for _, j := range list.JIDs {
		state, at := "code", j.ExpiresAt
		if j.Verified {
			state, at = "verified", j.VerifiedAt
		}
		if _, err := fmt.Fprintf(c.stdout, "%s\t%s\t%s\n", j.JID, state, at); err != nil {
			return err
		}
	}
	return nil
}
